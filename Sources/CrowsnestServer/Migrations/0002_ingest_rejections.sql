-- 0002: what ingest refused, and what the server knows about each agent's clock and truncated values.
-- Released migrations are never edited: add a new numbered file instead.

-- A batch (or a part of one) that the server could not store because of its data, not because of the
-- database: it is recorded here and acknowledged, so one poisoned batch never blocks an agent's stream.
CREATE TABLE ingest_rejections (
    tenant_id   uuid NOT NULL,
    agent_id    uuid NOT NULL,
    id          bigint GENERATED ALWAYS AS IDENTITY,
    batch_seq   bigint NOT NULL,
    batch_ts    timestamptz,
    -- What could not be stored: 'batch', 'samples', 'host', 'containers', 'events', 'spans'.
    part        text NOT NULL,
    -- PostgreSQL's SQLSTATE when the database refused it; '' when the server refused it before writing.
    sqlstate    text NOT NULL DEFAULT '',
    reason      text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, agent_id, id),
    FOREIGN KEY (tenant_id, agent_id) REFERENCES agents(tenant_id, id)
);

ALTER TABLE agents
    -- The agent's clock minus the server's (ms), from its last Hello or heartbeat; NULL = not known.
    ADD COLUMN clock_offset_ms bigint,
    -- Strings shortened or labels dropped to fit the wire bounds, by the agent and by the server.
    ADD COLUMN truncated_values bigint NOT NULL DEFAULT 0,
    -- Samples skipped because a row for the same container and time was already stored.
    ADD COLUMN duplicate_samples bigint NOT NULL DEFAULT 0,
    -- Batches the agent set aside after the server could not decode them three times (agent's dead-letter files).
    ADD COLUMN dead_lettered_batches bigint NOT NULL DEFAULT 0;
