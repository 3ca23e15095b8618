-- 0015: container_events partitioned by UTC day like the samples, so old events leave with their day (the raw
-- retention drops whole partitions). The rows move into day partitions named as PartitionStore names them.
-- Released migrations are never edited: add a new numbered file instead.

ALTER TABLE container_events RENAME TO container_events_before_0015;
ALTER TABLE container_events_before_0015 RENAME CONSTRAINT container_events_pkey TO container_events_before_0015_pkey;

CREATE TABLE container_events (
    LIKE container_events_before_0015 INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
    PRIMARY KEY (tenant_id, agent_id, name, ts, action)
) PARTITION BY RANGE (ts);

DO $$
DECLARE d date;
BEGIN
    FOR d IN SELECT DISTINCT (ts AT TIME ZONE 'UTC')::date FROM container_events_before_0015 LOOP
        EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF container_events FOR VALUES FROM (%L) TO (%L)',
                       'container_events_' || to_char(d, 'YYYYMMDD'), d || ' 00:00:00+00', (d + 1) || ' 00:00:00+00');
    END LOOP;
END $$;

INSERT INTO container_events SELECT * FROM container_events_before_0015;
DROP TABLE container_events_before_0015;
