import CrowsnestWire
import Foundation
import Logging
import PostgresNIO

/// One term of a lease: who holds `key`, under which fencing token, and until when by the database's clock.
public struct Lease: Sendable, Equatable, Hashable {
    /// The resource the lease is for, e.g. `check:{id}`, `agent:{id}`, `job:{name}`.
    public var key: String
    /// Who holds it (a replica or session id); only this holder can renew or release the term.
    public var holder: String
    /// The fencing token of this term: larger than every token issued before it, across releases, crashes and a
    /// failover to a promoted replica. Work done under the lease carries it (see `LeaseStore.withFencedTransaction`).
    public var token: Int64
    /// When this term began (database clock).
    public var acquiredAt: Date
    /// When this term ends unless renewed (database clock). Trust it locally only until the time the acquiring or
    /// renewing call *started* plus the ttl, less a margin: a slow round trip must not stretch the lease.
    public var expiresAt: Date

    public init(key: String, holder: String, token: Int64, acquiredAt: Date, expiresAt: Date) {
        self.key = key
        self.holder = holder
        self.token = token
        self.acquiredAt = acquiredAt
        self.expiresAt = expiresAt
    }

    /// The PostgreSQL timeline the token was issued on (its bits above the low 40).
    public var timeline: Int64 { token >> LeaseStore.tokenSequenceBits }
}

/// Why a lease operation was refused before any SQL ran (bad arguments), or a fenced write was refused.
public enum LeaseError: Error, CustomStringConvertible, Sendable, Equatable {
    /// A key or holder that is empty, too long or holds a NUL character (`kind` is "lease key", ...).
    case invalidName(kind: String, value: String, reason: String)
    /// A ttl, window or grace period outside its allowed range.
    case invalidDuration(kind: String, value: Duration, minimum: Duration, maximum: Duration)
    /// A fenced write under `token` while the lease on `key` is held under `currentToken` (a newer holder took
    /// over) or no longer exists (`currentToken` nil: removed by housekeeping).
    case fenced(key: String, token: Int64, currentToken: Int64?)
    /// A fenced write that required an unexpired lease, under the last term, after that term expired.
    case expired(key: String, token: Int64, expiredAt: Date)
    /// A fenced write under a term its holder has released.
    case released(key: String, token: Int64)
    /// An INCR that would pass Int64.max; the counter is left as it was.
    case counterOverflow(key: String)

    /// True for the refusals of a fenced write (fenced, expired, released): the work must be dropped, not retried.
    public var isFencingRefusal: Bool {
        switch self {
        case .fenced, .expired, .released: return true
        case .invalidName, .invalidDuration, .counterOverflow: return false
        }
    }

    public var description: String {
        switch self {
        case .invalidName(let kind, let value, let reason):
            return "\(kind) \"\(WireTextCleaner.excerpt(value))\" \(reason)"
        case .invalidDuration(let kind, let value, let minimum, let maximum):
            return "\(kind) \(Self.describe(value)) is out of range: it must be between \(Self.describe(minimum)) "
                + "and \(Self.describe(maximum))"
        case .fenced(let key, let token, let currentToken?):
            if currentToken > token {
                return "the lease on \(key) was taken over by a newer holder (token \(currentToken)); "
                    + "this result from token \(token) is refused"
            }
            return "the lease on \(key) is held under token \(currentToken), not \(token); this result is refused"
        case .fenced(let key, let token, nil):
            return "no lease on \(key) exists any more (expired and removed by housekeeping); "
                + "this result from token \(token) is refused"
        case .expired(let key, let token, let expiredAt):
            return "the lease on \(key) (token \(token)) expired at \(expiredAt) before this write; "
                + "this result is refused"
        case .released(let key, let token):
            return "the lease on \(key) (token \(token)) was released by its holder; this result is refused"
        case .counterOverflow(let key):
            return "counter \(key) is at the largest 64-bit value and cannot be incremented; it was left unchanged"
        }
    }

    /// "250 ms", "86400000 ms"; durations that are not whole milliseconds in Swift's own words.
    static func describe(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        let attosecondsPerMillisecond: Int64 = 1_000_000_000_000_000
        if attoseconds % attosecondsPerMillisecond == 0, seconds > -1_000_000_000_000, seconds < 1_000_000_000_000 {
            return "\(seconds * 1000 + attoseconds / attosecondsPerMillisecond) ms"
        }
        return "\(duration)"
    }
}

