-- 0020: more alert channel types (Slack- and Discord-compatible webhooks, a Prometheus Alertmanager, email over
-- SMTP), acknowledgement, escalation and silences. All SQL lives in Store/AlertStore.swift,
-- Store/AlertChannelStore.swift and Store/AlertSilenceStore.swift.

ALTER TABLE alert_channels DROP CONSTRAINT alert_channels_type_check;
ALTER TABLE alert_channels ADD CONSTRAINT alert_channels_type_check
    CHECK (type IN ('webhook', 'slack', 'discord', 'alertmanager', 'email'));
-- An Alertmanager forgets an alert at its endsAt: a firing alert is posted again every repost_seconds (not secret,
-- so the evaluator reads it without opening the sealed settings).
ALTER TABLE alert_channels ADD COLUMN repost_seconds integer CHECK (repost_seconds BETWEEN 30 AND 3600);

-- When the current firing (or flapping) was announced; NULL while it is silenced and not announced yet.
ALTER TABLE alert_states ADD COLUMN announced_at timestamptz;
UPDATE alert_states SET announced_at = notified_at;
-- Written by the API (POST /api/v1/alerts/acknowledge), never by the evaluator's save: no reminders and no
-- escalation for an acknowledged alert. Gone with the state when it recovers.
ALTER TABLE alert_states ADD COLUMN acknowledged_at timestamptz;
ALTER TABLE alert_states ADD COLUMN acknowledged_by text;
-- When the escalation went out (once per firing).
ALTER TABLE alert_states ADD COLUMN escalated_at timestamptz;
-- When an Alertmanager was last told the alert still fires.
ALTER TABLE alert_states ADD COLUMN refreshed_at timestamptz;

ALTER TABLE alert_notifications DROP CONSTRAINT alert_notifications_kind_check;
ALTER TABLE alert_notifications ADD CONSTRAINT alert_notifications_kind_check
    CHECK (kind IN ('firing', 'resolved', 'reminder', 'flapping', 'flapping_stopped', 'escalation', 'refresh'));

-- A silence holds back every notification of one rule (or all), for one target (or all), until ends_at.
CREATE TABLE alert_silences (
    tenant_id   uuid NOT NULL REFERENCES tenants(id),
    id          uuid NOT NULL,
    rule_id     uuid,
    target_id   text,
    ends_at     timestamptz NOT NULL,
    comment     text NOT NULL DEFAULT '' CHECK (char_length(comment) <= 500),
    created_by  text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX alert_silences_active ON alert_silences (tenant_id, ends_at);
