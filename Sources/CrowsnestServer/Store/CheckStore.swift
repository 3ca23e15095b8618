import CrowsnestWire
import Foundation
import Logging
import PostgresNIO

/// A check as stored, with what the API shows beside it (its newest results' outcomes).
public struct StoredCheck: Sendable, Equatable {
    public var id: UUID
    public var name: String
    public var type: CheckType
    public var target: String
    public var intervalSeconds: Int
    public var timeoutMs: Int
    public var retries: Int
    /// The stored `run_on` and `options` objects, as validated when they were written.
    public var runOn: JSONValue
    public var options: JSONValue
    public var paused: Bool
    /// Shown on the tenant's public status page and as badges.
    public var isPublic: Bool
    /// Its target is shown there too.
    public var publicTarget: Bool
    /// Push checks only: the secret of the check's push URL.
    public var pushToken: String?
    public var createdAt: Date
    public var updatedAt: Date
    /// `ok` of the newest `retries + 1` results, newest first.
    public var recentResults: [Bool]
    /// `ts` of the newest result; nil when there is none.
    public var lastResultAt: Date?

    public var state: CheckState { .derive(paused: paused, retries: retries, newestFirst: recentResults) }
}

/// One run of a check, as recorded.
public struct CheckResultRecord: Sendable, Equatable {
    public var slotAt: Date
    public var ts: Date
    /// nil when a server replica ran it.
    public var agentID: UUID?
    public var runner: String
    public var ok: Bool
    public var latencyMs: Double?
    public var error: String
    public var httpStatus: Int?
    public var certificateNotAfter: Date?
    public var figures: JSONValue
}

/// SQL for the `checks` and `check_results` tables. Every statement is confined to one tenant.
public struct CheckStore: Sendable {
    /// Prefix of push tokens, so a leaked push URL is recognisable.
    public static let pushTokenPrefix = "cnp_"
    /// Most results one `results` call returns.
    public static let maximumResultLimit = 1000

    public let client: PostgresClient
    public let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// Stores a new check (paused when the submission says so) with a new id, and a push token for push checks.
    /// Throws `StoreError(.alreadyExists)` when the tenant has a check of that name.
    public func create(tenantID: UUID, submission: CheckSubmission) async throws -> StoredCheck {
        let definition = submission.definition
        let id = UUID()
        let pushToken = definition.type == .push ? Self.generatePushToken() : nil
        let created = try await Self.mapConflicts(name: definition.name) {
            try await Self.decodeChecks(client.query("""
                WITH c AS (
                    INSERT INTO checks (tenant_id, id, name, type, target, interval_seconds, timeout_ms, retries, run_on,
                                        options, paused, push_token, public, public_target)
                    VALUES (\(tenantID), \(id), \(definition.name), \(definition.type.rawValue), \(definition.target),
                            \(Int32(definition.intervalSeconds)), \(Int32(definition.timeoutMs)), \(Int32(definition.retries)),
                            \(definition.placement.json.jsonText)::jsonb, \(definition.options.json.jsonText)::jsonb,
                            \(submission.paused ?? false), \(pushToken), \(submission.isPublic ?? false),
                            \(submission.publicTarget ?? false))
                    RETURNING *
                )
                \(unescaped: Self.selectFromC)
                """, logger: logger))
        }
        guard let check = created.first else {
            throw StoreError(.notFound, "creating check \(definition.name) returned no row")
        }
        logger.info("check created", metadata: ["tenant.id": "\(tenantID)", "check.id": "\(id)", "check.type": "\(definition.type.rawValue)"])
        return check
    }

    /// The tenant's checks, by name.
    public func list(tenantID: UUID) async throws -> [StoredCheck] {
        let rows = try await client.query("""
            WITH c AS (SELECT * FROM checks WHERE tenant_id = \(tenantID))
            \(unescaped: Self.selectFromC) ORDER BY c.name, c.id
            """, logger: logger)
        return try await Self.decodeChecks(rows)
    }

