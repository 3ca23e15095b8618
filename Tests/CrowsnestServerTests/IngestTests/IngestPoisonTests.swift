import CrowsnestWire
import Foundation
import Logging
import PostgresNIO
import XCTest

@testable import CrowsnestServer

/// Batches whose data PostgreSQL (or the server) refuses: each is stored as far as it can be, what is refused is
/// recorded in the agent's rejection log, and the batch counts as committed so the agent's stream moves on.
final class IngestPoisonTests: XCTestCase {
    private let logger = IngestFixtures.logger
    private let t0: Int64 = 1_710_072_000_000

    private func rejections(_ client: PostgresClient, _ agentID: UUID) async throws -> [(seq: Int64, part: String, sqlstate: String, reason: String)] {
        let rows = try await client.query(
            "SELECT batch_seq, part, sqlstate, reason FROM ingest_rejections WHERE agent_id = \(agentID) ORDER BY id",
            logger: logger)
        var result: [(Int64, String, String, String)] = []
        for try await row in rows.decode((Int64, String, String, String).self) { result.append(row) }
        return result
    }

    private func committedSeq(_ client: PostgresClient, _ agentID: UUID) async throws -> Int64 {
        try await IngestFixtures.integer(client, "SELECT committed_seq FROM agents WHERE id = \(agentID)")
    }