/// All lease SQL: a Redis-style keyspace (`SET key holder NX PX ttl`, renew, release, `INCR` with expiry) in the
/// `leases` and `lease_counters` tables, with fencing tokens.
///
/// A lease is a term `(key, holder, token)`: renew and release match all three, so a holder that paused past its
/// expiry can neither extend nor end its successor's term (river's term-scoped renewal). Every time comes from
/// the database (`statement_timestamp()`), never from a replica's clock. Work done under a lease is written in
/// `withFencedTransaction`, which checks the token in the same transaction (Kleppmann's fencing).
public struct LeaseStore: Sendable {
    public let client: PostgresClient
    public let logger: Logger

    /// The shortest ttl, window and the longest: below 100 ms a lease is gone before its holder hears of it.
    public static let minimumTTL: Duration = .milliseconds(100)
    public static let maximumTTL: Duration = .seconds(86_400)
    /// The longest grace period `deleteExpired` accepts.
    public static let maximumGracePeriod: Duration = .seconds(366 * 86_400)
    /// Longest key or holder, in characters (Unicode scalars, PostgreSQL's `char_length`); the tables check it too.
    public static let maximumNameLength = 200
    /// Tokens are `(timeline << 40) | sequence value`.
    public static let tokenSequenceBits: Int64 = 40

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    // MARK: - Leases

    /// `SET key holder NX PX ttl`: starts a term for `holder` when `key` is free, released or expired, with a new
    /// fencing token. Returns nil when any holder (this one included) has an unexpired lease; that lease is left
    /// as it was (NX does not extend it: use `renew`).
    public func acquire(key: String, holder: String, ttl: Duration) async throws -> Lease? {
        try Self.validateName(key, kind: "lease key")
        try Self.validateName(holder, kind: "lease holder")
        let ttlMillis = try Self.milliseconds(ttl, kind: "lease ttl", minimum: Self.minimumTTL, maximum: Self.maximumTTL)
        // NOT EXISTS skips the insert (and a sequence value) while the key is held: the common case of a follower
        // polling. A takeover draws its token in DO UPDATE, after the old row is locked, so it is always larger
        // than the token of the term it replaces, even when this statement started before that term did.
        let rows = try await client.query("""
            INSERT INTO leases AS l (key, holder, token, acquired_at, expires_at)
            SELECT \(key), \(holder), crowsnest_next_lease_token(), statement_timestamp(),
                   statement_timestamp() + \(ttlMillis) * interval '1 millisecond'
            WHERE NOT EXISTS (SELECT 1 FROM leases WHERE key = \(key) AND expires_at > statement_timestamp())
            ON CONFLICT (key) DO UPDATE SET holder = EXCLUDED.holder, token = crowsnest_next_lease_token(),
                acquired_at = EXCLUDED.acquired_at, expires_at = EXCLUDED.expires_at, released_at = NULL
            WHERE l.expires_at <= statement_timestamp()
            RETURNING token, acquired_at, expires_at
            """, logger: logger)
        var acquired: Lease?
        for try await (token, acquiredAt, expiresAt) in rows.decode((Int64, Date, Date).self) {
            acquired = Lease(key: key, holder: holder, token: token, acquiredAt: acquiredAt, expiresAt: expiresAt)
        }
        if let acquired {
            logger.debug("lease acquired", metadata: ["lease.key": "\(key)", "lease.holder": "\(holder)",
                                                      "lease.token": "\(acquired.token)"])
        }
        return acquired
    }

    /// Extends the term to now + `ttl` (database clock); the token stays. Returns nil when the term is lost:
    /// expired, released or replaced by another holder (a lost term is never revived: acquire again instead).
    public func renew(_ lease: Lease, ttl: Duration) async throws -> Lease? {
        try Self.validateName(lease.key, kind: "lease key")
        try Self.validateName(lease.holder, kind: "lease holder")
        let ttlMillis = try Self.milliseconds(ttl, kind: "lease ttl", minimum: Self.minimumTTL, maximum: Self.maximumTTL)
        let rows = try await client.query("""
            UPDATE leases SET expires_at = statement_timestamp() + \(ttlMillis) * interval '1 millisecond'
            WHERE key = \(lease.key) AND holder = \(lease.holder) AND token = \(lease.token)
                AND released_at IS NULL AND expires_at > statement_timestamp()
            RETURNING acquired_at, expires_at
            """, logger: logger)
        var renewed: Lease?
        for try await (acquiredAt, expiresAt) in rows.decode((Date, Date).self) {
            renewed = Lease(key: lease.key, holder: lease.holder, token: lease.token, acquiredAt: acquiredAt,
                            expiresAt: expiresAt)
        }
        return renewed
    }