    /// One check of the tenant, or nil (another tenant's check is nil too).
    public func get(tenantID: UUID, id: UUID) async throws -> StoredCheck? {
        let rows = try await client.query("""
            WITH c AS (SELECT * FROM checks WHERE tenant_id = \(tenantID) AND id = \(id))
            \(unescaped: Self.selectFromC)
            """, logger: logger)
        return try await Self.decodeChecks(rows).first
    }

    /// Sets what the public status page shows of a check; nil when the tenant has no such check.
    public func setPublication(tenantID: UUID, id: UUID, isPublic: Bool, publicTarget: Bool) async throws -> StoredCheck? {
        try await Self.decodeChecks(client.query("""
            WITH c AS (
                UPDATE checks SET public = \(isPublic), public_target = \(publicTarget), updated_at = now()
                WHERE tenant_id = \(tenantID) AND id = \(id)
                RETURNING *
            )
            \(unescaped: Self.selectFromC)
            """, logger: logger)).first
    }

    /// A check the tenant shows on its public status page: only what that page may show.
    public struct PublicCheck: Sendable, Equatable {
        public var id: UUID
        public var name: String
        /// nil unless the tenant chose to show it (`public_target`).
        public var target: String?
    }

    /// The tenant's public checks, by name.
    public func publicChecks(tenantID: UUID) async throws -> [PublicCheck] {
        let rows = try await client.query("""
            SELECT id, name, CASE WHEN public_target THEN target END FROM checks
            WHERE tenant_id = \(tenantID) AND public ORDER BY name, id
            """, logger: logger)
        var checks: [PublicCheck] = []
        for try await (id, name, target) in rows.decode((UUID, String, String?).self) {
            checks.append(PublicCheck(id: id, name: name, target: target))
        }
        return checks
    }

    /// A public check found by its id alone (for its badges), with its tenant; nil when there is none or it is not
    /// public.
    public func publicCheck(id: UUID) async throws -> (tenantID: UUID, check: PublicCheck)? {
        let rows = try await client.query("""
            SELECT tenant_id, name, CASE WHEN public_target THEN target END FROM checks WHERE id = \(id) AND public
            """, logger: logger)
        for try await (tenantID, name, target) in rows.decode((UUID, String, String?).self) {
            return (tenantID, PublicCheck(id: id, name: name, target: target))
        }
        return nil
    }

    /// Replaces a check's definition; `paused` changes only when the submission gives it. A push check keeps its
    /// token (its callers keep working); a check that becomes a push check gets one, one that stops being one loses
    /// it. Returns nil when the tenant has no such check; throws `StoreError(.alreadyExists)` for a taken name.
    public func update(tenantID: UUID, id: UUID, submission: CheckSubmission) async throws -> StoredCheck? {
        let definition = submission.definition
        let newToken = definition.type == .push ? Self.generatePushToken() : nil
        let updated = try await Self.mapConflicts(name: definition.name) {
            try await Self.decodeChecks(client.query("""
                WITH c AS (
                    UPDATE checks SET name = \(definition.name), type = \(definition.type.rawValue), target = \(definition.target),
                        interval_seconds = \(Int32(definition.intervalSeconds)), timeout_ms = \(Int32(definition.timeoutMs)),
                        retries = \(Int32(definition.retries)), run_on = \(definition.placement.json.jsonText)::jsonb,
                        options = \(definition.options.json.jsonText)::jsonb, paused = coalesce(\(submission.paused), paused),
                        public = coalesce(\(submission.isPublic), public),
                        public_target = coalesce(\(submission.publicTarget), public_target),
                        push_token = CASE WHEN \(newToken)::text IS NULL THEN NULL ELSE coalesce(push_token, \(newToken)) END,
                        updated_at = now()
                    WHERE tenant_id = \(tenantID) AND id = \(id)
                    RETURNING *
                )
                \(unescaped: Self.selectFromC)
                """, logger: logger))
        }
        return updated.first
    }

