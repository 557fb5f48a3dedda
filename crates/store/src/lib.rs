//! Where banter keeps what must outlive a process: users, refresh-token families, the rooms'
//! timelines — messages and the edits, deletes and reactions of them — and the rooms
//! themselves: their members, topics and read positions.
//!
//! A room (its timeline, members and read positions) is written only by applying the room
//! events of its log, in log order, through one projection: [`Store::append_events`] when the store is the log (`banter serve`),
//! [`Store::apply_logged`] when the log is Kafka (persist). Reads ([`Store::events_after`],
//! [`Store::messages_before`], ...) see what the projection made.
//!
//! Every service talks to storage through the [`Store`] trait, so the same code runs on the
//! embedded SQLite file of `banter serve` and on the PostgreSQL of a cluster. [`connect`] picks
//! the backend from the URL scheme. The two implementations are held to the same behaviour by
//! one conformance suite (`tests/conformance.rs`) that runs every case on both.
//!
//! Errors are deliberately narrow ([`StoreError`]): callers decide on `Conflict` and
//! `Unavailable`; anything else is an internal fault they log and hide.

mod admin;
mod bots;
mod postgres;
mod queries;
mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use banter_core::{
    Appended, ClientId, Cursor, EarlierBody, Emoji, LoggedEvent, Membership, Message, RoomEntry,
    RoomEvent, RoomInfo, RoomName, StoredMessage, Topic, User, UserId, Username,
};
use chrono::{DateTime, SubsecRound, Utc};
use uuid::Uuid;

pub use admin::{
    Account, Admin, AdminRoom, AuditEntry, Invite, NewAccount, NewAudit, NewInvite, PurgeItem,
    PurgeRange, Registered,
};
pub use bots::{
    Bot, BotLogin, Bots, NewBot, NewOutgoing, NewWebhook, Outgoing, Webhook, NO_PASSWORD,
};
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// A shared handle to whichever backend is configured. Cloning it is an `Arc` increment.
pub type DynStore = Arc<dyn Store>;

/// What can go wrong in storage, in the terms callers act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule refused the write (e.g. the username is taken).
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// The database cannot be reached or is overloaded; retrying later may work.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// Anything else: a bug or a broken schema. Logged, never shown to clients.
    #[error("database error: {0}")]
    Other(#[source] sqlx::Error),
}

impl StoreError {
    fn from_sqlx(e: sqlx::Error, conflict: &'static str) -> Self {
        match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => Self::Conflict(conflict),
            sqlx::Error::Database(db) if db.code().as_deref().is_some_and(is_unavailable_code) => {
                Self::Unavailable(e)
            }
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_) => Self::Unavailable(e),
            _ => Self::Other(e),
        }
    }
}

/// SQLSTATEs that mean "the database cannot serve us right now" rather than "this query is
/// wrong": connection exceptions (08), shutdowns and restarts (57P0x), too many connections,
/// and a database that is gone (SQLite reports busy/locked as 5 and 6).
fn is_unavailable_code(code: &str) -> bool {
    code.starts_with("08")
        || matches!(
            code,
            "57P01" | "57P02" | "57P03" | "53300" | "3D000" | "5" | "6"
        )
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        Self::from_sqlx(e, "unique constraint")
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        match e {
            sqlx::migrate::MigrateError::Execute(e) => e.into(),
            other => Self::Other(sqlx::Error::Migrate(Box::new(other))),
        }
    }
}

/// A user together with the password hash that only the login path needs.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub user: User,
    /// PHC string (`$argon2id$...`).
    pub password_hash: String,
    /// Deactivated by an admin: the password may be right, the login is refused.
    pub deactivated: bool,
}

/// A refresh token about to be stored: only its digest is kept.
#[derive(Debug, Clone)]
pub struct NewRefreshToken {
    pub id: Uuid,
    /// SHA-256 of the token the client holds.
    pub token_hash: Vec<u8>,
    pub user_id: UserId,
    /// The login session it belongs to; rotations keep it.
    pub family_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// What presenting a refresh token did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// The token was live: it is now used, and the successor was stored in its family.
    Rotated { user_id: UserId },
    /// The token had already been used: someone replayed it, so its whole family is revoked.
    Reused,
    /// Unknown, expired or revoked.
    Invalid,
}

