//! The embedded backend: one SQLite file in WAL mode, for `banter serve` on one machine.
//!
//! `synchronous = FULL` because an acknowledged write must survive a power cut, not only a
//! crashed process; SQLite allows one writer at a time, and `busy_timeout` makes concurrent
//! writers queue instead of failing.

use std::str::FromStr;
use std::time::Duration;

use banter_core::{
    attachments_from_json, attachments_json, Appended, Attachment, BotLabel, BotPost, Change,
    ClientId, Cursor, EarlierBody, Emoji, LoggedEvent, Membership, Message, NewChange, NewMessage,
    NewRoomChange, ReactionSummary, Role, RoomChange, RoomEntry, RoomEvent, RoomInfo, RoomKind,
    RoomName, StoredMessage, Topic, User, UserId, UserRef, Username,
};
use chrono::{DateTime, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use uuid::Uuid;

use crate::queries::{bot_text, cursor_values, first_copies, mention_text, optional_cursor_values};
use crate::{
    Backend, Credentials, NewRefreshToken, PoolStats, PublicRoom, PushSubscription, Rotation,
    Store, StoreError, Upload,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Room names as a JSON array, for `json_each`.
fn names_json(rooms: &[&str]) -> String {
    serde_json::to_string(rooms).expect("strings serialize")
}

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

/// Rows of one `INSERT` of messages: 14 parameters each, far below SQLite's limit of 32,766.
const ROWS_PER_INSERT: usize = 256;
/// (actor, client id) pairs asked about in one query: 2 parameters each.
const PAIRS_PER_QUERY: usize = 1024;

crate::queries::impl_store!(
    SqliteStore,
    Backend::Sqlite,
    sqlx::sqlite::SqliteRow,
    sqlx::SqliteConnection
);

crate::admin::impl_admin!(
    SqliteStore,
    Backend::Sqlite,
    sqlx::sqlite::SqliteRow,
    sqlx::SqliteConnection
);

crate::bots::impl_bots!(
    SqliteStore,
    Backend::Sqlite,
    sqlx::sqlite::SqliteRow,
    sqlx::SqliteConnection
);

impl SqliteStore {
    /// The rows of a search (see [`Store::search`]): FTS5 finds the rowids, and the scope,
    /// the author and the page are conditions of the same statement.
    ///
    /// Every term goes to `MATCH` as an FTS5 string (`"…"`, quotes doubled), which FTS5 only
    /// tokenizes: nothing in it is syntax. An unquoted word's string ends in `*` (a prefix);
    /// the terms are joined by `AND`.
    async fn find(
        conn: &mut sqlx::SqliteConnection,
        search: &crate::Search,
    ) -> Result<Vec<sqlx::sqlite::SqliteRow>, StoreError> {
        let matching = search
            .query
            .terms()
            .iter()
            .map(|t| {
                let star = if t.exact { "" } else { "*" };
                format!("\"{}\"{star}", t.text.replace('"', "\"\""))
            })
            .collect::<Vec<_>>()
            .join(" AND ");
        let scope = search.scope.params();
        let (part, seq) = optional_cursor_values(search.before);
        let sql = format!(
            "SELECT {} FROM messages \
             WHERE rowid IN (SELECT rowid FROM message_search WHERE message_search MATCH $1) \
               AND deleted_at IS NULL \
               AND CASE WHEN $2 IS NOT NULL THEN room = $2 ELSE \
                   room IN (SELECT room FROM memberships WHERE user_id = $3 AND present \
                            UNION SELECT value FROM json_each($4)) \
                   AND room NOT IN (SELECT value FROM json_each($5)) END \
               AND room NOT IN (SELECT name FROM rooms WHERE deleted_at IS NOT NULL) \
               AND ($6 IS NULL OR lower(author) = lower($6)) \
               AND ($7 IS NULL OR (created_at, id) < \
                    (SELECT b.created_at, b.id FROM messages b WHERE b.part = $7 AND b.seq = $8)) \
             ORDER BY created_at DESC, id DESC LIMIT $9",
            stored_columns()
        );
        Ok(sqlx::query(&sql)
            .bind(matching)
            .bind(scope.room)
            .bind(scope.user)
            .bind(names_json(&scope.also))
            .bind(names_json(&scope.except))
            .bind(search.from.as_ref().map(Username::as_str))
            .bind(part)
            .bind(seq)
            .bind(i64::from(search.limit))
            .fetch_all(&mut *conn)
            .await?)
    }

    /// Writes a run of messages at their places, up to [`ROWS_PER_INSERT`] rows per statement:
    /// each statement is a round trip to the connection's worker thread. Returns how many
    /// were new.
    ///
    /// A redelivered message (same id) or a re-sent one (same author and client_id, stored
    /// before or earlier in this run) is a no-op. Another message at a stored place is an
    /// error, not a skip: it means the log was reset, and silently dropping it would lose it.
    /// The statement's `SELECT` is read before any of its rows is written, so copies within
    /// the run are dropped here, keeping the first like the log does.
    async fn insert_messages(
        conn: &mut sqlx::SqliteConnection,
        run: &[(&NewMessage, Cursor)],
    ) -> Result<u64, StoreError> {
        let firsts = first_copies(run);
        let mut inserted = 0;
        for rows in firsts.chunks(ROWS_PER_INSERT) {
            // Anonymous `?`s: sqlx looks a numbered parameter's name up for each one it
            // binds, which SQLite answers with a scan (quadratic over a run).
            let values = vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"; rows.len()].join(", ");
            let sql = format!(
                "INSERT INTO messages \
                 (id, part, seq, room, author_id, author, body, created_at, client_id, \
                  reply_to, thread_root, mentions, attachments, bot) \
                 SELECT t.column1, t.column2, t.column3, t.column4, t.column5, t.column6, \
                        t.column7, t.column8, t.column9, t.column10, t.column11, t.column12, \
                        t.column13, t.column14 \
                 FROM (VALUES {values}) AS t \
                 WHERE NOT EXISTS (SELECT 1 FROM messages m \
                   WHERE t.column9 IS NOT NULL AND m.author_id = t.column5 \
                     AND m.client_id = t.column9) \
                 ON CONFLICT (id) DO NOTHING"
            );
            let mut query = sqlx::query(&sql);
            for (m, cursor) in rows {
                let (part, seq) = cursor_values(*cursor);
                query = query
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
                    .bind(attachments_json(&m.attachments))
                    .bind(bot_text(m));
            }
            let done = query
                .execute(&mut *conn)
                .await
                .map_err(|e| StoreError::from_sqlx(e, "a message is stored at that place"))?;
            inserted += done.rows_affected();
        }
        Ok(inserted)
    }

    /// The (actor, client id) pairs of `batch` that a stored message, change or room change
    /// already took, in one statement per [`PAIRS_PER_QUERY`] (the pairs go over as a `VALUES`
    /// list).
    async fn client_ids_taken(
        conn: &mut sqlx::SqliteConnection,
        batch: &[RoomEvent],
    ) -> Result<Vec<(i64, String)>, StoreError> {
        let asked: Vec<(i64, &str)> = batch
            .iter()
            .filter_map(|e| e.client_id().map(|c| (e.actor_id().0, c.as_str())))
            .collect();
        if asked.is_empty() {
            return Ok(Vec::new());
        }
        let mut taken = Vec::new();
        for pairs in asked.chunks(PAIRS_PER_QUERY) {
            // Anonymous `?`s, bound in order (see insert_messages).
            let values = vec!["(?, ?)"; pairs.len()].join(", ");
            let sql = format!(
                "WITH ask(a, c) AS (VALUES {values}) SELECT a, c FROM ask \
                 WHERE EXISTS (SELECT 1 FROM messages WHERE author_id = ask.a AND client_id = ask.c) \
                    OR EXISTS (SELECT 1 FROM room_events WHERE user_id = ask.a AND client_id = ask.c) \
                    OR EXISTS (SELECT 1 FROM room_changes WHERE user_id = ask.a AND client_id = ask.c)"
            );
            let mut query = sqlx::query(&sql);
            for (actor, client_id) in pairs {
                query = query.bind(*actor).bind(*client_id);
            }
            for row in query.fetch_all(&mut *conn).await? {
                taken.push((row.try_get("a")?, row.try_get("c")?));
            }
        }
        Ok(taken)
    }
}