    /// Pauses or resumes a check; nil when the tenant has no such check.
    /// A paused check's open span turns `unknown` ("check paused"); its results turn it back after it is resumed.
    public func setPaused(tenantID: UUID, id: UUID, paused: Bool) async throws -> StoredCheck? {
        let logger = self.logger
        return try await client.withTransaction(logger: logger) { connection in
            let rows = try await connection.query("""
                WITH c AS (
                    UPDATE checks SET paused = \(paused), updated_at = CASE WHEN paused = \(paused) THEN updated_at ELSE now() END
                    WHERE tenant_id = \(tenantID) AND id = \(id)
                    RETURNING *
                )
                \(unescaped: Self.selectFromC)
                """, logger: logger)
            let check = try await Self.decodeChecks(rows).first
            if check != nil {
                try await StatusSpanStore.deriveCheckSpans(tenantID: tenantID, checkIDs: [id], on: connection, logger: logger)
            }
            return check
        }
    }

    /// Deletes a check, its results and its spans in one transaction; false when the tenant has no such check.
    public func delete(tenantID: UUID, id: UUID) async throws -> Bool {
        let logger = self.logger
        let deleted = try await client.withTransaction(logger: logger) { connection -> Bool in
            let rows = try await connection.query(
                "DELETE FROM checks WHERE tenant_id = \(tenantID) AND id = \(id) RETURNING id", logger: logger)
            var found = false
            for try await _ in rows.decode(UUID.self) { found = true }
            guard found else { return false }
            try await connection.query(
                "DELETE FROM check_results WHERE tenant_id = \(tenantID) AND check_id = \(id)", logger: logger)
            try await StatusSpanStore.deleteSpans(tenantID: tenantID, targetID: TargetID.check(checkID: id).description,
                                                  on: connection, logger: logger)
            return true
        }
        if deleted {
            logger.info("check deleted", metadata: ["tenant.id": "\(tenantID)", "check.id": "\(id)"])
        }
        return deleted
    }

    /// The check's results with `slot_at` in `[from, to]` (either bound optional), newest first, at most `limit`;
    /// nil when the tenant has no such check.
    public func results(tenantID: UUID, checkID: UUID, limit: Int, from: Date?, to: Date?) async throws -> [CheckResultRecord]? {
        let exists = try await client.query(
            "SELECT 1::int4 FROM checks WHERE tenant_id = \(tenantID) AND id = \(checkID)", logger: logger)
        var found = false
        for try await _ in exists.decode(Int32.self) { found = true }
        guard found else { return nil }

        var query: PostgresQuery = """
            SELECT slot_at, ts, agent_id, runner, ok, latency_ms, error, http_status, cert_not_after, figures::text
            FROM check_results WHERE tenant_id = \(tenantID) AND check_id = \(checkID)
            """
        // Bounds are appended only when given, so the planner can prune partitions by them.
        if let from {
            query.binds.append(from)
            query.sql += " AND slot_at >= $\(query.binds.count)"
        }
        if let to {
            query.binds.append(to)
            query.sql += " AND slot_at <= $\(query.binds.count)"
        }
        query.binds.append(Int64(min(max(1, limit), Self.maximumResultLimit)))
        query.sql += " ORDER BY slot_at DESC LIMIT $\(query.binds.count)"
        let rows = try await client.query(query, logger: logger)
        var results: [CheckResultRecord] = []
        for try await (slotAt, ts, agentID, runner, ok, latency, error, status, notAfter, figures) in rows.decode(
            (Date, Date, UUID?, String, Bool, Double?, String, Int32?, Date?, String).self) {
            results.append(CheckResultRecord(
                slotAt: slotAt, ts: ts, agentID: agentID, runner: runner, ok: ok, latencyMs: latency, error: error,
                httpStatus: status.map(Int.init), certificateNotAfter: notAfter,
                figures: (try? JSONValue.parse(Data(figures.utf8))) ?? .object([:])))
        }
        return results
    }

