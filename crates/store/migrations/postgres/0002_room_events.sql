-- Room events (issue 14): edits, deletes and reactions take their place in the room's log
-- beside messages, and the store is their projection. A message keeps its place (part, seq);
-- every other event of a room is a row of room_events at its own place in the same log, so
-- a resume reads both tables after its cursor, merged in log order.

-- Replies: the message answered, and the thread's first message (a reply to a reply joins
-- its parent's thread). The latest edit's time.
ALTER TABLE messages ADD COLUMN reply_to UUID,
    ADD COLUMN thread_root UUID,
    ADD COLUMN edited_at TIMESTAMPTZ;
CREATE INDEX messages_thread_idx ON messages (thread_root, part, seq)
    WHERE thread_root IS NOT NULL;

-- Every edit, delete, reaction and removed reaction of the log. `body` is an edit's new text
-- and `previous_body` the text it replaced (the edit history); a delete erases both for
-- every edit of its message. `changed` is false for a reaction that found the set already
-- so when its turn came (on Kafka, where it was logged before anyone could know): kept, so
-- the log's every event is accounted for, and left out of resumes.
CREATE TABLE room_events (
    id UUID PRIMARY KEY,
    part BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    room TEXT NOT NULL,
    kind TEXT NOT NULL,
    message_id UUID NOT NULL,
    user_id BIGINT NOT NULL,
    username TEXT NOT NULL,
    body TEXT,
    previous_body TEXT,
    emoji TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    client_id TEXT,
    changed BOOLEAN NOT NULL,
    UNIQUE (part, seq)
);
CREATE INDEX room_events_room_idx ON room_events (room, part, seq);
CREATE INDEX room_events_message_idx ON room_events (message_id, part, seq);
CREATE UNIQUE INDEX room_events_client_id_key ON room_events (user_id, client_id)
    WHERE client_id IS NOT NULL;

-- Reactions: a set per (message, user, emoji), counted from these rows, never kept as a
-- counter that could drift. A row stays when its reaction is removed (`present` false) and
-- keeps the place of the last event that changed it: an older event applied again (a
-- redelivery) changes nothing.
CREATE TABLE reactions (
    message_id UUID NOT NULL,
    user_id BIGINT NOT NULL,
    emoji TEXT NOT NULL,
    username TEXT NOT NULL,
    part BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    present BOOLEAN NOT NULL,
    PRIMARY KEY (message_id, user_id, emoji)
);
