//! Who is in which room on this gateway, and the fan-out to them.
//!
//! A `Hub` maps each room to its members (connections) and counts each user's connections per
//! room, which is presence: a user comes online in a room with their first connection there
//! and goes offline with their last. Fan-out never waits: each connection has a bounded queue,
//! and a connection whose queue is full is kicked (closed with 4008, "too slow") instead of
//! letting the server's memory grow; its client reconnects and resumes with `since`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::ws::Utf8Bytes;
use banter_core::{Cursor, RoomName, Username};
use tokio::sync::{mpsc, Notify};

use crate::frames::ServerFrame;

/// Identifies one WebSocket connection on this gateway.
pub type ConnId = u64;

/// Close code for a connection that could not keep up.
pub const CLOSE_TOO_SLOW: u16 = 4008;

/// A frame on its way to one connection. The text is shared by every recipient (one
/// serialization per fan-out); `place` says where a message sits in its room's log, so a
/// connection that has just replayed history can skip what it already sent.
#[derive(Debug, Clone)]
pub struct Outbound {
    pub text: Utf8Bytes,
    pub place: Option<Arc<(RoomName, Cursor)>>,
}

impl Outbound {
    pub fn frame(frame: &ServerFrame<'_>) -> Self {
        Self {
            text: frame.to_json().into(),
            place: None,
        }
    }
}

/// Tells a connection task to close, and with which code.
#[derive(Debug, Default)]
pub struct Kick {
    notify: Notify,
    code: AtomicU16,
}

impl Kick {
    pub fn kick(&self, code: u16) {
        // The first reason wins.
        if self
            .code
            .compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.notify.notify_one();
        }
    }

    /// Resolves once kicked, with the close code.
    pub async fn kicked(&self) -> u16 {
        loop {
            let code = self.code.load(Ordering::Acquire);
            if code != 0 {
                return code;
            }
            self.notify.notified().await;
        }
    }
}

/// A connection as the hub sees it.
#[derive(Debug, Clone)]
pub struct Member {
    pub user: Username,
    pub tx: mpsc::Sender<Outbound>,
    pub kick: Arc<Kick>,
}

#[derive(Debug, Default)]
struct Room {
    members: HashMap<ConnId, Member>,
    /// Connections per user (keyed by the lowercased name, as names compare without case).
    online: HashMap<String, (Username, usize)>,
}

/// Rooms and members of this gateway. Shared behind an `Arc`.
#[derive(Debug, Default)]
pub struct Hub {
    /// One std mutex over all rooms: it is held for map updates and non-blocking `try_send`s
    /// only, never across an await. (Per-room locks can replace it when profiles say so.)
    rooms: Mutex<HashMap<RoomName, Room>>,
    next_id: AtomicU64,
}

impl Hub {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn next_conn_id(&self) -> ConnId {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    fn rooms(&self) -> MutexGuard<'_, HashMap<RoomName, Room>> {
        self.rooms
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds a connection to a room. Returns the users online there afterwards. When this is
    /// the user's first connection in the room, the others hear it come online.
    pub fn join(&self, room: &RoomName, id: ConnId, member: Member) -> Vec<String> {
        let mut rooms = self.rooms();
        let entry = rooms.entry(room.clone()).or_default();
        let user = member.user.clone();
        if entry.members.insert(id, member).is_some() {
            // Already a member: nothing changes.
            return online_names(entry);
        }
        let count = entry
            .online
            .entry(user.as_str().to_ascii_lowercase())
            .or_insert_with(|| (user.clone(), 0));
        count.1 += 1;
        if count.1 == 1 {
            let frame = Outbound::frame(&ServerFrame::Presence {
                room,
                user: user.as_str(),
                state: "online",
            });
            send_all(entry, &frame, Some(id), None);
        }
        online_names(entry)
    }

    /// Removes a connection from a room. When it was the user's last connection there, the
    /// others hear it go offline.
    pub fn leave(&self, room: &RoomName, id: ConnId) {
        let mut rooms = self.rooms();
        let Some(entry) = rooms.get_mut(room) else {
            return;
        };
        let Some(member) = entry.members.remove(&id) else {
            return;
        };
        let key = member.user.as_str().to_ascii_lowercase();
        let last = match entry.online.get_mut(&key) {
            Some(count) => {
                count.1 -= 1;
                count.1 == 0
            }
            None => false,
        };
        if last {
            entry.online.remove(&key);
            let frame = Outbound::frame(&ServerFrame::Presence {
                room,
                user: member.user.as_str(),
                state: "offline",
            });
            send_all(entry, &frame, None, None);
        }
        if entry.members.is_empty() {
            rooms.remove(room);
        }
    }

