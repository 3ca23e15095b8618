-- 0025: when each dirty-hour mark was first made and last raised. The housekeeping job rolls an hour again once
-- no late sample has marked it for a while (or it has waited long enough), not on every tick while an agent is
-- still replaying its spool into it: each re-roll reads the whole hour of the agent's samples, and doing that
-- every 5 s during a replay kept a backend busy beside ingest. Marks that exist already, or that a replica of the
-- previous release makes during a rolling upgrade, get the time of the insert. All SQL lives in
-- Store/RollupStore.swift.
ALTER TABLE rollup_dirty
    ADD COLUMN marked_at timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN raised_at timestamptz NOT NULL DEFAULT now();
