//! The last messages each room had on this gateway, kept for a short while.
//!
//! On Kafka, history lives in PostgreSQL, which the persist workers fill a few milliseconds
//! (or, while the database is down, minutes) behind the log. A client that resumes with
//! `since` on this gateway must still get every message it missed, including those not yet
//! persisted: the join replays history from the store, then whatever this buffer holds past
//! it. Messages stay here for `keep` (longer than persist usually lags) and at most `cap` per
//! room, so memory stays bounded.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use banter_core::{Cursor, Message, RoomName};

/// A room's kept messages, each with the time it was heard.
type Kept = VecDeque<(Instant, Arc<Message>)>;

/// See the module docs. Shared behind an `Arc`.
#[derive(Debug)]
pub struct Recent {
    /// A std mutex: held to push, prune or copy out a few entries, never across an await.
    rooms: Mutex<HashMap<RoomName, Kept>>,
    keep: Duration,
    cap: usize,
}

impl Recent {
    pub fn new(keep: Duration, cap: usize) -> Self {
        Self {
            rooms: Mutex::new(HashMap::new()),
            keep,
            cap: cap.max(1),
        }
    }

    fn rooms(&self) -> MutexGuard<'_, HashMap<RoomName, Kept>> {
        self.rooms
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Remembers a message just heard from the log.
    pub fn push(&self, message: Arc<Message>) {
        let now = Instant::now();
        let mut rooms = self.rooms();
        let room = rooms.entry(message.room.clone()).or_default();
        room.push_back((now, message));
        while room.len() > self.cap
            || room
                .front()
                .is_some_and(|(at, _)| now.duration_since(*at) > self.keep)
        {
            room.pop_front();
        }
    }

    /// Forgets a deleted message, so that a resume does not bring it back.
    pub fn forget(&self, room: &RoomName, id: uuid::Uuid) {
        if let Some(kept) = self.rooms().get_mut(room) {
            kept.retain(|(_, m)| m.id != id);
        }
    }

    /// The messages of `room` after `after` (all that are kept, with `None`), oldest first.
    pub fn after(&self, room: &RoomName, after: Option<Cursor>) -> Vec<Arc<Message>> {
        self.rooms()
            .get(room)
            .map(|kept| {
                kept.iter()
                    .filter(|(_, m)| after.is_none_or(|a| m.cursor > a))
                    .map(|(_, m)| m.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Forgets what is older than `keep`, and rooms left empty.
    pub fn prune(&self) {
        self.prune_at(Instant::now());
    }

    fn prune_at(&self, now: Instant) {
        self.rooms().retain(|_, kept| {
            while kept
                .front()
                .is_some_and(|(at, _)| now.duration_since(*at) > self.keep)
            {
                kept.pop_front();
            }
            !kept.is_empty()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use banter_core::Username;

    fn message(room: &str, offset: u64) -> Arc<Message> {
        Arc::new(Message {
            id: uuid::Uuid::new_v4(),
            room: RoomName::parse(room).expect("room"),
            author: Username::parse("alice").expect("name"),
            body: format!("m{offset}"),
            created_at: chrono::Utc::now(),
            cursor: Cursor::new(0, offset),
            client_id: None,
        })
    }

    #[test]
    fn keeps_the_last_messages_per_room_within_its_cap() {
        let recent = Recent::new(Duration::from_secs(60), 3);
        for offset in 1..=5 {
            recent.push(message("a", offset));
        }
        recent.push(message("b", 6));
        let a = RoomName::parse("a").expect("room");
        let offsets: Vec<u64> = recent
            .after(&a, None)
            .iter()
            .map(|m| m.cursor.offset)
            .collect();
        assert_eq!(offsets, [3, 4, 5]);
        let offsets: Vec<u64> = recent
            .after(&a, Some(Cursor::new(0, 3)))
            .iter()
            .map(|m| m.cursor.offset)
            .collect();
        assert_eq!(offsets, [4, 5]);
    }

    #[test]
    fn a_deleted_message_is_not_replayed() {
        let recent = Recent::new(Duration::from_secs(60), 10);
        let (one, two) = (message("a", 1), message("a", 2));
        recent.push(one.clone());
        recent.push(two.clone());
        let room = RoomName::parse("a").expect("room");
        recent.forget(&room, one.id);
        let ids: Vec<_> = recent.after(&room, None).iter().map(|m| m.id).collect();
        assert_eq!(ids, [two.id]);
    }

    #[test]
    fn forgets_what_is_older_than_it_keeps() {
        let recent = Recent::new(Duration::from_secs(60), 10);
        recent.push(message("a", 1));
        recent.prune_at(Instant::now() + Duration::from_secs(61));
        assert!(recent
            .after(&RoomName::parse("a").expect("room"), None)
            .is_empty());
        assert!(recent.rooms().is_empty());
    }
}
