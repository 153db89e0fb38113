-- Version 7: a POP3 maildrop that keeps its mail is listed whole on every poll. When every id of a
-- UIDL listing already had a receipt, the listing's SHA-256 (of its bytes as served) is kept here;
-- the next poll that gets the very same bytes knows nothing is new without reading them one by one.
-- Receipts are never removed, so a listing that was all known stays all known. NULL: none yet.
ALTER TABLE mailbox_state ADD COLUMN known_listing_sha256 TEXT;
