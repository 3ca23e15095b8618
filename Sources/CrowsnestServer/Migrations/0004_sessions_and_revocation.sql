-- 0004: one live session per agent, cloned-host detection, API key expiry.
-- Released migrations are never edited: add a new numbered file instead.

ALTER TABLE agents
    -- The live session: each Hello sets a new id; a session whose id is no longer here has been taken over.
    ADD COLUMN session_id uuid,
    -- Boot ids of the latest sessions, newest last (at most 8): sessions alternating between two boot ids mean
    -- two hosts share this agent's identity (a cloned VM or state directory).
    ADD COLUMN recent_boot_ids text[] NOT NULL DEFAULT '{}',
    ADD COLUMN clone_suspected boolean NOT NULL DEFAULT false;

ALTER TABLE api_keys
    -- NULL: the key does not expire.
    ADD COLUMN expires_at timestamptz;
