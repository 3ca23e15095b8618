-- 0005: the time of the batch committed under committed_seq, told to the agent in Welcome, so an agent running
-- on a restored copy of its state directory notices and renumbers its unsent batches instead of dropping them.
-- Released migrations are never edited: add a new numbered file instead.

ALTER TABLE agents ADD COLUMN committed_batch_ts_ms bigint NOT NULL DEFAULT 0;
