-- Search (issue 18): every message's words, its text's and its attachments' names', as a
-- tsvector column that PostgreSQL computes on every write the projection makes (a new
-- message, an edit; a delete empties the text), with a GIN index.
--
-- The text-search configuration `banter_search` is `simple` (no stemming and no stop words:
-- a word is found as written, in any language, where an English stemmer would mangle every
-- other one) with accents removed first (`unaccent`, a trusted extension shipped with
-- PostgreSQL's contrib modules). Queries use the same configuration, so "cafe" finds "Café".
--
-- Punctuation is made a space before parsing, in the messages as in the queries: the parser
-- would otherwise keep "report_2026.pdf" or "example.com/docs" whole, as a file or a host,
-- where a person searches for "report" or "docs" (and SQLite's tokenizer splits them so).
CREATE EXTENSION IF NOT EXISTS unaccent;

CREATE TEXT SEARCH CONFIGURATION banter_search (COPY = simple);
ALTER TEXT SEARCH CONFIGURATION banter_search
    ALTER MAPPING FOR asciiword, asciihword, hword_asciipart, word, hword, hword_part
    WITH unaccent, simple;

ALTER TABLE messages ADD COLUMN search tsvector GENERATED ALWAYS AS (
    to_tsvector('banter_search'::regconfig, regexp_replace(body, '[[:punct:]]+', ' ', 'g'))
    || to_tsvector('banter_search'::regconfig, regexp_replace(
        COALESCE(jsonb_path_query_array(attachments::jsonb, '$[*].name')::text, ''),
        '[[:punct:]]+', ' ', 'g'))
) STORED;

CREATE INDEX messages_search_idx ON messages USING GIN (search);
