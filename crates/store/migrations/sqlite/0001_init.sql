-- The seed's two tables, in SQLite's dialect, plus what auth needs. Timestamps are bound from
-- the application (RFC 3339, UTC), so both backends store the same instants.
CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL UNIQUE,
    password TEXT NOT NULL,
    created_at TEXT NOT NULL,
    is_admin BOOLEAN NOT NULL DEFAULT FALSE
);

-- `alice` and `Alice` are one user.
CREATE UNIQUE INDEX users_username_lower_key ON users (lower(username));

-- Messages: `part` and `seq` are the message's place in the log (its cursor). Here the log is
-- local and `seq` comes from the `counters` row; with Kafka they are the partition and offset.
CREATE TABLE messages (
    id BLOB PRIMARY KEY,
    part INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    room TEXT NOT NULL,
    author_id INTEGER NOT NULL REFERENCES users(id),
    -- The author's name, kept so that history needs no join.
    author TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at TEXT NOT NULL,
    client_id TEXT,
    -- Deleted messages leave history; the row stays so a re-sent client_id is still known.
    deleted_at TEXT,
    UNIQUE (part, seq)
);
CREATE INDEX messages_room_idx ON messages (room, part, seq);
CREATE UNIQUE INDEX messages_client_id_key ON messages (author_id, client_id)
    WHERE client_id IS NOT NULL;

CREATE TABLE counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT INTO counters (name, value) VALUES ('messages', 0);

-- Refresh tokens are stored as SHA-256 digests, never in the clear. A family is one login
-- session: every rotation stays in it, and replaying a used token revokes all of it.
CREATE TABLE refresh_tokens (
    id BLOB PRIMARY KEY,
    token_hash BLOB NOT NULL UNIQUE,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    family_id BLOB NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at TEXT,
    revoked_at TEXT
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id);
