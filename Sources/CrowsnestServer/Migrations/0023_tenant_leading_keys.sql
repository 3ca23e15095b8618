-- 0023: every key of a tenant-owned table leads with tenant_id, so Citus can distribute the table by it
-- (deploy/README.md; Tests/CrowsnestServerTests/StoreTests/TenantKeyTests.swift keeps it true).
-- agents: the key is (tenant_id, id) already; the extra global UNIQUE (id) goes (ids are server-made UUIDs).
-- alert_notifications: the key becomes (tenant_id, id).
-- A plain (not unique) index on id stays on both, so queries by id alone (the previous release's) stay fast;
-- Citus allows non-unique indexes on any column. All SQL lives in Store/AgentStore.swift and Store/AlertStore.swift.

CREATE INDEX agents_by_id ON agents (id);
ALTER TABLE agents DROP CONSTRAINT agents_id_key;
CREATE INDEX alert_notifications_by_id ON alert_notifications (id);
ALTER TABLE alert_notifications DROP CONSTRAINT alert_notifications_pkey;
ALTER TABLE alert_notifications ADD PRIMARY KEY (tenant_id, id);
