import CrowsnestWire
import Foundation
import Logging
import PostgresNIO

/// A check whose current slot needs a runner on this replica: no slot row yet, or one under an older term, and no
/// result. `lease` is the check's live `check:{id}` term when a runner of this replica holds it (nil: free).
public struct DueCheck: Sendable, Equatable {
    public var tenantID: UUID
    public var checkID: UUID
    public var type: String
    public var target: String
    public var intervalSeconds: Int
    public var timeoutMs: Int
    /// The stored `run_on` and `options` objects.
    public var runOn: JSONValue
    public var options: JSONValue
    /// The slot's start: the latest wall-clock multiple of the interval (database clock).
    public var slotAt: Date
    public var leaseHolder: String?
    public var leaseToken: Int64?
    /// The token the slot was already assigned under (an older term's); nil: the slot has no runner yet.
    public var slotToken: Int64?

    /// The options as a probe takes them (`Assign.options`): each set option's JSON text, by name.
    public var optionTexts: [String: String] {
        guard case .object(let object) = options else { return [:] }
        return object.filter { $0.value != .null }.mapValues(\.jsonText)
    }
}

/// One slot to record as assigned (`CheckSlotStore.assignMany`).
public struct SlotAssignment: Sendable, Equatable {
    public var tenantID: UUID
    public var checkID: UUID
    public var slotAt: Date
    public var token: Int64
    /// nil: a server replica runs it.
    public var agentID: UUID?
    public var runner: String
    /// The agent whose own run of a quorum check's slot this is; nil for every other check (one run per slot).
    public var member: UUID?

    public init(tenantID: UUID, checkID: UUID, slotAt: Date, token: Int64, agentID: UUID?, runner: String, member: UUID? = nil) {
        self.tenantID = tenantID
        self.checkID = checkID
        self.slotAt = slotAt
        self.token = token
        self.agentID = agentID
        self.runner = runner
        self.member = member
    }

    /// The lease whose live term fences this assignment.
    public var leaseKey: String {
        member.map { CheckSlotStore.memberLeaseKey(checkID: checkID, agentID: $0) } ?? CheckSlotStore.leaseKey(checkID: checkID)
    }
}

/// A quorum check's slot that one agent this replica serves has to run: the check, the member agent, and that
/// member's term (`check:{id}:{agent}`) when it is live (nil: free).
public struct DueMemberRun: Sendable, Equatable {
    public var check: DueCheck
    public var agentID: UUID
}

/// SQL for `check_slots`: which fencing token and runner each slot of a check was assigned.
public enum CheckSlotStore {
    /// The lease key of a check: its current slot's term.
    public static func leaseKey(checkID: UUID) -> String { "check:" + checkID.uuidString.lowercased() }

    /// The lease key of one agent's runs of a quorum check: `check:{check id}:{agent id}`.
    public static func memberLeaseKey(checkID: UUID, agentID: UUID) -> String {
        "check:" + checkID.uuidString.lowercased() + ":" + agentID.uuidString.lowercased()
    }

    /// The member of every check that is not a quorum check.
    public static let singleMember = UUID(uuid: (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))

    /// Checks of `tenants` whose current slot (by the database clock) has no result and no slot row under the
    /// check's live term, where that term is free or held by one of `holders` (the runners this replica serves).
    /// Paused and push checks never are; server-run checks only with `includeServerRun`, agent-run ones only with
    /// `includeAgentRun`. At most `limit` rows, oldest slots first.
    public static func dueChecks(tenants: [UUID], holders: [String], includeAgentRun: Bool, includeServerRun: Bool,
                                 limit: Int, on client: PostgresClient, logger: Logger) async throws -> [DueCheck] {
        guard !tenants.isEmpty || includeServerRun else { return [] }
        let rows = try await client.query("""
            SELECT c.tenant_id, c.id, c.type, c.target, c.interval_seconds, c.timeout_ms, c.run_on::text, c.options::text,
                   d.slot_at, l.holder, l.token, s.token
            FROM checks c
            CROSS JOIN LATERAL (
                SELECT to_timestamp(floor(extract(epoch FROM statement_timestamp()) / c.interval_seconds)
                                    * c.interval_seconds) AS slot_at
            ) d
            LEFT JOIN leases l ON l.key = 'check:' || c.id::text AND l.released_at IS NULL
                AND l.expires_at > statement_timestamp()
            LEFT JOIN check_slots s ON s.tenant_id = c.tenant_id AND s.check_id = c.id AND s.slot_at = d.slot_at
                AND s.member = \(singleMember)
            WHERE NOT c.paused AND c.type <> 'push' AND c.run_on->>'mode' <> 'all'
              AND ((\(includeAgentRun) AND c.run_on->>'mode' <> 'server' AND c.tenant_id = ANY(\(tenants)::uuid[]))
                   OR (\(includeServerRun) AND c.run_on->>'mode' = 'server'))
              AND (l.key IS NULL OR l.holder = ANY(\(holders)::text[]))
              AND (s.token IS NULL OR l.key IS NULL OR s.token < l.token)
              AND NOT EXISTS (SELECT 1 FROM check_results r
                              WHERE r.tenant_id = c.tenant_id AND r.check_id = c.id AND r.slot_at = d.slot_at)
            ORDER BY d.slot_at, c.id
            LIMIT \(Int64(limit))
            """, logger: logger)
        var due: [DueCheck] = []
        for try await (tenantID, checkID, type, target, interval, timeout, runOn, options, slotAt, holder, token, slotToken)
            in rows.decode((UUID, UUID, String, String, Int32, Int32, String, String, Date, String?, Int64?, Int64?).self) {
            due.append(DueCheck(tenantID: tenantID, checkID: checkID, type: type, target: target,
                                intervalSeconds: Int(interval), timeoutMs: Int(timeout),
                                runOn: (try? JSONValue.parse(Data(runOn.utf8))) ?? .object([:]),
                                options: (try? JSONValue.parse(Data(options.utf8))) ?? .object([:]),
                                slotAt: slotAt, leaseHolder: holder, leaseToken: token, slotToken: slotToken))
        }
        return due
    }

