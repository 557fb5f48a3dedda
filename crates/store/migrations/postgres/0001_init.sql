-- The seed's two tables, created as its README did by hand, so that a seed database can be
-- migrated in place: IF NOT EXISTS keeps existing rows, and the ALTERs below widen its columns.
CREATE TABLE IF NOT EXISTS users (
    id BIGSERIAL PRIMARY KEY,
    username TEXT UNIQUE NOT NULL,
    password TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS messages (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    room TEXT NOT NULL,
    author_id BIGINT NOT NULL REFERENCES users(id),
    body TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The seed used SERIAL (32-bit) keys.
ALTER TABLE users ALTER COLUMN id TYPE BIGINT;
ALTER TABLE messages ALTER COLUMN author_id TYPE BIGINT;
ALTER TABLE users ALTER COLUMN created_at SET NOT NULL;
UPDATE messages SET created_at = now() WHERE created_at IS NULL;
ALTER TABLE messages ALTER COLUMN created_at SET NOT NULL;

ALTER TABLE users ADD COLUMN IF NOT EXISTS is_admin BOOLEAN NOT NULL DEFAULT FALSE;

-- Messages: `part` and `seq` are the message's place in the log (its cursor): the Kafka
-- partition and offset, or partition 0 and the `counters` value when the log is local.
-- Seed rows get their places in the order they were written.
ALTER TABLE messages
    ADD COLUMN IF NOT EXISTS part BIGINT,
    ADD COLUMN IF NOT EXISTS seq BIGINT,
    ADD COLUMN IF NOT EXISTS author TEXT,
    ADD COLUMN IF NOT EXISTS client_id TEXT,
    ADD COLUMN IF NOT EXISTS deleted_at TIMESTAMPTZ;
UPDATE messages m SET part = 0, seq = o.n, author = o.username
FROM (
    SELECT msg.id, u.username, row_number() OVER (ORDER BY msg.created_at, msg.id) AS n
    FROM messages msg JOIN users u ON u.id = msg.author_id
) o
WHERE m.id = o.id;
ALTER TABLE messages
    ALTER COLUMN part SET NOT NULL,
    ALTER COLUMN seq SET NOT NULL,
    ALTER COLUMN author SET NOT NULL,
    ALTER COLUMN id DROP DEFAULT,
    ADD CONSTRAINT messages_part_seq_key UNIQUE (part, seq);
CREATE INDEX messages_room_idx ON messages (room, part, seq);
CREATE UNIQUE INDEX messages_client_id_key ON messages (author_id, client_id)
    WHERE client_id IS NOT NULL;

CREATE TABLE counters (
    name TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO counters (name, value) SELECT 'messages', COALESCE(MAX(seq), 0) FROM messages;

-- `alice` and `Alice` are one user.
CREATE UNIQUE INDEX IF NOT EXISTS users_username_lower_key ON users (lower(username));

-- Refresh tokens are stored as SHA-256 digests, never in the clear. A family is one login
-- session: every rotation stays in it, and replaying a used token revokes all of it.
CREATE TABLE refresh_tokens (
    id UUID PRIMARY KEY,
    token_hash BYTEA NOT NULL UNIQUE,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    family_id UUID NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    used_at TIMESTAMPTZ,
    revoked_at TIMESTAMPTZ
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id);
