-- tta-agent-coordination-postgres: scheduled sends (issue 14 §2).
-- Runs with search_path set to the store's schema; names are unqualified on purpose.

-- A scheduled send cancelled before it was due is settled as 'cancelled'.
ALTER TABLE messages DROP CONSTRAINT messages_status_check;
ALTER TABLE messages ADD CONSTRAINT messages_status_check
    CHECK (status IN ('queued', 'leased', 'acked', 'retrying', 'dead', 'cancelled'));

-- When the message becomes receivable (ms since the epoch, Redis server clock): the due
-- time of a scheduled send, 0 for one ready at once. Versioned with the row's state, so a
-- delivery (or any later step) sets it back to 0; restore() puts a message whose due
-- time is still ahead back in its queue's delayed set.
ALTER TABLE messages ADD COLUMN available_at_ms bigint NOT NULL DEFAULT 0;
