import CrowsnestWire
import Foundation
import Logging
import PostgresNIO
import XCTest

@testable import CrowsnestServer

/// The ingest writer against a real PostgreSQL: one transaction per batch, idempotent, exact rates and spans.
final class IngestWriterTests: XCTestCase {
    /// 2024-03-10 12:00:00 UTC.
    private let t0: Int64 = 1_710_072_000_000
    private let logger = IngestFixtures.logger

    /// Unix µs of a timestamp expression, exactly.
    private func micros(_ client: PostgresClient, _ query: PostgresQuery) async throws -> Int64? {
        let rows = try await client.query(query, logger: logger)
        for try await value in rows.decode(Int64?.self) { return value }
        return nil
    }

    func testABatchWritesSamplesHostContainersEventsAndSpansInOneGo() async throws {
        try await IngestFixtures.withWriter { client, writer, tenantID, agentID in
            let dieAt = (t0 - 5_000) * 1000 + 123
            let batch = IngestFixtures.batch(
                seq: 1, tsMillis: t0,
                containers: [
                    IngestFixtures.container("web", startedAtMillis: t0 - 3_600_000, cpuNanos: 1_000),
                    IngestFixtures.container("db", health: "healthy", cpuNanos: 2_000),
                    IngestFixtures.container("job", state: "exited", startedAtMillis: t0 - 60_000,
                                             finishedAtMillis: t0 - 5_000, exitCode: 1),
                ],
                events: [
                    IngestFixtures.event("job", "start", atMicros: (t0 - 60_000) * 1000),
                    IngestFixtures.event("job", "die", atMicros: dieAt, exitCode: 1),
                ],
                host: IngestFixtures.host())
            var memory = CounterMemory()
            let outcome = try await writer.write(batch, tenantID: tenantID, agentID: agentID, memory: &memory)
            XCTAssertEqual(outcome, .committed(containerSamples: 3))

            let counts = try await IngestFixtures.counts(client)
            XCTAssertEqual(counts, ["container_samples": 3, "host_samples": 1, "containers": 3, "container_events": 2,
                                    "status_spans": 4])
            let committedSeq = try await IngestFixtures.integer(client, "SELECT committed_seq FROM agents WHERE id = \(agentID)")
            XCTAssertEqual(committedSeq, 1)

            let dbRows = try await client.query(
                "SELECT health, labels->>'com.docker.compose.service', image FROM containers WHERE name = 'db'", logger: logger)
            for try await (health, service, image) in dbRows.decode((String, String?, String).self) {
                XCTAssertEqual(health, "healthy")
                XCTAssertEqual(service, "db")
                XCTAssertEqual(image, "example/db:1")
            }
            let target = TargetID.container(agentID: agentID, name: "job").description
            let openDown = try await micros(client, """
                SELECT (extract(epoch FROM started_at) * 1000000)::bigint FROM status_spans
                WHERE target_id = \(target) AND ended_at IS NULL AND state = 'down' AND cause = 'exited with code 1'
                """)
            XCTAssertEqual(openDown, dieAt, "the down span starts at the die event's microsecond")
            let webSince = try await micros(client, """
                SELECT (extract(epoch FROM started_at) * 1000000)::bigint FROM status_spans
                WHERE target_id = \(TargetID.container(agentID: agentID, name: "web").description) AND ended_at IS NULL AND state = 'up'
                """)
            XCTAssertEqual(webSince, (t0 - 3_600_000) * 1000, "a first-seen container is up since it started")
            let hostFilesystems = try await IngestFixtures.integer(
                client, "SELECT jsonb_array_length(filesystems)::bigint FROM host_samples WHERE agent_id = \(agentID)")
            XCTAssertEqual(hostFilesystems, 1)
        }
    }

