//! The embedded backend: one SQLite file in WAL mode, for `banter serve` on one machine.
//!
//! `synchronous = FULL` because an acknowledged write must survive a power cut, not only a
//! crashed process; SQLite allows one writer at a time, and `busy_timeout` makes concurrent
//! writers queue instead of failing.

use std::str::FromStr;
use std::time::Duration;

use banter_core::{
    Appended, Change, ClientId, Cursor, EarlierBody, Emoji, LoggedEvent, Membership, Message,
    NewChange, NewMessage, NewRoomChange, ReactionSummary, Role, RoomChange, RoomEntry, RoomEvent,
    RoomInfo, RoomKind, RoomName, StoredMessage, Topic, User, UserId, UserRef, Username,
};
use chrono::{DateTime, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use uuid::Uuid;

use crate::queries::{cursor_values, mention_text};
use crate::{
    Backend, Credentials, NewRefreshToken, PoolStats, PublicRoom, Rotation, Store, StoreError,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// A [`Store`] on a SQLite file. Cloning shares the pool.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file the `sqlite:` URL names.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(StoreError::from)?;
        Ok(Self { pool })
    }
}

crate::queries::impl_store!(
    SqliteStore,
    Backend::Sqlite,
    sqlx::sqlite::SqliteRow,
    sqlx::SqliteConnection
);

impl SqliteStore {
    /// Writes a run of messages at their places, row by row (SQLite's statements are
    /// in-process calls: there is no round trip to save by sending the run at once). Returns
    /// how many were new.
    ///
    /// A redelivered message (same id) or a re-sent one (same author and client_id) is a
    /// no-op. Another message at a stored place is an error, not a skip: it means the log was
    /// reset, and silently dropping it would lose it.
    async fn insert_messages(
        conn: &mut sqlx::SqliteConnection,
        run: &[(&NewMessage, Cursor)],
    ) -> Result<u64, StoreError> {
        let mut inserted = 0;
        for (m, cursor) in run {
            let (part, seq) = cursor_values(*cursor);
            let done = sqlx::query(
                "INSERT INTO messages \
                 (id, part, seq, room, author_id, author, body, created_at, client_id, \
                  reply_to, thread_root, mentions) \
                 SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12 \
                 WHERE NOT EXISTS (SELECT 1 FROM messages \
                   WHERE $9 IS NOT NULL AND author_id = $5 AND client_id = $9) \
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(m.id)
            .bind(part)
            .bind(seq)
            .bind(m.room.as_str())
            .bind(m.author_id.0)
            .bind(m.author.as_str())
            .bind(&m.body)
            .bind(m.created_at)
            .bind(m.client_id.as_ref().map(ClientId::as_str))
            .bind(m.reply_to)
            .bind(m.thread_root)
            .bind(mention_text(m))
            .execute(&mut *conn)
            .await
            .map_err(|e| StoreError::from_sqlx(e, "a message is stored at that place"))?;
            inserted += done.rows_affected();
        }
        Ok(inserted)
    }
}
