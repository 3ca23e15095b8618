-- 0006: when the server stored each container event (its transaction's start), beside Docker's own time `ts`:
-- how late the server learned of a start or a die (event-only batches aim for under a second), for operators
-- and for the event-latency benchmark. Rows from before this migration get the migration's time.
-- Released migrations are never edited: add a new numbered file instead.

ALTER TABLE container_events ADD COLUMN stored_at timestamptz NOT NULL DEFAULT now();