    func testTheSameBatchAgainIsAReplayAndChangesNothing() async throws {
        try await IngestFixtures.withWriter { client, writer, tenantID, agentID in
            let batch = IngestFixtures.batch(
                seq: 5, tsMillis: t0, containers: [IngestFixtures.container("web"), IngestFixtures.container("db")],
                events: [IngestFixtures.event("web", "start", atMicros: (t0 - 1_000) * 1000)], host: IngestFixtures.host())
            var memory = CounterMemory()
            let firstOutcome = try await writer.write(batch, tenantID: tenantID, agentID: agentID, memory: &memory)
            XCTAssertEqual(firstOutcome, .committed(containerSamples: 2))
            let before = try await IngestFixtures.counts(client)

            var fresh = CounterMemory()
            let replayOutcome = try await writer.write(batch, tenantID: tenantID, agentID: agentID, memory: &fresh)
            XCTAssertEqual(replayOutcome, .replay)
            let countsAfterReplay = try await IngestFixtures.counts(client)
            XCTAssertEqual(countsAfterReplay, before)

            // A lower sequence with new content is a replay too: never written.
            let older = IngestFixtures.batch(seq: 4, tsMillis: t0 + 30_000, containers: [IngestFixtures.container("other")],
                                             host: IngestFixtures.host())
            let olderOutcome = try await writer.write(older, tenantID: tenantID, agentID: agentID, memory: &memory)
            XCTAssertEqual(olderOutcome, .replay)
            let countsAfterOlder = try await IngestFixtures.counts(client)
            XCTAssertEqual(countsAfterOlder, before)
            let otherContainers = try await IngestFixtures.integer(client, "SELECT count(*) FROM containers WHERE name = 'other'")
            XCTAssertEqual(otherContainers, 0)
            let committedSeq = try await IngestFixtures.integer(client, "SELECT committed_seq FROM agents WHERE id = \(agentID)")
            XCTAssertEqual(committedSeq, 5)
        }
    }

    private func rateBatches() -> (Crowsnest_V1_SampleBatch, Crowsnest_V1_SampleBatch) {
        let first = IngestFixtures.batch(
            seq: 1, tsMillis: t0,
            containers: [IngestFixtures.container("web", cpuNanos: 10_000_000_000, rx: 1_000, tx: 500, read: 0, write: 4_096)],
            host: IngestFixtures.host(cpuTotalNanos: 1_000_000_000_000, idleNanos: 800_000_000_000, rx: 1_000, tx: 2_000))
        // 30 s later: 60 s of CPU (two busy cores), 30 000 bytes received, 3 000 sent, 30 000 read, nothing written.
        let second = IngestFixtures.batch(
            seq: 2, tsMillis: t0 + 30_000,
            containers: [IngestFixtures.container("web", cpuNanos: 70_000_000_000, rx: 31_000, tx: 3_500, read: 30_000, write: 4_096)],
            host: IngestFixtures.host(cpuTotalNanos: 1_120_000_000_000, idleNanos: 860_000_000_000, rx: 61_000, tx: 2_000,
                                      uptime: 10_030))
        return (first, second)
    }

    private func assertRates(_ client: PostgresClient, agentID: UUID, file: StaticString = #filePath, line: UInt = #line) async throws {
        let rows = try await client.query("""
            SELECT cpu_percent, net_rx_bytes_per_second, net_tx_bytes_per_second, block_read_bytes_per_second,
                   block_write_bytes_per_second
            FROM container_samples WHERE agent_id = \(agentID) AND name = 'web' ORDER BY ts
            """, logger: logger)
        var samples: [[Double?]] = []
        for try await (cpu, rx, tx, read, write) in rows.decode((Double?, Double?, Double?, Double?, Double?).self) {
            samples.append([cpu, rx, tx, read, write])
        }
        XCTAssertEqual(samples.count, 2, file: file, line: line)
        XCTAssertEqual(samples.first, [nil, nil, nil, nil, nil], "no previous counters: no rates", file: file, line: line)
        XCTAssertEqual(samples.last, [200, 1_000, 100, 1_000, 0], file: file, line: line)

        let hostRows = try await client.query("""
            SELECT cpu_percent, net_rx_bytes_per_second, net_tx_bytes_per_second FROM host_samples
            WHERE agent_id = \(agentID) ORDER BY ts
            """, logger: logger)
        var host: [[Double?]] = []
        for try await (cpu, rx, tx) in hostRows.decode((Double?, Double?, Double?).self) { host.append([cpu, rx, tx]) }
        // 120 s of CPU time over 30 s, 60 s of it idle: 60 busy seconds = two cores = 200 %.
        XCTAssertEqual(host, [[nil, nil, nil], [200, 2_000, 0]], file: file, line: line)
    }

