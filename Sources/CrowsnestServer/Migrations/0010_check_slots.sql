-- 0010: the fencing token issued for each slot of a check (the check and a wall-clock multiple of its interval)
-- and who was given the run. A result counts when it carries the token last issued for its slot, comes from the
-- runner it was issued to, and no result is recorded for the slot yet (check_results' key): a result spooled
-- through an outage still counts, a late one from a runner whose slot was reassigned does not. Reassigning a slot
-- replaces its row with a larger token. All SQL for this table lives in Store/CheckSlotStore.swift.
-- Released migrations are never edited: add a new numbered file instead.

CREATE TABLE check_slots (
    tenant_id    uuid NOT NULL,
    check_id     uuid NOT NULL,
    slot_at      timestamptz NOT NULL,
    -- From the check:{id} lease the slot was assigned under (LeaseStore): only grows.
    token        bigint NOT NULL CHECK (token > 0),
    -- The agent given the run; NULL when a server replica runs it.
    agent_id     uuid,
    -- Who runs it, for operators (the agent's hostname or the replica's name).
    runner       text NOT NULL DEFAULT '',
    assigned_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, check_id, slot_at),
    FOREIGN KEY (tenant_id, check_id) REFERENCES checks (tenant_id, id) ON DELETE CASCADE
);
