-- 0024: a version on each dirty-hour mark. Ingest re-marks an hour by raising its version instead of waiting
-- for a re-roll in progress, and the re-roll removes a mark only when it still has the version the roll read, so
-- a mark made while its hour was being rolled again is neither lost nor waited for. Before, the re-roll deleted
-- the marks first and held them through the whole roll: every ingest transaction marking the same hour (spooled
-- batches replayed after an outage) waited seconds for it. All SQL lives in Store/RollupStore.swift.
ALTER TABLE rollup_dirty ADD COLUMN version bigint NOT NULL DEFAULT 0;
