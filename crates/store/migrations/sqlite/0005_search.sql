-- Search (issue 18): an FTS5 index of every message that is not deleted, over its text and
-- its attachments' names. It keeps no copy of them: its content is the `message_text` view
-- of `messages` (external content), and the triggers below keep it in step with every write
-- the projection makes to a message (a new message, an edit, a delete), in the same
-- transaction. A row is indexed exactly while its `deleted_at` is NULL, and a trigger that
-- takes one out gives FTS5 the values it was indexed with (OLD's, through the same
-- expressions as the view), which is what keeps an external-content index from drifting.
--
-- `unicode61 remove_diacritics 2`: words are runs of letters and digits, compared without
-- case or accents. `prefix`: every unquoted word of a query is a prefix, and indexes of
-- 2- and 3-character prefixes keep short ones cheap.
--
-- The names are read with plain JSON paths, one per attachment a message may carry (at most
-- ten: Attachment::MAX_PER_MESSAGE), not with json_each: FTS5 reads the view by a
-- schema-qualified name, where SQLite finds no table-valued functions.
--
-- The index's rows are the messages' rowids. banter never runs VACUUM, which may renumber
-- them in a table without an INTEGER PRIMARY KEY; whoever does must then rebuild the index:
--   INSERT INTO message_search (message_search) VALUES ('rebuild');

CREATE VIEW message_text AS
SELECT m.rowid AS rid,
       m.body AS body,
       concat_ws(' ',
           m.attachments ->> '$[0].name', m.attachments ->> '$[1].name',
           m.attachments ->> '$[2].name', m.attachments ->> '$[3].name',
           m.attachments ->> '$[4].name', m.attachments ->> '$[5].name',
           m.attachments ->> '$[6].name', m.attachments ->> '$[7].name',
           m.attachments ->> '$[8].name', m.attachments ->> '$[9].name') AS files
FROM messages m
WHERE m.deleted_at IS NULL;

CREATE VIRTUAL TABLE message_search USING fts5(
    body,
    files,
    content = 'message_text',
    content_rowid = 'rid',
    tokenize = 'unicode61 remove_diacritics 2',
    prefix = '2 3'
);

CREATE TRIGGER message_search_insert AFTER INSERT ON messages
WHEN new.deleted_at IS NULL
BEGIN
    INSERT INTO message_search (rowid, body, files)
    VALUES (new.rowid, new.body,
            concat_ws(' ',
                new.attachments ->> '$[0].name', new.attachments ->> '$[1].name',
                new.attachments ->> '$[2].name', new.attachments ->> '$[3].name',
                new.attachments ->> '$[4].name', new.attachments ->> '$[5].name',
                new.attachments ->> '$[6].name', new.attachments ->> '$[7].name',
                new.attachments ->> '$[8].name', new.attachments ->> '$[9].name'));
END;

CREATE TRIGGER message_search_update AFTER UPDATE OF body, attachments, deleted_at ON messages
BEGIN
    INSERT INTO message_search (message_search, rowid, body, files)
    SELECT 'delete', old.rowid, old.body,
           concat_ws(' ',
               old.attachments ->> '$[0].name', old.attachments ->> '$[1].name',
               old.attachments ->> '$[2].name', old.attachments ->> '$[3].name',
               old.attachments ->> '$[4].name', old.attachments ->> '$[5].name',
               old.attachments ->> '$[6].name', old.attachments ->> '$[7].name',
               old.attachments ->> '$[8].name', old.attachments ->> '$[9].name')
    WHERE old.deleted_at IS NULL;
    INSERT INTO message_search (rowid, body, files)
    SELECT new.rowid, new.body,
           concat_ws(' ',
               new.attachments ->> '$[0].name', new.attachments ->> '$[1].name',
               new.attachments ->> '$[2].name', new.attachments ->> '$[3].name',
               new.attachments ->> '$[4].name', new.attachments ->> '$[5].name',
               new.attachments ->> '$[6].name', new.attachments ->> '$[7].name',
               new.attachments ->> '$[8].name', new.attachments ->> '$[9].name')
    WHERE new.deleted_at IS NULL;
END;

CREATE TRIGGER message_search_delete AFTER DELETE ON messages
WHEN old.deleted_at IS NULL
BEGIN
    INSERT INTO message_search (message_search, rowid, body, files)
    VALUES ('delete', old.rowid, old.body,
            concat_ws(' ',
                old.attachments ->> '$[0].name', old.attachments ->> '$[1].name',
                old.attachments ->> '$[2].name', old.attachments ->> '$[3].name',
                old.attachments ->> '$[4].name', old.attachments ->> '$[5].name',
                old.attachments ->> '$[6].name', old.attachments ->> '$[7].name',
                old.attachments ->> '$[8].name', old.attachments ->> '$[9].name'));
END;

-- Messages written before this upgrade.
INSERT INTO message_search (message_search) VALUES ('rebuild');
