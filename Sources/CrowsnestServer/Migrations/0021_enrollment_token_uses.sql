-- 0021: enrollment tokens for fleets: a token may enroll up to uses_allowed agents (1 unless given) before it
-- expires. used_at / used_by keep the last enrollment. The previous release's single-use query (used_at IS NULL)
-- still works on single-use tokens. All SQL lives in Store/EnrollmentTokenStore.swift.

ALTER TABLE enrollment_tokens ADD COLUMN uses_allowed integer NOT NULL DEFAULT 1 CHECK (uses_allowed BETWEEN 1 AND 100000);
ALTER TABLE enrollment_tokens ADD COLUMN uses integer NOT NULL DEFAULT 0;
UPDATE enrollment_tokens SET uses = 1 WHERE used_at IS NOT NULL;
ALTER TABLE enrollment_tokens ADD CONSTRAINT enrollment_tokens_uses_check CHECK (uses BETWEEN 0 AND uses_allowed);
