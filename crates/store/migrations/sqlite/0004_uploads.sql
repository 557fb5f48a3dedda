-- Attachments. An upload is a file a user stored (its bytes are in the file storage under
-- its id); it is attached when the projection applies the message that carries it, which
-- sets `message_id` and `room` (first message wins). Who may fetch it follows from them:
-- its uploader, and the members of that room.
--
-- `removing`: the message that carried it was deleted (the projection of the delete sets
-- it), so the cleanup job removes its bytes and then the row. Uploads never attached are
-- removed by the same job a day after they were made.
CREATE TABLE uploads (
    id BLOB PRIMARY KEY,
    uploader_id INTEGER NOT NULL REFERENCES users(id),
    name TEXT NOT NULL,
    size INTEGER NOT NULL,
    content_type TEXT NOT NULL,
    width INTEGER,
    height INTEGER,
    thumbnail BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TEXT NOT NULL,
    message_id BLOB,
    room TEXT,
    removing BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX uploads_uploader_idx ON uploads (uploader_id);
CREATE INDEX uploads_message_idx ON uploads (message_id);
CREATE INDEX uploads_unattached_idx ON uploads (created_at) WHERE message_id IS NULL;
CREATE INDEX uploads_removing_idx ON uploads (id) WHERE removing;

-- What a message carries, as the log's event said it (a JSON array; NULL for nothing):
-- history and resume read it without a join.
ALTER TABLE messages ADD COLUMN attachments TEXT;
