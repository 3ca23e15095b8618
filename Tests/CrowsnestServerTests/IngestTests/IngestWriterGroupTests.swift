import CrowsnestWire
import Foundation
import Logging
import PostgresNIO
import XCTest

@testable import CrowsnestServer

/// Several batches of one agent in one transaction, against a real PostgreSQL: replays inside a group, rates
/// between its batches, and all-or-nothing when one statement fails.
final class IngestWriterGroupTests: XCTestCase {
    /// 2024-03-10 12:00:00 UTC.
    private let t0: Int64 = 1_710_072_000_000
    private let logger = IngestFixtures.logger

    private func batch(_ seq: UInt64, cpuSeconds: UInt64, dropped: UInt64 = 0, events: [Crowsnest_V1_ContainerEvent] = []) -> Crowsnest_V1_SampleBatch {
        var batch = IngestFixtures.batch(
            seq: seq, tsMillis: t0 + Int64(seq) * 10_000,
            containers: [IngestFixtures.container("web", cpuNanos: cpuSeconds * 1_000_000_000)],
            events: events,
            host: IngestFixtures.host(cpuTotalNanos: 1_000_000_000_000 + seq * 20_000_000_000, idleNanos: 800_000_000_000,
                                      uptime: 10_000 + seq * 10))
        batch.spoolDroppedBatches = dropped
        return batch
    }

    func testAGroupStoresEveryBatchWithRatesBetweenThem() async throws {
        try await IngestFixtures.withWriter { client, writer, tenantID, agentID in
            var memory = CounterMemory()
            // 10 s apart, 5 s of CPU each time: 50 % of one core.
            let outcomes = try await writer.write(group: [batch(1, cpuSeconds: 10), batch(2, cpuSeconds: 15), batch(3, cpuSeconds: 20)],
                                                  tenantID: tenantID, agentID: agentID, memory: &memory)
            XCTAssertEqual(outcomes, Array(repeating: .committed(containerSamples: 1), count: 3))
            let rows = try await client.query(
                "SELECT cpu_percent FROM container_samples WHERE agent_id = \(agentID) ORDER BY ts", logger: logger)
            var cpu: [Double?] = []
            for try await value in rows.decode(Double?.self) { cpu.append(value) }
            XCTAssertEqual(cpu, [nil, 50, 50])
            // Host rows are rated against the previous host row written earlier in the same transaction.
            let hostRows = try await client.query(
                "SELECT cpu_percent FROM host_samples WHERE agent_id = \(agentID) ORDER BY ts", logger: logger)
            var hostCPU: [Double?] = []
            for try await value in hostRows.decode(Double?.self) { hostCPU.append(value) }
            XCTAssertEqual(hostCPU, [nil, 200, 200])
            let committed = try await IngestFixtures.integer(client, "SELECT committed_seq FROM agents WHERE id = \(agentID)")
            XCTAssertEqual(committed, 3)
            // The next group of the session continues from the counters the group left in memory.
            _ = try await writer.write(group: [batch(4, cpuSeconds: 30)], tenantID: tenantID, agentID: agentID, memory: &memory)
            let last = try await IngestFixtures.integer(
                client, "SELECT cpu_percent::bigint FROM container_samples WHERE agent_id = \(agentID) ORDER BY ts DESC LIMIT 1")
            XCTAssertEqual(last, 100)
        }
    }

