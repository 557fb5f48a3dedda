-- Administration (issue 20): deactivated accounts, invites, settings an admin changes, and
-- the audit log. None of it is a change of a room: these are accounts and the server's own
-- records, written by the admin and auth APIs directly, like a refresh token. (Archiving or
-- deleting a room, and purging messages, are room changes and go through the log.)

-- A deactivated account cannot log in, and its access tokens are refused. `revoked_before`
-- stays after reactivation: the tokens issued before it stay refused until they expire.
ALTER TABLE users ADD COLUMN deactivated_at TIMESTAMPTZ;
ALTER TABLE users ADD COLUMN revoked_before TIMESTAMPTZ;
-- The invite an account registered with, if any.
ALTER TABLE users ADD COLUMN invite_id UUID;

-- Invite codes: stored as SHA-256 digests (the code is shown once, like a refresh token).
CREATE TABLE invites (
    id UUID PRIMARY KEY,
    code_hash BYTEA NOT NULL UNIQUE,
    created_by BIGINT NOT NULL REFERENCES users(id),
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    uses INTEGER NOT NULL,
    used INTEGER NOT NULL DEFAULT 0,
    revoked_at TIMESTAMPTZ
);
CREATE INDEX invites_created_idx ON invites (created_at);

-- What admins set at run time (the registration mode), by name.
CREATE TABLE settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Who did what, on whom, when, from where. Append-only: the trigger refuses any change.
CREATE TABLE audit_log (
    id BIGSERIAL PRIMARY KEY,
    at TIMESTAMPTZ NOT NULL,
    actor_id BIGINT,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL,
    address TEXT
);
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only';
END
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

-- Archiving and deleting a room are room changes of its log (`archived`, `deleted`): the
-- projection sets `rooms.archived_at` (there since 0003) and `deleted_at`. A deleted room's
-- row stays (its name is not given out again); its messages and files are removed in the
-- background, in batches.
ALTER TABLE rooms ADD COLUMN deleted_at TIMESTAMPTZ;
ALTER TABLE room_changes ADD COLUMN archived BOOLEAN;
-- Only deleted rooms, for the sweep that looks for them every few seconds.
CREATE INDEX rooms_deleted_idx ON rooms (deleted_at) WHERE deleted_at IS NOT NULL;
