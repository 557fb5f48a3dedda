-- Administration (issue 20): deactivated accounts, invites, settings an admin changes, and
-- the audit log. None of it is a change of a room: these are accounts and the server's own
-- records, written by the admin and auth APIs directly, like a refresh token. (Archiving or
-- deleting a room, and purging messages, are room changes and go through the log.)

-- A deactivated account cannot log in, and its access tokens are refused. `revoked_before`
-- stays after reactivation: the tokens issued before it stay refused until they expire.
ALTER TABLE users ADD COLUMN deactivated_at TEXT;
ALTER TABLE users ADD COLUMN revoked_before TEXT;
-- The invite an account registered with, if any.
ALTER TABLE users ADD COLUMN invite_id BLOB;

-- Invite codes: stored as SHA-256 digests (the code is shown once, like a refresh token).
CREATE TABLE invites (
    id BLOB PRIMARY KEY,
    code_hash BLOB NOT NULL UNIQUE,
    created_by INTEGER NOT NULL REFERENCES users(id),
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    uses INTEGER NOT NULL,
    used INTEGER NOT NULL DEFAULT 0,
    revoked_at TEXT
);
CREATE INDEX invites_created_idx ON invites (created_at);

-- What admins set at run time (the registration mode), by name.
CREATE TABLE settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Who did what, on whom, when, from where. Append-only: the triggers refuse any change.
CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    actor_id INTEGER,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL,
    address TEXT
);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;

-- Archiving and deleting a room are room changes of its log (`archived`, `deleted`): the
-- projection sets `rooms.archived_at` (there since 0003) and `deleted_at`. A deleted room's
-- row stays (its name is not given out again); its messages and files are removed in the
-- background, in batches.
ALTER TABLE rooms ADD COLUMN deleted_at TEXT;
ALTER TABLE room_changes ADD COLUMN archived BOOLEAN;
-- Only deleted rooms, for the sweep that looks for them every few seconds.
CREATE INDEX rooms_deleted_idx ON rooms (deleted_at) WHERE deleted_at IS NOT NULL;
