-- Version 2: leases against overlapping runs, and per-message failures with quarantine.

-- A run holds a mailbox while it polls it; another run skips it until the lease is released
-- or has expired (a crashed holder cannot keep it forever).
ALTER TABLE mailbox_state ADD COLUMN lease_owner TEXT;
ALTER TABLE mailbox_state ADD COLUMN lease_expires_at TEXT;

-- A message that failed to fetch or store. After a bounded number of attempts it is quarantined:
-- left on the server, its receipt written with outcome 'quarantined', and it blocks nothing behind it.
CREATE TABLE message_failures (
  mailbox         TEXT NOT NULL,
  server_id       TEXT NOT NULL,
  attempts        INTEGER NOT NULL,
  last_error      TEXT NOT NULL,
  first_failed_at TEXT NOT NULL,
  last_failed_at  TEXT NOT NULL,
  quarantined_at  TEXT,                 -- NULL while it is still retried
  raw             BLOB,                 -- the bytes, when the fetch itself succeeded
  PRIMARY KEY (mailbox, server_id)
) WITHOUT ROWID;

-- A message over maxMessageBytes stored with `oversize: headers`: only its header block is in
-- `raw`, the message itself stays on the server untouched.
ALTER TABLE messages ADD COLUMN headers_only INTEGER NOT NULL DEFAULT 0;
