-- 0011: networks a tenant allowed its checks to reach although the SSRF guard refuses them by class (loopback,
-- private, link-local, ...): `crowsnest-server tenant allow-network NAME CIDR`. They travel in Assign to the
-- runners. All SQL for this table lives in Store/TenantStore.swift.
-- Released migrations are never edited: add a new numbered file instead.

CREATE TABLE tenant_allowed_networks (
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    -- Normalised CIDR text (IPNetwork's description), e.g. 10.20.0.0/16.
    network     text NOT NULL CHECK (char_length(network) BETWEEN 3 AND 64),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, network)
);
