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
//! Who is in which room comes from the gateway's directory ([`crate::directory`]), kept up
//! from the log: a check costs no database round trip.
//!
//! The rules:
//! - a public room is read by anyone signed in; joining it, or sending to it, makes them a
//!   member (and creates it if it does not exist, the first one its owner);
//! - a private room is read and written by its members only; its owner adds and removes
//!   them (or an admin); anyone may leave;
//! - a direct-message room `dm:a:b` is read and written by `a` and `b` only, both members
//!   from its first message on; nobody leaves it;
//! - any reader sends, replies and reacts; only the author edits; the author or an admin
//!   deletes; the owner (or an admin) sets the topic; members move their read position;
//! - an admin archives a room (read-only: history, read positions, muting, leaving and
//!   deletes still work; nothing new is said), deletes one (gone for everyone at once), and
//!   purges a person's messages wherever they are;
//! - a bot is a member like anyone, and its messages are marked as a bot's; a bot limited to
//!   some rooms is refused every other room here, before any rule above.

use std::sync::Arc;

use banter_bus::{BusError, DynBus};
use banter_core::{
    mention_candidates, Appended, Attachment, BotLabel, BotPost, Change, ClientId, Cursor, Emoji,
    LoggedEvent, MessageBody, NewChange, NewMessage, NewRoomChange, Role, RoomChange, RoomEntry,
    RoomEvent, RoomKind, RoomName, Topic, UserId, UserRef, Username,
};
use banter_store::{DynStore, PurgeItem, SearchScope, StoreError};
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use uuid::Uuid;

use crate::directory::Directory;
use crate::recent::Recent;

/// Why the chat service refused, in the terms both transports answer with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChatError {
    /// `forbidden`: the user may not do this (the message says why).
    #[error("{0}")]
    Forbidden(&'static str),
    /// `not_found`: no such message (or user, or member), as far as this user may know.
    #[error("{0}")]
    NotFound(&'static str),
    /// `room_exists`: a room of that name exists.
    #[error("a room of that name exists")]
    Exists,
    /// `room_archived`: an admin archived the room; it is read-only.
    #[error("this room is archived: it is read-only")]
    Archived,
    /// `unavailable`: the log or the store cannot answer now; the same request may be sent
    /// again (same `client_id`).
    #[error("unavailable: {0}")]
    Unavailable(String),
}

impl ChatError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::Exists => "room_exists",
            Self::Archived => "room_archived",
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

/// Who is acting: the signed-in user (or bot), as their token says.
#[derive(Debug, Clone)]
pub struct Actor {
    pub id: UserId,
    pub name: Username,
    /// Set when a bot acts (behind an `Arc`: an actor is held across every await of a
    /// connection's task, whose size every idle connection pays).
    pub bot: Option<Arc<BotActor>>,
}

/// A bot acting: where it may go, and the label its messages are posted under (an incoming
/// webhook's `username`).
#[derive(Debug, Clone)]
pub struct BotActor {
    pub scope: banter_auth::BotScope,
    pub label: Option<BotLabel>,
}

impl Actor {
    /// A person, or a bot when `bot` is its scope.
    pub fn of(id: UserId, name: Username, bot: Option<banter_auth::BotScope>) -> Self {
        Self {
            id,
            name,
            bot: bot.map(|scope| Arc::new(BotActor { scope, label: None })),
        }
    }

    /// Whether the actor's token reaches `room` at all (a limited bot's does not reach
    /// the others).
    fn may_use(&self, room: &RoomName) -> Result<(), ChatError> {
        match &self.bot {
            Some(bot) if !bot.scope.admits(room) => {
                Err(ChatError::Forbidden("this bot may not use that room"))
            }
            _ => Ok(()),
        }
    }
}

/// Proof that a user may read (and so write to) a room. Only [`Chat::reader`] makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reader {
    room: RoomName,
    /// What the room is, if it exists yet.
    kind: Option<RoomKind>,
    /// The user's part in it, when a member.
    role: Option<Role>,
    /// An admin archived it: read-only.
    archived: bool,
}

impl Reader {
    pub fn room(&self) -> &RoomName {
        &self.room
    }

    pub fn is_member(&self) -> bool {
        self.role.is_some()
    }

