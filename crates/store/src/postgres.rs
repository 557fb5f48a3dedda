//! The cluster backend: PostgreSQL, shared by any number of banter processes.
//!
//! Migrations take PostgreSQL's advisory lock (sqlx does this), so several processes starting
//! at once apply them once. Row locks taken by `UPDATE` serialise concurrent rotations of one
//! refresh token: the second sees it used and treats it as a replay.

use std::time::Duration;

use banter_core::{
    attachments_from_json, attachments_json, Appended, Attachment, BotLabel, BotPost, Change,
    ClientId, Cursor, EarlierBody, Emoji, LoggedEvent, Membership, Message, NewChange, NewMessage,
    NewRoomChange, ReactionSummary, Role, RoomChange, RoomEntry, RoomEvent, RoomInfo, RoomKind,
    RoomName, StoredMessage, Topic, User, UserId, UserRef, Username,
};
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Row};
use uuid::Uuid;

use crate::queries::{bot_text, cursor_values, first_copies, mention_text, optional_cursor_values};
use crate::{
    Backend, Credentials, NewRefreshToken, PoolStats, PublicRoom, PushSubscription, Rotation,
    Store, StoreError, Upload,
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

crate::queries::impl_store!(
    PostgresStore,
    Backend::Postgres,
    sqlx::postgres::PgRow,
    sqlx::PgConnection
);

crate::admin::impl_admin!(
    PostgresStore,
    Backend::Postgres,
    sqlx::postgres::PgRow,
    sqlx::PgConnection
);

crate::bots::impl_bots!(
    PostgresStore,
    Backend::Postgres,
    sqlx::postgres::PgRow,
    sqlx::PgConnection
);

impl PostgresStore {
    /// The rows of a search (see [`Store::search`]): the GIN index finds the messages, and
    /// the scope, the author and the page are conditions of the same statement.
    ///
    /// The user's rooms are an array computed once (`= ANY(ARRAY(…))`), not a join: the
    /// planner then ands the GIN bitmap with the rooms' index instead of fetching every
    /// matching message of every room to throw most away, and has no join order to get
    /// wrong (an `IN` subquery became a nested loop of one GIN scan per room on a store
    /// whose statistics were fresh: 10× slower; docs/benchmarks/search.md).
    ///
    /// Each term is given to `websearch_to_tsquery` in double quotes, its punctuation made
    /// spaces as in the indexed text (see the migration), so that its `or` and `-` are words
    /// like the rest and the configuration's parser splits it as it split the messages. The
    /// last lexeme of an unquoted word becomes a prefix (`:*`), as FTS5 does with the last
    /// token of a string followed by `*`; the terms' queries are joined by `&`. A term that
    /// yields no lexeme is left out.
    async fn find(
        conn: &mut sqlx::PgConnection,
        search: &crate::Search,
    ) -> Result<Vec<sqlx::postgres::PgRow>, StoreError> {
        let (texts, prefixes): (Vec<&str>, Vec<bool>) = search
            .query
            .terms()
            .iter()
            .map(|t| (t.text.as_str(), !t.exact))
            .unzip();
        let scope = search.scope.params();
        let rooms = if scope.room.is_some() {
            "room = $3"
        } else {
            "room = ANY(ARRAY(SELECT room FROM memberships WHERE user_id = $4 AND present \
                              UNION ALL SELECT unnest($5::text[]))) \
             AND room <> ALL($6::text[])"
        };
        // A deleted room's messages are not found while they wait to be removed.
        let rooms = format!(
            "{rooms} AND room NOT IN (SELECT name FROM rooms WHERE deleted_at IS NOT NULL)"
        );
        let (part, seq) = optional_cursor_values(search.before);
        let sql = format!(
            "SELECT {} FROM messages \
             WHERE search @@ (SELECT string_agg('(' || q || ')', ' & ')::tsquery FROM ( \
                 SELECT CASE WHEN t.prefix \
                        THEN regexp_replace(t.query, '''(?:[^'']|'''')*''$', '\\&:*') \
                        ELSE t.query END AS q \
                 FROM (SELECT websearch_to_tsquery('banter_search', \
                                '\"' || regexp_replace(u.text, '[[:punct:]]+', ' ', 'g') || '\"' \
                              )::text \
                              AS query, u.prefix \
                       FROM unnest($1::text[], $2::bool[]) AS u(text, prefix)) t \
                 WHERE t.query <> '') terms) \
               AND deleted_at IS NULL AND {rooms} \
               AND ($7::text IS NULL OR lower(author) = lower($7)) \
               AND ($8::int8 IS NULL OR (created_at, id) < \
                    (SELECT b.created_at, b.id FROM messages b WHERE b.part = $8 AND b.seq = $9)) \
             ORDER BY created_at DESC, id DESC LIMIT $10",
            stored_columns()
        );
        Ok(sqlx::query(&sql)
            .bind(texts)
            .bind(prefixes)
            .bind(scope.room)
            .bind(scope.user)
            .bind(scope.also)
            .bind(scope.except)
            .bind(search.from.as_ref().map(Username::as_str))
            .bind(part)
            .bind(seq)
            .bind(i64::from(search.limit))
            .fetch_all(&mut *conn)
            .await?)
    }

    /// Writes a run of messages at their places as one statement: the run goes over as
    /// arrays that `UNNEST` turns back into rows, so a batch of a thousand costs one round
    /// trip and one plan instead of a thousand (docs/benchmarks: persist rows/s). Returns how
    /// many were new.
    ///
    /// A redelivered message (same id) or a re-sent one (same author and client_id, stored
    /// before or earlier in this run) is skipped; another message at a stored place fails the
    /// statement, as the log was reset and skipping it would lose it. A statement does not
    /// see its own rows, so copies within the run are dropped here, keeping the first like
    /// the log does.
    async fn insert_messages(
        conn: &mut sqlx::PgConnection,
        run: &[(&NewMessage, Cursor)],
    ) -> Result<u64, StoreError> {
        let mut columns = Columns::with_capacity(run.len());
        for (m, cursor) in first_copies(run) {
            columns.push(m, *cursor);
        }
        if columns.id.is_empty() {
            return Ok(0);
        }
        let done = sqlx::query(
            "INSERT INTO messages \
             (id, part, seq, room, author_id, author, body, created_at, client_id, reply_to, \
              thread_root, mentions, attachments, bot) \
             SELECT t.id, t.part, t.seq, t.room, t.author_id, t.author, t.body, t.created_at, \
                    t.client_id, t.reply_to, t.thread_root, t.mentions, t.attachments, t.bot \
             FROM UNNEST($1::uuid[], $2::int8[], $3::int8[], $4::text[], $5::int8[], \
                         $6::text[], $7::text[], $8::timestamptz[], $9::text[], $10::uuid[], \
                         $11::uuid[], $12::text[], $13::text[], $14::text[]) \
               AS t(id, part, seq, room, author_id, author, body, created_at, client_id, \
                    reply_to, thread_root, mentions, attachments, bot) \
             WHERE NOT EXISTS (SELECT 1 FROM messages m \
               WHERE t.client_id IS NOT NULL AND m.author_id = t.author_id \
                 AND m.client_id = t.client_id) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(columns.id)
        .bind(columns.part)
        .bind(columns.seq)
        .bind(columns.room)
        .bind(columns.author_id)
        .bind(columns.author)
        .bind(columns.body)
        .bind(columns.created_at)
        .bind(columns.client_id)
        .bind(columns.reply_to)
        .bind(columns.thread_root)
        .bind(columns.mentions)
        .bind(columns.attachments)
        .bind(columns.bot)
        .execute(&mut *conn)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "a message is stored at that place"))?;
        Ok(done.rows_affected())
    }

    /// The (actor, client id) pairs of `batch` that a stored message, change or room change
    /// already took, in one statement (the pairs go over as two arrays).
    async fn client_ids_taken(
        conn: &mut sqlx::PgConnection,
        batch: &[RoomEvent],
    ) -> Result<Vec<(i64, String)>, StoreError> {
        let (actors, client_ids): (Vec<i64>, Vec<&str>) = batch
            .iter()
            .filter_map(|e| e.client_id().map(|c| (e.actor_id().0, c.as_str())))
            .unzip();
        if actors.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "SELECT a, c FROM UNNEST($1::int8[], $2::text[]) AS ask(a, c) \
             WHERE EXISTS (SELECT 1 FROM messages WHERE author_id = ask.a AND client_id = ask.c) \
                OR EXISTS (SELECT 1 FROM room_events WHERE user_id = ask.a AND client_id = ask.c) \
                OR EXISTS (SELECT 1 FROM room_changes WHERE user_id = ask.a AND client_id = ask.c)",
        )
        .bind(actors)
        .bind(client_ids)
        .fetch_all(&mut *conn)
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("a")?, row.try_get("c")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }
}