/// A public room, for people to discover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicRoom {
    pub room: RoomName,
    pub topic: Topic,
    /// Its members now.
    pub members: u32,
    pub last_message_at: Option<DateTime<Utc>>,
    /// Whether the user asking is one of them.
    pub joined: bool,
}

/// Pool figures for the metrics endpoint.
#[derive(Debug, Clone, Copy)]
pub struct PoolStats {
    pub size: u32,
    pub idle: u32,
}

/// Which engine a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

/// The storage operations banter needs. Every method is one transaction.
#[async_trait]
pub trait Store: Admin + Bots + Send + Sync + std::fmt::Debug + 'static {
    fn backend(&self) -> Backend;

    /// Applies the embedded migrations; safe to run from several processes at once.
    async fn migrate(&self) -> Result<(), StoreError>;

    /// A round trip to the database, for readiness checks.
    async fn ping(&self) -> Result<(), StoreError>;

    fn pool_stats(&self) -> PoolStats;

    /// Closes the pool, waiting for connections in use to come back.
    async fn close(&self);

    /// Creates a user (registration without an invite: [`Admin::register`]); `Conflict` when
    /// the name (compared without case) is taken.
    async fn create_user(
        &self,
        username: &Username,
        password_hash: &str,
        created_at: DateTime<Utc>,
    ) -> Result<User, StoreError>;

    /// Looks a user up by name, without regard to case, for login.
    async fn credentials(&self, username: &str) -> Result<Option<Credentials>, StoreError>;

    async fn user(&self, id: UserId) -> Result<Option<User>, StoreError>;

    /// Stores the first refresh token of a new family (at login).
    async fn insert_refresh_token(&self, token: &NewRefreshToken) -> Result<(), StoreError>;

    /// Uses the token whose digest is `presented` and stores `next` (same user, same family)
    /// in its place, atomically. `next.user_id` and `next.family_id` are taken from the
    /// presented token, whatever the caller put there.
    async fn rotate_refresh_token(
        &self,
        presented: &[u8],
        next: &NewRefreshToken,
        now: DateTime<Utc>,
    ) -> Result<Rotation, StoreError>;

    /// Whether the user may delete anyone's messages.
    async fn is_admin(&self, id: UserId) -> Result<bool, StoreError>;

    /// Grants or withdraws admin rights; false when there is no such user.
    async fn set_admin(&self, username: &str, admin: bool) -> Result<bool, StoreError>;

    /// The local log of `banter serve`: gives each event of `batch`, in order, the next
    /// cursor of partition 0 and applies it ([`Store::apply_logged`]'s projection), all in
    /// one transaction. An event whose actor already used its `client_id` is not written
    /// again (its first copy comes back as [`Appended::Duplicate`]); an event that would
    /// change nothing takes no cursor ([`Appended::Unchanged`], [`Appended::Missing`]).
    async fn append_events(&self, batch: &[RoomEvent]) -> Result<Vec<Appended>, StoreError>;

    /// The projection of events that already have their place in an external log (Kafka:
    /// partition and offset as the cursor), applied in order in one transaction. Idempotent:
    /// re-applying any event changes nothing (a message by its id or its actor's client id,
    /// a change by its id, a reaction by the cursor of the last change of its set member).
    /// Another message at a stored place is an error: the log was reset. Returns how many
    /// events changed something.
    async fn apply_logged(&self, batch: &[LoggedEvent]) -> Result<u64, StoreError>;

    /// Up to `limit` events of `room` after `after` (from the start with `None`), in log
    /// order: messages in their current state, and the edits, deletes and reactions that
    /// changed them. Events of deleted messages are left out, except the delete itself.
    async fn events_after(
        &self,
        room: &RoomName,
        after: Option<Cursor>,
        limit: u32,
    ) -> Result<Vec<LoggedEvent>, StoreError>;

    /// Up to `limit` messages of `room` just before `before` (the newest with `None`), oldest
    /// first, in their current state. Deleted messages are left out.
    async fn messages_before(
        &self,
        room: &RoomName,
        before: Option<Cursor>,
        limit: u32,
    ) -> Result<Vec<StoredMessage>, StoreError>;

    /// Up to `limit` replies in the thread of `root` just before `before`, oldest first.
    async fn replies(
        &self,
        root: uuid::Uuid,
        before: Option<Cursor>,
        limit: u32,
    ) -> Result<Vec<StoredMessage>, StoreError>;

    /// Up to `limit` messages of `room` just after `after`, oldest first, in their current
    /// state. Deleted messages are left out.
    async fn messages_after(
        &self,
        room: &RoomName,
        after: Cursor,
        limit: u32,
    ) -> Result<Vec<StoredMessage>, StoreError>;

    /// Up to `search.limit` messages that match the query, in the rooms of its scope, newest
    /// first (by time, then id), in their current state. Deleted messages are never found.
    /// Who may read what is part of the query itself (its scope), never a filter of its
    /// results.
    async fn search(&self, search: &Search) -> Result<Vec<StoredMessage>, StoreError>;

    /// A message that has not been deleted, in its current state.
    async fn stored_message(&self, id: uuid::Uuid) -> Result<Option<StoredMessage>, StoreError>;

    /// The earlier bodies of a message, oldest first (empty when never edited).
    async fn earlier_bodies(&self, id: uuid::Uuid) -> Result<Vec<EarlierBody>, StoreError>;

    /// The cursor of the newest event of `room`.
    async fn latest_cursor(&self, room: &RoomName) -> Result<Option<Cursor>, StoreError>;

    /// The event an actor logged with `client_id` (a message, deleted or not, or a change).
    async fn first_copy(
        &self,
        actor: UserId,
        client_id: &ClientId,
    ) -> Result<Option<LoggedEvent>, StoreError>;

    /// A message that has not been deleted.
    async fn message(&self, id: uuid::Uuid) -> Result<Option<Message>, StoreError>;

    /// Whether `user`'s reaction `emoji` is on the message now.
    async fn has_reaction(
        &self,
        message: uuid::Uuid,
        user: UserId,
        emoji: &Emoji,
    ) -> Result<bool, StoreError>;

    /// A room, as its log made it, with the place of the change that last wrote it.
    async fn room(&self, room: &RoomName) -> Result<Option<(RoomInfo, Cursor)>, StoreError>;

    /// Every membership of a room, former members' too, each with the place of the change
    /// that last wrote it: what a gateway's directory starts from.
    async fn room_members(
        &self,
        room: &RoomName,
    ) -> Result<Vec<(UserId, Membership, Cursor)>, StoreError>;

    /// Every room the user is a member of, newest activity first, with unread messages and
    /// mentions after the read position, counted up to [`banter_core::UNREAD_CAP`]. `online`
    /// is left 0 (the gateway knows it).
    async fn memberships(&self, user: UserId) -> Result<Vec<RoomEntry>, StoreError>;

    /// One entry of [`Store::memberships`], if the user is a member of `room`.
    async fn membership(
        &self,
        user: UserId,
        room: &RoomName,
    ) -> Result<Option<RoomEntry>, StoreError>;

    /// Public rooms, newest activity first, at most `limit`.
    async fn public_rooms(&self, user: UserId, limit: u32) -> Result<Vec<PublicRoom>, StoreError>;

    /// Revokes the family of the token whose digest is `presented`, if it belongs to `user`.
    /// Returns whether a live token was found.
    async fn revoke_refresh_family(
        &self,
        presented: &[u8],
        user: UserId,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Records an upload whose bytes are stored. An upload is not a change of a room: it
    /// belongs to no room until the projection applies a message that carries it.
    async fn insert_upload(&self, upload: &Upload) -> Result<(), StoreError>;

    async fn upload(&self, id: uuid::Uuid) -> Result<Option<Upload>, StoreError>;

    /// The bytes of the user's uploads that are not being removed, for the quota.
    async fn uploaded_bytes(&self, user: UserId) -> Result<u64, StoreError>;

    /// Up to `limit` uploads whose bytes are due to go: those of deleted messages, and those
    /// never attached that were made before `unattached_before`.
    async fn uploads_to_remove(
        &self,
        unattached_before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<uuid::Uuid>, StoreError>;

    /// Forgets uploads whose bytes were removed, of those still due as
    /// [`Store::uploads_to_remove`] says with the same `unattached_before` (one attached
    /// meanwhile stays). Returns how many.
    async fn forget_uploads(
        &self,
        ids: &[uuid::Uuid],
        unattached_before: DateTime<Utc>,
    ) -> Result<u64, StoreError>;

    /// Keeps a browser's push subscription for `sub.user`: a new endpoint is added, a known
    /// one takes the new keys and owner (the browser is now theirs). Then only the user's
    /// newest `keep` are kept.
    async fn save_push_subscription(
        &self,
        sub: &PushSubscription,
        keep: u32,
    ) -> Result<(), StoreError>;

    /// Forgets the user's subscription of `endpoint`; false when they had none there.
    async fn delete_push_subscription(
        &self,
        user: UserId,
        endpoint: &str,
    ) -> Result<bool, StoreError>;

    /// Forgets `endpoint` whoever holds it (its push service said it is gone).
    async fn forget_push_endpoint(&self, endpoint: &str) -> Result<bool, StoreError>;

    /// The subscriptions of the user named `username` (compared without case), newest first.
    async fn push_subscriptions(&self, username: &str)
        -> Result<Vec<PushSubscription>, StoreError>;
}

/// A browser's Web Push subscription, as kept: checked by the API before it gets here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushSubscription {
    pub user: UserId,
    /// Where its push service takes pushes for it.
    pub endpoint: String,
    /// The browser's P-256 public key and auth secret, base64url.
    pub p256dh: String,
    pub auth: String,
    pub created_at: DateTime<Utc>,
}

