-- Version 6: large blobs in pieces. A raw message or an attachment content over 4 MiB is written as
-- 1 MiB rows, in the same transaction as the rest of the ingest, so no single bound value or row
-- record ever holds all of it (better-sqlite3 copies every bound blob, and SQLite builds the row
-- record as one more copy: a 70 MB message stored whole cost three times its size in memory).
-- For such an item the usual column holds an empty blob (X''), and the count column says how many
-- pieces hold the bytes. Small items are stored whole, as before, with a count of 0.

-- 0: messages.raw holds the message; N > 0: raw is X'' and message_raw_pieces holds it in N pieces.
ALTER TABLE messages ADD COLUMN raw_pieces INTEGER NOT NULL DEFAULT 0;
-- 0: attachment_contents.content holds the bytes; N > 0: content is X'', the pieces hold them.
ALTER TABLE attachment_contents ADD COLUMN pieces INTEGER NOT NULL DEFAULT 0;

CREATE TABLE message_raw_pieces (
  message_ref INTEGER NOT NULL REFERENCES messages(id),
  seq         INTEGER NOT NULL,                      -- 0, 1, 2, ...: the bytes in this order
  data        BLOB NOT NULL,
  PRIMARY KEY (message_ref, seq)
);

CREATE TABLE attachment_content_pieces (
  sha256 TEXT NOT NULL REFERENCES attachment_contents(sha256),
  seq    INTEGER NOT NULL,
  data   BLOB NOT NULL,
  PRIMARY KEY (sha256, seq)
);

-- Whole bytes, however they are stored, for the sqlite3 shell (`writefile('x.eml', raw)`) and other
-- tools. group_concat is the only blob concatenation old sqlite3 shells know (3.40 cannot parse
-- `group_concat(... ORDER BY ...)`, and an unparsable view would break the whole file for them);
-- the ordered subquery feeds it the pieces in order, and keeps NUL and non-UTF-8 bytes as they are.
-- mailpoll itself reads the pieces directly, into one buffer of the known size.
CREATE VIEW message_raw AS
  SELECT m.id AS id, m.raw_size AS raw_size,
    CASE WHEN m.raw_pieces = 0 THEN m.raw ELSE (
      SELECT CAST(group_concat(p.data, '') AS BLOB)
      FROM (SELECT data FROM message_raw_pieces WHERE message_ref = m.id ORDER BY seq) AS p
    ) END AS raw
  FROM messages m;

CREATE VIEW attachment_content AS
  SELECT c.sha256 AS sha256, c.size AS size,
    CASE WHEN c.pieces = 0 THEN c.content ELSE (
      SELECT CAST(group_concat(p.data, '') AS BLOB)
      FROM (SELECT data FROM attachment_content_pieces WHERE sha256 = c.sha256 ORDER BY seq) AS p
    ) END AS content
  FROM attachment_contents c;
