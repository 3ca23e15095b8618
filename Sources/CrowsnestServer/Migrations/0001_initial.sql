-- 0001: tenants, credentials, agents, containers, time series, status spans.
-- Every tenant-owned table leads its key with tenant_id (Citus-ready).
-- Released migrations are never edited: add a new numbered file instead.

CREATE TABLE tenants (
    id          uuid PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    time_zone   text NOT NULL DEFAULT 'UTC',
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    tenant_id   uuid NOT NULL REFERENCES tenants(id),
    id          uuid NOT NULL,
    key_hash    bytea NOT NULL UNIQUE,          -- SHA-256 of the secret; the secret itself is never stored
    role        text NOT NULL CHECK (role IN ('admin', 'read')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE enrollment_tokens (
    tenant_id   uuid NOT NULL REFERENCES tenants(id),
    id          uuid NOT NULL,
    token_hash  bytea NOT NULL UNIQUE,          -- SHA-256 of the token
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    used_by     uuid,                            -- the agent enrolled with it
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE agents (
    tenant_id           uuid NOT NULL REFERENCES tenants(id),
    id                  uuid NOT NULL UNIQUE,
    hostname            text NOT NULL,
    agent_version       text NOT NULL DEFAULT '',
    os                  text NOT NULL DEFAULT '',
    kernel              text NOT NULL DEFAULT '',
    architecture        text NOT NULL DEFAULT '',
    cpu_count           integer NOT NULL DEFAULT 0,
    memory_total_bytes  bigint NOT NULL DEFAULT 0,
    docker_version      text NOT NULL DEFAULT '',
    boot_id             text NOT NULL DEFAULT '',
    certificate_serial  text NOT NULL DEFAULT '',
    enrolled_at         timestamptz NOT NULL DEFAULT now(),
    revoked_at          timestamptz,
    last_seen           timestamptz,
    interval_seconds    integer NOT NULL DEFAULT 30,
    -- Highest batch sequence committed: a batch with seq <= committed_seq is a replay.
    committed_seq       bigint NOT NULL DEFAULT 0,
    spool_dropped_batches bigint NOT NULL DEFAULT 0,
    containers_unavailable_reason text NOT NULL DEFAULT '',
    PRIMARY KEY (tenant_id, id)
);

-- Current state of each container, keyed by host and name so a re-created service keeps its history.
CREATE TABLE containers (
    tenant_id           uuid NOT NULL,
    agent_id            uuid NOT NULL,
    name                text NOT NULL,
    docker_id           text NOT NULL,
    image               text NOT NULL DEFAULT '',
    labels              jsonb NOT NULL DEFAULT '{}',
    state               text NOT NULL,
    health              text NOT NULL DEFAULT 'none',
    health_output       text NOT NULL DEFAULT '',
    exit_code           integer NOT NULL DEFAULT 0,
    restart_count       integer NOT NULL DEFAULT 0,
    oom_killed          boolean NOT NULL DEFAULT false,
    started_at          timestamptz,
    finished_at         timestamptz,
    cpu_limit_cores     double precision NOT NULL DEFAULT 0,
    memory_limit_bytes  bigint NOT NULL DEFAULT 0,
    first_seen          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL,
    removed_at          timestamptz,
    PRIMARY KEY (tenant_id, agent_id, name),
    FOREIGN KEY (tenant_id, agent_id) REFERENCES agents(tenant_id, id)
);

-- One wide row per container per tick; raw counters plus rates derived at ingest.
CREATE TABLE container_samples (
    tenant_id           uuid NOT NULL,
    agent_id            uuid NOT NULL,
    name                text NOT NULL,
    ts                  timestamptz NOT NULL,
    docker_id           text NOT NULL,
    state               text NOT NULL,
    cpu_usage_ns        bigint,
    cpu_throttled_periods bigint,
    cpu_throttled_ns    bigint,
    memory_usage_bytes  bigint,
    memory_working_set_bytes bigint,
    memory_limit_bytes  bigint,
    net_rx_bytes        bigint,
    net_tx_bytes        bigint,
    net_rx_packets      bigint,
    net_tx_packets      bigint,
    net_rx_errors       bigint,
    net_tx_errors       bigint,
    net_rx_dropped      bigint,
    net_tx_dropped      bigint,
    block_read_bytes    bigint,
    block_write_bytes   bigint,
    block_read_ops      bigint,
    block_write_ops     bigint,
    pids                bigint,
    cpu_percent         double precision,
    net_rx_bytes_per_second double precision,
    net_tx_bytes_per_second double precision,
    block_read_bytes_per_second double precision,
    block_write_bytes_per_second double precision,
    PRIMARY KEY (tenant_id, agent_id, name, ts)
) PARTITION BY RANGE (ts);

CREATE TABLE host_samples (
    tenant_id           uuid NOT NULL,
    agent_id            uuid NOT NULL,
    ts                  timestamptz NOT NULL,
    cpu_total_ns        bigint,
    cpu_idle_ns         bigint,
    cpu_iowait_ns       bigint,
    cpu_count           integer,
    load1               double precision,
    load5               double precision,
    load15              double precision,
    memory_total_bytes  bigint,
    memory_available_bytes bigint,
    swap_total_bytes    bigint,
    swap_free_bytes     bigint,
    net_rx_bytes        bigint,
    net_tx_bytes        bigint,
    uptime_seconds      bigint,
    filesystems         jsonb,
    cpu_percent         double precision,
    net_rx_bytes_per_second double precision,
    net_tx_bytes_per_second double precision,
    PRIMARY KEY (tenant_id, agent_id, ts)
) PARTITION BY RANGE (ts);

-- Docker events as the agent saw them, with Docker's own timestamps.
CREATE TABLE container_events (
    tenant_id   uuid NOT NULL,
    agent_id    uuid NOT NULL,
    name        text NOT NULL,
    ts          timestamptz NOT NULL,
    action      text NOT NULL,
    docker_id   text NOT NULL,
    exit_code   integer,
    detail      text NOT NULL DEFAULT '',
    PRIMARY KEY (tenant_id, agent_id, name, ts, action)
);

-- Status spans: the basis of uptime. ended_at NULL = the span is open.
CREATE TABLE status_spans (
    tenant_id   uuid NOT NULL,
    target_id   text NOT NULL,
    state       text NOT NULL CHECK (state IN ('up', 'degraded', 'down', 'unknown', 'maintenance')),
    started_at  timestamptz NOT NULL,
    ended_at    timestamptz,
    cause       text NOT NULL DEFAULT '',
    PRIMARY KEY (tenant_id, target_id, started_at)
);
CREATE UNIQUE INDEX status_spans_one_open_per_target ON status_spans (tenant_id, target_id) WHERE ended_at IS NULL;
