import Foundation
import Logging
import PostgresNIO

/// SQL for the `status_spans` table: the state history uptime is computed from.
public enum StatusSpanStore {
    /// The open span of each target in `targetIDs`: state and start (unix µs).
    public static func openSpans(tenantID: UUID, targetIDs: [String], on connection: PostgresConnection,
                                 logger: Logger) async throws -> [String: (state: SpanState, sinceMicros: Int64)] {
        guard !targetIDs.isEmpty else { return [:] }
        let rows = try await connection.query("""
            SELECT target_id, state, (extract(epoch FROM started_at) * 1000000)::bigint
            FROM status_spans WHERE tenant_id = \(tenantID) AND target_id = ANY(\(targetIDs)) AND ended_at IS NULL
            """, logger: logger)
        var result: [String: (state: SpanState, sinceMicros: Int64)] = [:]
        for try await (target, state, since) in rows.decode((String, String, Int64).self) {
            result[target] = (SpanState(rawValue: state) ?? .unknown, since)
        }
        return result
    }

    /// The target's spans that overlap `[fromMicros, toMicros)`, oldest first, unclipped.
    public static func spans(tenantID: UUID, targetID: String, fromMicros: Int64, toMicros: Int64,
                             on client: PostgresClient, logger: Logger) async throws -> [SpanInterval] {
        try await spans(tenantID: tenantID, targetIDs: [targetID], fromMicros: fromMicros, toMicros: toMicros,
                        on: client, logger: logger)[targetID] ?? []
    }

    /// The spans of each of `targetIDs` that overlap `[fromMicros, toMicros)`, oldest first, unclipped.
    public static func spans(tenantID: UUID, targetIDs: [String], fromMicros: Int64, toMicros: Int64,
                             on client: PostgresClient, logger: Logger) async throws -> [String: [SpanInterval]] {
        guard !targetIDs.isEmpty else { return [:] }
        // One row per target with its spans as arrays: a thousand targets' 30,000 spans decode several times faster
        // than as 30,000 rows. An open span's end is -1.
        let rows = try await client.query("""
            SELECT target_id,
                   array_agg(state ORDER BY started_at),
                   array_agg((extract(epoch FROM started_at) * 1000000)::bigint ORDER BY started_at),
                   array_agg(coalesce((extract(epoch FROM ended_at) * 1000000)::bigint, -1) ORDER BY started_at),
                   array_agg(cause ORDER BY started_at)
            FROM status_spans
            WHERE tenant_id = \(tenantID) AND target_id = ANY(\(targetIDs))
              AND started_at < 'epoch'::timestamptz + \(toMicros) * interval '1 microsecond'
              AND (ended_at IS NULL OR ended_at > 'epoch'::timestamptz + \(fromMicros) * interval '1 microsecond')
            GROUP BY target_id
            """, logger: logger)
        var spans: [String: [SpanInterval]] = [:]
        for try await (target, states, starts, ends, causes) in rows.decode((String, [String], [Int64], [Int64], [String]).self) {
            guard states.count == starts.count, starts.count == ends.count, ends.count == causes.count else { continue }
            var list: [SpanInterval] = []
            list.reserveCapacity(states.count)
            for index in states.indices {
                list.append(SpanInterval(state: SpanState(rawValue: states[index]) ?? .unknown, startMicros: starts[index],
                                         endMicros: ends[index] < 0 ? nil : ends[index], cause: causes[index]))
            }
            spans[target] = list
        }
        return spans
    }

    /// Removes the spans (of every tenant) that ended more than `days` ago; returns how many went.
    public static func deleteEnded(olderThanDays days: Int, on client: PostgresClient, logger: Logger) async throws -> Int {
        let rows = try await client.query("""
            DELETE FROM status_spans WHERE ended_at < now() - \(days) * interval '1 day' RETURNING 1
            """, logger: logger)
        var count = 0
        for try await _ in rows.decode(Int.self) { count += 1 }
        return count
    }

    /// Removes every span of a target (a deleted check's).
    public static func deleteSpans(tenantID: UUID, targetID: String, on connection: PostgresConnection,
                                   logger: Logger) async throws {
        try await connection.query("DELETE FROM status_spans WHERE tenant_id = \(tenantID) AND target_id = \(targetID)",
                                   logger: logger)
    }