    func testRatesComeFromCounterDeltasOverOneInterval() async throws {
        try await IngestFixtures.withWriter { client, writer, tenantID, agentID in
            let (first, second) = rateBatches()
            var memory = CounterMemory()
            _ = try await writer.write(first, tenantID: tenantID, agentID: agentID, memory: &memory)
            _ = try await writer.write(second, tenantID: tenantID, agentID: agentID, memory: &memory)
            try await assertRates(client, agentID: agentID)
        }
    }

    func testRatesInANewSessionUseTheCountersStoredInTheDatabase() async throws {
        try await IngestFixtures.withWriter { client, writer, tenantID, agentID in
            let (first, second) = rateBatches()
            var session1 = CounterMemory()
            _ = try await writer.write(first, tenantID: tenantID, agentID: agentID, memory: &session1)
            var session2 = CounterMemory()  // reconnected: nothing in memory
            _ = try await writer.write(second, tenantID: tenantID, agentID: agentID, memory: &session2)
            try await assertRates(client, agentID: agentID)
        }
    }

    func testABatchWithoutDockerDoesNotMarkContainersRemoved() async throws {
        try await IngestFixtures.withWriter { client, writer, tenantID, agentID in
            var memory = CounterMemory()
            _ = try await writer.write(
                IngestFixtures.batch(seq: 1, tsMillis: t0, containers: [IngestFixtures.container("web"), IngestFixtures.container("db")]),
                tenantID: tenantID, agentID: agentID, memory: &memory)
            let blind = IngestFixtures.batch(seq: 2, tsMillis: t0 + 30_000, host: IngestFixtures.host(),
                                             unavailableReason: "cannot reach /var/run/docker.sock: connection refused")
            let blindOutcome = try await writer.write(blind, tenantID: tenantID, agentID: agentID, memory: &memory)
            XCTAssertEqual(blindOutcome, .committed(containerSamples: 0))
            let removedCount = try await IngestFixtures.integer(client, "SELECT count(*) FROM containers WHERE removed_at IS NOT NULL")
            XCTAssertEqual(removedCount, 0)
            let reasonRows = try await client.query("SELECT containers_unavailable_reason FROM agents WHERE id = \(agentID)", logger: logger)
            for try await reason in reasonRows.decode(String.self) {
                XCTAssertEqual(reason, "cannot reach /var/run/docker.sock: connection refused")
            }

            // A complete batch without "db": db is gone since that tick; web stays.
            _ = try await writer.write(
                IngestFixtures.batch(seq: 3, tsMillis: t0 + 60_000, containers: [IngestFixtures.container("web")]),
                tenantID: tenantID, agentID: agentID, memory: &memory)
            let removed = try await micros(client, "SELECT (extract(epoch FROM removed_at) * 1000000)::bigint FROM containers WHERE name = 'db'")
            XCTAssertEqual(removed, (t0 + 60_000) * 1000)
            let webPresent = try await IngestFixtures.integer(client, "SELECT count(*) FROM containers WHERE name = 'web' AND removed_at IS NULL")
            XCTAssertEqual(webPresent, 1)

            // It comes back: no longer removed.
            _ = try await writer.write(
                IngestFixtures.batch(seq: 4, tsMillis: t0 + 90_000, containers: [IngestFixtures.container("web"), IngestFixtures.container("db")]),
                tenantID: tenantID, agentID: agentID, memory: &memory)
            let removedAfterReturn = try await IngestFixtures.integer(client, "SELECT count(*) FROM containers WHERE removed_at IS NOT NULL")
            XCTAssertEqual(removedAfterReturn, 0)
        }
    }

