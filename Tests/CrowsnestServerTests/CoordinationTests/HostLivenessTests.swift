import CrowsnestWire
import Foundation
import Logging
import PostgresNIO
import XCTest

@testable import CrowsnestServer

/// Host liveness spans against a real PostgreSQL, through the real ingest writer and the singleton job: `up` from
/// the first batch, `unknown` (never `down`) from the last batch once the agent is silent for two intervals plus
/// grace, and spooled batches that fill the gap take the `unknown` back.
final class HostLivenessTests: XCTestCase {
    /// 2024-03-10 12:00:00 UTC, the ingest fixtures' time.
    private let t0: Int64 = 1_710_072_000_000
    private let logger = IngestFixtures.logger

    private struct Span: Equatable, CustomStringConvertible {
        var state: String
        var startMillis: Int64
        var endMillis: Int64?
        var description: String { "\(state) [\(startMillis), \(endMillis.map(String.init) ?? "open"))" }
    }

    private func hostSpans(_ client: PostgresClient, _ agentID: UUID) async throws -> [Span] {
        let rows = try await client.query("""
            SELECT state, (extract(epoch FROM started_at) * 1000)::bigint, (extract(epoch FROM ended_at) * 1000)::bigint
            FROM status_spans WHERE target_id = \(TargetID.host(agentID: agentID).description) ORDER BY started_at
            """, logger: logger)
        var spans: [Span] = []
        for try await (state, start, end) in rows.decode((String, Int64, Int64?).self) {
            spans.append(Span(state: state, startMillis: start, endMillis: end))
        }
        return spans
    }

    private func write(_ writer: IngestWriter, _ tenantID: UUID, _ agentID: UUID, seq: UInt64, at millis: Int64,
                       memory: inout CounterMemory) async throws {
        let outcome = try await writer.write(IngestFixtures.batch(seq: seq, tsMillis: millis, host: IngestFixtures.host()),
                                             tenantID: tenantID, agentID: agentID, memory: &memory)
        XCTAssertEqual(outcome, .committed(containerSamples: 0))
    }

    /// The agent last committed `seconds` ago by the database clock.
    private func silence(_ client: PostgresClient, _ agentID: UUID, seconds: Int) async throws {
        try await client.query("UPDATE agents SET last_seen = now() - \(seconds) * interval '1 second' WHERE id = \(agentID)",
                               logger: logger)
    }

    /// The job, keeping the fixtures' day partitions and spans (March 2024) that the retention would drop.
    private func job(_ client: PostgresClient) -> HousekeepingJob {
        var configuration = HousekeepingJob.Configuration()
        configuration.rawRetentionDays = 3650
        configuration.spanRetentionDays = 36500
        return HousekeepingJob(configuration: configuration, client: client, logger: logger)
    }