    /// Closes the target's open span at the transition time and opens the new one.
    public static func apply(tenantID: UUID, targetID: String, transition: StateTransition,
                             on connection: PostgresConnection, logger: Logger) async throws {
        let at = transition.atMicros
        try await connection.query("""
            UPDATE status_spans SET ended_at = 'epoch'::timestamptz + \(at) * interval '1 microsecond'
            WHERE tenant_id = \(tenantID) AND target_id = \(targetID) AND ended_at IS NULL
            """, logger: logger)
        // Two transitions in the same microsecond: the later one replaces the zero-length span.
        try await connection.query("""
            INSERT INTO status_spans (tenant_id, target_id, state, started_at, cause)
            VALUES (\(tenantID), \(targetID), \(transition.state.rawValue),
                    'epoch'::timestamptz + \(at) * interval '1 microsecond', \(transition.cause))
            ON CONFLICT (tenant_id, target_id, started_at)
            DO UPDATE SET state = EXCLUDED.state, cause = EXCLUDED.cause, ended_at = NULL
            """, logger: logger)
    }
}

/// Host liveness as status spans of the host target `h-<agent id>`: `up` while batches arrive, `unknown` (never
/// `down`: a silent agent says nothing about its host) after two sampling intervals plus a grace without one.
/// The unknown span starts at the last batch's own time; spooled batches that arrive later and close the gap
/// take it back, so a server outage leaves no `unknown` once the agent's spool is replayed.
extension StatusSpanStore {
    /// The host target id of an agent, as SQL builds it: `'h-' || <agent uuid as lowercase text>`.
    static let hostTargetSQL = "'h-' || a.id::text"

    /// Why a host turned `unknown`.
    static func silentHostCause(toleranceSeconds: Int) -> String {
        "no data from the agent for \(toleranceSeconds) s (two sampling intervals plus grace)"
    }

    /// Called by ingest, inside the transaction that stores an agent's batches (the agent's row locked), with the
    /// earliest batch time of the group: opens an `up` span when the host has none, and when its open span is
    /// `unknown`, ends it — or, when these batches close the gap within `toleranceMicros` of its start (spooled
    /// data from a server outage), removes it and reopens the `up` span before it.
    public static func recordHostEvidence(tenantID: UUID, agentID: UUID, firstBatchMicros: Int64, toleranceMicros: Int64,
                                          on connection: PostgresConnection, logger: Logger) async throws {
        let target = TargetID.host(agentID: agentID).description
        // The common case in one round trip: the open span is read and, when there is none, `up` is opened.
        let rows = try await connection.query("""
            WITH open AS (
                SELECT state, started_at FROM status_spans
                WHERE tenant_id = \(tenantID) AND target_id = \(target) AND ended_at IS NULL),
            opened AS (
                INSERT INTO status_spans (tenant_id, target_id, state, started_at, cause)
                SELECT \(tenantID), \(target), 'up', 'epoch'::timestamptz + \(firstBatchMicros) * interval '1 microsecond', ''
                WHERE NOT EXISTS (SELECT 1 FROM open)
                ON CONFLICT (tenant_id, target_id, started_at) DO NOTHING)
            SELECT state, (extract(epoch FROM started_at) * 1000000)::bigint FROM open
            """, logger: logger)
        var open: (state: String, startedMicros: Int64)?
        for try await (state, started) in rows.decode((String, Int64).self) { open = (state, started) }
        guard let open, open.state != SpanState.up.rawValue else { return }
        if firstBatchMicros <= open.startedMicros + toleranceMicros {
            // No gap after all: the batches cover the time the span called unknown.
            try await connection.query("""
                DELETE FROM status_spans
                WHERE tenant_id = \(tenantID) AND target_id = \(target) AND ended_at IS NULL
                """, logger: logger)
            let reopened = try await connection.query("""
                UPDATE status_spans SET ended_at = NULL
                WHERE tenant_id = \(tenantID) AND target_id = \(target) AND state = 'up'
                  AND ended_at = 'epoch'::timestamptz + \(open.startedMicros) * interval '1 microsecond'
                RETURNING 1
                """, logger: logger)
            var count = 0
            for try await _ in reopened { count += 1 }
            if count == 0 {
                try await apply(tenantID: tenantID, targetID: target,
                                transition: StateTransition(state: .up, atMicros: open.startedMicros, cause: ""),
                                on: connection, logger: logger)
            }
        } else {
            try await apply(tenantID: tenantID, targetID: target,
                            transition: StateTransition(state: .up, atMicros: max(firstBatchMicros, open.startedMicros), cause: ""),
                            on: connection, logger: logger)
        }
    }