/// A search: what to find, where, and which page.
#[derive(Debug, Clone)]
pub struct Search {
    pub query: banter_core::search::SearchQuery,
    pub scope: SearchScope,
    /// Only messages by this user (compared without case).
    pub from: Option<Username>,
    /// The page after the result at this cursor (older than it); the first page with `None`.
    pub before: Option<Cursor>,
    pub limit: u32,
}

/// The rooms a search looks in: always rooms the asking user may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchScope {
    /// One room, which the caller checked the user may read.
    Room(RoomName),
    /// The rooms `user` is a member of as the store has it, and the rooms in `also` (they
    /// joined lately: the store may not have it yet), but none of `except` (they left or
    /// were removed lately).
    Member {
        user: UserId,
        also: Vec<RoomName>,
        except: Vec<RoomName>,
    },
}

/// A scope as the query's parameters: the one room, or the member, the rooms to add and
/// the rooms to take out (empty for a room).
pub(crate) struct ScopeParams<'a> {
    pub room: Option<&'a str>,
    pub user: Option<i64>,
    pub also: Vec<&'a str>,
    pub except: Vec<&'a str>,
}

impl SearchScope {
    pub(crate) fn params(&self) -> ScopeParams<'_> {
        fn names(rooms: &[RoomName]) -> Vec<&str> {
            rooms.iter().map(RoomName::as_str).collect()
        }
        match self {
            Self::Room(room) => ScopeParams {
                room: Some(room.as_str()),
                user: None,
                also: Vec::new(),
                except: Vec::new(),
            },
            Self::Member { user, also, except } => ScopeParams {
                room: None,
                user: Some(user.0),
                also: names(also),
                except: names(except),
            },
        }
    }
}

/// An upload, as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub uploader: UserId,
    /// What a message that carries it says of it.
    pub file: banter_core::Attachment,
    pub created_at: DateTime<Utc>,
    /// The message that carries it and that message's room, once the projection applied it.
    pub message: Option<(uuid::Uuid, RoomName)>,
    /// Its message was deleted: its bytes are being removed.
    pub removing: bool,
}

/// Opens the store a URL names: `sqlite://path/to/file.db` or `postgres://...`.
///
/// `max_connections` bounds the pool; it does not migrate.
pub async fn connect(url: &str, max_connections: u32) -> Result<DynStore, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::connect(url, max_connections).await?))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(Arc::new(
            PostgresStore::connect(url, max_connections).await?,
        ))
    } else {
        Err(StoreError::Other(sqlx::Error::Configuration(
            "the database URL must start with sqlite: or postgres:".into(),
        )))
    }
}

/// The current time at the precision both backends keep (microseconds), so a value read back
/// equals the value written.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}
