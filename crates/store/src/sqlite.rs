//! The embedded backend: one SQLite file in WAL mode, for `banter serve` on one machine.
//!
//! `synchronous = FULL` because an acknowledged write must survive a power cut, not only a
//! crashed process; SQLite allows one writer at a time, and `busy_timeout` makes concurrent
//! writers queue instead of failing.

use std::str::FromStr;
use std::time::Duration;

use banter_core::{ClientId, Cursor, Message, NewMessage, RoomName, User, UserId, Username};
use chrono::{DateTime, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use uuid::Uuid;

use crate::queries::cursor_values;
use crate::{
    Appended, Backend, Credentials, LoggedMessage, NewRefreshToken, PoolStats, RoomSummary,
    Rotation, Store, StoreError,
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

crate::queries::impl_store!(SqliteStore, Backend::Sqlite, sqlx::sqlite::SqliteRow);
