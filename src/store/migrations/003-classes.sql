-- Version 3: message classes (normal, auto-reply, bounce), synthetic Message-IDs, loop flags.

-- Why a message got its class, e.g. 'Auto-Submitted: auto-replied'; '' for normal mail.
ALTER TABLE messages ADD COLUMN class_reason TEXT NOT NULL DEFAULT '';
-- 1 when the message had no Message-ID and message_id holds one derived from its bytes.
ALTER TABLE messages ADD COLUMN message_id_synthetic INTEGER NOT NULL DEFAULT 0;
-- 1 when its requester opened more tickets in a short window than the loop guard allows.
ALTER TABLE tickets ADD COLUMN probable_loop INTEGER NOT NULL DEFAULT 0;

CREATE INDEX messages_class ON messages(class);
CREATE INDEX tickets_requester ON tickets(requester_address, created_at);
