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