    /// Ends the term now so another holder can acquire at once. Returns false when `key` is not on this term (taken
    /// over, removed) or the term was already released. A term that expired but was not replaced is still
    /// released (true): its late fenced writes are then refused too. The row stays (see the migration).
    @discardableResult
    public func release(_ lease: Lease) async throws -> Bool {
        try Self.validateName(lease.key, kind: "lease key")
        try Self.validateName(lease.holder, kind: "lease holder")
        let rows = try await client.query("""
            UPDATE leases SET released_at = statement_timestamp(), expires_at = least(expires_at, statement_timestamp())
            WHERE key = \(lease.key) AND holder = \(lease.holder) AND token = \(lease.token) AND released_at IS NULL
            RETURNING token
            """, logger: logger)
        var released = false
        for try await _ in rows.decode(Int64.self) { released = true }
        return released
    }

    /// The unexpired, unreleased term on `key`, or nil; for diagnostics (decisions use acquire/renew/fencing).
    public func current(key: String) async throws -> Lease? {
        try Self.validateName(key, kind: "lease key")
        let rows = try await client.query("""
            SELECT holder, token, acquired_at, expires_at FROM leases
            WHERE key = \(key) AND released_at IS NULL AND expires_at > statement_timestamp()
            """, logger: logger)
        var lease: Lease?
        for try await (holder, token, acquiredAt, expiresAt) in rows.decode((String, Int64, Date, Date).self) {
            lease = Lease(key: key, holder: holder, token: token, acquiredAt: acquiredAt, expiresAt: expiresAt)
        }
        return lease
    }

    // MARK: - Many keys at once (the check coordinator's hot path)

    /// `acquire` for many keys in one statement: each `(key, holder)` pair starts a term when its key is free,
    /// released or expired. Returns the terms started, by key; keys held by anyone stay as they were. Keys are taken
    /// in sorted order so two replicas acquiring overlapping sets cannot deadlock. A key named twice is refused.
    public func acquireMany(_ requests: [(key: String, holder: String)], ttl: Duration) async throws -> [String: Lease] {
        guard !requests.isEmpty else { return [:] }
        var keys: [String] = [], holders: [String] = []
        var seen = Set<String>()
        for request in requests.sorted(by: { $0.key < $1.key }) {
            try Self.validateName(request.key, kind: "lease key")
            try Self.validateName(request.holder, kind: "lease holder")
            guard seen.insert(request.key).inserted else {
                throw LeaseError.invalidName(kind: "lease key", value: request.key, reason: "is named twice in one acquireMany call")
            }
            keys.append(request.key)
            holders.append(request.holder)
        }
        let ttlMillis = try Self.milliseconds(ttl, kind: "lease ttl", minimum: Self.minimumTTL, maximum: Self.maximumTTL)
        let rows = try await client.query("""
            INSERT INTO leases AS l (key, holder, token, acquired_at, expires_at)
            SELECT u.key, u.holder, crowsnest_next_lease_token(), statement_timestamp(),
                   statement_timestamp() + \(ttlMillis) * interval '1 millisecond'
            FROM unnest(\(keys)::text[], \(holders)::text[]) WITH ORDINALITY AS u(key, holder, n)
            WHERE NOT EXISTS (SELECT 1 FROM leases h WHERE h.key = u.key AND h.expires_at > statement_timestamp())
            ORDER BY u.n
            ON CONFLICT (key) DO UPDATE SET holder = EXCLUDED.holder, token = crowsnest_next_lease_token(),
                acquired_at = EXCLUDED.acquired_at, expires_at = EXCLUDED.expires_at, released_at = NULL
            WHERE l.expires_at <= statement_timestamp()
            RETURNING key, holder, token, acquired_at, expires_at
            """, logger: logger)
        var acquired: [String: Lease] = [:]
        for try await (key, holder, token, acquiredAt, expiresAt) in rows.decode((String, String, Int64, Date, Date).self) {
            acquired[key] = Lease(key: key, holder: holder, token: token, acquiredAt: acquiredAt, expiresAt: expiresAt)
        }
        return acquired
    }

