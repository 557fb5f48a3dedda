//! Room events: every change of a room — a message, an edit, a delete, a reaction added or
//! removed, a member joining, leaving, added or removed, its topic, a read position — is one
//! [`RoomEvent`], and the room's log is the sequence of them.
//!
//! A client's frame (or HTTP request) becomes a [`RoomEvent`] once its rights are checked;
//! the log gives it a [`Cursor`] and it becomes a [`LoggedEvent`]. The same logged event is
//! fanned out to the room's readers, replayed by a resume, and applied to the store by the one
//! projection both logs use (the store's `apply`), so no change reaches the database beside
//! the log. [`Appended`] is what the log answers the one who submitted it.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Serialize, Serializer};
use uuid::Uuid;

use crate::{
    ClientId, Cursor, Message, NewMessage, NewRoomChange, RoomName, UserId, Username,
    ValidationError,
};

/// A reaction: one emoji (or a short `:name:`), 1 to 32 characters, no spaces.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Emoji(String);

impl Emoji {
    pub const MAX_LEN: usize = 32;

    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        let chars = input.chars().count();
        if chars == 0 || chars > Self::MAX_LEN {
            return Err(ValidationError::new(
                "emoji",
                format!("must be 1 to {} characters long", Self::MAX_LEN),
            ));
        }
        if input.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ValidationError::new(
                "emoji",
                "may not contain spaces or control characters",
            ));
        }
        Ok(Self(input.to_owned()))
    }

    /// Wraps an emoji the store or the log already holds (validated when it was written).
    pub fn from_stored(emoji: String) -> Self {
        Self(emoji)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Emoji {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Emoji {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// What a change does to the message it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The message's body becomes `body`; the earlier one is kept in its edit history.
    Edit { body: String },
    /// The message leaves history; its body, earlier bodies and reactions are erased.
    Delete,
    /// The user's reaction joins the message's set (a no-op when it is there).
    React { emoji: Emoji },
    /// The user's reaction leaves the set (a no-op when it is not there).
    Unreact { emoji: Emoji },
}

impl Change {
    /// The name of the kind, as the store and the log's records spell it.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Edit { .. } => "edit",
            Self::Delete => "delete",
            Self::React { .. } => "react",
            Self::Unreact { .. } => "unreact",
        }
    }
}

/// A change of one message, before the log places it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewChange {
    /// The event's own id (not the message's): a redelivered event is known by it.
    pub id: Uuid,
    pub room: RoomName,
    /// The message changed.
    pub message: Uuid,
    pub user_id: UserId,
    pub user: Username,
    pub at: DateTime<Utc>,
    pub client_id: Option<ClientId>,
    pub change: Change,
}

/// A change of a room, as submitted to its log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomEvent {
    Message(NewMessage),
    /// A change of one message.
    Change(NewChange),
    /// A change of the room itself: its members, its topic, a read position.
    Room(NewRoomChange),
}

impl RoomEvent {
    pub fn room(&self) -> &RoomName {
        match self {
            Self::Message(m) => &m.room,
            Self::Change(c) => &c.room,
            Self::Room(r) => &r.room,
        }
    }

    /// What kind of event it is, as the store and the log's records spell it: `message`, or
    /// the kind of its change (`edit`, `react`, `joined`, `read`...).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Message(_) => "message",
            Self::Change(c) => c.change.kind(),
            Self::Room(r) => r.change.kind(),
        }
    }

    /// The event's own id: the message's id for a message.
    pub fn id(&self) -> Uuid {
        match self {
            Self::Message(m) => m.id,
            Self::Change(c) => c.id,
            Self::Room(r) => r.id,
        }
    }

    /// The id its ack names: the message the event is about (the new message itself, or the
    /// one changed), or a room change's own id.
    pub fn message_id(&self) -> Uuid {
        match self {
            Self::Message(m) => m.id,
            Self::Change(c) => c.message,
            Self::Room(r) => r.id,
        }
    }

    /// Who caused it.
    pub fn actor_id(&self) -> UserId {
        match self {
            Self::Message(m) => m.author_id,
            Self::Change(c) => c.user_id,
            Self::Room(r) => r.user_id,
        }
    }

    pub fn client_id(&self) -> Option<&ClientId> {
        match self {
            Self::Message(m) => m.client_id.as_ref(),
            Self::Change(c) => c.client_id.as_ref(),
            Self::Room(r) => r.client_id.as_ref(),
        }
    }

    pub fn at(&self) -> DateTime<Utc> {
        match self {
            Self::Message(m) => m.created_at,
            Self::Change(c) => c.at,
            Self::Room(r) => r.at,
        }
    }

    /// The event at its place in the log.
    pub fn at_cursor(self, cursor: Cursor) -> LoggedEvent {
        LoggedEvent {
            cursor,
            event: self,
        }
    }
}

/// A room event at its place in the room's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedEvent {
    pub cursor: Cursor,
    pub event: RoomEvent,
}

impl LoggedEvent {
    pub fn room(&self) -> &RoomName {
        self.event.room()
    }

    /// The message as readers see it, when the event is a message.
    pub fn message(&self) -> Option<Message> {
        match &self.event {
            RoomEvent::Message(m) => Some(m.at(self.cursor)),
            RoomEvent::Change(_) | RoomEvent::Room(_) => None,
        }
    }
}

/// What the log answered the one who submitted an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    /// In the log at a new cursor (and, on the local log, applied to the store).
    New(LoggedEvent),
    /// The actor already used this `client_id`: this is that event, as it was logged then.
    /// Nothing new was written.
    Duplicate(LoggedEvent),
    /// A reaction already in the set, or one removed that was not there, a read position
    /// not ahead, a join of a room one is in...: nothing changed and nothing was logged.
    /// `cursor` is the message's (for a room change, the room's latest).
    Unchanged { message: Uuid, cursor: Cursor },
    /// The message is not there (never was, or deleted before this event's turn came).
    Missing,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emoji_are_short_and_without_spaces() {
        for good in ["👍", ":tada:", "❤️", "👩‍👩‍👧‍👦", &"x".repeat(32)] {
            assert!(Emoji::parse(good).is_ok(), "{good}");
        }
        for bad in ["", " ", "a b", "\n", &"x".repeat(33)] {
            assert_eq!(Emoji::parse(bad).expect_err(bad).field, "emoji");
        }
    }
}