    /// Refuses what would say something new in an archived room.
    fn writable(&self) -> Result<(), ChatError> {
        if self.archived {
            return Err(ChatError::Archived);
        }
        Ok(())
    }
}

/// "No such message", for everything a user may not know exists.
const NO_MESSAGE: ChatError = ChatError::NotFound("no such message");

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
    /// The message, when the event is one (moved out of the log's answer, not copied):
    /// what the HTTP API answers a send with. Boxed: acks wait in every connection's task.
    pub message: Option<Box<NewMessage>>,
}

/// The kind of a room that exists, or `not_found`.
fn existing(reader: &Reader) -> Result<RoomKind, ChatError> {
    reader.kind.ok_or(ChatError::NotFound("no such room"))
}

fn self_ref(actor: &Actor) -> UserRef {
    UserRef {
        id: actor.id,
        name: actor.name.clone(),
    }
}

fn acked_of(logged: LoggedEvent) -> Acked {
    let mut acked = Acked {
        id: logged.event.message_id(),
        room: logged.room().clone(),
        cursor: logged.cursor,
        at: logged.event.at(),
        message: None,
    };
    if let RoomEvent::Message(m) = logged.event {
        acked.message = Some(Box::new(m));
    }
    acked
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
    directory: Arc<Directory>,
    /// An upload older than this is not attached any more: the cleanup removes unattached
    /// uploads at their full age, and this margin keeps a send from racing it.
    attach_within: std::time::Duration,
}

impl Chat {
    pub fn new(
        store: DynStore,
        bus: DynBus,
        recent: Arc<Recent>,
        directory: Arc<Directory>,
        unattached_ttl: std::time::Duration,
    ) -> Self {
        Self {
            store,
            bus,
            recent,
            directory,
            attach_within: unattached_ttl.mul_f64(0.9),
        }
    }

    /// The right to read and write `room`, or `forbidden`.
    pub async fn reader(&self, actor: &Actor, room: RoomName) -> Result<Reader, ChatError> {
        actor.may_use(&room)?;
        if !room.admits(&actor.name) {
            return Err(ChatError::Forbidden(
                "that direct-message room belongs to two other users",
            ));
        }
        let known = self.directory.lookup(&room, actor.id).await?;
        let Some(known) = known else {
            return Ok(Reader {
                room,
                kind: None,
                role: None,
                archived: false,
            });
        };
        // Gone for everyone at once, whoever was in it.
        if known.info.deleted_at.is_some() {
            return Err(ChatError::NotFound("no such room"));
        }
        let role = known.member.map(|m| m.role);
        if known.info.kind == RoomKind::Private && role.is_none() {
            return Err(ChatError::Forbidden(
                "that room is private: its owner can add you",
            ));
        }
        Ok(Reader {
            room,
            kind: Some(known.info.kind),
            role,
            archived: known.info.archived_at.is_some(),
        })
    }

    /// Makes the reader a member, durably, if they are not one: joining a public room
    /// (creating it if it does not exist), or a DM's first message. Answered once durable.
    pub async fn become_member(&self, actor: &Actor, reader: &mut Reader) -> Result<(), ChatError> {
        if reader.is_member() {
            return Ok(());
        }
        reader.writable()?;
        let change = match (reader.kind, reader.room.direct_members()) {
            (None, Some((a, b))) => {
                let other = if a.eq_ignore_ascii_case(actor.name.as_str()) {
                    b
                } else {
                    a
                };
                let other = self.user_named(other).await?;
                let mut members = vec![self_ref(actor), other];
                members.dedup_by_key(|m| m.id);
                RoomChange::Created {
                    kind: RoomKind::Dm,
                    topic: Topic::default(),
                    members,
                }
            }
            (None, None) => RoomChange::Created {
                kind: RoomKind::Public,
                topic: Topic::default(),
                members: vec![self_ref(actor)],
            },
            (Some(_), _) => RoomChange::Joined,
        };
        self.room_change(actor, &reader.room, change, None)
            .await?
            .await?;
        reader.role = Some(Role::Member);
        Ok(())
    }

    /// A user by name, or `not_found`.
    async fn user_named(&self, name: &str) -> Result<UserRef, ChatError> {
        let found = self.store.credentials(name).await?;
        let user = found.ok_or(ChatError::NotFound("no such user"))?.user;
        Ok(UserRef {
            id: user.id,
            name: user.username,
        })
    }

