import CrowsnestWire
import Foundation
import Logging
import NIOCore
import NIOPosix
import XCTest

@testable import CrowsnestAgent

/// The agent's check runner with a real spool and real probes against a TCP listener on loopback.
final class CheckRunnerTests: XCTestCase {
    private let logger: Logger = {
        var logger = Logger(label: "crowsnest.tests.checks")
        logger.logLevel = .critical
        return logger
    }()

    private func assign(_ check: String, target: String, token: UInt64 = 41, slot: Int64? = nil) -> Crowsnest_V1_Assign {
        var assign = Crowsnest_V1_Assign()
        assign.checkID = check
        assign.type = "tcp"
        assign.target = target
        assign.intervalSeconds = 30
        assign.fencingToken = token
        assign.slotUnixMs = slot ?? Int64(Date().timeIntervalSince1970) / 30 * 30_000
        assign.timeoutMs = 2_000
        return assign
    }

    func testRemembersOnlyTheAssignmentsOfSlotsNotYetEndedAndStillRunsARepeatOnce() throws {
        let state = try scratchDirectory("check-runner-memory")
        let runner = CheckRunner(spool: try Spool(directory: state + "/spool", logger: logger),
                                 sequence: try SequenceStore(stateDirectory: state), doorbell: Doorbell(),
                                 interval: .seconds(30), logger: logger)
        // Two hours of a 5 s check, each slot assigned (and resent once) while it runs: what is remembered stays at
        // the slots not yet ended, instead of growing with every assignment.
        let start: Int64 = 1_800_000_000_000
        var most = 0
        for slot in 0..<1_440 {
            var next = assign("every-5s", target: "127.0.0.1:9", slot: start + Int64(slot) * 5_000)
            next.intervalSeconds = 5
            runner.accept(next, nowMs: next.slotUnixMs + 100)
            runner.accept(next, nowMs: next.slotUnixMs + 200)  // resent: not queued again
            most = max(most, runner.rememberedAssignments)
        }
        XCTAssertLessThanOrEqual(most, 2, "only the running slot (and the one before, just ended) is remembered")
        XCTAssertGreaterThanOrEqual(runner.rememberedAssignments, 1)
    }

    func testRunsEachAssignmentOnceAndSpoolsTheResultsInOneEventOnlyBatch() async throws {
        let state = try scratchDirectory("check-runner")
        let spool = try Spool(directory: state + "/spool", logger: logger)
        let sequence = try SequenceStore(stateDirectory: state)
        let listener = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: 0).get()
        let port = listener.localAddress!.port!
        let runner = CheckRunner(spool: spool, sequence: sequence, doorbell: Doorbell(), interval: .seconds(30), logger: logger)
        let open = assign("open", target: "127.0.0.1:\(port)")
        runner.accept(open)
        runner.accept(open)  // the same slot and token again (a resent frame): runs once
        let again = assign("open", target: "127.0.0.1:\(port)", token: 42)  // reassigned under a new token: runs
        runner.accept(again)
        var over = assign("late", target: "127.0.0.1:\(port)", slot: 1_000_000)  // a slot long over: skipped
        over.intervalSeconds = 5
        runner.accept(over)
        var metadata = assign("metadata", target: "169.254.169.254:80")
        metadata.allowedNetworks = []
        runner.accept(metadata)
        var allowed = assign("allowed", target: "169.254.169.254:1")
        allowed.allowedNetworks = ["169.254.169.254/32"]
        allowed.timeoutMs = 300
        runner.accept(allowed)

        let task = Task { try await runner.run() }
        defer { task.cancel() }
        var batch: Crowsnest_V1_SampleBatch?
        for _ in 0..<100 where batch?.checkResults.count ?? 0 < 4 {
            try await Task.sleep(for: .milliseconds(100))
            let records = try spool.pending(after: 0, limit: 10)
            let results = try records.compactMap { record -> Crowsnest_V1_SampleBatch? in
                guard case .batch(let batch)? = try Crowsnest_V1_Frame(serializedBytes: record.payload).message else { return nil }
                return batch
            }
            if !results.isEmpty {
                var merged = results[0]
                merged.checkResults = results.flatMap(\.checkResults)
                batch = merged
            }
        }
        try await listener.close()
        let spooled = try XCTUnwrap(batch)
        XCTAssertTrue(spooled.eventsOnly)
        XCTAssertEqual(spooled.intervalSeconds, 30)
        let byKey = Dictionary(grouping: spooled.checkResults) { "\($0.checkID)#\($0.fencingToken)" }
        XCTAssertEqual(Set(byKey.keys), ["open#41", "open#42", "metadata#41", "allowed#41"], "the late slot is skipped, the repeat runs once")
        XCTAssertTrue(byKey.values.allSatisfy { $0.count == 1 })
        let result = try XCTUnwrap(byKey["open#41"]?.first)
        XCTAssertTrue(result.ok, result.error)
        XCTAssertEqual(result.slotUnixMs, open.slotUnixMs)
        XCTAssertGreaterThanOrEqual(result.tsUnixMs, open.slotUnixMs)
        XCTAssertGreaterThan(result.latencyMs, 0)
        let refused = try XCTUnwrap(byKey["metadata#41"]?.first)
        XCTAssertFalse(refused.ok)
        XCTAssertTrue(refused.error.contains("cloud metadata, refused for checks an agent runs"), refused.error)
        // An allowed network lets the probe through the guard: it then fails for another reason (nothing listens).
        let opened = try XCTUnwrap(byKey["allowed#41"]?.first)
        XCTAssertFalse(opened.error.contains("refused for checks"), opened.error)
    }
}
