-- mailpoll schema, version 1. This schema is a public interface: README.md documents every column.
-- Timestamps are ISO 8601 UTC text (e.g. 2026-11-24T09:30:00.000Z).

CREATE TABLE tickets (
  id                INTEGER PRIMARY KEY,
  number            INTEGER NOT NULL UNIQUE,          -- human-friendly, shown as #1001
  subject           TEXT,
  status            TEXT NOT NULL DEFAULT 'open',
  requester_address TEXT,
  requester_name    TEXT,
  mailbox           TEXT NOT NULL,                    -- mailbox the first message came from
  parse_failed      INTEGER NOT NULL DEFAULT 0,       -- 1 when its first message could not be parsed
  message_count     INTEGER NOT NULL DEFAULT 0,
  created_at        TEXT NOT NULL,
  updated_at        TEXT NOT NULL
);

CREATE TABLE messages (
  id               INTEGER PRIMARY KEY,
  ticket_id        INTEGER REFERENCES tickets(id),        -- NULL: stored without a ticket (policy)
  mailbox          TEXT NOT NULL,
  message_id       TEXT,                              -- Message-ID header, without angle brackets
  in_reply_to      TEXT,
  references_ids   TEXT,                              -- JSON array of Message-IDs from References
  subject          TEXT,
  from_address     TEXT,
  from_name        TEXT,
  reply_to         TEXT,                              -- JSON array of {name, address}
  to_addresses     TEXT,                              -- JSON array of {name, address}
  cc_addresses     TEXT,                              -- JSON array of {name, address}
  sent_at          TEXT,                              -- Date header
  received_at      TEXT NOT NULL,                     -- when mailpoll stored it
  text_body        TEXT,
  html_body        TEXT,
  raw              BLOB NOT NULL,                     -- the exact bytes the server served
  raw_size         INTEGER NOT NULL,
  raw_sha256       TEXT NOT NULL,
  dedupe_hash      TEXT NOT NULL UNIQUE,
  parse_error      TEXT,                              -- NULL when parsing succeeded
  class            TEXT NOT NULL DEFAULT 'normal'
);
CREATE INDEX messages_ticket ON messages(ticket_id);
CREATE INDEX messages_message_id ON messages(message_id);

CREATE TABLE attachment_contents (
  sha256  TEXT PRIMARY KEY,
  size    INTEGER NOT NULL,
  content BLOB NOT NULL
);

CREATE TABLE attachments (
  id           INTEGER PRIMARY KEY,
  message_ref  INTEGER NOT NULL REFERENCES messages(id),
  filename     TEXT,
  content_type TEXT NOT NULL,
  size         INTEGER NOT NULL,
  content_id   TEXT,
  inline       INTEGER NOT NULL DEFAULT 0,
  sha256       TEXT NOT NULL REFERENCES attachment_contents(sha256)
);
CREATE INDEX attachments_message ON attachments(message_ref);

-- One row per message seen on a server: the first layer of dedupe and the acknowledgement ledger.
CREATE TABLE receipts (
  mailbox         TEXT NOT NULL,
  server_id       TEXT NOT NULL,                      -- IMAP "UIDVALIDITY:UID", POP3 UIDL
  message_ref     INTEGER REFERENCES messages(id),    -- NULL when nothing was stored (oversize)
  outcome         TEXT NOT NULL,                      -- stored | duplicate | oversize
  fetched_at      TEXT NOT NULL,
  acknowledged_at TEXT,                               -- NULL: the server action is still owed
  PRIMARY KEY (mailbox, server_id)
) WITHOUT ROWID;
CREATE INDEX receipts_unacknowledged ON receipts(mailbox) WHERE acknowledged_at IS NULL;

CREATE TABLE mailbox_state (
  mailbox              TEXT PRIMARY KEY,
  uid_validity         TEXT,
  last_uid             INTEGER,
  last_attempt_at      TEXT,
  last_success_at      TEXT,
  consecutive_failures INTEGER NOT NULL DEFAULT 0,
  last_error           TEXT
);
