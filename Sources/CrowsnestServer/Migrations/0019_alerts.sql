-- 0019: alerts. Channels say where notifications go (their URL and signing secret sealed with the server's secret
-- key, never stored in the clear); rules say when (kept as the validated definition the API took, like services).
-- alert_states is what the evaluator (the `job:alerts` lease holder) knows per rule and target between rounds;
-- alert_notifications is the outbox and the delivery history: a row is written in the same transaction as the
-- state change that caused it, then delivered at least once under its id, which receivers deduplicate on.
-- All SQL lives in Store/AlertStore.swift and Store/AlertChannelStore.swift.

CREATE TABLE alert_channels (
    tenant_id   uuid NOT NULL REFERENCES tenants(id),
    id          uuid NOT NULL,
    name        text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    type        text NOT NULL CHECK (type IN ('webhook')),
    -- What may be shown: the destination's scheme and host.
    destination text NOT NULL,
    -- SecretKey.seal of the channel's settings as JSON (URL, signing secret).
    sealed      bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, name)
);

CREATE TABLE alert_rules (
    tenant_id   uuid NOT NULL REFERENCES tenants(id),
    id          uuid NOT NULL,
    name        text NOT NULL,
    definition  jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, name)
);

CREATE TABLE alert_states (
    tenant_id       uuid NOT NULL,
    rule_id         uuid NOT NULL,
    target_id       text NOT NULL,
    -- 'firing' or 'resolved' as last announced; 'flapping' while suppressed.
    status          text NOT NULL CHECK (status IN ('firing', 'resolved', 'flapping')),
    -- When the condition started holding (the firing incident's start).
    active_since    timestamptz,
    -- The last notification sent for this rule and target (reminders count from it).
    notified_at     timestamptz NOT NULL,
    -- The rule version (its updated_at) this state was last computed under.
    rule_version    timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, rule_id, target_id)
);

CREATE TABLE alert_notifications (
    tenant_id       uuid NOT NULL,
    -- Stable: receivers deduplicate on it.
    id              uuid PRIMARY KEY,
    rule_id         uuid NOT NULL,
    channel_id      uuid NOT NULL,
    target_id       text NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('firing', 'resolved', 'reminder', 'flapping', 'flapping_stopped')),
    -- The body sent, as JSON (the webhook schema in server/openapi.yaml, AlertNotification).
    payload         jsonb NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- Delivery: due from next_attempt_at; a replica delivering it holds it until claimed_until.
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    claimed_until   timestamptz,
    attempts        integer NOT NULL DEFAULT 0,
    delivered_at    timestamptz,
    -- Given up (a 4xx answer, or too many attempts): never retried.
    failed_at       timestamptz,
    last_error      text NOT NULL DEFAULT ''
);

CREATE INDEX alert_notifications_due ON alert_notifications (next_attempt_at)
    WHERE delivered_at IS NULL AND failed_at IS NULL;
CREATE INDEX alert_notifications_history ON alert_notifications (tenant_id, rule_id, created_at DESC);