    func testReplaysInsideAGroupAreSkippedAndOnlyNewBatchesCount() async throws {
        try await IngestFixtures.withWriter { client, writer, tenantID, agentID in
            var memory = CounterMemory()
            _ = try await writer.write(group: [batch(5, cpuSeconds: 1, dropped: 4), batch(6, cpuSeconds: 2, dropped: 20)],
                                       tenantID: tenantID, agentID: agentID, memory: &memory)
            // After a lost ack the agent resends 5 and 6 with 7 behind them; a stray 7 again is a replay too.
            var fresh = CounterMemory()
            let outcomes = try await writer.write(
                group: [batch(5, cpuSeconds: 1, dropped: 4), batch(6, cpuSeconds: 2, dropped: 20), batch(7, cpuSeconds: 3, dropped: 3),
                        batch(7, cpuSeconds: 3, dropped: 3)],
                tenantID: tenantID, agentID: agentID, memory: &fresh)
            XCTAssertEqual(outcomes, [.replay, .replay, .committed(containerSamples: 1), .replay])
            let counts = try await IngestFixtures.counts(client)
            XCTAssertEqual(counts["container_samples"], 3)
            XCTAssertEqual(counts["host_samples"], 3)
            let committed = try await IngestFixtures.integer(client, "SELECT committed_seq FROM agents WHERE id = \(agentID)")
            XCTAssertEqual(committed, 7)
            let dropped = try await IngestFixtures.integer(client, "SELECT spool_dropped_batches FROM agents WHERE id = \(agentID)")
            XCTAssertEqual(dropped, 27, "dropped counts of replayed batches are not added twice")

            let allReplays = try await writer.write(group: [batch(6, cpuSeconds: 2), batch(7, cpuSeconds: 3)],
                                                    tenantID: tenantID, agentID: agentID, memory: &fresh)
            XCTAssertEqual(allReplays, [.replay, .replay])
            let countsAfter = try await IngestFixtures.counts(client)
            XCTAssertEqual(countsAfter, counts)
        }
    }

    func testWhenOneBatchOfAGroupFailsNothingOfTheGroupIsStored() async throws {
        try await IngestFixtures.withWriter { client, writer, tenantID, agentID in
            // A real failure inside the transaction: PostgreSQL refuses the second batch's event.
            try await client.query("""
                CREATE FUNCTION refuse_boom() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN IF NEW.action = 'boom' THEN RAISE EXCEPTION 'refused by test trigger'; END IF; RETURN NEW; END $$
                """, logger: logger)
            try await client.query("""
                CREATE TRIGGER refuse_boom BEFORE INSERT ON container_events FOR EACH ROW EXECUTE FUNCTION refuse_boom()
                """, logger: logger)
            var memory = CounterMemory()
            let poisoned = batch(2, cpuSeconds: 2, events: [IngestFixtures.event("web", "boom", atMicros: t0 * 1000)])
            do {
                _ = try await writer.write(group: [batch(1, cpuSeconds: 1), poisoned, batch(3, cpuSeconds: 3)],
                                           tenantID: tenantID, agentID: agentID, memory: &memory)
                XCTFail("the group should have failed")
            } catch {
                XCTAssertTrue(String(reflecting: error).contains("refused by test trigger"), String(reflecting: error))
            }
            let counts = try await IngestFixtures.counts(client)
            XCTAssertEqual(counts.values.reduce(0, +), 0, "nothing of the group may remain: \(counts)")
            let committed = try await IngestFixtures.integer(client, "SELECT committed_seq FROM agents WHERE id = \(agentID)")
            XCTAssertEqual(committed, 0)
            XCTAssertFalse(memory.loaded, "the session's memory must not remember a rolled-back group")

            let outcomes = try await writer.write(group: [batch(1, cpuSeconds: 1), batch(3, cpuSeconds: 3)],
                                                  tenantID: tenantID, agentID: agentID, memory: &memory)
            XCTAssertEqual(outcomes, [.committed(containerSamples: 1), .committed(containerSamples: 1)])
        }
    }

    func testAGroupForAnAgentThatIsNotRegisteredFailsWithAClearError() async throws {
        try await IngestFixtures.withWriter { client, writer, tenantID, _ in
            var memory = CounterMemory()
            let stranger = UUID()
            do {
                _ = try await writer.write(group: [batch(1, cpuSeconds: 1)], tenantID: tenantID, agentID: stranger, memory: &memory)
                XCTFail("an unknown agent's batch must not be stored")
            } catch let error as StoreError {
                XCTAssertEqual(error.code, .notFound)
                XCTAssertTrue(error.message.contains("is not registered"), error.message)
            }
            let counts = try await IngestFixtures.counts(client)
            XCTAssertEqual(counts["container_samples"], 0)
        }
    }
}