    /// Run by the singleton job: every host whose open span is `up` and whose agent has committed no batch for two
    /// sampling intervals plus `graceSeconds` (by the database clock) turns `unknown` from its last batch's time.
    /// Agents being written to at this moment are skipped (their row is locked) and looked at next round.
    /// Returns how many hosts turned unknown.
    public static func markSilentHostsUnknown(graceSeconds: Int, on client: PostgresClient, logger: Logger) async throws -> Int {
        try await client.withTransaction(logger: logger) { connection in
            let rows = try await connection.query("""
                SELECT a.tenant_id, a.id, 2 * a.interval_seconds + \(graceSeconds),
                       greatest(a.committed_batch_ts_ms * 1000, (extract(epoch FROM s.started_at) * 1000000)::bigint)
                FROM agents a
                JOIN status_spans s ON s.tenant_id = a.tenant_id AND s.target_id = \(unescaped: hostTargetSQL)
                                   AND s.ended_at IS NULL AND s.state = 'up'
                WHERE a.last_seen < now() - make_interval(secs => 2 * a.interval_seconds + \(graceSeconds))
                FOR UPDATE OF a SKIP LOCKED
                """, logger: logger)
            var silent: [(UUID, UUID, Int, Int64)] = []
            for try await row in rows.decode((UUID, UUID, Int, Int64).self) { silent.append(row) }
            for (tenantID, agentID, tolerance, at) in silent {
                try await apply(tenantID: tenantID, targetID: TargetID.host(agentID: agentID).description,
                                transition: StateTransition(state: .unknown, atMicros: at,
                                                            cause: silentHostCause(toleranceSeconds: tolerance)),
                                on: connection, logger: logger)
            }
            return silent.count
        }
    }
}

/// Check spans (`k-<check id>`), derived from the newest results of each check whenever results are recorded or
/// the check is paused, inside the transaction that recorded them (see `CheckSpanRule`).
extension StatusSpanStore {
    /// Brings the spans of `checkIDs` up to date with their newest results. Takes each check's row lock first, so
    /// two replicas recording results of the same check (members of a quorum) derive its spans one after the other.
    public static func deriveCheckSpans(tenantID: UUID, checkIDs: [UUID], on connection: PostgresConnection,
                                        logger: Logger) async throws {
        let ids = Array(Set(checkIDs)).sorted { $0.uuidString < $1.uuidString }
        guard !ids.isEmpty else { return }
        try await connection.query("""
            SELECT 1 FROM checks WHERE tenant_id = \(tenantID) AND id = ANY(\(ids)) ORDER BY id FOR NO KEY UPDATE
            """, logger: logger).collect()
        let rows = try await connection.query("""
            SELECT c.id, c.paused, c.retries, (extract(epoch FROM statement_timestamp()) * 1000000)::bigint,
                   coalesce(array_agg(r.ok ORDER BY r.slot_at DESC) FILTER (WHERE r.slot_at IS NOT NULL), '{}'),
                   coalesce(array_agg((extract(epoch FROM r.ts) * 1000000)::bigint ORDER BY r.slot_at DESC)
                            FILTER (WHERE r.slot_at IS NOT NULL), '{}'),
                   coalesce(array_agg(r.error ORDER BY r.slot_at DESC) FILTER (WHERE r.slot_at IS NOT NULL), '{}')
            FROM checks c LEFT JOIN LATERAL (
                SELECT slot_at, min(ts) AS ts,
                       count(*) FILTER (WHERE NOT ok) < coalesce((c.run_on->>'quorum')::int, 1) AS ok,
                       coalesce(min(error) FILTER (WHERE NOT ok), '') AS error
                FROM check_results
                WHERE tenant_id = c.tenant_id AND check_id = c.id
                GROUP BY slot_at ORDER BY slot_at DESC LIMIT c.retries + 1
            ) r ON true
            WHERE c.tenant_id = \(tenantID) AND c.id = ANY(\(ids))
            GROUP BY c.id, c.paused, c.retries
            """, logger: logger)
        var checks: [(id: UUID, paused: Bool, retries: Int, now: Int64, outcomes: [CheckSlotOutcome])] = []
        for try await (id, paused, retries, now, oks, times, errors) in rows.decode(
            (UUID, Bool, Int, Int64, [Bool], [Int64], [String]).self) {
            let outcomes = zip(oks, zip(times, errors)).map { CheckSlotOutcome(ok: $0, atMicros: $1.0, error: $1.1) }
            checks.append((id, paused, retries, now, outcomes))
        }
        let targets = checks.map { TargetID.check(checkID: $0.id).description }
        let open = try await openSpans(tenantID: tenantID, targetIDs: targets, on: connection, logger: logger)
        for (check, target) in zip(checks, targets) {
            let current = open[target].map { (state: $0.state, sinceMicros: $0.sinceMicros) }
            guard let transition = CheckSpanRule.transition(open: current, paused: check.paused, retries: check.retries,
                                                            newestFirst: check.outcomes, nowMicros: check.now)
            else { continue }
            try await apply(tenantID: tenantID, targetID: target, transition: transition, on: connection, logger: logger)
        }
    }
}