    /// Renews, in one statement, every unexpired, unreleased term whose key starts with `keyPrefix` and whose
    /// holder is one of `holders` (a replica renewing the check leases of the agents whose sessions it serves).
    /// Returns the terms renewed. Tokens stay; a lost term is never revived.
    public func renewAll(keyPrefix: String, holders: [String], ttl: Duration) async throws -> [Lease] {
        guard !holders.isEmpty else { return [] }
        try Self.validateName(keyPrefix, kind: "lease key prefix")
        for holder in holders { try Self.validateName(holder, kind: "lease holder") }
        let ttlMillis = try Self.milliseconds(ttl, kind: "lease ttl", minimum: Self.minimumTTL, maximum: Self.maximumTTL)
        // The prefix is matched with starts_with: no LIKE wildcards for a caller to trip over.
        let rows = try await client.query("""
            UPDATE leases SET expires_at = statement_timestamp() + \(ttlMillis) * interval '1 millisecond'
            WHERE holder = ANY(\(holders)::text[]) AND starts_with(key, \(keyPrefix))
                AND released_at IS NULL AND expires_at > statement_timestamp()
            RETURNING key, holder, token, acquired_at, expires_at
            """, logger: logger)
        var renewed: [Lease] = []
        for try await (key, holder, token, acquiredAt, expiresAt) in rows.decode((String, String, Int64, Date, Date).self) {
            renewed.append(Lease(key: key, holder: holder, token: token, acquiredAt: acquiredAt, expiresAt: expiresAt))
        }
        return renewed
    }

    /// Starts `agent:{id}` terms for sessions that are their agent's live session (`agents.session_id`, the newest
    /// Hello): `SET key holder PX ttl` without NX, so a reconnect on another replica takes the agent over with a new
    /// token, while a session that was itself taken over (or an agent since revoked) gets nothing. The holder is
    /// `session:{id}`. Call it for sessions whose term `renewAll` did not find. Returns the terms started, by agent.
    public func claimAgentSessions(_ sessions: [(tenantID: UUID, agentID: UUID, sessionID: UUID)],
                                   ttl: Duration) async throws -> [UUID: Lease] {
        guard !sessions.isEmpty else { return [:] }
        let ttlMillis = try Self.milliseconds(ttl, kind: "lease ttl", minimum: Self.minimumTTL, maximum: Self.maximumTTL)
        let rows = try await client.query("""
            INSERT INTO leases AS l (key, holder, token, acquired_at, expires_at)
            SELECT 'agent:' || a.id::text, 'session:' || a.session_id::text, crowsnest_next_lease_token(),
                   statement_timestamp(), statement_timestamp() + \(ttlMillis) * interval '1 millisecond'
            FROM unnest(\(sessions.map(\.tenantID))::uuid[], \(sessions.map(\.agentID))::uuid[],
                        \(sessions.map(\.sessionID))::uuid[]) AS u(tenant_id, agent_id, session_id)
            JOIN agents a ON a.tenant_id = u.tenant_id AND a.id = u.agent_id AND a.session_id = u.session_id
                AND a.revoked_at IS NULL
            ORDER BY 1
            ON CONFLICT (key) DO UPDATE SET holder = EXCLUDED.holder, token = crowsnest_next_lease_token(),
                acquired_at = EXCLUDED.acquired_at, expires_at = EXCLUDED.expires_at, released_at = NULL
            RETURNING key, holder, token, acquired_at, expires_at
            """, logger: logger)
        var claimed: [UUID: Lease] = [:]
        for try await (key, holder, token, acquiredAt, expiresAt) in rows.decode((String, String, Int64, Date, Date).self) {
            guard let agentID = UUID(uuidString: String(key.dropFirst("agent:".count))) else { continue }
            claimed[agentID] = Lease(key: key, holder: holder, token: token, acquiredAt: acquiredAt, expiresAt: expiresAt)
        }
        return claimed
    }

