-- 0007: a small keyspace with Redis semantics, kept in PostgreSQL so nothing else needs running: leases
-- (SET key holder NX PX ttl, renew, release) with fencing tokens, and counters with expiry (INCR + EXPIRE) for
-- rate-limit windows. Keys name server-side resources (check:{id}, agent:{id}, job:{name}), not tenant rows.
-- The database clock (statement_timestamp()) is the only clock; all SQL lives in Store/LeaseStore.swift.
-- Released migrations are never edited: add a new numbered file instead.

-- One row per key: the current (or last) term. A LOGGED table: the term that issued the last fencing token must
-- survive a crash, or a spooled result from an older term could be accepted after a restart. Release keeps the
-- row (released_at set) so the next acquisition goes through the row lock and always gets a larger token;
-- rows leave only through housekeeping (LeaseStore.deleteExpired). fillfactor leaves room for HOT renewals.
CREATE TABLE leases (
    key          text PRIMARY KEY CHECK (char_length(key) BETWEEN 1 AND 200),
    holder       text NOT NULL CHECK (char_length(holder) BETWEEN 1 AND 200),
    -- (timeline << 40) | lease_token_seq: see crowsnest_next_lease_token().
    token        bigint NOT NULL CHECK (token > 0),
    acquired_at  timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    -- Set when the holder released this term; a released term accepts no more fenced writes.
    released_at  timestamptz
) WITH (fillfactor = 70);

-- INCR with expiry: value counts within the window ending at expires_at; the first INCR after it starts again at 1.
CREATE TABLE lease_counters (
    key          text PRIMARY KEY CHECK (char_length(key) BETWEEN 1 AND 200),
    value        bigint NOT NULL CHECK (value >= 1),
    expires_at   timestamptz NOT NULL
) WITH (fillfactor = 70);

-- The low 40 bits of every fencing token. A sequence is logged and never goes back after a crash (PostgreSQL
-- logs values ahead of use, so a restart skips forward). 2^40 values: a thousand acquisitions (or attempts on a
-- free key) a second for 34 years; the MAXVALUE makes exhaustion an error instead of bleeding into the timeline.
CREATE SEQUENCE lease_token_seq AS bigint MINVALUE 1 MAXVALUE 1099511627775 NO CYCLE;

-- The next fencing token: (timeline << 40) | nextval('lease_token_seq').
-- The timeline is read on the primary from the current WAL file name (its first 8 hex digits). Sequence values
-- handed out just before a failover may not have reached the replica, which could hand them out again; a promoted
-- replica is on a higher timeline, so every token it issues is larger than any token the old primary issued.
-- pg_current_wal_lsn() and pg_walfile_name() are executable by PUBLIC (not superuser-only); both refuse to run
-- during recovery, so a standby issues no tokens (it cannot write leases anyway).
-- Caveat: a logical dump (pg_dump) restored into a new cluster starts again at timeline 1, so its tokens can be
-- smaller than tokens issued on a later timeline before the dump; stop every lease holder across such a move.
CREATE FUNCTION crowsnest_next_lease_token() RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    tli bigint := ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::bigint;
BEGIN
    IF tli >= 8388608 THEN
        RAISE EXCEPTION 'lease tokens cannot carry timeline % (at most 8388607 fits above the 40 sequence bits)', tli;
    END IF;
    RETURN (tli << 40) | nextval('lease_token_seq');
END
$$;
