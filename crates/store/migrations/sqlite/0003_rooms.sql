-- Rooms people own (issue 15): a room is a row with a kind and members, not a string on
-- messages. Like the timeline's events, every change of a room (created, joined, left, a
-- member added or removed, its topic, a read position) is a row of room_changes at its place
-- in the room's log, and `rooms` and `memberships` are their projection. `part`/`seq` on a
-- projected row is the place of the change that last wrote it, so a gateway that merges what
-- the store has with what it heard since keeps the newer of each.

CREATE TABLE rooms (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    topic TEXT NOT NULL DEFAULT '',
    owner_id INTEGER,
    owner TEXT,
    created_at TEXT NOT NULL,
    archived_at TEXT,
    part INTEGER NOT NULL,
    seq INTEGER NOT NULL
);
CREATE INDEX rooms_kind_idx ON rooms (kind);

-- A member's read position is the cursor of the newest message they have read. A former
-- member keeps their row, not `present`: joining again keeps the read position.
CREATE TABLE memberships (
    room TEXT NOT NULL,
    user_id INTEGER NOT NULL,
    username TEXT NOT NULL,
    role TEXT NOT NULL,
    joined_at TEXT NOT NULL,
    present BOOLEAN NOT NULL,
    muted BOOLEAN NOT NULL DEFAULT FALSE,
    read_part INTEGER,
    read_seq INTEGER,
    part INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (room, user_id)
);
CREATE INDEX memberships_user_idx ON memberships (user_id, room) WHERE present;

-- Every room change of the log. `member` is the user added or removed (or a DM's other
-- user, on its `created`); `room_kind` and `topic` are a creation's and a topic's; `read_*`
-- a read position. `changed` is false for a change that found the room already so when its
-- turn came (on Kafka, logged before anyone could know).
CREATE TABLE room_changes (
    id BLOB PRIMARY KEY,
    part INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    room TEXT NOT NULL,
    kind TEXT NOT NULL,
    user_id INTEGER NOT NULL,
    username TEXT NOT NULL,
    member_id INTEGER,
    member TEXT,
    room_kind TEXT,
    topic TEXT,
    read_part INTEGER,
    read_seq INTEGER,
    created_at TEXT NOT NULL,
    client_id TEXT,
    changed BOOLEAN NOT NULL,
    UNIQUE (part, seq)
);
CREATE INDEX room_changes_room_idx ON room_changes (room, part, seq);
CREATE UNIQUE INDEX room_changes_client_id_key ON room_changes (user_id, client_id)
    WHERE client_id IS NOT NULL;

-- Who a message mentions: its names (space-separated, as written by the server) on the
-- message, and a row per mentioned member for counting mentions after a read position.
ALTER TABLE messages ADD COLUMN mentions TEXT;
CREATE TABLE mentions (
    message_id BLOB NOT NULL,
    user_id INTEGER NOT NULL,
    room TEXT NOT NULL,
    part INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (message_id, user_id)
);
CREATE INDEX mentions_user_idx ON mentions (user_id, room, part, seq);

-- What the rooms were before: every room with messages becomes a room, public (its first
-- writer its owner) or a DM; whoever wrote in a room is a member, and so are both users of
-- a DM; everything written before this upgrade counts as read.
INSERT INTO rooms (name, kind, topic, owner_id, owner, created_at, part, seq)
SELECT m.room,
       CASE WHEN m.room LIKE 'dm:%' THEN 'dm' ELSE 'public' END,
       '',
       CASE WHEN m.room LIKE 'dm:%' THEN NULL ELSE m.author_id END,
       CASE WHEN m.room LIKE 'dm:%' THEN NULL ELSE m.author END,
       m.created_at, 0, 0
FROM messages m
WHERE (m.part, m.seq) = (
    SELECT f.part, f.seq FROM messages f WHERE f.room = m.room ORDER BY f.part, f.seq LIMIT 1);

INSERT INTO memberships (room, user_id, username, role, joined_at, present, part, seq)
SELECT m.room, m.author_id, u.username, 'member', MIN(m.created_at), TRUE, 0, 0
FROM messages m JOIN users u ON u.id = m.author_id
GROUP BY m.room, m.author_id, u.username;

INSERT INTO memberships (room, user_id, username, role, joined_at, present, part, seq)
SELECT r.name, u.id, u.username, 'member', r.created_at, TRUE, 0, 0
FROM rooms r JOIN users u
  ON lower(u.username) IN (
      lower(substr(r.name, 4, instr(substr(r.name, 4), ':') - 1)),
      lower(substr(substr(r.name, 4), instr(substr(r.name, 4), ':') + 1)))
WHERE r.kind = 'dm'
ON CONFLICT (room, user_id) DO NOTHING;

UPDATE memberships SET role = 'owner'
WHERE EXISTS (
    SELECT 1 FROM rooms r WHERE r.name = memberships.room AND r.owner_id = memberships.user_id);

UPDATE memberships SET
    read_part = (SELECT m.part FROM messages m WHERE m.room = memberships.room
                 ORDER BY m.part DESC, m.seq DESC LIMIT 1),
    read_seq = (SELECT m.seq FROM messages m WHERE m.room = memberships.room
                ORDER BY m.part DESC, m.seq DESC LIMIT 1);