    func testNulBytesInLabelsNamesAndOutputAreRemovedAndTheBatchIsStored() async throws {
        try await IngestFixtures.withWriter { client, writer, tenantID, agentID in
            var poisoned = IngestFixtures.container("we\u{0}b")
            poisoned.labels = ["a\u{0}b": "x\u{0}y", "plain": "v"]
            poisoned.image = "img\u{0}:1"
            poisoned.healthOutput = "out\u{0}put"
            var event = IngestFixtures.event("we\u{0}b", "health_status", atMicros: t0 * 1000, detail: "un\u{0}healthy")
            event.dockerID = "id\u{0}"
            var memory = CounterMemory()
            let outcome = try await writer.write(IngestFixtures.batch(seq: 1, tsMillis: t0, containers: [poisoned],
                                                                      events: [event], host: IngestFixtures.host()),
                                                 tenantID: tenantID, agentID: agentID, memory: &memory)
            XCTAssertEqual(outcome, .committed(containerSamples: 1))
            let labels = try await client.query(
                "SELECT name, labels::text, image, health_output FROM containers WHERE agent_id = \(agentID)", logger: logger)
            var rows: [[String]] = []
            for try await (name, json, image, output) in labels.decode((String, String, String, String).self) {
                rows.append([name, json, image, output])
            }
            XCTAssertEqual(rows, [["web", #"{"ab": "xy", "plain": "v"}"#, "img:1", "output"]])
            let samples = try await IngestFixtures.integer(client, "SELECT count(*) FROM container_samples WHERE name = 'web'")
            XCTAssertEqual(samples, 1)
            let recorded = try await rejections(client, agentID)
            XCTAssertTrue(recorded.isEmpty, "cleaning is not a rejection: \(recorded)")
        }
    }

    func testSamplesForATimeAlreadyStoredAreSkippedAndCountedWhileNewOnesAreKept() async throws {
        try await IngestFixtures.withWriter { client, writer, tenantID, agentID in
            var memory = CounterMemory()
            _ = try await writer.write(IngestFixtures.batch(seq: 1, tsMillis: t0, containers: [IngestFixtures.container("web")]),
                                       tenantID: tenantID, agentID: agentID, memory: &memory)
            // The agent's clock stepped back: the next batch carries the same tick again, plus a new container.
            var fresh = CounterMemory()
            let outcome = try await writer.write(
                IngestFixtures.batch(seq: 2, tsMillis: t0, containers: [IngestFixtures.container("web"), IngestFixtures.container("db")],
                                     host: IngestFixtures.host()),
                tenantID: tenantID, agentID: agentID, memory: &fresh)
            XCTAssertEqual(outcome, .committed(containerSamples: 2))
            let web = try await IngestFixtures.integer(client, "SELECT count(*) FROM container_samples WHERE name = 'web'")
            let db = try await IngestFixtures.integer(client, "SELECT count(*) FROM container_samples WHERE name = 'db'")
            XCTAssertEqual([web, db], [1, 1], "the duplicate is skipped, the new row kept")
            let duplicates = try await IngestFixtures.integer(client, "SELECT duplicate_samples FROM agents WHERE id = \(agentID)")
            XCTAssertEqual(duplicates, 1)
            let committed = try await committedSeq(client, agentID)
            XCTAssertEqual(committed, 2)

            // Two batches of one group with the same tick: the second one's rows are the duplicates.
            let group = try await writer.write(group: [
                IngestFixtures.batch(seq: 3, tsMillis: t0 + 30_000, containers: [IngestFixtures.container("web")]),
                IngestFixtures.batch(seq: 4, tsMillis: t0 + 30_000, containers: [IngestFixtures.container("web")]),
            ], tenantID: tenantID, agentID: agentID, memory: &fresh)
            XCTAssertEqual(group.count, 2)
            let webAfter = try await IngestFixtures.integer(client, "SELECT count(*) FROM container_samples WHERE name = 'web'")
            XCTAssertEqual(webAfter, 2)
            let duplicatesAfter = try await IngestFixtures.integer(client, "SELECT duplicate_samples FROM agents WHERE id = \(agentID)")
            XCTAssertEqual(duplicatesAfter, 2)
            let committedAfter = try await committedSeq(client, agentID)
            XCTAssertEqual(committedAfter, 4)
        }
    }

    func testADuplicateSampleIsWrittenAgainWithoutSalvagingAndARefusedResultIsLoggedOnce() async throws {
        try await IngestFixtures.withWriter { client, plainWriter, tenantID, agentID in
            let capture = IngestLogCapture()
            let writer = IngestWriter(client: client, partitions: plainWriter.partitions, logger: capture.logger,
                                      timeWindow: IngestFixtures.timeWindow)
            var memory = CounterMemory()
            _ = try await writer.write(IngestFixtures.batch(seq: 1, tsMillis: t0, containers: [IngestFixtures.container("web")]),
                                       tenantID: tenantID, agentID: agentID, memory: &memory)
            // The same tick again, with a result for a check this agent was never given: the group's plain COPY
            // fails on the stored sample, and the group is written again with the COPY that skips it.
            var again = IngestFixtures.batch(seq: 2, tsMillis: t0, containers: [IngestFixtures.container("web")])
            var result = Crowsnest_V1_CheckResult()
            result.checkID = UUID().uuidString.lowercased()
            result.slotUnixMs = t0
            result.tsUnixMs = t0 + 1_000
            result.fencingToken = 1
            result.ok = true
            again.checkResults = [result]
            var fresh = CounterMemory()
            let outcome = try await writer.write(again, tenantID: tenantID, agentID: agentID, memory: &fresh)
            XCTAssertEqual(outcome, .committed(containerSamples: 1))
            let duplicates = try await IngestFixtures.integer(client, "SELECT duplicate_samples FROM agents WHERE id = \(agentID)")
            XCTAssertEqual(duplicates, 1)
            XCTAssertEqual(capture.count(containing: "part by part"), 0, "a duplicate sample is not a refusal to salvage")
            XCTAssertEqual(capture.count(containing: "check results refused"), 1,
                           "the refused result is logged once, though its group was written twice")
        }
    }

    func testAUniqueViolationOutsideTheSamplesIsSalvagedWithoutAnotherWholeAttempt() async throws {
        try await IngestFixtures.withWriter { client, writer, tenantID, agentID in
            // Counts the trigger's calls: a sequence is not rolled back with the attempts that fail.
            try await client.query("CREATE SEQUENCE clash_calls", logger: logger)
            try await client.query("""
                CREATE FUNCTION refuse_clash() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN IF NEW.action = 'clash' THEN
                    PERFORM nextval('clash_calls');
                    RAISE EXCEPTION 'clashing event refused by test trigger' USING ERRCODE = '23505';
                END IF; RETURN NEW; END $$
                """, logger: logger)
            try await client.query("""
                CREATE TRIGGER refuse_clash BEFORE INSERT ON container_events FOR EACH ROW EXECUTE FUNCTION refuse_clash()
                """, logger: logger)
            var memory = CounterMemory()
            let outcome = try await writer.write(
                IngestFixtures.batch(seq: 1, tsMillis: t0, containers: [IngestFixtures.container("web")],
                                     events: [IngestFixtures.event("web", "clash", atMicros: t0 * 1000)]),
                tenantID: tenantID, agentID: agentID, memory: &memory)
            guard case .partial(let samples, let rejected) = outcome else { return XCTFail("expected partial, got \(outcome)") }
            XCTAssertEqual(samples, 1)
            XCTAssertEqual(rejected.map(\.part), [.events])
            XCTAssertEqual(rejected.first?.sqlState, "23505")
            // The group once, then the batch part by part: not a third time with the COPY that skips stored samples.
            let calls = try await IngestFixtures.integer(client, "SELECT last_value FROM clash_calls")
            XCTAssertEqual(calls, 2)
        }
    }

    func testABatchFromYearsAheadIsRecordedAndAcknowledgedButNotStoredAndCreatesNoPartition() async throws {
        try await IngestFixtures.withWriter { client, writer, tenantID, agentID in
            var memory = CounterMemory()
            let threeYears: Int64 = 3 * 365 * 86_400_000
            let future = IngestFixtures.batch(seq: 1, tsMillis: t0 + threeYears, containers: [IngestFixtures.container("web")],
                                              host: IngestFixtures.host())
            let past = IngestFixtures.batch(seq: 2, tsMillis: t0 - 40 * 86_400_000, containers: [IngestFixtures.container("web")])
            let now = IngestFixtures.batch(seq: 3, tsMillis: t0, containers: [IngestFixtures.container("web")])
            let outcomes = try await writer.write(group: [future, past, now], tenantID: tenantID, agentID: agentID, memory: &memory)
            guard outcomes.count == 3, case .refused(let ahead) = outcomes[0], case .refused(let behind) = outcomes[1] else {
                return XCTFail("expected two refusals and a commit, got \(outcomes)")
            }
            XCTAssertEqual(outcomes[2], .committed(containerSamples: 1))
            XCTAssertTrue(ahead.reason.contains("ahead of the server's clock"), ahead.reason)
            XCTAssertTrue(behind.reason.contains("older than the 30-day retention"), behind.reason)
            let samples = try await IngestFixtures.integer(client, "SELECT count(*) FROM container_samples")
            XCTAssertEqual(samples, 1, "only the batch inside the window is stored")
            let hosts = try await IngestFixtures.integer(client, "SELECT count(*) FROM host_samples")
            XCTAssertEqual(hosts, 0)
            let partitions = try await IngestFixtures.integer(client, """
                SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                WHERE i.inhparent = 'container_samples'::regclass AND c.relname <> 'container_samples_20240310'
                """)
            XCTAssertEqual(partitions, 0, "no partition for refused times")
            let recorded = try await rejections(client, agentID)
            XCTAssertEqual(recorded.map(\.seq), [1, 2])
            XCTAssertEqual(recorded.map(\.part), ["batch", "batch"])
            let committed = try await committedSeq(client, agentID)
            XCTAssertEqual(committed, 3)
            // Replaying the refused batch changes nothing and records nothing twice.
            let replay = try await writer.write(future, tenantID: tenantID, agentID: agentID, memory: &memory)
            XCTAssertEqual(replay, .replay)
            let recordedAfter = try await rejections(client, agentID)
            XCTAssertEqual(recordedAfter.count, 2)
        }
    }

    func testExtremeTimesAreRefusedOrClearedWithoutCrashing() async throws {
        try await IngestFixtures.withWriter { client, writer, tenantID, agentID in
            var memory = CounterMemory()
            var weird = IngestFixtures.container("web")
            weird.startedAtUnixMs = .max
            weird.finishedAtUnixMs = .min
            let outcomes = try await writer.write(group: [
                IngestFixtures.batch(seq: 1, tsMillis: .max, containers: [IngestFixtures.container("web")]),
                IngestFixtures.batch(seq: 2, tsMillis: .min, containers: [IngestFixtures.container("web")]),
                IngestFixtures.batch(seq: 3, tsMillis: t0, containers: [weird]),
            ], tenantID: tenantID, agentID: agentID, memory: &memory)
            guard case .refused = outcomes[0], case .refused = outcomes[1] else { return XCTFail("\(outcomes)") }
            XCTAssertEqual(outcomes[2], .committed(containerSamples: 1), "impossible start and finish times become unknown")
            let recorded = try await rejections(client, agentID)
            XCTAssertEqual(recorded.map(\.seq), [1, 2])
            let started = try await IngestFixtures.integer(client, "SELECT count(*) FROM containers WHERE started_at IS NULL AND finished_at IS NULL")
            XCTAssertEqual(started, 1)
        }
    }

    /// A real refusal by PostgreSQL (a trigger raising a data exception) of one part of one batch in a group.
    func testAPartPostgreSQLRefusesIsRecordedWhileTheRestOfTheGroupIsStored() async throws {
        try await IngestFixtures.withWriter { client, writer, tenantID, agentID in
            try await client.query("""
                CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN IF NEW.action = 'poison' THEN
                    RAISE EXCEPTION 'poisoned event refused by test trigger' USING ERRCODE = '22023';
                END IF; RETURN NEW; END $$
                """, logger: logger)
            try await client.query("""
                CREATE TRIGGER refuse_poison BEFORE INSERT ON container_events FOR EACH ROW EXECUTE FUNCTION refuse_poison()
                """, logger: logger)
            func batch(_ seq: UInt64, events: [Crowsnest_V1_ContainerEvent] = []) -> Crowsnest_V1_SampleBatch {
                IngestFixtures.batch(seq: seq, tsMillis: t0 + Int64(seq) * 10_000,
                                     containers: [IngestFixtures.container("web", cpuNanos: seq * 1_000_000_000)],
                                     events: events, host: IngestFixtures.host(uptime: 10_000 + seq * 10))
            }
            let poisoned = batch(2, events: [IngestFixtures.event("web", "poison", atMicros: (t0 + 19_000) * 1000),
                                             IngestFixtures.event("web", "start", atMicros: (t0 + 19_500) * 1000)])
            var memory = CounterMemory()
            let outcomes = try await writer.write(group: [batch(1), poisoned, batch(3)], tenantID: tenantID, agentID: agentID,
                                                  memory: &memory)
            XCTAssertEqual(outcomes.count, 3)
            XCTAssertEqual(outcomes[0], .committed(containerSamples: 1))
            XCTAssertEqual(outcomes[2], .committed(containerSamples: 1))
            guard case .partial(let samples, let rejected) = outcomes[1] else { return XCTFail("expected partial, got \(outcomes[1])") }
            XCTAssertEqual(samples, 1)
            XCTAssertEqual(rejected.map(\.part), [.events])
            XCTAssertEqual(rejected.first?.sqlState, "22023")

            let counts = try await IngestFixtures.counts(client)
            XCTAssertEqual(counts["container_samples"], 3, "every batch's samples are stored")
            XCTAssertEqual(counts["host_samples"], 3)
            XCTAssertEqual(counts["container_events"], 0, "the refused batch's events are rolled back together")
            let recorded = try await rejections(client, agentID)
            XCTAssertEqual(recorded.count, 1)
            XCTAssertEqual(recorded.first?.seq, 2)
            XCTAssertEqual(recorded.first?.part, "events")
            XCTAssertEqual(recorded.first?.sqlstate, "22023")
            XCTAssertTrue(recorded.first?.reason.contains("poisoned event refused by test trigger") ?? false, "\(recorded)")
            let committed = try await committedSeq(client, agentID)
            XCTAssertEqual(committed, 3)
            // Rates still run across the salvaged batches: 1 s of CPU per 10 s is 10 % of one core.
            let last = try await IngestFixtures.integer(
                client, "SELECT cpu_percent::bigint FROM container_samples WHERE agent_id = \(agentID) ORDER BY ts DESC LIMIT 1")
            XCTAssertEqual(last, 10)
        }
    }

    func testLongNamesAndLabelsAreBoundedAndTwoLongNamesStayTwoTargets() async throws {
        try await IngestFixtures.withWriter { client, writer, tenantID, agentID in
            let prefix = String(repeating: "n", count: 300)
            var first = IngestFixtures.container(prefix + "-one")
            var second = IngestFixtures.container(prefix + "-two")
            let huge = String(repeating: "v", count: 15_000)
            first.labels = Dictionary(uniqueKeysWithValues: (0..<100).map { ("label-\($0)", huge) })
            second.labels = [String(repeating: "k", count: 400): "x"]
            var memory = CounterMemory()
            let outcome = try await writer.write(IngestFixtures.batch(seq: 1, tsMillis: t0, containers: [first, second]),
                                                 tenantID: tenantID, agentID: agentID, memory: &memory)
            XCTAssertEqual(outcome, .committed(containerSamples: 2))
            let rows = try await client.query(
                "SELECT name, octet_length(labels::text) FROM containers WHERE agent_id = \(agentID) ORDER BY name", logger: logger)
            var names: [String] = []
            for try await (name, labelBytes) in rows.decode((String, Int32).self) {
                names.append(name)
                XCTAssertLessThanOrEqual(Int(labelBytes), WireTextBounds.labelTotalBytes + 2_000)
            }
            XCTAssertEqual(names.count, 2)
            XCTAssertEqual(Set(names).count, 2, "two long names must stay two targets")
            for name in names {
                XCTAssertEqual(name.utf8.count, WireTextBounds.nameBytes)
                XCTAssertTrue(name.hasPrefix(String(repeating: "n", count: 100)))
                XCTAssertNotNil(name.range(of: #"~[0-9a-f]{8}$"#, options: .regularExpression), name)
            }
            let truncated = try await IngestFixtures.integer(client, "SELECT truncated_values FROM agents WHERE id = \(agentID)")
            XCTAssertGreaterThan(truncated, 100, "100 values over the bound plus the names and the key")
        }
    }
}

/// A sweep over the frame limit arrives in parts: containers are marked removed only once every part arrived,
/// and never when listed as missing.
final class IngestSweepPartsTests: XCTestCase {
    private let t0: Int64 = 1_710_072_000_000

    private func part(_ seq: UInt64, ts: Int64, _ index: UInt32, of count: UInt32, _ names: [String],
                      missing: [String] = []) -> Crowsnest_V1_SampleBatch {
        var batch = IngestFixtures.batch(seq: seq, tsMillis: ts, containers: names.map { IngestFixtures.container($0) })
        batch.part = index
        batch.partCount = count
        batch.missing = missing.map { name in
            var entry = Crowsnest_V1_MissingContainer()
            entry.name = name
            entry.reason = "inspect failed"
            return entry
        }
        return batch
    }

    private func present(_ client: PostgresClient, _ agentID: UUID) async throws -> [String] {
        let rows = try await client.query(
            "SELECT name FROM containers WHERE agent_id = \(agentID) AND removed_at IS NULL ORDER BY name", logger: IngestFixtures.logger)
        var names: [String] = []
        for try await name in rows.decode(String.self) { names.append(name) }
        return names
    }

    func testOnlyACompleteSweepMarksContainersRemovedAndMissingOnesStay() async throws {
        try await IngestFixtures.withWriter { client, writer, tenantID, agentID in
            var memory = CounterMemory()
            _ = try await writer.write(part(1, ts: t0, 1, of: 1, ["a", "b", "c", "d", "e"]), tenantID: tenantID, agentID: agentID,
                                       memory: &memory)
            // The next sweep in two parts: after the first, nothing can be known to be gone.
            _ = try await writer.write(part(2, ts: t0 + 30_000, 1, of: 2, ["a", "b"]), tenantID: tenantID, agentID: agentID,
                                       memory: &memory)
            let afterFirstPart = try await present(client, agentID)
            XCTAssertEqual(afterFirstPart, ["a", "b", "c", "d", "e"])
            // The last part: e is in no part and not missing, so it is gone; d could not be inspected, so it stays.
            _ = try await writer.write(part(3, ts: t0 + 30_000, 2, of: 2, ["c"], missing: ["d"]), tenantID: tenantID,
                                       agentID: agentID, memory: &memory)
            let afterSweep = try await present(client, agentID)
            XCTAssertEqual(afterSweep, ["a", "b", "c", "d"])
            let samples = try await IngestFixtures.integer(client, "SELECT count(*) FROM container_samples WHERE ts = to_timestamp(\(Double(t0 + 30_000) / 1000))")
            XCTAssertEqual(samples, 3, "every part's samples are stored")
            // A new session that sees only a later part of a sweep removes nothing.
            var fresh = CounterMemory()
            _ = try await writer.write(part(4, ts: t0 + 60_000, 2, of: 2, ["a"]), tenantID: tenantID, agentID: agentID, memory: &fresh)
            let afterPartial = try await present(client, agentID)
            XCTAssertEqual(afterPartial, ["a", "b", "c", "d"])
        }
    }
}
