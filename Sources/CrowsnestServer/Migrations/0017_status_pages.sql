-- Public status pages: a tenant publishes one at /status/<status_slug> once it chooses a slug; services marked
-- public in their definition are shown there. Badges find a service by its id alone, hence the index.
ALTER TABLE tenants
    ADD COLUMN status_slug  text UNIQUE CHECK (status_slug ~ '^[a-z0-9][a-z0-9-]{1,62}$'),
    ADD COLUMN status_title text NOT NULL DEFAULT '' CHECK (length(status_title) <= 100);

CREATE INDEX services_by_id ON services (id);
