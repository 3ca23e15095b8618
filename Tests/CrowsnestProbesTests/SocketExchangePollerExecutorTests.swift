#if os(Linux)
import CrowsnestWire
import Foundation
import NIOCore
import Synchronization
import XCTest

@testable import CrowsnestProbes

/// The socket poller's thread as the executor of plain HTTP and TCP runs, and its timers (run deadlines, pacing).
final class SocketExchangePollerExecutorTests: XCTestCase {
    private var poller: SocketExchangePoller {
        get throws { try XCTUnwrap(SocketExchangePoller.shared, "the poller could not start") }
    }

    func testATaskPreferringThePollerRunsOnItsThreadAndSoDoesItsExchangeAfterTheAnswer() async throws {
        let poller = try self.poller
        let peer = try await ScriptedTCPPeer.start(answer: ["HTTP/1.1 204 No Content\r\n\r\n"], thenClose: false)
        defer { Task { try? await peer.stop() } }
        XCTAssertFalse(poller.isPollerThread, "the test's own thread is not the poller's")
        let (startedThere, status, resumedThere) = try await Task(executorPreference: poller) {
            let startedThere = poller.isPollerThread
            let ended = try await poller.exchange(to: peer.address, sending: ExchangeParts.request(),
                                                  conversation: ExchangeParts.conversation())
            return (startedThere, ended.parser.status, poller.isPollerThread)
        }.value
        XCTAssertTrue(startedThere, "a job enqueued from another thread runs on the poller thread")
        XCTAssertEqual(status, 204)
        XCTAssertTrue(resumedThere, "the answer resumes the run on the thread that read it")
    }

    func testTimersFireInDeadlineOrderNotBeforeTheirDeadlineAndACancelledOneNever() async throws {
        let poller = try self.poller
        let fired = Mutex<[(Int, ContinuousClock.Instant)]>([])
        let start = ContinuousClock.now
        let deadlines = [60, 20, 40, 80].map { start + .milliseconds($0) }
        var ids: [UInt64] = []
        for (index, deadline) in deadlines.enumerated() {
            // From another thread, as a run started elsewhere schedules its deadline.
            ids.append(poller.schedule(at: deadline) { fired.withLock { $0.append((index, .now)) } })
        }
        poller.cancelTimer(ids[2])  // the 40 ms one
        try await Task.sleep(for: .milliseconds(300))
        let seen = fired.withLock { $0 }
        XCTAssertEqual(seen.map(\.0), [1, 0, 3], "in deadline order, the cancelled one left out")
        for (index, at) in seen {
            XCTAssertGreaterThanOrEqual(at, deadlines[index], "timer \(index) fired before its deadline")
        }
    }

    func testATimerScheduledFromAnotherThreadCutsShortTheWaitForALaterOne() async throws {
        let poller = try self.poller
        let later = poller.schedule(at: .now + .seconds(30)) {}
        defer { poller.cancelTimer(later) }
        try await Task.sleep(for: .milliseconds(50))  // the poller now waits for the 30 s timer (or longer)
        let start = ContinuousClock.now
        let firedAt = Mutex<ContinuousClock.Instant?>(nil)
        _ = poller.schedule(at: start + .milliseconds(20)) { firedAt.withLock { $0 = .now } }
        let deadline = start + .seconds(5)
        while firedAt.withLock({ $0 }) == nil, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(5))
        }
        let fired = try XCTUnwrap(firedAt.withLock { $0 }, "the earlier timer never fired: the poller was not woken")
        XCTAssertGreaterThanOrEqual(fired - start, .milliseconds(20))
        XCTAssertLessThan(fired - start, .seconds(2), "woken for the earlier timer, not at the later one's deadline")
    }

    func testSleepOnThePollerWakesAfterItsDeadlineAndACancelledSleepEndsAtOnce() async throws {
        let poller = try self.poller
        let start = ContinuousClock.now
        try await Task(executorPreference: poller) {
            try await poller.sleep(until: start + .milliseconds(50))
        }.value
        XCTAssertGreaterThanOrEqual(ContinuousClock.now - start, .milliseconds(50))

        let long = Task(executorPreference: poller) {
            try await poller.sleep(until: .now + .seconds(30))
        }
        try await Task.sleep(for: .milliseconds(20))
        let cancelledAt = ContinuousClock.now
        long.cancel()
        do {
            try await long.value
            XCTFail("a cancelled sleep throws")
        } catch {
            XCTAssertTrue(error is CancellationError, "\(error)")
        }
        XCTAssertLessThan(ContinuousClock.now - cancelledAt, .seconds(5), "the cancellation ended the sleep, not its deadline")

        let early = Task(executorPreference: poller) {
            withUnsafeCurrentTask { $0?.cancel() }
            try await poller.sleep(until: .now + .seconds(30))
        }
        do {
            try await early.value
            XCTFail("a sleep in a cancelled task throws")
        } catch {
            XCTAssertTrue(error is CancellationError, "\(error)")
        }
    }

    func testAPlainHTTPRunGoesOnThePollerAndItsDeadlineEndsItThereWhenNoAnswerComes() async throws {
        let poller = try self.poller
        let silent = try await ScriptedTCPPeer.start(answer: [], thenClose: false)  // accepts, never answers
        defer { Task { try? await silent.stop() } }
        let prober = Prober()
        let target = "http://127.0.0.1:\(silent.address.port!)/"
        XCTAssertTrue(prober.makeExecutor(type: "http", target: target) is SocketExchangePoller)
        XCTAssertTrue(prober.makeExecutor(type: "tcp", target: "127.0.0.1:1") is SocketExchangePoller)
        XCTAssertFalse(prober.makeExecutor(type: "http", target: "https://127.0.0.1/") is SocketExchangePoller,
                       "TLS runs stay on the event loop their channel lives on")
        XCTAssertFalse(prober.makeExecutor(type: "dns", target: "example.com") is SocketExchangePoller)
        let start = ContinuousClock.now
        let outcome = await Task(executorPreference: poller) {
            await prober.run(type: "http", target: target, options: [:], timeout: .milliseconds(300),
                             addressGuard: AddressGuard(runner: .agent))
        }.value
        let took = ContinuousClock.now - start
        XCTAssertFalse(outcome.ok)
        XCTAssertEqual(outcome.error, "no answer within 300 ms")
        XCTAssertGreaterThanOrEqual(took, .milliseconds(300))
        XCTAssertLessThan(took, .seconds(3), "the poller's timer ended the run at its deadline")
        try await silent.waitForClosedConnections(1)
    }
}
#endif