    func testASilentHostIsUnknownFromItsLastBatchUntilTheNextAndNeverDown() async throws {
        try await IngestFixtures.withWriter { client, writer, tenantID, agentID in
            var memory = CounterMemory()
            try await write(writer, tenantID, agentID, seq: 1, at: t0, memory: &memory)
            try await write(writer, tenantID, agentID, seq: 2, at: t0 + 30_000, memory: &memory)
            var spans = try await hostSpans(client, agentID)
            XCTAssertEqual(spans, [Span(state: "up", startMillis: t0, endMillis: nil)], "up from the first batch, one span")

            // Batches every 30 s: silent for 69 s is within two intervals plus 10 s of grace.
            let housekeeping = job(client)
            try await silence(client, agentID, seconds: 69)
            var round = try await housekeeping.round()
            XCTAssertTrue(round.holder)
            XCTAssertEqual(round.silentHosts, 0)
            try await silence(client, agentID, seconds: 75)
            round = try await housekeeping.round()
            XCTAssertEqual(round.silentHosts, 1)
            round = try await housekeeping.round()
            XCTAssertEqual(round.silentHosts, 0, "a host already unknown is left as it is")
            spans = try await hostSpans(client, agentID)
            XCTAssertEqual(spans, [Span(state: "up", startMillis: t0, endMillis: t0 + 30_000),
                                   Span(state: "unknown", startMillis: t0 + 30_000, endMillis: nil)],
                           "unknown from the last batch's own time")
            let cause = try await client.query("SELECT cause FROM status_spans WHERE state = 'unknown'", logger: logger)
            for try await text in cause.decode(String.self) {
                XCTAssertEqual(text, "no data from the agent for 70 s (two sampling intervals plus grace)")
            }
            let states = try await client.query("SELECT count(*) FROM status_spans WHERE state = 'down'", logger: logger)
            for try await count in states.decode(Int64.self) { XCTAssertEqual(count, 0, "a silent agent never makes its host down") }

            // The agent comes back ten minutes later with nothing spooled in between: the gap stays unknown.
            try await write(writer, tenantID, agentID, seq: 3, at: t0 + 630_000, memory: &memory)
            spans = try await hostSpans(client, agentID)
            XCTAssertEqual(spans, [Span(state: "up", startMillis: t0, endMillis: t0 + 30_000),
                                   Span(state: "unknown", startMillis: t0 + 30_000, endMillis: t0 + 630_000),
                                   Span(state: "up", startMillis: t0 + 630_000, endMillis: nil)])
            let hosts = try await InfrastructureQueries(database: client, logger: logger).hosts(tenantID: tenantID)
            XCTAssertEqual(hosts.map(\.state), [.up])
        }
    }

    func testSpooledBatchesThatFillTheGapTakeTheUnknownBack() async throws {
        try await IngestFixtures.withWriter { client, writer, tenantID, agentID in
            var memory = CounterMemory()
            try await write(writer, tenantID, agentID, seq: 1, at: t0, memory: &memory)
            try await write(writer, tenantID, agentID, seq: 2, at: t0 + 30_000, memory: &memory)
            // The server was down: nothing committed for five minutes, and the job ran before the agent reconnected.
            try await silence(client, agentID, seconds: 300)
            let round = try await job(client).round()
            XCTAssertEqual(round.silentHosts, 1)
            let marked = try await hostSpans(client, agentID)
            XCTAssertEqual(marked, [Span(state: "up", startMillis: t0, endMillis: t0 + 30_000),
                                    Span(state: "unknown", startMillis: t0 + 30_000, endMillis: nil)])
            let during = try await InfrastructureQueries(database: client, logger: logger).hosts(tenantID: tenantID)
            XCTAssertEqual(during.map(\.state), [.unknown])
            // The agent replays its spool: a batch every 30 s through the outage.
            for seq in 3...12 {
                try await write(writer, tenantID, agentID, seq: UInt64(seq), at: t0 + Int64(seq - 1) * 30_000, memory: &memory)
            }
            let spans = try await hostSpans(client, agentID)
            XCTAssertEqual(spans, [Span(state: "up", startMillis: t0, endMillis: nil)], "no unknown once the spool is replayed")
            let after = try await InfrastructureQueries(database: client, logger: logger).hosts(tenantID: tenantID)
            XCTAssertEqual(after.map(\.state), [.up])
        }
    }

    func testAHostNeverSeenHasNoSpanAndIsUnknown() async throws {
        try await IngestFixtures.withWriter { client, _, tenantID, agentID in
            try await silence(client, agentID, seconds: 3600)
            let round = try await job(client).round()
            XCTAssertEqual(round.silentHosts, 0, "only an up host can turn unknown")
            let spans = try await hostSpans(client, agentID)
            XCTAssertEqual(spans, [])
            let hosts = try await InfrastructureQueries(database: client, logger: logger).hosts(tenantID: tenantID)
            XCTAssertEqual(hosts.map(\.state), [.unknown])
        }
    }
}
