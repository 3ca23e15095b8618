-- 0018: checks a tenant shows on its public status page and as badges. `public` puts the check's name, state
-- and uptime there; `public_target` also shows its target (URL, address), which stays hidden otherwise. Badges
-- find a check by its id alone, hence the index. All SQL lives in Store/CheckStore.swift.
ALTER TABLE checks
    ADD COLUMN public        boolean NOT NULL DEFAULT false,
    ADD COLUMN public_target boolean NOT NULL DEFAULT false;

CREATE INDEX checks_by_id ON checks (id);
