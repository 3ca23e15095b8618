-- 0009: the operator's key=value labels of each agent (its configuration's `labels`, sent in Hello and kept as
-- of its latest session): checks placed with run_on labels run on the agents carrying every label.
-- Released migrations are never edited: add a new numbered file instead.

ALTER TABLE agents ADD COLUMN labels text[] NOT NULL DEFAULT '{}';