    /// The current slots of the quorum checks (`all`) of each agent's tenant that the agent has not run yet: no
    /// result from it, and no slot row under its live member term, where that term is free or held by the agent's
    /// session (`holders`, parallel to `agents`). Whether the agent carries the check's labels is the caller's to
    /// judge. At most `limit` rows, oldest slots first.
    public static func dueMemberRuns(agents: [(tenantID: UUID, agentID: UUID, holder: String)], limit: Int,
                                     on client: PostgresClient, logger: Logger) async throws -> [DueMemberRun] {
        guard !agents.isEmpty else { return [] }
        let tenants = agents.map(\.tenantID), agentIDs = agents.map(\.agentID), holders = agents.map(\.holder)
        let rows = try await client.query("""
            SELECT c.tenant_id, c.id, c.type, c.target, c.interval_seconds, c.timeout_ms, c.run_on::text, c.options::text,
                   d.slot_at, l.holder, l.token, s.token, a.agent_id
            FROM unnest(\(tenants)::uuid[], \(agentIDs)::uuid[], \(holders)::text[]) AS a(tenant_id, agent_id, holder)
            JOIN checks c ON c.tenant_id = a.tenant_id AND c.run_on->>'mode' = 'all' AND NOT c.paused
            CROSS JOIN LATERAL (
                SELECT to_timestamp(floor(extract(epoch FROM statement_timestamp()) / c.interval_seconds)
                                    * c.interval_seconds) AS slot_at
            ) d
            LEFT JOIN leases l ON l.key = 'check:' || c.id::text || ':' || a.agent_id::text AND l.released_at IS NULL
                AND l.expires_at > statement_timestamp()
            LEFT JOIN check_slots s ON s.tenant_id = c.tenant_id AND s.check_id = c.id AND s.slot_at = d.slot_at
                AND s.member = a.agent_id
            WHERE (l.key IS NULL OR l.holder = a.holder)
              AND (s.token IS NULL OR l.key IS NULL OR s.token < l.token)
              AND NOT EXISTS (SELECT 1 FROM check_results r
                              WHERE r.tenant_id = c.tenant_id AND r.check_id = c.id AND r.slot_at = d.slot_at
                                AND r.member = a.agent_id)
            ORDER BY d.slot_at, c.id, a.agent_id
            LIMIT \(Int64(limit))
            """, logger: logger)
        var due: [DueMemberRun] = []
        for try await (tenantID, checkID, type, target, interval, timeout, runOn, options, slotAt, holder, token, slotToken, agentID)
            in rows.decode((UUID, UUID, String, String, Int32, Int32, String, String, Date, String?, Int64?, Int64?, UUID).self) {
            let check = DueCheck(tenantID: tenantID, checkID: checkID, type: type, target: target,
                                 intervalSeconds: Int(interval), timeoutMs: Int(timeout),
                                 runOn: (try? JSONValue.parse(Data(runOn.utf8))) ?? .object([:]),
                                 options: (try? JSONValue.parse(Data(options.utf8))) ?? .object([:]),
                                 slotAt: slotAt, leaseHolder: holder, leaseToken: token, slotToken: slotToken)
            due.append(DueMemberRun(check: check, agentID: agentID))
        }
        return due
    }

