//! The chat service: the one place that decides who may do what in a room, and that turns
//! what they may do into room events for the log.
//!
//! WebSocket frames (`conn`) and HTTP handlers (`api`, `ws`) only translate: they parse input
//! into types, call this service, and turn its answer into a frame or a response. Rights are
//! values ("parse, don't validate" applied to permissions): [`Chat::reader`] is the only way
//! to get a [`Reader`] of a room, and every operation on a room takes one, so no transport can
//! reach an operation without the check. A message is found through [`Chat::target`], which
//! answers `not_found` alike for a message that does not exist, was deleted, or is in a room
//! the user cannot read: its existence is private too.
//!
//! The rules:
//! - a direct-message room `dm:a:b` is read and written by `a` and `b` only; other rooms by
//!   anyone signed in;
//! - any reader sends, replies and reacts; only the author edits; the author or an admin
//!   deletes.

use std::sync::Arc;

use banter_bus::{BusError, DynBus};
use banter_core::{
    Appended, Change, ClientId, Cursor, Emoji, LoggedEvent, MessageBody, NewChange, NewMessage,
    RoomEvent, RoomName, UserId, Username,
};
use banter_store::{DynStore, StoreError};
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use uuid::Uuid;

use crate::recent::Recent;

/// Why the chat service refused, in the terms both transports answer with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChatError {
    /// `forbidden`: the user may not do this (the message says why).
    #[error("{0}")]
    Forbidden(&'static str),
    /// `not_found`: no such message, as far as this user may know.
    #[error("no such message")]
    NotFound,
    /// `unavailable`: the log or the store cannot answer now; the same request may be sent
    /// again (same `client_id`).
    #[error("unavailable: {0}")]
    Unavailable(String),
}

impl ChatError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Forbidden(_) => "forbidden",
            Self::NotFound => "not_found",
            Self::Unavailable(_) => "unavailable",
        }
    }
}

impl From<StoreError> for ChatError {
    fn from(e: StoreError) -> Self {
        Self::Unavailable(e.to_string())
    }
}

impl From<BusError> for ChatError {
    fn from(e: BusError) -> Self {
        Self::Unavailable(e.to_string())
    }
}

/// Who is acting: the signed-in user, as their token says.
#[derive(Debug, Clone)]
pub struct Actor {
    pub id: UserId,
    pub name: Username,
}

/// Proof that a user may read (and so write to) a room. Only [`Chat::reader`] makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reader {
    room: RoomName,
}

impl Reader {
    pub fn room(&self) -> &RoomName {
        &self.room
    }
}

/// A message found for a user who may read it.
#[derive(Debug, Clone)]
pub struct Target {
    pub id: Uuid,
    pub reader: Reader,
    pub author: Username,
    pub thread_root: Option<Uuid>,
}

/// What a durable event's ack says: the message it is about, where the event sits in the
/// room's log, and when it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acked {
    pub id: Uuid,
    pub room: RoomName,
    pub cursor: Cursor,
    pub at: DateTime<Utc>,
}

fn acked_of(logged: &LoggedEvent) -> Acked {
    Acked {
        id: logged.event.message_id(),
        room: logged.room().clone(),
        cursor: logged.cursor,
        at: logged.event.at(),
    }
}

/// Resolves once the event is durable (or refused).
pub type Pending = BoxFuture<'static, Result<Acked, ChatError>>;

/// A change a user asks for, before the service checks it.
#[derive(Debug, Clone)]
pub enum Request {
    Edit(MessageBody),
    Delete,
    React(Emoji),
    Unreact(Emoji),
}

/// See the module docs. Cloning shares the handles.
#[derive(Debug, Clone)]
pub struct Chat {
    store: DynStore,
    bus: DynBus,
    recent: Arc<Recent>,
}

impl Chat {
    pub fn new(store: DynStore, bus: DynBus, recent: Arc<Recent>) -> Self {
        Self { store, bus, recent }
    }

    /// Whether `user` may read `room`: the rule, written once.
    pub fn may_read(user: &Username, room: &RoomName) -> bool {
        room.admits(user)
    }

    /// The right to read and write `room`, or `forbidden`.
    pub fn reader(&self, user: &Username, room: RoomName) -> Result<Reader, ChatError> {
        if Self::may_read(user, &room) {
            Ok(Reader { room })
        } else {
            Err(ChatError::Forbidden(
                "that direct-message room belongs to two other users",
            ))
        }
    }

    /// A message the user may read, or `not_found`: from the store, or from what this
    /// gateway heard lately (persist may not have stored it yet), and not deleted lately.
    pub async fn target(&self, user: &Username, id: Uuid) -> Result<Target, ChatError> {
        if self.recent.deleted(id) {
            return Err(ChatError::NotFound);
        }
        let stored = match self.store.message(id).await {
            Ok(found) => found,
            // The log goes on while the database is down: what was heard lately still counts.
            Err(e) if self.recent.message(id).is_none() => return Err(e.into()),
            Err(_) => None,
        };
        let (room, author, thread_root) = match stored {
            Some(m) => (m.room, m.author, m.thread_root),
            None => {
                let heard = self.recent.message(id).ok_or(ChatError::NotFound)?;
                match &heard.event {
                    RoomEvent::Message(m) => (m.room.clone(), m.author.clone(), m.thread_root),
                    RoomEvent::Change(_) => return Err(ChatError::NotFound),
                }
            }
        };
        let reader = self.reader(user, room).map_err(|_| ChatError::NotFound)?;
        Ok(Target {
            id,
            reader,
            author,
            thread_root,
        })
    }

