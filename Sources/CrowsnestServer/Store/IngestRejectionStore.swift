import CrowsnestWire
import Foundation
import Logging
import PostgresNIO

/// Something ingest refused: a whole batch (its time is outside what the server stores) or one part of a batch
/// that PostgreSQL refused because of its data. Recorded and acknowledged, never retried.
public struct IngestRejection: Sendable, Equatable {
    /// What could not be stored.
    public enum Part: String, Sendable, Codable {
        case batch, samples, host, containers, events, spans
        case checkResults = "check_results"
    }

    public var batchSeq: UInt64
    public var batchTsMillis: Int64
    public var part: Part
    /// PostgreSQL's SQLSTATE when the database refused the data; empty when the server refused it before writing.
    public var sqlState: String
    public var reason: String

    public init(batchSeq: UInt64, batchTsMillis: Int64, part: Part, sqlState: String = "", reason: String) {
        self.batchSeq = batchSeq
        self.batchTsMillis = batchTsMillis
        self.part = part
        self.sqlState = sqlState
        self.reason = reason
    }
}

/// A recorded rejection as the API lists it.
public struct IngestRejectionRecord: Sendable, Equatable {
    public var rejection: IngestRejection
    public var recordedAtMicros: Int64
}

/// SQL for the `ingest_rejections` table: the per-agent log of what ingest refused.
public enum IngestRejectionStore {
    /// Rows kept per agent; older ones are deleted as new ones arrive, so a hostile agent cannot fill the disk.
    public static let keptPerAgent = 1_000

    /// Inside the caller's transaction: records `rejections` for the agent and trims its log.
    public static func record(_ rejections: [IngestRejection], tenantID: UUID, agentID: UUID,
                              on connection: PostgresConnection, logger: Logger) async throws {
        guard !rejections.isEmpty else { return }
        try await connection.query("""
            INSERT INTO ingest_rejections (tenant_id, agent_id, batch_seq, batch_ts, part, sqlstate, reason)
            SELECT \(tenantID), \(agentID), u.seq, CASE WHEN u.ts_ms <> 0 THEN 'epoch'::timestamptz + u.ts_ms * interval '1 millisecond' END,
                   u.part, u.sqlstate, u.reason
            FROM unnest(\(rejections.map { Int64(clamping: $0.batchSeq) }),
                        \(rejections.map { WireTextBounds.calendarMillis.contains($0.batchTsMillis) ? $0.batchTsMillis : 0 }),
                        \(rejections.map(\.part.rawValue)), \(rejections.map(\.sqlState)), \(rejections.map(\.reason)))
                 AS u(seq, ts_ms, part, sqlstate, reason)
            """, logger: logger)
        try await connection.query("""
            DELETE FROM ingest_rejections
            WHERE tenant_id = \(tenantID) AND agent_id = \(agentID)
              AND id <= (SELECT id FROM ingest_rejections WHERE tenant_id = \(tenantID) AND agent_id = \(agentID)
                         ORDER BY id DESC OFFSET \(keptPerAgent) LIMIT 1)
            """, logger: logger)
    }

    /// The agent's newest rejections, newest first.
    public static func list(tenantID: UUID, agentID: UUID, limit: Int, client: PostgresClient,
                            logger: Logger) async throws -> [IngestRejectionRecord] {
        let rows = try await client.query("""
            SELECT batch_seq, COALESCE((extract(epoch FROM batch_ts) * 1000)::bigint, 0), part, sqlstate, reason,
                   (extract(epoch FROM recorded_at) * 1000000)::bigint
            FROM ingest_rejections WHERE tenant_id = \(tenantID) AND agent_id = \(agentID)
            ORDER BY id DESC LIMIT \(Int64(limit))
            """, logger: logger)
        var result: [IngestRejectionRecord] = []
        for try await (seq, ts, part, sqlState, reason, recorded) in rows.decode((Int64, Int64, String, String, String, Int64).self) {
            result.append(IngestRejectionRecord(
                rejection: IngestRejection(batchSeq: UInt64(max(0, seq)), batchTsMillis: ts,
                                           part: IngestRejection.Part(rawValue: part) ?? .batch, sqlState: sqlState, reason: reason),
                recordedAtMicros: recorded))
        }
        return result
    }
}