    /// Records many slot assignments in one statement, each only while its token is still the live, unreleased
    /// term of the check's lease (checked in the same statement) and larger than the token already stored for the
    /// slot. Returns those recorded: exactly the runs to send out. Rows are written in key order so two replicas
    /// cannot deadlock.
    public static func assignMany(_ assignments: [SlotAssignment], on client: PostgresClient,
                                  logger: Logger) async throws -> [SlotAssignment] {
        guard !assignments.isEmpty else { return [] }
        var tenants: [UUID] = [], checks: [UUID] = [], slots: [Date] = [], tokens: [Int64] = [], agents: [String] = []
        var runners: [String] = [], members: [UUID] = [], keys: [String] = []
        for assignment in assignments {
            members.append(assignment.member ?? singleMember)
            keys.append(assignment.leaseKey)
            tenants.append(assignment.tenantID)
            checks.append(assignment.checkID)
            slots.append(assignment.slotAt)
            tokens.append(assignment.token)
            // '' for a server replica: PostgresNIO encodes no arrays of optionals.
            agents.append(assignment.agentID?.uuidString ?? "")
            runners.append(assignment.runner)
        }
        let rows = try await client.query("""
            INSERT INTO check_slots AS s (tenant_id, check_id, slot_at, member, token, agent_id, runner)
            SELECT u.tenant_id, u.check_id, u.slot_at, u.member, u.token, nullif(u.agent_id, '')::uuid, u.runner
            FROM unnest(\(tenants)::uuid[], \(checks)::uuid[], \(slots)::timestamptz[], \(members)::uuid[],
                        \(tokens)::int8[], \(agents)::text[], \(runners)::text[], \(keys)::text[])
                 AS u(tenant_id, check_id, slot_at, member, token, agent_id, runner, lease_key)
            JOIN leases l ON l.key = u.lease_key AND l.token = u.token AND l.released_at IS NULL
                AND l.expires_at > statement_timestamp()
            ORDER BY u.tenant_id, u.check_id, u.slot_at, u.member
            ON CONFLICT (tenant_id, check_id, slot_at, member) DO UPDATE
                SET token = EXCLUDED.token, agent_id = EXCLUDED.agent_id, runner = EXCLUDED.runner,
                    assigned_at = now()
                WHERE s.token < EXCLUDED.token
            RETURNING tenant_id, check_id, slot_at, token
            """, logger: logger)
        var recorded = Set<SlotKey>()
        for try await (tenantID, checkID, slotAt, token) in rows.decode((UUID, UUID, Date, Int64).self) {
            recorded.insert(SlotKey(tenantID: tenantID, checkID: checkID, slotAt: slotAt, token: token))
        }
        return assignments.filter {
            recorded.contains(SlotKey(tenantID: $0.tenantID, checkID: $0.checkID, slotAt: $0.slotAt, token: $0.token))
        }
    }

    /// Removes slot rows older than `age` (their results, if any, are kept in `check_results`); returns how many.
    @discardableResult
    public static func deleteOlderThan(_ age: Duration, on client: PostgresClient, logger: Logger) async throws -> Int {
        let seconds = age.components.seconds
        let rows = try await client.query("""
            WITH gone AS (
                DELETE FROM check_slots WHERE slot_at < statement_timestamp() - \(seconds) * interval '1 second' RETURNING 1
            )
            SELECT count(*) FROM gone
            """, logger: logger)
        var removed: Int64 = 0
        for try await count in rows.decode(Int64.self) { removed = count }
        return Int(removed)
    }

    private struct SlotKey: Hashable {
        var tenantID: UUID
        var checkID: UUID
        var slotAt: Date
        var token: Int64
    }

    /// Records that `slotAt` of the check runs on `agentID` (nil: a server replica) under `token`. A slot assigned
    /// again (its runner died) takes the new runner only with a larger token; returns false when the stored token is
    /// already as large (a stale coordinator), leaving the row as it was.
    @discardableResult
    public static func assign(tenantID: UUID, checkID: UUID, slotAt: Date, token: Int64, agentID: UUID?, runner: String,
                              on connection: PostgresConnection, logger: Logger) async throws -> Bool {
        let rows = try await connection.query("""
            INSERT INTO check_slots AS s (tenant_id, check_id, slot_at, token, agent_id, runner)
            VALUES (\(tenantID), \(checkID), \(slotAt), \(token), \(agentID), \(runner))
            ON CONFLICT (tenant_id, check_id, slot_at, member) DO UPDATE
                SET token = EXCLUDED.token, agent_id = EXCLUDED.agent_id, runner = EXCLUDED.runner,
                    assigned_at = now()
                WHERE s.token < EXCLUDED.token
            RETURNING token
            """, logger: logger)
        var assigned = false
        for try await _ in rows.decode(Int64.self) { assigned = true }
        return assigned
    }
}
