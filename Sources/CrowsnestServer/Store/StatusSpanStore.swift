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