    func testAStopClosesTheUpSpanAtTheDieEventsExactTime() async throws {
        try await IngestFixtures.withWriter { client, writer, tenantID, agentID in
            var memory = CounterMemory()
            _ = try await writer.write(
                IngestFixtures.batch(seq: 1, tsMillis: t0, containers: [IngestFixtures.container("web", startedAtMillis: t0 - 60_000)]),
                tenantID: tenantID, agentID: agentID, memory: &memory)
            let killAt = t0 * 1000 + 12_345_678
            let dieAt = killAt + 211
            let stop = IngestFixtures.batch(
                seq: 2, tsMillis: t0 + 30_000,
                containers: [IngestFixtures.container("web", state: "exited", startedAtMillis: t0 - 60_000,
                                                      finishedAtMillis: dieAt / 1000, exitCode: 143)],
                events: [
                    IngestFixtures.event("web", "kill", atMicros: killAt, detail: "15"),
                    IngestFixtures.event("web", "die", atMicros: dieAt, exitCode: 143),
                    IngestFixtures.event("web", "stop", atMicros: dieAt + 300),
                ])
            _ = try await writer.write(stop, tenantID: tenantID, agentID: agentID, memory: &memory)

            let target = TargetID.container(agentID: agentID, name: "web").description
            let rows = try await client.query("""
                SELECT state, (extract(epoch FROM started_at) * 1000000)::bigint,
                       (extract(epoch FROM ended_at) * 1000000)::bigint, cause
                FROM status_spans WHERE target_id = \(target) ORDER BY started_at
                """, logger: logger)
            var spans: [String] = []
            for try await (state, started, ended, cause) in rows.decode((String, Int64, Int64?, String).self) {
                spans.append("\(state) \(started) \(ended.map(String.init) ?? "open") \(cause)")
            }
            XCTAssertEqual(spans, [
                "up \((t0 - 60_000) * 1000) \(dieAt) running",
                "down \(dieAt) open exited with code 143",
            ])
            let webEvents = try await IngestFixtures.integer(client, "SELECT count(*) FROM container_events WHERE name = 'web'")
            XCTAssertEqual(webEvents, 3)
        }
    }

    /// An event-only batch (sent within a second of Docker's event) stores its events and moves the span at the
    /// event's time, and is no sweep: no container is marked removed, no host row is written, and the next
    /// sweep of the session still writes only what changed.
    func testAnEventOnlyBatchMovesTheSpanAndRemovesNothing() async throws {
        try await IngestFixtures.withWriter { client, writer, tenantID, agentID in
            var memory = CounterMemory()
            func count(_ query: PostgresQuery) async throws -> Int64 { try await IngestFixtures.integer(client, query) }
            let web = IngestFixtures.container("web", startedAtMillis: t0 - 60_000)
            _ = try await writer.write(
                IngestFixtures.batch(seq: 1, tsMillis: t0, containers: [web, IngestFixtures.container("db")], host: IngestFixtures.host()),
                tenantID: tenantID, agentID: agentID, memory: &memory)
            let dieAt = t0 * 1000 + 4_321_000
            // Figures riding along in an event-only batch (a buggy or hostile agent) are not a sweep's: ignored.
            var urgent = IngestFixtures.batch(seq: 2, tsMillis: t0 + 4_500, containers: [IngestFixtures.container("intruder")],
                                              events: [IngestFixtures.event("web", "die", atMicros: dieAt, exitCode: 137)],
                                              host: IngestFixtures.host())
            urgent.eventsOnly = true
            var missing = Crowsnest_V1_MissingContainer()
            missing.name = "db"
            missing.reason = "claimed missing by an event-only batch"
            urgent.missing = [missing]
            let outcome = try await writer.write(urgent, tenantID: tenantID, agentID: agentID, memory: &memory)
            XCTAssertEqual(outcome, .committed(containerSamples: 0))
            do { let value = try await count("SELECT count(*) FROM container_samples"); XCTAssertEqual(value, 2, "no sample for it") }
            do { let value = try await count("SELECT count(*) FROM containers WHERE name = 'intruder'"); XCTAssertEqual(value, 0) }
            let removed = try await count("SELECT count(*) FROM containers WHERE removed_at IS NOT NULL")
            XCTAssertEqual(removed, 0, "an event-only batch is no sweep: nothing removed")
            do { let value = try await count("SELECT count(*) FROM host_samples"); XCTAssertEqual(value, 1, "no host row for it") }
            do { let value = try await count("SELECT count(*) FROM container_events WHERE name = 'web'"); XCTAssertEqual(value, 1) }
            let target = TargetID.container(agentID: agentID, name: "web").description
            let downSince = try await micros(client, """
                SELECT (extract(epoch FROM started_at) * 1000000)::bigint FROM status_spans
                WHERE target_id = \(target) AND state = 'down' AND ended_at IS NULL
                """)
            XCTAssertEqual(downSince, dieAt, "down from Docker's die time, before the next sweep")
            do { let value = try await count("SELECT committed_seq FROM agents WHERE id = \(agentID)"); XCTAssertEqual(value, 2) }

            // The next sweep still knows both containers as written: db unchanged is not rewritten, web's exit is.
            var exited = web
            exited.state = "exited"
            _ = try await writer.write(
                IngestFixtures.batch(seq: 3, tsMillis: t0 + 30_000, containers: [exited, IngestFixtures.container("db")]),
                tenantID: tenantID, agentID: agentID, memory: &memory)
            do { let value = try await count("SELECT count(*) FROM containers WHERE removed_at IS NOT NULL"); XCTAssertEqual(value, 0) }
            do { let value = try await count("SELECT count(*) FROM containers WHERE state = 'exited'"); XCTAssertEqual(value, 1) }
        }
    }

