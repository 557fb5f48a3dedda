-- Web Push subscriptions: one row per browser (its push service endpoint), owned by the user
-- who subscribed last from it. Not a change of a room: a device's setting, written by the
-- API directly, like a refresh token.
CREATE TABLE push_subscriptions (
    endpoint TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users(id),
    p256dh TEXT NOT NULL,
    auth TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX push_subscriptions_user_idx ON push_subscriptions (user_id, created_at);

-- Muting a room: the member's own setting (`memberships.muted`, there since 0003), changed by
-- a `muted` room change of the log (like a read position, replayed to no one else). A muted
-- room's messages are not pushed, except those that mention the member.
ALTER TABLE room_changes ADD COLUMN muted BOOLEAN;
