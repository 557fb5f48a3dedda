-- Bots and integrations (issue 21): bot accounts with long-lived tokens, and incoming and
-- outgoing webhooks. Like invites and refresh tokens these are the server's own records, written by
-- the bots API directly; what a bot does in a room (a message, being added) goes through the
-- room's log like anyone's.

-- A bot is an account like a user's (its name is taken from the same space), marked so that
-- readers show its messages as a bot's. Its password is no PHC string: it cannot log in.
ALTER TABLE users ADD COLUMN is_bot BOOLEAN NOT NULL DEFAULT FALSE;

-- A bot's message: NULL for everyone else's; for a bot's, the label it was posted under
-- (an incoming webhook's `username`), or '' for none.
ALTER TABLE messages ADD COLUMN bot TEXT;

-- A bot's token, stored as its SHA-256 digest (the token is shown once). A revoked bot
-- keeps its row with no digest. `rooms`: the names of the rooms it may use, space-separated,
-- or NULL for any room a member may use. A webhook's bot has no token at all.
CREATE TABLE bots (
    user_id INTEGER PRIMARY KEY REFERENCES users(id),
    token_hash BLOB UNIQUE,
    created_by INTEGER NOT NULL REFERENCES users(id),
    created_at TEXT NOT NULL,
    rooms TEXT
);

-- Incoming webhooks: a URL whose secret (stored as its SHA-256 digest) lets whoever holds it
-- post to one room as the webhook's own bot.
CREATE TABLE webhooks (
    id BLOB PRIMARY KEY,
    room TEXT NOT NULL,
    bot_id INTEGER NOT NULL REFERENCES users(id),
    secret_hash BLOB NOT NULL UNIQUE,
    created_by INTEGER NOT NULL REFERENCES users(id),
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE INDEX webhooks_room_idx ON webhooks (room);

-- Outgoing webhooks: a room's new messages (those starting with `trigger`, if set) are
-- POSTed to `url`, signed with `secret` (HMAC-SHA256), and what the receiver answers is
-- posted back as the webhook's own bot. The secret is kept as it is: signing needs it.
CREATE TABLE outgoing_webhooks (
    id BLOB PRIMARY KEY,
    room TEXT NOT NULL,
    bot_id INTEGER NOT NULL REFERENCES users(id),
    url TEXT NOT NULL,
    trigger TEXT,
    secret TEXT NOT NULL,
    created_by INTEGER NOT NULL REFERENCES users(id),
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE INDEX outgoing_webhooks_room_idx ON outgoing_webhooks (room) WHERE revoked_at IS NULL;
