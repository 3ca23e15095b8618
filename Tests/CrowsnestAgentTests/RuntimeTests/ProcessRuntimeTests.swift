@testable import CrowsnestProbes
@testable import CrowsnestAgent
import XCTest

final class ProcessArgumentsTests: XCTestCase {
    func testTheRuntimesArgumentsWinWhenPresent() {
        let arguments = ProcessArguments.current(runtime: ["crowsnest-agent", "run"], procCmdline: {
            XCTFail("/proc/self/cmdline read although the runtime had the arguments")
            return nil
        })
        XCTAssertEqual(arguments, ["crowsnest-agent", "run"])
    }

    func testLostArgumentsComeFromProcCmdline() {
        let cmdline = Array("/usr/bin/crowsnest-agent\0run\0--state-dir\0/var/lib/crow snest\0\0x\0".utf8)
        let arguments = ProcessArguments.current(runtime: [], procCmdline: { cmdline })
        XCTAssertEqual(arguments, ["/usr/bin/crowsnest-agent", "run", "--state-dir", "/var/lib/crow snest", "", "x"])
    }

    func testThisProcessCmdlineIsReadable() {
        let arguments = ProcessArguments.current(runtime: [])
        XCTAssertEqual(arguments.first, CommandLine.arguments.first, "the real /proc/self/cmdline names this test binary")
        XCTAssertEqual(arguments, CommandLine.arguments)
    }
}

final class EventLoopClockTests: XCTestCase {
    func testSleepWaitsAtLeastTheDuration() async throws {
        let clock = EventLoopClock()
        let start = ContinuousClock.now
        try await clock.sleep(for: .milliseconds(120))
        XCTAssertGreaterThanOrEqual(ContinuousClock.now - start, .milliseconds(120))
    }

    func testCancellationEndsASleepWithCancellationError() async throws {
        let sleeper = Task { try await EventLoopClock().sleep(for: .seconds(3600)) }
        sleeper.cancel()
        do {
            try await sleeper.value
            XCTFail("a cancelled hour-long sleep returned normally")
        } catch {
            XCTAssertTrue(error is CancellationError, "\(error)")
        }
    }

    func testPastDeadlinesAndHugeDurationsAreHandled() async throws {
        try await EventLoopClock().sleep(until: .now - .seconds(5))
        XCTAssertEqual(EventLoopClock.timeAmount(.seconds(Int64.max)).nanoseconds, Int64.max)
        XCTAssertEqual(EventLoopClock.timeAmount(.seconds(-3)).nanoseconds, 0)
        XCTAssertEqual(EventLoopClock.timeAmount(.milliseconds(1500)).nanoseconds, 1_500_000_000)
    }
}