    /// Sends a message (a reply, with `reply_to`) to the reader's room.
    pub async fn send(
        &self,
        actor: &Actor,
        reader: &Reader,
        body: MessageBody,
        client_id: Option<ClientId>,
        reply_to: Option<Uuid>,
    ) -> Result<Pending, ChatError> {
        let thread_root = match reply_to {
            None => None,
            Some(parent) => match self.thread_of(actor, reader, parent).await {
                Ok(root) => Some(root),
                Err(e) => return self.unless_resent(actor, client_id.as_ref(), e).await,
            },
        };
        let message = NewMessage {
            id: Uuid::now_v7(),
            room: reader.room.clone(),
            author_id: actor.id,
            author: actor.name.clone(),
            body: body.as_str().to_owned(),
            created_at: banter_store::now(),
            client_id,
            reply_to,
            thread_root,
        };
        let room = message.room.clone();
        self.submit(RoomEvent::Message(message), room).await
    }

    /// Edits, deletes, or reacts to a message, once the rules allow it.
    pub async fn change(
        &self,
        actor: &Actor,
        id: Uuid,
        request: Request,
        client_id: Option<ClientId>,
    ) -> Result<Pending, ChatError> {
        match self.allowed(actor, id, request).await {
            Ok((room, change)) => {
                let event = RoomEvent::Change(NewChange {
                    id: Uuid::now_v7(),
                    room: room.clone(),
                    message: id,
                    user_id: actor.id,
                    user: actor.name.clone(),
                    at: banter_store::now(),
                    client_id,
                    change,
                });
                self.submit(event, room).await
            }
            Err(e) => self.unless_resent(actor, client_id.as_ref(), e).await,
        }
    }

    /// The thread a reply to `parent` joins, if the user may answer it in this room.
    async fn thread_of(
        &self,
        actor: &Actor,
        reader: &Reader,
        parent: Uuid,
    ) -> Result<Uuid, ChatError> {
        let parent = self.target(&actor.name, parent).await?;
        if parent.reader != *reader {
            // A reply lives in its parent's room; elsewhere the parent "is not there".
            return Err(ChatError::NotFound);
        }
        Ok(parent.thread_root.unwrap_or(parent.id))
    }

    /// The rules for a change: the room it goes to and what it does, or why not.
    async fn allowed(
        &self,
        actor: &Actor,
        id: Uuid,
        request: Request,
    ) -> Result<(RoomName, Change), ChatError> {
        let target = self.target(&actor.name, id).await?;
        let own = target
            .author
            .as_str()
            .eq_ignore_ascii_case(actor.name.as_str());
        let change = match request {
            Request::Edit(body) => {
                if !own {
                    return Err(ChatError::Forbidden("only its author may edit a message"));
                }
                Change::Edit {
                    body: body.as_str().to_owned(),
                }
            }
            Request::Delete => {
                // Asked only when it matters: authors delete their own without it.
                if !own && !self.store.is_admin(actor.id).await? {
                    return Err(ChatError::Forbidden(
                        "only its author or an admin may delete a message",
                    ));
                }
                Change::Delete
            }
            // No guess here at whether the set would change: what this gateway knows may lag
            // the log (a removal submitted a moment ago), and a wrong guess would drop what
            // the user did. The log's order decides (see the store's projection).
            Request::React(emoji) => Change::React { emoji },
            Request::Unreact(emoji) => Change::Unreact { emoji },
        };
        Ok((target.reader.room, change))
    }

    /// A refusal, unless the frame is a re-send: then it is answered as the first time, since
    /// its first copy is in the log whatever the checks say now (its message not stored yet
    /// after an outage, say, or deleted since). Asked only after a refusal: on the usual
    /// path the log's own re-send check is enough.
    async fn unless_resent(
        &self,
        actor: &Actor,
        client_id: Option<&ClientId>,
        refusal: ChatError,
    ) -> Result<Pending, ChatError> {
        let Some(client_id) = client_id else {
            return Err(refusal);
        };
        match self.bus.first_copy(actor.id, client_id).await? {
            Some(first) => {
                let acked = acked_of(&first);
                Ok(Box::pin(async move { Ok(acked) }))
            }
            None => Err(refusal),
        }
    }

    /// Hands the event to the log; its place is taken when this returns.
    async fn submit(&self, event: RoomEvent, room: RoomName) -> Result<Pending, ChatError> {
        let receipt = self.bus.submit(event).await?;
        Ok(Box::pin(async move {
            match receipt.await? {
                // A re-sent client id answers with its first event, whatever it was.
                Appended::New(logged) | Appended::Duplicate(logged) => Ok(acked_of(&logged)),
                Appended::Unchanged { message, cursor } => Ok(Acked {
                    id: message,
                    room,
                    cursor,
                    at: banter_store::now(),
                }),
                // Deleted before this event's turn came in the log.
                Appended::Missing => Err(ChatError::NotFound),
            }
        }))
    }
}
