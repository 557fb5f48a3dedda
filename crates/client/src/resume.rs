//! Resume by cursor: per room, the last cursor the client has, and the `join` that resumes
//! after it.

use std::collections::HashMap;

use serde_json::Value;

use crate::{join_frame, ZERO_CURSOR};

/// See the module docs.
#[derive(Debug, Default, Clone)]
pub struct Resume {
    /// `None` until the room's first `joined`: the first join takes what comes from then on.
    rooms: HashMap<String, Option<String>>,
}

impl Resume {
    pub fn new<I, S>(rooms: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            rooms: rooms.into_iter().map(|r| (r.into(), None)).collect(),
        }
    }

    /// The `join` of `room` for a new connection: a plain join the first time, then a
    /// resume after the last cursor heard.
    pub fn join(&self, room: &str) -> String {
        join_frame(room, self.cursor(room))
    }

    pub fn cursor(&self, room: &str) -> Option<&str> {
        self.rooms.get(room).and_then(Option::as_deref)
    }

    /// Takes note of a frame from the server: any room event (message, edit, delete,
    /// reaction; a member joining, leaving, added or removed, a topic, a creation) moves its
    /// room's cursor, and so does `joined`. True when the frame was an event of the room's
    /// timeline (a message, an edit, a delete, a reaction) of a room this client follows.
    pub fn heard(&mut self, frame: &Value) -> bool {
        match (frame["type"].as_str(), frame["room"].as_str()) {
            (Some(kind), Some(room)) => self.note(kind, room, frame["cursor"].as_str()),
            _ => false,
        }
    }

    /// [`Resume::heard`] for a caller that has parsed the frame its own way (a load
    /// generator's typed parse): its `type`, `room` and `cursor`.
    pub fn note(&mut self, kind: &str, room: &str, cursor: Option<&str>) -> bool {
        let Some(slot) = self.rooms.get_mut(room) else {
            return false;
        };
        match (kind, cursor) {
            ("message" | "edited" | "deleted" | "reaction", Some(cursor)) => {
                *slot = Some(cursor.to_owned());
                true
            }
            ("member" | "topic" | "created", Some(cursor)) => {
                *slot = Some(cursor.to_owned());
                false
            }
            ("joined", Some(cursor)) => {
                *slot = Some(cursor.to_owned());
                false
            }
            // A room without events: everything from the start is new.
            ("joined", None) if slot.is_none() => {
                *slot = Some(ZERO_CURSOR.to_owned());
                false
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_room_event_moves_the_cursor_and_a_reconnect_resumes_after_it() {
        let mut r = Resume::new(["a", "b"]);
        assert_eq!(r.join("a"), join_frame("a", None), "first a plain join");
        r.heard(&json!({"type":"joined","room":"a","cursor":null}));
        assert_eq!(r.cursor("a"), Some(ZERO_CURSOR));
        for (kind, cursor) in [
            ("message", "01"),
            ("edited", "02"),
            ("reaction", "03"),
            ("deleted", "04"),
        ] {
            assert!(r.heard(&json!({"type":kind,"room":"a","cursor":cursor})));
            assert_eq!(r.cursor("a"), Some(cursor));
        }
        // Changes of the room itself move it too, and are not timeline events.
        for (kind, cursor) in [("member", "05"), ("topic", "06"), ("created", "07")] {
            assert!(!r.heard(&json!({"type":kind,"room":"a","cursor":cursor})));
            assert_eq!(r.cursor("a"), Some(cursor));
        }
        // Other rooms, other frames: nothing.
        assert!(!r.heard(&json!({"type":"message","room":"z","cursor":"09"})));
        assert!(!r.heard(&json!({"type":"typing","room":"a","user":"x"})));
        assert_eq!(r.join("a"), join_frame("a", Some("07")));
        // A later joined without a cursor keeps what the client has.
        r.heard(&json!({"type":"joined","room":"a","cursor":null}));
        assert_eq!(r.cursor("a"), Some("07"));
        assert_eq!(r.cursor("b"), None);
    }
}
