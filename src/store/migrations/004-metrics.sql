-- Version 4: per-mailbox poll counters for /metrics and `fetch --metrics-file`. They live beside the
-- outcome they count (updated by the same statement), so they survive restarts and add up across
-- cron runs, HTTP triggers and the daemon. Messages, duplicates and quarantine are not counted
-- here: those are read from receipts, messages and message_failures themselves.
ALTER TABLE mailbox_state ADD COLUMN polls_total INTEGER NOT NULL DEFAULT 0;          -- finished polls
ALTER TABLE mailbox_state ADD COLUMN poll_failures_total INTEGER NOT NULL DEFAULT 0;  -- of which failed
ALTER TABLE mailbox_state ADD COLUMN bytes_fetched_total INTEGER NOT NULL DEFAULT 0;  -- raw bytes downloaded
ALTER TABLE mailbox_state ADD COLUMN last_poll_duration_ms INTEGER;                   -- NULL: never polled
ALTER TABLE mailbox_state ADD COLUMN last_poll_finished_at TEXT;
