-- Quorum checks (run_on mode "all") run on every matching agent: each agent's run of a slot is its own slot row
-- and its own result, told apart by `member` (the agent's id). Every other check has the one member
-- 00000000-0000-0000-0000-000000000000, so its slots and results stay one per slot. A member's run is fenced
-- like any other, under its own term check:{check id}:{agent id}.
-- Released migrations are never edited: add a new numbered file instead.

ALTER TABLE check_slots ADD COLUMN member uuid NOT NULL DEFAULT '00000000-0000-0000-0000-000000000000';
ALTER TABLE check_slots DROP CONSTRAINT check_slots_pkey;
ALTER TABLE check_slots ADD PRIMARY KEY (tenant_id, check_id, slot_at, member);

ALTER TABLE check_results ADD COLUMN member uuid NOT NULL DEFAULT '00000000-0000-0000-0000-000000000000';
ALTER TABLE check_results DROP CONSTRAINT check_results_pkey;
ALTER TABLE check_results ADD PRIMARY KEY (tenant_id, check_id, slot_at, member);
