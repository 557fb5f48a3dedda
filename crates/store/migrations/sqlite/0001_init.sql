-- The seed's two tables, in SQLite's dialect, plus what auth needs. Timestamps are bound from
-- the application (RFC 3339, UTC), so both backends store the same instants.
CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL UNIQUE,
    password TEXT NOT NULL,
    created_at TEXT NOT NULL
);

-- `alice` and `Alice` are one user.
CREATE UNIQUE INDEX users_username_lower_key ON users (lower(username));

CREATE TABLE messages (
    id BLOB PRIMARY KEY,
    room TEXT NOT NULL,
    author_id INTEGER NOT NULL REFERENCES users(id),
    body TEXT NOT NULL,
    created_at TEXT NOT NULL
);

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
