-- 0014: 5-minute and 1-hour rollups (avg, min, max and the sample count) of every host's and container's figures,
-- so long ranges are read from a few rows per bucket instead of raw samples (kept 30 days by default), and the
-- job's progress; buckets that late (spooled) samples land in are marked dirty by ingest and rolled again.
-- Released migrations are never edited: add a new numbered file instead.

CREATE TABLE metric_rollups (
    tenant_id    uuid NOT NULL,
    target_id    text NOT NULL,
    step_seconds integer NOT NULL CHECK (step_seconds IN (300, 3600)),
    bucket       timestamptz NOT NULL,
    samples      integer NOT NULL,
    cpu_avg float8, cpu_min float8, cpu_max float8,
    memory_avg float8, memory_min float8, memory_max float8,
    memory_limit_avg float8, memory_limit_min float8, memory_limit_max float8,
    rx_avg float8, rx_min float8, rx_max float8,
    tx_avg float8, tx_min float8, tx_max float8,
    read_avg float8, read_min float8, read_max float8,
    write_avg float8, write_min float8, write_max float8,
    pids_avg float8, pids_min float8, pids_max float8,
    disk_avg float8, disk_min float8, disk_max float8,
    PRIMARY KEY (tenant_id, target_id, step_seconds, bucket)
);

-- Every bucket that ends at or before rolled_through has been rolled (per step).
CREATE TABLE rollup_progress (
    step_seconds   integer PRIMARY KEY,
    rolled_through timestamptz NOT NULL
);

-- Hours of one agent's samples that late data reached after they were rolled: rolled again, then removed.
CREATE TABLE rollup_dirty (
    tenant_id  uuid NOT NULL,
    agent_id   uuid NOT NULL,
    hour       timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, agent_id, hour)
);