    /// Stores the check results a runner sent — an agent (`agentID`), or this server replica (nil) — each only when
    /// it carries the token last issued to that runner for its slot (`check_slots`, row locked until COMMIT so a
    /// reassignment waits) and the slot has no result yet; returns how many were stored. The others are late or were
    /// never this runner's: dropped, not errors. The checks' spans follow in the same transaction.
    public static func recordRunResults(_ results: [Crowsnest_V1_CheckResult], tenantID: UUID, agentID: UUID?,
                                          on connection: PostgresConnection, logger: Logger) async throws -> Int {
        var ids: [UUID] = [], slots: [Int64] = [], times: [Int64] = [], tokens: [Int64] = [], oks: [Bool] = []
        var latencies: [Double] = [], errors: [String] = [], statuses: [Int32] = [], notAfters: [Int64] = []
        var figures: [String] = []
        for result in results {
            guard let id = UUID(uuidString: result.checkID), result.fencingToken > 0,
                  result.fencingToken <= UInt64(Int64.max) else { continue }
            ids.append(id)
            slots.append(result.slotUnixMs)
            // Times are the agent's: a run time more than a day from its slot, or an expiry outside years 1970–9999,
            // is not trusted (and must not fail the batch's statement with a timestamp out of range).
            let runTime = result.tsUnixMs
            times.append(abs(runTime &- result.slotUnixMs) <= 86_400_000 ? runTime : result.slotUnixMs)
            tokens.append(Int64(result.fencingToken))
            oks.append(result.ok)
            latencies.append(result.latencyMs.isFinite && result.latencyMs >= 0 ? result.latencyMs : -1)
            errors.append(result.error)
            statuses.append(Int32(clamping: result.httpStatus))
            notAfters.append((0...253_402_300_799_999).contains(result.certNotAfterUnixMs) ? result.certNotAfterUnixMs : 0)
            var object: [String: JSONValue] = result.details.mapValues { .string($0) }
            for (name, value) in result.figures where value.isFinite { object[name] = .number(value) }
            figures.append(JSONValue.object(object).jsonText)
        }
        guard !ids.isEmpty else { return 0 }
        let rows = try await connection.query("""
            WITH fenced AS (
                SELECT u.check_id, s.slot_at, s.member, u.ts_ms, u.token, u.ok, u.latency, u.error, u.status,
                       u.not_after_ms, u.figures, s.runner
                FROM unnest(\(ids)::uuid[], \(slots)::int8[], \(times)::int8[], \(tokens)::int8[], \(oks)::bool[],
                            \(latencies)::float8[], \(errors)::text[], \(statuses)::int4[], \(notAfters)::int8[],
                            \(figures)::text[])
                     AS u(check_id, slot_ms, ts_ms, token, ok, latency, error, status, not_after_ms, figures)
                JOIN check_slots s ON s.tenant_id = \(tenantID) AND s.check_id = u.check_id
                    AND s.slot_at = to_timestamp(u.slot_ms / 1000.0) AND s.token = u.token
                    AND s.agent_id IS NOT DISTINCT FROM \(agentID)::uuid
                FOR SHARE OF s
            )
            INSERT INTO check_results (tenant_id, check_id, slot_at, member, ts, agent_id, runner, token, ok, latency_ms,
                                       error, http_status, cert_not_after, figures)
            SELECT \(tenantID), check_id, slot_at, member, to_timestamp(ts_ms / 1000.0), \(agentID)::uuid, runner, token, ok,
                   CASE WHEN latency < 0 THEN NULL ELSE latency END, error, nullif(status, 0),
                   CASE WHEN not_after_ms = 0 THEN NULL ELSE to_timestamp(not_after_ms / 1000.0) END, figures::jsonb
            FROM fenced
            ON CONFLICT (tenant_id, check_id, slot_at, member) DO NOTHING
            RETURNING check_id
            """, logger: logger)
        var stored: [UUID] = []
        for try await id in rows.decode(UUID.self) { stored.append(id) }
        try await StatusSpanStore.deriveCheckSpans(tenantID: tenantID, checkIDs: stored, on: connection, logger: logger)
        return stored.count
    }

    /// What a call of a push URL did.
    public enum PushOutcome: Sendable, Equatable {
        /// Recorded as the result of the slot (the wall-clock multiple of the interval) the call fell in; a later
        /// call in the same slot replaces it.
        case recorded(tenantID: UUID, checkID: UUID, slotAt: Date)
        /// The check is paused: nothing recorded.
        case paused(tenantID: UUID, checkID: UUID)
        /// No check has this push token.
        case unknownToken
    }