    /// Creates a room; its creator is its owner and first member.
    pub async fn create_room(
        &self,
        actor: &Actor,
        room: RoomName,
        kind: RoomKind,
        topic: Topic,
    ) -> Result<Acked, ChatError> {
        actor.may_use(&room)?;
        if room.direct_members().is_some() {
            return Err(ChatError::Forbidden(
                "direct-message rooms make themselves with their first message",
            ));
        }
        if self.directory.lookup(&room, actor.id).await?.is_some() {
            return Err(ChatError::Exists);
        }
        let change = RoomChange::Created {
            kind,
            topic,
            members: vec![self_ref(actor)],
        };
        self.room_change(actor, &room, change, None).await?.await
    }

    /// Whether the actor may manage `room` (add to a private room, remove, set its topic):
    /// its owner, or an admin.
    async fn manages(&self, actor: &Actor, reader: &Reader) -> Result<bool, ChatError> {
        Ok(reader.role == Some(Role::Owner) || self.store.is_admin(actor.id).await?)
    }

    /// Adds `username` to the room: to a private one by its owner, to a public one by any
    /// member. Adding a member changes nothing.
    pub async fn add_member(
        &self,
        actor: &Actor,
        room: RoomName,
        username: &str,
    ) -> Result<(), ChatError> {
        let reader = self.reader(actor, room).await?;
        reader.writable()?;
        match existing(&reader)? {
            RoomKind::Dm => {
                return Err(ChatError::Forbidden(
                    "a direct-message room has its two users",
                ))
            }
            RoomKind::Private if !self.manages(actor, &reader).await? => {
                return Err(ChatError::Forbidden(
                    "only its owner adds members to a private room",
                ))
            }
            _ if !reader.is_member() && !self.manages(actor, &reader).await? => {
                return Err(ChatError::Forbidden(
                    "join the room before adding others to it",
                ))
            }
            _ => {}
        }
        let member = self.user_named(username).await?;
        if self
            .directory
            .lookup(&reader.room, member.id)
            .await?
            .is_some_and(|k| k.member.is_some())
        {
            return Ok(());
        }
        self.durably(actor, &reader.room, RoomChange::Added { member })
            .await
    }

    /// Removes `username` from the room (its owner, or an admin), or, when it is the actor,
    /// leaves it.
    pub async fn remove_member(
        &self,
        actor: &Actor,
        room: RoomName,
        username: &str,
    ) -> Result<(), ChatError> {
        let reader = self.reader(actor, room).await?;
        if existing(&reader)? == RoomKind::Dm {
            return Err(ChatError::Forbidden("nobody leaves a direct-message room"));
        }
        let change = if username.eq_ignore_ascii_case(actor.name.as_str()) {
            if !reader.is_member() {
                return Err(ChatError::NotFound("not a member of that room"));
            }
            RoomChange::Left
        } else {
            if !self.manages(actor, &reader).await? {
                return Err(ChatError::Forbidden("only its owner removes members"));
            }
            let member = self.user_named(username).await?;
            let known = self.directory.lookup(&reader.room, member.id).await?;
            match known.and_then(|k| k.member) {
                None => return Err(ChatError::NotFound("not a member of that room")),
                Some(m) if m.role == Role::Owner => {
                    return Err(ChatError::Forbidden("the owner cannot be removed"))
                }
                Some(_) => {}
            }
            RoomChange::Removed { member }
        };
        self.durably(actor, &reader.room, change).await
    }

    /// Sets the room's topic (its owner, or an admin).
    pub async fn set_topic(
        &self,
        actor: &Actor,
        room: RoomName,
        topic: Topic,
    ) -> Result<(), ChatError> {
        let reader = self.reader(actor, room).await?;
        existing(&reader)?;
        reader.writable()?;
        if !self.manages(actor, &reader).await? {
            return Err(ChatError::Forbidden("only its owner sets the topic"));
        }
        self.durably(actor, &reader.room, RoomChange::Topic { topic })
            .await
    }

    /// Moves the member's read position in the reader's room forward to `cursor`.
    pub async fn read(
        &self,
        actor: &Actor,
        reader: &Reader,
        cursor: Cursor,
        client_id: Option<ClientId>,
    ) -> Result<Pending, ChatError> {
        if !reader.is_member() {
            return Err(ChatError::Forbidden("join the room before marking it read"));
        }
        self.room_change(actor, &reader.room, RoomChange::Read { cursor }, client_id)
            .await
    }

