//! The last events each room had on this gateway, kept for a short while.
//!
//! On Kafka, history lives in PostgreSQL, which the persist workers fill a few milliseconds
//! (or, while the database is down, minutes) behind the log. A client that resumes with
//! `since` on this gateway must still get every event it missed, including those not yet
//! persisted: the join replays history from the store, then whatever this buffer holds past
//! it. And the chat service must find a message sent a moment ago, to edit, delete, react to
//! or answer it before persist has stored it. Events stay here for `keep` (longer than persist
//! usually lags) and at most `cap` per room; the messages are also kept by id for `keep`
//! whatever their room's traffic (at most [`MESSAGES_CAP`] of them), since after a database
//! outage persist may lag longer than a busy room's `cap` lasts. Changes of rooms themselves
//! (members, topics) are also kept apart for `keep`, whatever their room's traffic, for the
//! directory of rooms (see [`crate::directory`]) and the rooms list, which must not miss a
//! membership persist has not stored yet. A read position is its user's own and is not kept:
//! no one else's resume replays it. Memory stays bounded.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use banter_core::{Change, Cursor, LoggedEvent, RoomChange, RoomEvent, RoomName, UserId};

/// A room's kept events, each with the time it was heard.
type Kept = VecDeque<(Instant, Arc<LoggedEvent>)>;

/// Most messages kept by id, over all rooms.
pub const MESSAGES_CAP: usize = 200_000;
/// Most room changes kept apart, over all rooms.
pub const ROOM_CHANGES_CAP: usize = 100_000;

#[derive(Debug, Default)]
struct Inner {
    rooms: HashMap<RoomName, Kept>,
    /// Messages heard lately by id, for the chat service's lookups, and the order they came.
    messages: HashMap<uuid::Uuid, Arc<LoggedEvent>>,
    message_order: VecDeque<(Instant, uuid::Uuid)>,
    /// Messages deleted lately: the store may still have them (persist lags), and they are
    /// gone all the same.
    deleted: HashMap<uuid::Uuid, Instant>,
    /// The message kept in `messages` that carries each upload (the first that did), so a
    /// member can fetch a file before persist has stored the message.
    carriers: HashMap<uuid::Uuid, uuid::Uuid>,
    /// Changes of rooms themselves heard lately, in the order they came.
    room_changes: Kept,
    /// The newest place heard in each partition of the log.
    newest: HashMap<u32, u64>,
}

impl Inner {
    /// Forgets a kept message, and which uploads it carries.
    fn forget_message(&mut self, id: uuid::Uuid) {
        if let Some(logged) = self.messages.remove(&id) {
            if let RoomEvent::Message(m) = &logged.event {
                for a in &m.attachments {
                    if self.carriers.get(&a.id) == Some(&id) {
                        self.carriers.remove(&a.id);
                    }
                }
            }
        }
    }
}

/// See the module docs. Shared behind an `Arc`.
#[derive(Debug)]
pub struct Recent {
    /// A std mutex: held to push, prune or copy out a few entries, never across an await.
    inner: Mutex<Inner>,
    keep: Duration,
    cap: usize,
}