    /// Looks up the push check by its token and, unless it is paused, records the call as its current slot's
    /// result in the same statement (the database clock decides the slot). The day's `check_results` partition
    /// must exist (`PartitionStore.ensurePartitions`).
    public func recordPush(token: String, ok: Bool, message: String, latencyMs: Double?) async throws -> PushOutcome {
        let logger = self.logger
        return try await client.withTransaction(logger: logger) { connection in
            try await Self.recordPush(token: token, ok: ok, message: message, latencyMs: latencyMs, on: connection, logger: logger)
        }
    }

    private static func recordPush(token: String, ok: Bool, message: String, latencyMs: Double?,
                                   on connection: PostgresConnection, logger: Logger) async throws -> PushOutcome {
        let rows = try await connection.query("""
            WITH c AS (
                SELECT tenant_id, id, interval_seconds, paused FROM checks WHERE push_token = \(token) AND type = 'push'
            ), stored AS (
                INSERT INTO check_results AS r (tenant_id, check_id, slot_at, ts, runner, token, ok, latency_ms, error)
                SELECT tenant_id, id,
                       to_timestamp(floor(extract(epoch FROM statement_timestamp()) / interval_seconds) * interval_seconds),
                       statement_timestamp(), 'push', 0, \(ok), \(latencyMs), \(message)
                FROM c WHERE NOT paused
                ON CONFLICT (tenant_id, check_id, slot_at, member) DO UPDATE
                    SET ts = EXCLUDED.ts, ok = EXCLUDED.ok, latency_ms = EXCLUDED.latency_ms, error = EXCLUDED.error
                RETURNING slot_at
            )
            SELECT c.tenant_id, c.id, c.paused, (SELECT slot_at FROM stored) FROM c
            """, logger: logger)
        var outcome = PushOutcome.unknownToken
        for try await (tenantID, checkID, paused, slotAt) in rows.decode((UUID, UUID, Bool, Date?).self) {
            if let slotAt, !paused {
                outcome = .recorded(tenantID: tenantID, checkID: checkID, slotAt: slotAt)
            } else {
                outcome = .paused(tenantID: tenantID, checkID: checkID)
            }
        }
        if case .recorded(let tenantID, let checkID, _) = outcome {
            try await StatusSpanStore.deriveCheckSpans(tenantID: tenantID, checkIDs: [checkID], on: connection, logger: logger)
        }
        return outcome
    }

    /// Records a failed result for every push check whose latest slot got no call within its interval plus grace:
    /// slot S is missed when no call arrived from S until S + interval + grace (a late call, stored under the next
    /// slot, still counts for S). A check is judged from its first whole slot after it was created, changed or
    /// resumed. Returns how many slots were marked missed. The day's partition must exist.
    @discardableResult
    public func recordMissedPushes() async throws -> Int {
        let logger = self.logger
        return try await client.withTransaction(logger: logger) { connection in
            try await Self.recordMissedPushes(on: connection, logger: logger)
        }
    }

    private static func recordMissedPushes(on connection: PostgresConnection, logger: Logger) async throws -> Int {
        let rows = try await connection.query("""
            WITH due AS (
                SELECT c.tenant_id, c.id, c.interval_seconds + g.grace AS allowed, d.slot_at
                FROM checks c
                CROSS JOIN LATERAL (SELECT coalesce((c.options->>'grace_seconds')::int, 0) AS grace) g
                CROSS JOIN LATERAL (
                    SELECT to_timestamp(floor((extract(epoch FROM statement_timestamp()) - c.interval_seconds - g.grace)
                                              / c.interval_seconds) * c.interval_seconds) AS slot_at
                ) d
                WHERE c.type = 'push' AND NOT c.paused AND d.slot_at >= c.updated_at
            )
            INSERT INTO check_results (tenant_id, check_id, slot_at, ts, runner, token, ok, error)
            SELECT due.tenant_id, due.id, due.slot_at, statement_timestamp(), 'push', 0, false,
                   'no push call within ' || due.allowed || ' s (the interval plus the grace period)'
            FROM due
            WHERE NOT EXISTS (
                SELECT 1 FROM check_results r
                WHERE r.tenant_id = due.tenant_id AND r.check_id = due.id AND r.slot_at >= due.slot_at
                  AND r.ts >= due.slot_at AND r.ts < due.slot_at + due.allowed * interval '1 second'
            )
            ON CONFLICT (tenant_id, check_id, slot_at, member) DO NOTHING
            RETURNING tenant_id, check_id
            """, logger: logger)
        var missed: [UUID: [UUID]] = [:]
        for try await (tenantID, checkID) in rows.decode((UUID, UUID).self) { missed[tenantID, default: []].append(checkID) }
        for (tenantID, checkIDs) in missed {
            try await StatusSpanStore.deriveCheckSpans(tenantID: tenantID, checkIDs: checkIDs, on: connection, logger: logger)
        }
        return missed.values.reduce(0) { $0 + $1.count }
    }