    /// Mutes the reader's room for its member (no pushes but mentions), or unmutes it.
    pub async fn mute(
        &self,
        actor: &Actor,
        reader: &Reader,
        muted: bool,
    ) -> Result<Pending, ChatError> {
        if !reader.is_member() {
            return Err(ChatError::Forbidden("join the room before muting it"));
        }
        self.room_change(actor, &reader.room, RoomChange::Muted { muted }, None)
            .await
    }

    /// Archives the room (read-only) or brings it back: an admin's decision, in its log.
    pub async fn archive(
        &self,
        actor: &Actor,
        room: RoomName,
        archived: bool,
    ) -> Result<(), ChatError> {
        let reader = self.administered(actor, room).await?;
        self.durably(actor, &reader.room, RoomChange::Archived { archived })
            .await
    }

    /// Deletes the room for everyone: an admin's decision, in its log. Its messages and
    /// files are removed in the background (see [`crate::admin::sweep`]).
    pub async fn delete_room(&self, actor: &Actor, room: RoomName) -> Result<(), ChatError> {
        let reader = self.administered(actor, room).await?;
        self.durably(actor, &reader.room, RoomChange::Deleted).await
    }

    /// Deletes messages for an admin's purge, wherever they are (any room, DM or archived
    /// room): each is a delete in its room's log, like one its author makes. Resolves once
    /// every one is durable; one deleted meanwhile is no error.
    pub async fn purge(&self, actor: &Actor, items: &[PurgeItem]) -> Result<(), ChatError> {
        if !self.store.is_admin(actor.id).await? {
            return Err(ChatError::Forbidden("only an admin may do this"));
        }
        let mut pending = Vec::with_capacity(items.len());
        for item in items {
            let event = RoomEvent::Change(NewChange {
                id: Uuid::now_v7(),
                room: item.room.clone(),
                message: item.id,
                user_id: actor.id,
                user: actor.name.clone(),
                at: banter_store::now(),
                client_id: None,
                change: Change::Delete,
            });
            pending.push(self.submit(event, item.room.clone()).await?);
        }
        for done in futures::future::join_all(pending).await {
            match done {
                Ok(_) | Err(ChatError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// An existing room (not a DM) that `actor`, an admin, may archive or delete.
    async fn administered(&self, actor: &Actor, room: RoomName) -> Result<Reader, ChatError> {
        if !self.store.is_admin(actor.id).await? {
            return Err(ChatError::Forbidden("only an admin may do this"));
        }
        let known = self.directory.lookup(&room, actor.id).await?;
        match known {
            Some(k) if k.info.deleted_at.is_none() && k.info.kind != RoomKind::Dm => Ok(Reader {
                room,
                kind: Some(k.info.kind),
                role: k.member.map(|m| m.role),
                archived: k.info.archived_at.is_some(),
            }),
            _ => Err(ChatError::NotFound("no such room")),
        }
    }

    /// The room as the user's list shows it, if they are a member: counts from the store,
    /// membership and info from the directory (which may be ahead of the store).
    pub async fn entry(
        &self,
        user: &Actor,
        room: &RoomName,
    ) -> Result<Option<RoomEntry>, ChatError> {
        let Some(known) = self.directory.lookup(room, user.id).await? else {
            return Ok(None);
        };
        let Some(member) = known.member else {
            return Ok(None);
        };
        let stored = self.store.membership(user.id, room).await?;
        let mut entry = stored.unwrap_or(RoomEntry {
            room: room.clone(),
            kind: known.info.kind,
            topic: Topic::default(),
            owner: None,
            role: member.role,
            online: 0,
            last_message_at: None,
            unread: 0,
            mentions: 0,
            read_cursor: None,
            muted: false,
            archived: false,
        });
        if known.info.deleted_at.is_some() {
            return Ok(None);
        }
        entry.archived = known.info.archived_at.is_some();
        entry.kind = known.info.kind;
        entry.topic = known.info.topic;
        entry.owner = known.info.owner.map(|o| o.name);
        entry.role = member.role;
        entry.read_cursor = entry.read_cursor.max(member.read);
        entry.muted = member.muted;
        Ok(Some(entry))
    }

    /// An entry naming a room the user is no longer in (for a `room` `removed` frame).
    pub async fn bare_entry(&self, room: &RoomName) -> RoomEntry {
        let info = match self.directory.lookup(room, UserId(0)).await {
            Ok(known) => known.map(|k| k.info),
            Err(_) => None,
        };
        RoomEntry {
            room: room.clone(),
            kind: info.as_ref().map_or(RoomKind::Public, |i| i.kind),
            topic: info.as_ref().map(|i| i.topic.clone()).unwrap_or_default(),
            owner: info.and_then(|i| i.owner).map(|o| o.name),
            role: Role::Member,
            online: 0,
            last_message_at: None,
            unread: 0,
            mentions: 0,
            read_cursor: None,
            muted: false,
            archived: false,
        }
    }

    /// Every room the user is a member of: the store's list, corrected by what this gateway
    /// heard lately of the user's memberships (persist may not have stored it yet).
    pub async fn rooms(&self, user: &Actor) -> Result<Vec<RoomEntry>, ChatError> {
        let mut entries = self.store.memberships(user.id).await?;
        entries.retain(|e| user.may_use(&e.room).is_ok());
        for room in self.recent.rooms_changed_for(user.id) {
            let listed = entries.iter().position(|e| e.room == room);
            if user.may_use(&room).is_err() {
                continue;
            }
            match (self.entry(user, &room).await?, listed) {
                (Some(fresh), None) => entries.insert(0, fresh),
                (None, Some(at)) => {
                    entries.remove(at);
                }
                _ => {}
            }
        }
        Ok(entries)
    }

    /// Where a search by `user` of their rooms looks: their memberships as the store has
    /// them, corrected by the changes of them this gateway heard lately (the store may lag).
    pub async fn search_scope(&self, user: &Actor) -> Result<SearchScope, ChatError> {
        // A limited bot may be a member of rooms it may not use (someone added it): it
        // searches one of its rooms at a time.
        if user.bot.as_ref().is_some_and(|b| b.scope.rooms.is_some()) {
            return Err(ChatError::Forbidden(
                "this bot is limited to some rooms: search one of them (room=)",
            ));
        }
        let (mut also, mut except) = (Vec::new(), Vec::new());
        for room in self.recent.rooms_changed_for(user.id) {
            match self.directory.lookup(&room, user.id).await? {
                Some(known) if known.member.is_some() => also.push(room),
                _ => except.push(room),
            }
        }
        Ok(SearchScope::Member {
            user: user.id,
            also,
            except,
        })
    }

    /// [`Chat::room_change`], answered once durable.
    async fn durably(
        &self,
        actor: &Actor,
        room: &RoomName,
        change: RoomChange,
    ) -> Result<(), ChatError> {
        self.room_change(actor, room, change, None).await?.await?;
        Ok(())
    }

    /// Logs a change of the room itself; once durable, this gateway's directory has it.
    async fn room_change(
        &self,
        actor: &Actor,
        room: &RoomName,
        change: RoomChange,
        client_id: Option<ClientId>,
    ) -> Result<Pending, ChatError> {
        let event = RoomEvent::Room(NewRoomChange {
            id: Uuid::now_v7(),
            room: room.clone(),
            user_id: actor.id,
            user: actor.name.clone(),
            at: banter_store::now(),
            client_id,
            change,
        });
        self.submit(event, room.clone()).await
    }

    /// A message the user may read, or `not_found`: from the store, or from what this
    /// gateway heard lately (persist may not have stored it yet), and not deleted lately.
    pub async fn target(&self, user: &Actor, id: Uuid) -> Result<Target, ChatError> {
        if self.recent.deleted(id) {
            return Err(NO_MESSAGE);
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
                let heard = self.recent.message(id).ok_or(NO_MESSAGE)?;
                match &heard.event {
                    RoomEvent::Message(m) => (m.room.clone(), m.author.clone(), m.thread_root),
                    RoomEvent::Change(_) | RoomEvent::Room(_) => return Err(NO_MESSAGE),
                }
            }
        };
        let reader = match self.reader(user, room).await {
            Ok(reader) => reader,
            Err(ChatError::Unavailable(e)) => return Err(ChatError::Unavailable(e)),
            Err(_) => return Err(NO_MESSAGE),
        };
        Ok(Target {
            id,
            reader,
            author,
            thread_root,
        })
    }

    /// Sends a message (a reply, with `reply_to`) to the reader's room.
    /// A sender who is not a member becomes one first. The message lists the members it
    /// mentions.
    pub async fn send(
        &self,
        actor: &Actor,
        reader: &mut Reader,
        body: MessageBody,
        client_id: Option<ClientId>,
        reply_to: Option<Uuid>,
        attachments: &[Uuid],
    ) -> Result<Pending, ChatError> {
        if let Err(e) = reader.writable() {
            return self.unless_resent(actor, client_id.as_ref(), e).await;
        }
        let attachments = match self.attachable(actor, attachments).await {
            Ok(found) => found,
            Err(e) => return self.unless_resent(actor, client_id.as_ref(), e).await,
        };
        if !reader.is_member() {
            if let Err(e) = self.become_member(actor, reader).await {
                return self.unless_resent(actor, client_id.as_ref(), e).await;
            }
        }
        let mut mentions = self
            .directory
            .members_named(&reader.room, &mention_candidates(body.as_str()))
            .await?;
        mentions.retain(|m| !m.as_str().eq_ignore_ascii_case(actor.name.as_str()));
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
            mentions,
            attachments,
            bot: actor.bot.as_ref().map(|b| BotPost::new(b.label.clone())),
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

    /// What a message says of the uploads it attaches: each must be the sender's own, stored,
    /// not attached to a message yet (a re-send of the message that took it is answered as a
    /// re-send before this is asked), and young enough that the cleanup will not take it.
    async fn attachable(&self, actor: &Actor, ids: &[Uuid]) -> Result<Vec<Attachment>, ChatError> {
        const NOT_YOURS: ChatError = ChatError::NotFound(
            "attachments: no such upload of yours that is not attached yet (upload it again)",
        );
        let mut found = Vec::with_capacity(ids.len());
        for id in ids {
            let Some(upload) = self.store.upload(*id).await? else {
                return Err(NOT_YOURS);
            };
            let age = (banter_store::now() - upload.created_at)
                .to_std()
                .unwrap_or_default();
            // On Kafka, persist may not have stored the message that took it yet.
            if upload.uploader != actor.id
                || upload.message.is_some()
                || self.recent.carrier(*id).is_some()
                || upload.removing
                || age > self.attach_within
            {
                return Err(NOT_YOURS);
            }
            found.push(upload.file);
        }
        Ok(found)
    }

    /// The thread a reply to `parent` joins, if the user may answer it in this room.
    async fn thread_of(
        &self,
        actor: &Actor,
        reader: &Reader,
        parent: Uuid,
    ) -> Result<Uuid, ChatError> {
        let parent = self.target(actor, parent).await?;
        if parent.reader.room != reader.room {
            // A reply lives in its parent's room; elsewhere the parent "is not there".
            return Err(NO_MESSAGE);
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
        let target = self.target(actor, id).await?;
        let own = target
            .author
            .as_str()
            .eq_ignore_ascii_case(actor.name.as_str());
        // Deleting stays possible in an archived room (moderation, purges); nothing else.
        if !matches!(request, Request::Delete) {
            target.reader.writable()?;
        }
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
                let acked = acked_of(first);
                Ok(Box::pin(async move { Ok(acked) }))
            }
            None => Err(refusal),
        }
    }

    /// Hands the event to the log; its place is taken when this returns.
    async fn submit(&self, event: RoomEvent, room: RoomName) -> Result<Pending, ChatError> {
        let receipt = self.bus.submit(event).await?;
        let directory = self.directory.clone();
        Ok(Box::pin(async move {
            match receipt.await? {
                Appended::New(logged) => {
                    // What the gateway's own user just did is known here at once, ahead of
                    // the log's fan-out (their next request may depend on it).
                    directory.apply_acked(&logged);
                    Ok(acked_of(logged))
                }
                // A re-sent client id answers with its first event, whatever it was.
                Appended::Duplicate(logged) => Ok(acked_of(logged)),
                Appended::Unchanged { message, cursor } => Ok(Acked {
                    id: message,
                    room,
                    cursor,
                    at: banter_store::now(),
                    message: None,
                }),
                // Deleted before this event's turn came in the log.
                Appended::Missing => Err(NO_MESSAGE),
            }
        }))
    }
}
