-- 0008: tenant-owned checks (managed through /api/v1/checks) and their results, one row per slot.
-- Definitions are validated before they are stored (Model/CheckValidation.swift); the CHECK constraints below
-- repeat the bounds so that no other writer can store what the API would refuse. All SQL lives in
-- Store/CheckStore.swift. Released migrations are never edited: add a new numbered file instead.

CREATE TABLE checks (
    tenant_id        uuid NOT NULL REFERENCES tenants(id),
    id               uuid NOT NULL,
    name             text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    type             text NOT NULL CHECK (type IN ('http', 'tcp', 'dns', 'tls', 'postgres', 'nginx', 'docker', 'push')),
    -- URL, host:port, DNS name, connection string or container selector, as the type needs; '' for push checks.
    target           text NOT NULL DEFAULT '' CHECK (char_length(target) <= 2048),
    interval_seconds integer NOT NULL DEFAULT 30 CHECK (interval_seconds BETWEEN 5 AND 86400),
    -- Per-run deadline. Its default, 80 % of the interval, depends on the interval and is applied by validation.
    timeout_ms       integer NOT NULL CHECK (timeout_ms BETWEEN 100 AND interval_seconds * 1000),
    -- Consecutive failed runs tolerated before the check is down (down after retries + 1 failures).
    retries          integer NOT NULL DEFAULT 0 CHECK (retries BETWEEN 0 AND 10),
    -- Placement: {"mode":"any"|"labels"|"all"|"server", "labels":[…], "quorum":N}.
    run_on           jsonb NOT NULL DEFAULT '{"mode":"any"}' CHECK (jsonb_typeof(run_on) = 'object'),
    -- Type-specific options, with their defaults filled in.
    options          jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(options) = 'object'),
    paused           boolean NOT NULL DEFAULT false,
    -- Push checks only: the random secret in the check's push URL (/api/v1/push/{push_token}). The URL names no
    -- tenant, so the token is unique across tenants (under Citus this index would have to move to a lookup table).
    push_token       text CONSTRAINT checks_push_token_unique UNIQUE,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT checks_name_unique UNIQUE (tenant_id, name),
    CONSTRAINT checks_push_token_only_for_push CHECK ((type = 'push') = (push_token IS NOT NULL))
);

-- One result per check per slot (the wall-clock multiple of the interval it ran for), partitioned by the slot's
-- UTC day like the sample tables (PartitionStore creates check_results_YYYYMMDD). Old days leave as partitions.
CREATE TABLE check_results (
    tenant_id       uuid NOT NULL,
    check_id        uuid NOT NULL,
    slot_at         timestamptz NOT NULL,
    -- When the run happened.
    ts              timestamptz NOT NULL,
    -- The agent that ran it; NULL when a server replica did.
    agent_id        uuid,
    -- Who ran it, for operators (the agent's hostname or the replica's name).
    runner          text NOT NULL DEFAULT '',
    -- The fencing token of the slot's lease the result was accepted under.
    token           bigint NOT NULL,
    ok              boolean NOT NULL,
    latency_ms      double precision,
    error           text NOT NULL DEFAULT '',
    http_status     integer,
    cert_not_after  timestamptz,
    -- Named figures of the run (replication lag, nginx counters, DNS answers).
    figures         jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (tenant_id, check_id, slot_at)
) PARTITION BY RANGE (slot_at);