    /// Every unexpired, unreleased term whose key starts with `keyPrefix` (the live replicas, the live agents).
    public func live(keyPrefix: String) async throws -> [Lease] {
        try Self.validateName(keyPrefix, kind: "lease key prefix")
        let rows = try await client.query("""
            SELECT key, holder, token, acquired_at, expires_at FROM leases
            WHERE starts_with(key, \(keyPrefix)) AND released_at IS NULL AND expires_at > statement_timestamp()
            ORDER BY key
            """, logger: logger)
        var terms: [Lease] = []
        for try await (key, holder, token, acquiredAt, expiresAt) in rows.decode((String, String, Int64, Date, Date).self) {
            terms.append(Lease(key: key, holder: holder, token: token, acquiredAt: acquiredAt, expiresAt: expiresAt))
        }
        return terms
    }

    // MARK: - Counters

    /// `INCR key` with `EXPIRE key window` in one statement (so a counter can never be left without expiry):
    /// counts 1, 2, 3 ... until the window that the first increment opened ends, then starts again at 1 with a
    /// new window. A later call's different `window` does not move the current window's end.
    /// Throws `LeaseError.counterOverflow` instead of wrapping at Int64.max.
    public func increment(key: String, window: Duration) async throws -> (value: Int64, expiresAt: Date) {
        try Self.validateName(key, kind: "counter key")
        let windowMillis = try Self.milliseconds(window, kind: "counter window", minimum: Self.minimumTTL,
                                                 maximum: Self.maximumTTL)
        do {
            let rows = try await client.query("""
                INSERT INTO lease_counters AS c (key, value, expires_at)
                VALUES (\(key), 1, statement_timestamp() + \(windowMillis) * interval '1 millisecond')
                ON CONFLICT (key) DO UPDATE SET
                    value = CASE WHEN c.expires_at <= statement_timestamp() THEN 1 ELSE c.value + 1 END,
                    expires_at = CASE WHEN c.expires_at <= statement_timestamp() THEN EXCLUDED.expires_at
                                      ELSE c.expires_at END
                RETURNING value, expires_at
                """, logger: logger)
            var result: (value: Int64, expiresAt: Date)?
            for try await (value, expiresAt) in rows.decode((Int64, Date).self) {
                result = (value, expiresAt)
            }
            guard let counted = result else {
                throw StoreError(.notFound, "incrementing counter \(key) returned no row")
            }
            return counted
        } catch let error as PSQLError where error.serverInfo?[.sqlState] == "22003" {
            // numeric_value_out_of_range: bigint + 1 past Int64.max.
            throw LeaseError.counterOverflow(key: key)
        }
    }

    // MARK: - Housekeeping

    /// Removes counters whose window ended and leases expired (or released) for longer than `grace`; returns how
    /// many rows went. Tokens keep growing: they come from the sequence, not from these rows.
    ///
    /// A removed lease no longer accepts its last term's late results (`withFencedTransaction` with
    /// `requireUnexpired: false` then refuses them), so `grace` should cover the longest a spooled result may
    /// take to arrive.
    @discardableResult
    public func deleteExpired(leasesExpiredFor grace: Duration = .zero) async throws -> Int {
        let graceMillis = try Self.milliseconds(grace, kind: "lease grace period", minimum: .zero,
                                                maximum: Self.maximumGracePeriod)
        let rows = try await client.query("""
            WITH gone_leases AS (
                DELETE FROM leases
                WHERE expires_at <= statement_timestamp() - \(graceMillis) * interval '1 millisecond'
                RETURNING 1
            ), gone_counters AS (
                DELETE FROM lease_counters WHERE expires_at <= statement_timestamp() RETURNING 1
            )
            SELECT (SELECT count(*) FROM gone_leases) + (SELECT count(*) FROM gone_counters)
            """, logger: logger)
        var removed: Int64 = 0
        for try await count in rows.decode(Int64.self) { removed = count }
        if removed > 0 {
            logger.debug("expired leases and counters removed", metadata: ["rows": "\(removed)"])
        }
        return Int(removed)
    }

    // MARK: - Fenced writes

