import CrowsnestWire
import Foundation
import PostgresNIO
import XCTest

@testable import CrowsnestServer

/// Within one session the writer rewrites a `containers` row only when the container's identity or state changed.
final class IngestWriterChangeTrackingTests: XCTestCase {
    private let t0: Int64 = 1_710_072_000_000
    private let logger = IngestFixtures.logger

    /// The row version (xmin) of each container row; it changes whenever the row is rewritten.
    private func rowVersions(_ client: PostgresClient) async throws -> [String: String] {
        let rows = try await client.query("SELECT name, xmin::text FROM containers", logger: logger)
        var result: [String: String] = [:]
        for try await (name, version) in rows.decode((String, String).self) { result[name] = version }
        return result
    }

    /// A test database with one registered agent, and a writer for its batches.
    private func withRegisteredAgent(
        isolation: isolated (any Actor)? = #isolation,
        _ body: (PostgresClient, IngestWriter, UUID, UUID) async throws -> Void
    ) async throws {
        try await TestPostgres.withTestDatabase { client in
            let (tenantID, agentID) = try await IngestFixtures.seedAgent(client)
            let writer = IngestWriter(client: client, partitions: PartitionStore(client: client, logger: logger), logger: logger,
                                      timeWindow: IngestFixtures.timeWindow)
            try await body(client, writer, tenantID, agentID)
        }
    }

    func testUnchangedContainersAreNotRewrittenAndChangedOnesAre() async throws {
        try await withRegisteredAgent { client, writer, tenantID, agentID in
            var memory = CounterMemory()
            let web = IngestFixtures.container("web", cpuNanos: 1_000)
            let db = IngestFixtures.container("db", cpuNanos: 2_000)
            _ = try await writer.write(IngestFixtures.batch(seq: 1, tsMillis: t0, containers: [web, db]),
                                       tenantID: tenantID, agentID: agentID, memory: &memory)
            let first = try await rowVersions(client)
            XCTAssertEqual(Set(first.keys), ["web", "db"])

            // Same state, new counters: no container row is rewritten, samples still land.
            let web2 = IngestFixtures.container("web", cpuNanos: 5_000)
            var db2 = IngestFixtures.container("db", cpuNanos: 9_000)
            _ = try await writer.write(IngestFixtures.batch(seq: 2, tsMillis: t0 + 30_000, containers: [web2, db2]),
                                       tenantID: tenantID, agentID: agentID, memory: &memory)
            let second = try await rowVersions(client)
            XCTAssertEqual(second, first)
            let samples = try await IngestFixtures.integer(client, "SELECT count(*) FROM container_samples")
            XCTAssertEqual(samples, 4)

            // db stops: only its row is rewritten, and the new state is stored.
            db2.state = "exited"
            db2.exitCode = 137
            db2.finishedAtUnixMs = t0 + 45_000
            _ = try await writer.write(IngestFixtures.batch(seq: 3, tsMillis: t0 + 60_000, containers: [web2, db2]),
                                       tenantID: tenantID, agentID: agentID, memory: &memory)
            let third = try await rowVersions(client)
            XCTAssertEqual(third["web"], first["web"])
            XCTAssertNotEqual(third["db"], first["db"])
            let exitCode = try await IngestFixtures.integer(client, "SELECT exit_code FROM containers WHERE name = 'db'")
            XCTAssertEqual(exitCode, 137)
            let downSpans = try await IngestFixtures.integer(
                client, "SELECT count(*) FROM status_spans WHERE state = 'down' AND ended_at IS NULL")
            XCTAssertEqual(downSpans, 1)

            // web disappears from Docker's list: it is marked removed.
            _ = try await writer.write(IngestFixtures.batch(seq: 4, tsMillis: t0 + 90_000, containers: [db2]),
                                       tenantID: tenantID, agentID: agentID, memory: &memory)
            let removed = try await IngestFixtures.integer(client, "SELECT count(*) FROM containers WHERE removed_at IS NOT NULL")
            XCTAssertEqual(removed, 1)

            // A new session (fresh memory) writes every container once again.
            var fresh = CounterMemory()
            _ = try await writer.write(IngestFixtures.batch(seq: 5, tsMillis: t0 + 120_000, containers: [db2]),
                                       tenantID: tenantID, agentID: agentID, memory: &fresh)
            let fifth = try await rowVersions(client)
            XCTAssertNotEqual(fifth["db"], third["db"])
        }
    }

    func testAContainerReplacedByAnotherInOneSweepIsRemovedAndTheNewOneWritten() async throws {
        // The same number of containers before and after, so only the names tell that the fleet changed; and a
        // name sent twice in one batch (the last one counts).
        try await withRegisteredAgent { client, writer, tenantID, agentID in
            var memory = CounterMemory()
            let web = IngestFixtures.container("web", cpuNanos: 1_000)
            let old = IngestFixtures.container("old", cpuNanos: 2_000)
            _ = try await writer.write(IngestFixtures.batch(seq: 1, tsMillis: t0, containers: [web, old]),
                                       tenantID: tenantID, agentID: agentID, memory: &memory)
            let first = try await rowVersions(client)

            var stale = IngestFixtures.container("new", cpuNanos: 3_000)
            stale.state = "created"
            let new = IngestFixtures.container("new", cpuNanos: 3_500)
            _ = try await writer.write(IngestFixtures.batch(seq: 2, tsMillis: t0 + 30_000, containers: [web, stale, new]),
                                       tenantID: tenantID, agentID: agentID, memory: &memory)
            let second = try await rowVersions(client)
            XCTAssertEqual(second["web"], first["web"], "web did not change")
            XCTAssertNotNil(second["new"], "the new container has a row")
            let removed = try await IngestFixtures.integer(
                client, "SELECT count(*) FROM containers WHERE name = 'old' AND removed_at IS NOT NULL")
            XCTAssertEqual(removed, 1, "the replaced container is marked removed")
            let newState = try await IngestFixtures.integer(
                client, "SELECT count(*) FROM containers WHERE name = 'new' AND state = 'running' AND removed_at IS NULL")
            XCTAssertEqual(newState, 1, "the last sample of a name sent twice counts")
            let newSpans = try await IngestFixtures.integer(
                client, "SELECT count(*) FROM status_spans WHERE target_id LIKE '%new' AND state = 'up' AND ended_at IS NULL")
            XCTAssertEqual(newSpans, 1, "the new container's span is opened")
        }
    }
}