    /// Sends a frame to every member of `room`, except the connections of `except_user`.
    pub fn fan_out(&self, room: &RoomName, frame: &Outbound, except_user: Option<&str>) {
        let mut rooms = self.rooms();
        if let Some(entry) = rooms.get_mut(room) {
            send_all(entry, frame, None, except_user);
        }
    }

    /// The users online in a room on this gateway, sorted.
    pub fn online(&self, room: &RoomName) -> Vec<String> {
        self.rooms().get(room).map(online_names).unwrap_or_default()
    }

    /// Every room with someone online here, and how many users.
    pub fn online_counts(&self) -> Vec<(RoomName, usize)> {
        self.rooms()
            .iter()
            .map(|(room, r)| (room.clone(), r.online.len()))
            .collect()
    }

    /// Connections currently registered in any room (a connection in two rooms counts twice).
    pub fn memberships(&self) -> usize {
        self.rooms().values().map(|r| r.members.len()).sum()
    }
}

fn online_names(room: &Room) -> Vec<String> {
    let mut names: Vec<String> = room
        .online
        .values()
        .map(|(name, _)| name.as_str().to_owned())
        .collect();
    names.sort_unstable();
    names
}

fn send_all(room: &Room, frame: &Outbound, except_conn: Option<ConnId>, except_user: Option<&str>) {
    for (id, member) in &room.members {
        if Some(*id) == except_conn
            || except_user.is_some_and(|u| member.user.as_str().eq_ignore_ascii_case(u))
        {
            continue;
        }
        match member.tx.try_send(frame.clone()) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                metrics::counter!("banter_ws_slow_consumers_total").increment(1);
                member.kick.kick(CLOSE_TOO_SLOW);
            }
            // The connection is closing; it is about to leave every room.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, capacity: usize) -> (Member, mpsc::Receiver<Outbound>) {
        let (tx, rx) = mpsc::channel(capacity);
        (
            Member {
                user: Username::parse(name).expect("name"),
                tx,
                kick: Arc::new(Kick::default()),
            },
            rx,
        )
    }

    fn texts(rx: &mut mpsc::Receiver<Outbound>) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(o) = rx.try_recv() {
            out.push(o.text.as_str().to_owned());
        }
        out
    }

    #[test]
    fn presence_follows_the_first_and_last_connection_of_a_user() {
        let hub = Hub::new();
        let room = RoomName::parse("general").expect("room");
        let (bob, mut bob_rx) = member("bob", 16);
        assert_eq!(hub.join(&room, 1, bob), vec!["bob"]);
        let (alice1, _a1) = member("alice", 16);
        let (alice2, _a2) = member("alice", 16);
        assert_eq!(hub.join(&room, 2, alice1), vec!["alice", "bob"]);
        assert_eq!(hub.join(&room, 3, alice2), vec!["alice", "bob"]);
        let got = texts(&mut bob_rx);
        assert_eq!(got.len(), 1, "one online event for two tabs: {got:?}");
        assert!(got[0].contains(r#""state":"online""#) && got[0].contains("alice"));

        hub.leave(&room, 2);
        assert!(texts(&mut bob_rx).is_empty(), "alice still has a tab open");
        hub.leave(&room, 3);
        let got = texts(&mut bob_rx);
        assert_eq!(got.len(), 1);
        assert!(got[0].contains(r#""state":"offline""#));
        assert_eq!(hub.online(&room), vec!["bob"]);
        hub.leave(&room, 1);
        assert!(hub.online_counts().is_empty(), "empty rooms are forgotten");
    }

    #[test]
    fn a_full_queue_kicks_instead_of_growing() {
        let hub = Hub::new();
        let room = RoomName::parse("r").expect("room");
        let (slow, _rx) = member("slow", 2);
        let kick = slow.kick.clone();
        hub.join(&room, 1, slow);
        let frame = Outbound {
            text: "x".into(),
            place: None,
        };
        hub.fan_out(&room, &frame, None);
        hub.fan_out(&room, &frame, None);
        assert_eq!(kick.code.load(Ordering::Acquire), 0);
        hub.fan_out(&room, &frame, None);
        assert_eq!(kick.code.load(Ordering::Acquire), CLOSE_TOO_SLOW);
    }

    #[test]
    fn fan_out_can_skip_one_user() {
        let hub = Hub::new();
        let room = RoomName::parse("r").expect("room");
        let (a, mut a_rx) = member("alice", 4);
        let (b, mut b_rx) = member("bob", 4);
        hub.join(&room, 1, a);
        hub.join(&room, 2, b);
        texts(&mut a_rx);
        let frame = Outbound {
            text: "typing".into(),
            place: None,
        };
        hub.fan_out(&room, &frame, Some("ALICE"));
        assert!(texts(&mut a_rx).is_empty());
        assert_eq!(texts(&mut b_rx), vec!["typing"]);
    }
}
