//! The cluster backend: PostgreSQL, shared by any number of banter processes.
//!
//! Migrations take PostgreSQL's advisory lock (sqlx does this), so several processes starting
//! at once apply them once. Row locks taken by `UPDATE` serialise concurrent rotations of one
//! refresh token: the second sees it used and treats it as a replay.

use std::time::Duration;

use banter_core::{ClientId, Cursor, Message, NewMessage, RoomName, User, UserId, Username};
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Row};
use uuid::Uuid;

use crate::queries::cursor_values;
use crate::{
    Appended, Backend, Credentials, LoggedMessage, NewRefreshToken, PoolStats, RoomSummary,
    Rotation, Store, StoreError,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// A [`Store`] on PostgreSQL. Cloning shares the pool.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects lazily: the pool opens connections on first use, so a process can start (and
    /// report itself not ready) while the database is still coming up.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let options: PgConnectOptions = url.parse()?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(5))
            .connect_lazy_with(options.application_name("banter"));
        Ok(Self { pool })
    }

    /// The pool, for tests and tools that need raw SQL (e.g. the conformance suite's cleanup).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

crate::queries::impl_store!(PostgresStore, Backend::Postgres, sqlx::postgres::PgRow);