    /// Runs `body` in a transaction that first checks `token` is the current term of `key` and holds the lease
    /// row `FOR SHARE` until COMMIT: a takeover (which must lock that row) waits for this commit, and a check that
    /// comes after a takeover sees the new token. Refused with `LeaseError.fenced` when a newer term replaced it
    /// (or the row was removed), `.released` when released, and `.expired` when `requireUnexpired` and the term
    /// expired. `requireUnexpired: false` is for check slots: a result under the last-issued token counts even
    /// after the ttl (spooled through an outage) as long as no newer term exists.
    ///
    /// Rolls back when `body` throws. Errors thrown by `body`, and the refusals, are rethrown as they are (not
    /// wrapped in `PostgresTransactionError`); BEGIN and COMMIT failures stay wrapped.
    public func withFencedTransaction<T>(
        key: String,
        token: Int64,
        requireUnexpired: Bool = true,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (PostgresConnection) async throws -> sending T
    ) async throws -> sending T {
        try Self.validateName(key, kind: "lease key")
        let logger = self.logger
        do {
            return try await client.withTransaction(logger: logger, isolation: isolation) { connection in
                try await Self.verifyFence(key: key, token: token, requireUnexpired: requireUnexpired,
                                           on: connection, logger: logger)
                return try await body(connection)
            }
        } catch let error as PostgresTransactionError {
            if let closureError = error.closureError {
                if let rollbackError = error.rollbackError {
                    logger.warning("rolling back a fenced transaction failed", metadata: [
                        "lease.key": "\(key)", "error": "\(DatabaseConnection.describe(rollbackError))",
                    ])
                }
                throw closureError
            }
            throw error
        }
    }

    /// Inside the caller's transaction: checks that `token` is the current term of `key` (see
    /// `withFencedTransaction`) and locks the lease row `FOR SHARE` until the transaction ends. Throws a
    /// `LeaseError` refusal otherwise.
    public static func verifyFence(key: String, token: Int64, requireUnexpired: Bool,
                                   on connection: PostgresConnection, logger: Logger) async throws {
        try validateName(key, kind: "lease key")
        // In READ COMMITTED, FOR SHARE waits for a concurrent takeover to commit and then reads the new row.
        let rows = try await connection.query("""
            SELECT token, released_at IS NOT NULL, expires_at > statement_timestamp(), expires_at
            FROM leases WHERE key = \(key) FOR SHARE
            """, logger: logger)
        var found: (token: Int64, released: Bool, live: Bool, expiresAt: Date)?
        for try await (current, released, live, expiresAt) in rows.decode((Int64, Bool, Bool, Date).self) {
            found = (current, released, live, expiresAt)
        }
        guard let row = found, row.token == token else {
            logger.info("fenced write refused", metadata: [
                "lease.key": "\(key)", "lease.token": "\(token)", "lease.current_token": "\(found?.token.description ?? "none")",
            ])
            throw LeaseError.fenced(key: key, token: token, currentToken: found?.token)
        }
        if row.released {
            throw LeaseError.released(key: key, token: token)
        }
        if requireUnexpired && !row.live {
            throw LeaseError.expired(key: key, token: token, expiredAt: row.expiresAt)
        }
    }

    // MARK: - Validation

    /// Refuses an empty, too long or NUL-carrying key or holder before any SQL runs.
    static func validateName(_ value: String, kind: String) throws {
        let length = value.unicodeScalars.count
        if length == 0 {
            throw LeaseError.invalidName(kind: kind, value: value, reason: "is empty")
        }
        if length > maximumNameLength {
            throw LeaseError.invalidName(
                kind: kind, value: value,
                reason: "is \(length) characters long; the limit is \(maximumNameLength)")
        }
        if value.unicodeScalars.contains(where: { $0.value == 0 }) {
            throw LeaseError.invalidName(
                kind: kind, value: value, reason: "contains a NUL character, which PostgreSQL text cannot hold")
        }
    }

    /// `duration` in whole milliseconds (a remainder is dropped) after checking `minimum...maximum`.
    static func milliseconds(_ duration: Duration, kind: String, minimum: Duration, maximum: Duration) throws -> Int64 {
        guard duration >= minimum, duration <= maximum else {
            throw LeaseError.invalidDuration(kind: kind, value: duration, minimum: minimum, maximum: maximum)
        }
        let (seconds, attoseconds) = duration.components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}