    func testEventsLandInTheirDaysPartitionAndOnesDatedOutsideTheWindowAreDropped() async throws {
        try await IngestFixtures.withWriter { client, writer, tenantID, agentID in
            var memory = CounterMemory()
            // Docker's die event from just before midnight of the previous day (spooled across it), and one dated
            // ten years ahead by a wrong clock.
            let yesterday = (t0 / 86_400_000 * 86_400_000 - 1_000) * 1000
            let batch = IngestFixtures.batch(seq: 1, tsMillis: t0, containers: [IngestFixtures.container("web")],
                                             events: [IngestFixtures.event("web", "die", atMicros: yesterday, exitCode: 1),
                                                      IngestFixtures.event("web", "start", atMicros: (t0 + 315_360_000_000) * 1000)],
                                             host: IngestFixtures.host())
            let outcome = try await writer.write(batch, tenantID: tenantID, agentID: agentID, memory: &memory)
            XCTAssertEqual(outcome, .committed(containerSamples: 1))
            let stored = try await IngestFixtures.integer(client, "SELECT count(*) FROM container_events")
            XCTAssertEqual(stored, 1, "the event from the future is dropped, the batch kept")
            let partition = try await IngestFixtures.integer(client, """
                SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
                WHERE p.relname = 'container_events'
                """)
            XCTAssertEqual(partition, 2, "the batch's day and the previous day, not a day ten years ahead")
        }
    }

    func testPartitionsAreCreatedForTheBatchDayAnywhereInTheRetention() async throws {
        try await IngestFixtures.withWriter { client, writer, tenantID, agentID in
            var memory = CounterMemory()
            let old: Int64 = 1_708_387_200_500  // 2024-02-20 00:00:00.5 UTC, 19 days before the fixtures' server clock
            for (seq, ts) in [(UInt64(1), old), (2, t0)] {
                let outcome = try await writer.write(
                    IngestFixtures.batch(seq: seq, tsMillis: ts, containers: [IngestFixtures.container("web")], host: IngestFixtures.host()),
                    tenantID: tenantID, agentID: agentID, memory: &memory)
                XCTAssertEqual(outcome, .committed(containerSamples: 1))
            }
            let rows = try await client.query("""
                SELECT tableoid::regclass::text, (extract(epoch FROM ts) * 1000)::bigint FROM container_samples
                UNION ALL SELECT tableoid::regclass::text, (extract(epoch FROM ts) * 1000)::bigint FROM host_samples
                ORDER BY 1
                """, logger: logger)
            var placed: [String] = []
            for try await (partition, ts) in rows.decode((String, Int64).self) { placed.append("\(partition) \(ts)") }
            XCTAssertEqual(placed, [
                "container_samples_20240220 \(old)", "container_samples_20240310 \(t0)",
                "host_samples_20240220 \(old)", "host_samples_20240310 \(t0)",
            ])
        }
    }

    func testAHealthOutputWithANulByteDoesNotPoisonTheBatch() async throws {
        try await IngestFixtures.withWriter { client, writer, tenantID, agentID in
            var sample = IngestFixtures.container("web", health: "unhealthy")
            sample.healthOutput = "binary\u{0}garbage\n"
            var memory = CounterMemory()
            let outcome = try await writer.write(IngestFixtures.batch(seq: 1, tsMillis: t0, containers: [sample]),
                                                 tenantID: tenantID, agentID: agentID, memory: &memory)
            XCTAssertEqual(outcome, .committed(containerSamples: 1))
            let unhealthyContainers = try await IngestFixtures.integer(
                client, "SELECT count(*) FROM containers WHERE health = 'unhealthy' AND health_output = \("binarygarbage\n")")
            XCTAssertEqual(unhealthyContainers, 1)
        }
    }
}