/// A run of messages as one array per column, for `UNNEST`.
struct Columns<'a> {
    id: Vec<Uuid>,
    part: Vec<i64>,
    seq: Vec<i64>,
    room: Vec<&'a str>,
    author_id: Vec<i64>,
    author: Vec<&'a str>,
    body: Vec<&'a str>,
    created_at: Vec<DateTime<Utc>>,
    client_id: Vec<Option<&'a str>>,
    reply_to: Vec<Option<Uuid>>,
    thread_root: Vec<Option<Uuid>>,
    mentions: Vec<Option<String>>,
    attachments: Vec<Option<String>>,
    bot: Vec<Option<String>>,
}

impl<'a> Columns<'a> {
    fn with_capacity(n: usize) -> Self {
        Self {
            id: Vec::with_capacity(n),
            part: Vec::with_capacity(n),
            seq: Vec::with_capacity(n),
            room: Vec::with_capacity(n),
            author_id: Vec::with_capacity(n),
            author: Vec::with_capacity(n),
            body: Vec::with_capacity(n),
            created_at: Vec::with_capacity(n),
            client_id: Vec::with_capacity(n),
            reply_to: Vec::with_capacity(n),
            thread_root: Vec::with_capacity(n),
            mentions: Vec::with_capacity(n),
            attachments: Vec::with_capacity(n),
            bot: Vec::with_capacity(n),
        }
    }

    fn push(&mut self, m: &'a NewMessage, cursor: Cursor) {
        let (part, seq) = cursor_values(cursor);
        self.id.push(m.id);
        self.part.push(part);
        self.seq.push(seq);
        self.room.push(m.room.as_str());
        self.author_id.push(m.author_id.0);
        self.author.push(m.author.as_str());
        self.body.push(&m.body);
        self.created_at.push(m.created_at);
        self.client_id
            .push(m.client_id.as_ref().map(ClientId::as_str));
        self.reply_to.push(m.reply_to);
        self.thread_root.push(m.thread_root);
        self.mentions.push(mention_text(m));
        self.attachments.push(attachments_json(&m.attachments));
        self.bot.push(bot_text(m));
    }
}