    // MARK: - Pieces

    /// Selects the check rows of a CTE named `c` with the outcomes of their newest `retries + 1` slots. A slot of a
    /// quorum check (`all`) failed when at least `quorum` of its members' results failed; any other slot has one
    /// result, its outcome.
    private static let selectFromC = """
        SELECT c.id, c.name, c.type, c.target, c.interval_seconds, c.timeout_ms, c.retries, c.run_on::text, c.options::text,
               c.paused, c.public, c.public_target, c.push_token, c.created_at, c.updated_at, recent.oks, recent.last_ts
        FROM c LEFT JOIN LATERAL (
            SELECT array_agg(r.ok ORDER BY r.slot_at DESC) AS oks, max(r.ts) AS last_ts
            FROM (SELECT slot_at, max(ts) AS ts,
                         count(*) FILTER (WHERE NOT ok) < coalesce((c.run_on->>'quorum')::int, 1) AS ok
                  FROM check_results
                  WHERE tenant_id = c.tenant_id AND check_id = c.id
                  GROUP BY slot_at
                  ORDER BY slot_at DESC LIMIT c.retries + 1) r
        ) recent ON true
        """

    /// Reads every row (a server error in a row-returning statement surfaces only while iterating).
    private static func decodeChecks(_ rows: PostgresRowSequence) async throws -> [StoredCheck] {
        var checks: [StoredCheck] = []
        for try await (id, name, type, target, interval, timeout, retries, runOn, options, paused, isPublic, publicTarget,
                       pushToken, createdAt, updatedAt, oks, lastTs) in rows.decode(
            (UUID, String, String, String, Int32, Int32, Int32, String, String, Bool, Bool, Bool, String?, Date, Date, [Bool]?,
             Date?).self) {
            guard let checkType = CheckType(rawValue: type) else {
                throw StoreError(.invalid, "check \(id) has an unknown type \"\(type)\"")
            }
            checks.append(StoredCheck(
                id: id, name: name, type: checkType, target: target, intervalSeconds: Int(interval), timeoutMs: Int(timeout),
                retries: Int(retries), runOn: try JSONValue.parse(Data(runOn.utf8)), options: try JSONValue.parse(Data(options.utf8)),
                paused: paused, isPublic: isPublic, publicTarget: publicTarget, pushToken: pushToken, createdAt: createdAt, updatedAt: updatedAt, recentResults: oks ?? [],
                lastResultAt: lastTs))
        }
        return checks
    }

    /// Runs a writing statement and reads its rows (where a violation surfaces), turning the tenant-name unique
    /// violation into `StoreError(.alreadyExists)`.
    private static func mapConflicts<T>(name: String, _ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as PSQLError where error.serverInfo?[.sqlState] == "23505"
            && error.serverInfo?[.constraintName] == "checks_name_unique" {
            throw StoreError(.alreadyExists, "a check named \"\(name)\" already exists; choose another name or update that check")
        }
    }

    /// `cnp_` + 43 base64url characters (32 random bytes).
    static func generatePushToken() -> String {
        pushTokenPrefix + RandomSecret.base64URL()
    }
}