impl Recent {
    pub fn new(keep: Duration, cap: usize) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            keep,
            cap: cap.max(1),
        }
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Messages heard within `window`, and the newest place heard in each partition of the
    /// log: the admin page's figures.
    pub fn heard(&self, window: Duration) -> (usize, Vec<(u32, u64)>) {
        let now = Instant::now();
        let inner = self.inner();
        let messages = inner
            .message_order
            .iter()
            .rev()
            .take_while(|(at, _)| now.duration_since(*at) <= window)
            .count();
        (
            messages,
            inner.newest.iter().map(|(p, o)| (*p, *o)).collect(),
        )
    }

    /// Remembers an event just heard from the log. A delete forgets its message and the
    /// message's other events, so that a resume does not bring them back.
    pub fn push(&self, logged: Arc<LoggedEvent>) {
        let now = Instant::now();
        let mut inner = self.inner();
        let inner = &mut *inner;
        let newest = inner.newest.entry(logged.cursor.partition).or_default();
        *newest = (*newest).max(logged.cursor.offset);
        match &logged.event {
            RoomEvent::Message(m) => {
                inner.messages.insert(m.id, logged.clone());
                for a in &m.attachments {
                    inner.carriers.entry(a.id).or_insert(m.id);
                }
                inner.message_order.push_back((now, m.id));
                while inner.message_order.len() > MESSAGES_CAP {
                    if let Some((_, id)) = inner.message_order.pop_front() {
                        inner.forget_message(id);
                    }
                }
            }
            RoomEvent::Change(c) if c.change == Change::Delete => {
                inner.forget_message(c.message);
                inner.deleted.insert(c.message, now);
                if let Some(kept) = inner.rooms.get_mut(&c.room) {
                    kept.retain(|(_, e)| e.event.message_id() != c.message);
                }
            }
            RoomEvent::Change(_) => {}
            // Their user's own: not replayed to the room.
            RoomEvent::Room(r)
                if matches!(r.change, RoomChange::Read { .. } | RoomChange::Muted { .. }) =>
            {
                return
            }
            RoomEvent::Room(_) => {
                inner.room_changes.push_back((now, logged.clone()));
                while inner.room_changes.len() > ROOM_CHANGES_CAP {
                    inner.room_changes.pop_front();
                }
            }
        }
        let room = inner.rooms.entry(logged.room().clone()).or_default();
        room.push_back((now, logged));
        while room.len() > self.cap
            || room
                .front()
                .is_some_and(|(at, _)| now.duration_since(*at) > self.keep)
        {
            room.pop_front();
        }
    }

    /// The events of `room` after `after` (all that are kept, with `None`), oldest first.
    pub fn after(&self, room: &RoomName, after: Option<Cursor>) -> Vec<Arc<LoggedEvent>> {
        self.inner()
            .rooms
            .get(room)
            .map(|kept| {
                kept.iter()
                    .filter(|(_, e)| after.is_none_or(|a| e.cursor > a))
                    .map(|(_, e)| e.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The changes of `room` itself heard lately, oldest first.
    pub fn room_changes(&self, room: &RoomName) -> Vec<Arc<LoggedEvent>> {
        self.inner()
            .room_changes
            .iter()
            .filter(|(_, e)| e.room() == room)
            .map(|(_, e)| e.clone())
            .collect()
    }

    /// The rooms whose membership of `user` changed lately.
    pub fn rooms_changed_for(&self, user: UserId) -> Vec<RoomName> {
        let mut rooms: Vec<RoomName> = Vec::new();
        for (_, e) in &self.inner().room_changes {
            if let RoomEvent::Room(r) = &e.event {
                if r.involved().contains(&user) && !rooms.contains(&r.room) {
                    rooms.push(r.room.clone());
                }
            }
        }
        rooms
    }

    /// A message heard lately and not deleted since.
    pub fn message(&self, id: uuid::Uuid) -> Option<Arc<LoggedEvent>> {
        self.inner().messages.get(&id).cloned()
    }

    /// Whether the message was deleted lately.
    pub fn deleted(&self, id: uuid::Uuid) -> bool {
        self.inner().deleted.contains_key(&id)
    }

    /// The message heard lately (and not deleted since) that carries the upload `id`.
    pub fn carrier(&self, id: uuid::Uuid) -> Option<Arc<LoggedEvent>> {
        let inner = self.inner();
        inner
            .carriers
            .get(&id)
            .and_then(|m| inner.messages.get(m))
            .cloned()
    }

    /// Forgets what is older than `keep`, and rooms left empty.
    pub fn prune(&self) {
        self.prune_at(Instant::now());
    }

    fn prune_at(&self, now: Instant) {
        let keep = self.keep;
        let mut inner = self.inner();
        let inner = &mut *inner;
        inner.rooms.retain(|_, kept| {
            while kept
                .front()
                .is_some_and(|(at, _)| now.duration_since(*at) > keep)
            {
                kept.pop_front();
            }
            !kept.is_empty()
        });
        while inner
            .message_order
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > keep)
        {
            if let Some((_, id)) = inner.message_order.pop_front() {
                inner.forget_message(id);
            }
        }
        inner
            .deleted
            .retain(|_, at| now.duration_since(*at) <= keep);
        while inner
            .room_changes
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > keep)
        {
            inner.room_changes.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use banter_core::{Emoji, NewChange, NewMessage, UserId, Username};

    fn message(room: &str, offset: u64) -> Arc<LoggedEvent> {
        Arc::new(
            RoomEvent::Message(NewMessage {
                id: uuid::Uuid::new_v4(),
                room: RoomName::parse(room).expect("room"),
                author_id: UserId(1),
                author: Username::parse("alice").expect("name"),
                body: format!("m{offset}"),
                created_at: chrono::Utc::now(),
                client_id: None,
                reply_to: None,
                thread_root: None,
                mentions: Vec::new(),
                attachments: Vec::new(),
                bot: None,
            })
            .at_cursor(Cursor::new(0, offset)),
        )
    }

    fn change(of: &LoggedEvent, offset: u64, change: Change) -> Arc<LoggedEvent> {
        Arc::new(
            RoomEvent::Change(NewChange {
                id: uuid::Uuid::new_v4(),
                room: of.room().clone(),
                message: of.event.id(),
                user_id: UserId(2),
                user: Username::parse("bob").expect("name"),
                at: chrono::Utc::now(),
                client_id: None,
                change,
            })
            .at_cursor(Cursor::new(0, offset)),
        )
    }

    fn offsets(events: &[Arc<LoggedEvent>]) -> Vec<u64> {
        events.iter().map(|e| e.cursor.offset).collect()
    }

    #[test]
    fn keeps_the_last_events_per_room_within_its_cap() {
        let recent = Recent::new(Duration::from_secs(60), 3);
        let first = message("a", 1);
        recent.push(first.clone());
        for offset in 2..=5 {
            recent.push(message("a", offset));
        }
        recent.push(message("b", 6));
        let a = RoomName::parse("a").expect("room");
        assert_eq!(offsets(&recent.after(&a, None)), [3, 4, 5]);
        assert_eq!(offsets(&recent.after(&a, Some(Cursor::new(0, 3)))), [4, 5]);
        // Out of its room's events, but still found by id: persist may not have it yet.
        assert!(recent.message(first.event.id()).is_some());
    }

    #[test]
    fn the_first_message_heard_that_carries_an_upload_is_its_carrier_until_deleted() {
        let recent = Recent::new(Duration::from_secs(60), 10);
        let upload = uuid::Uuid::new_v4();
        let with = |offset| {
            let mut m = (*message("a", offset)).clone();
            if let RoomEvent::Message(n) = &mut m.event {
                n.attachments = vec![banter_core::Attachment {
                    id: upload,
                    name: "f".into(),
                    size: 1,
                    content_type: "application/octet-stream".into(),
                    width: None,
                    height: None,
                    thumbnail: false,
                }];
            }
            Arc::new(m)
        };
        assert!(recent.carrier(upload).is_none());
        let first = with(1);
        recent.push(first.clone());
        recent.push(with(2));
        assert_eq!(
            recent.carrier(upload).map(|m| m.event.id()),
            Some(first.event.id())
        );
        recent.push(change(&first, 3, Change::Delete));
        assert!(
            recent.carrier(upload).is_none(),
            "a deleted message carries nothing"
        );
    }

    #[test]
    fn a_delete_forgets_its_message_and_its_changes() {
        let recent = Recent::new(Duration::from_secs(60), 10);
        let (one, two) = (message("a", 1), message("a", 2));
        recent.push(one.clone());
        recent.push(two.clone());
        let emoji = Emoji::parse("👍").expect("emoji");
        recent.push(change(&one, 3, Change::React { emoji }));
        recent.push(change(&one, 4, Change::Delete));
        let room = RoomName::parse("a").expect("room");
        assert_eq!(offsets(&recent.after(&room, None)), [2, 4]);
        assert!(recent.message(one.event.id()).is_none());
        assert!(recent.deleted(one.event.id()));
        assert!(recent.message(two.event.id()).is_some());
    }

    #[test]
    fn forgets_what_is_older_than_it_keeps() {
        let recent = Recent::new(Duration::from_secs(60), 10);
        let one = message("a", 1);
        recent.push(one.clone());
        recent.prune_at(Instant::now() + Duration::from_secs(61));
        assert!(recent
            .after(&RoomName::parse("a").expect("room"), None)
            .is_empty());
        assert!(recent.inner().rooms.is_empty());
        assert!(recent.message(one.event.id()).is_none());
    }
}
