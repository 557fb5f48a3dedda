//! banter's domain vocabulary, shared by every service: the validated names and bodies that
//! input is parsed into at the edge, the room events every change of a room becomes
//! ([`RoomEvent`], [`LoggedEvent`]), the records the store hands back, and the WebSocket
//! protocol's frames ([`frames`]), kept here, free of I/O, so they can be fuzzed alone.
//!
//! Nothing here does I/O. A value of one of these types is valid by construction, so code past
//! the edge never re-checks it ("parse, don't validate").

mod event;
pub mod frames;
mod message;
mod names;
mod room;
pub mod search;
mod user;

pub use event::{Appended, Change, Emoji, LoggedEvent, NewChange, RoomEvent};
pub use message::{
    attachments_from_json, attachments_json, optional_rfc3339_millis, rfc3339_millis, Attachment,
    BotLabel, BotPost, ClientId, Cursor, EarlierBody, Message, NewMessage, ReactionSummary,
    StoredMessage,
};
pub use names::{MessageBody, Password, RoomName, Username};
pub use room::{
    effect, mention_candidates, Effect, Membership, NewRoomChange, Role, RoomChange, RoomEntry,
    RoomInfo, RoomKind, Topic, UserRef, MAX_MENTIONS, UNREAD_CAP,
};
pub use user::{Standing, User, UserId};

/// Why a piece of client input was refused: which field, and a sentence a person can act on.
///
/// The HTTP and WebSocket edges turn it into a `validation_failed` answer that names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    /// The input field at fault, as the client spelled it (`username`, `room`, ...).
    pub field: &'static str,
    /// What is wrong with it.
    pub message: String,
}

impl ValidationError {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}
