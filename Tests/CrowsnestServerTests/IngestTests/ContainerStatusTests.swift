import CrowsnestWire
import XCTest

@testable import CrowsnestServer

/// How one batch's events and sample turn into state transitions with exact times.
final class ContainerStatusTests: XCTestCase {
    /// The batch tick, unix µs.
    private let tick: Int64 = 1_700_000_030_000_000
    private let openedAt: Int64 = 1_700_000_000_000_000

    private func event(_ action: String, atMicros: Int64, exitCode: Int32 = -1, detail: String = "") -> Crowsnest_V1_ContainerEvent {
        var event = Crowsnest_V1_ContainerEvent()
        event.name = "web"
        event.dockerID = "abc"
        event.action = action
        event.timeUnixNano = atMicros * 1000 + 789  // sub-µs part must be dropped, not rounded up
        event.exitCode = exitCode
        event.detail = detail
        return event
    }

    private func sample(state: String, health: String = "none", exitCode: Int32 = 0, startedAtMillis: Int64 = 0,
                        finishedAtMillis: Int64 = 0, healthOutput: String = "", oomKilled: Bool = false) -> Crowsnest_V1_ContainerSample {
        var sample = Crowsnest_V1_ContainerSample()
        sample.name = "web"
        sample.dockerID = "abc"
        sample.state = state
        sample.health = health
        sample.exitCode = exitCode
        sample.startedAtUnixMs = startedAtMillis
        sample.finishedAtUnixMs = finishedAtMillis
        sample.healthOutput = healthOutput
        sample.oomKilled = oomKilled
        return sample
    }

    func testASampleFromBeforeTheOpenSpanBeganChangesNothing() {
        // The span has been up since `openedAt`; a replayed batch from a minute earlier says the container had exited.
        let stale = ContainerStatus.transitions(current: .up, currentSince: openedAt, events: [],
                                                sample: sample(state: "exited", exitCode: 1, finishedAtMillis: (openedAt - 90_000_000) / 1000),
                                                tickMicros: openedAt - 60_000_000)
        XCTAssertEqual(stale, [], "an old sample must not rewrite the open span")
        let current = ContainerStatus.transitions(current: .up, currentSince: openedAt, events: [],
                                                  sample: sample(state: "exited", exitCode: 1, finishedAtMillis: tick / 1000 - 5_000),
                                                  tickMicros: tick)
        XCTAssertEqual(current.map(\.state), [.down], "a current one still does")
    }

    func testADieEventPlacesDownAtTheEventsExactMicrosecond() {
        let dieAt = tick - 12_345_678
        let transitions = ContainerStatus.transitions(
            current: .up, currentSince: openedAt, events: [event("die", atMicros: dieAt, exitCode: 3)],
            sample: sample(state: "exited", exitCode: 3, finishedAtMillis: dieAt / 1000), tickMicros: tick)
        XCTAssertEqual(transitions, [StateTransition(state: .down, atMicros: dieAt, cause: "exited with code 3")])
    }

    func testADieEventWithoutASampleStillGoesDownWithTheEventsExitCode() {
        let dieAt = tick - 5_000_001
        let transitions = ContainerStatus.transitions(
            current: .up, currentSince: openedAt, events: [event("die", atMicros: dieAt, exitCode: 137)], sample: nil,
            tickMicros: tick)
        XCTAssertEqual(transitions, [StateTransition(state: .down, atMicros: dieAt, cause: "exited with code 137")])
    }

    func testADieEventWithoutAnExitCodeSaysSoInsteadOfMinusOne() {
        let dieAt = tick - 1_000_000
        let transitions = ContainerStatus.transitions(
            current: .up, currentSince: openedAt, events: [event("die", atMicros: dieAt)], sample: nil, tickMicros: tick)
        XCTAssertEqual(transitions, [StateTransition(state: .down, atMicros: dieAt, cause: "exited (exit code not reported)")])
    }

    func testAnOOMBeforeDieIsNamedInTheCause() {
        let transitions = ContainerStatus.transitions(
            current: .up, currentSince: openedAt,
            events: [event("oom", atMicros: tick - 2_000), event("die", atMicros: tick - 1_000, exitCode: 137)],
            sample: nil, tickMicros: tick)
        XCTAssertEqual(transitions.map(\.cause), ["exited with code 137 (OOM killed)"])
    }

    func testAStartAfterADieGoesBackUpAtTheStartEvent() {
        let dieAt = tick - 20_000_000
        let startAt = tick - 19_000_000
        // Events arrive out of order; they are sorted by their own time.
        let transitions = ContainerStatus.transitions(
            current: .up, currentSince: openedAt,
            events: [event("start", atMicros: startAt), event("die", atMicros: dieAt, exitCode: 1)],
            sample: sample(state: "running", startedAtMillis: startAt / 1000), tickMicros: tick)
        XCTAssertEqual(transitions, [
            StateTransition(state: .down, atMicros: dieAt, cause: "exited with code 1"),
            StateTransition(state: .up, atMicros: startAt, cause: "started"),
        ])
    }

    func testASweepsRunningSampleReadBeforeADieInTheSameBatchDoesNotUndoIt() {
        // The sweep read the container as running (its inventory lags Docker's events by an inspect) and the die
        // came with the same batch, just after or just before the tick: down from the die, not replaced by "up".
        for dieAt in [tick + 50_000, tick - 100_000] {
            let transitions = ContainerStatus.transitions(
                current: .up, currentSince: openedAt, events: [event("kill", atMicros: dieAt - 10), event("die", atMicros: dieAt, exitCode: 137)],
                sample: sample(state: "running", startedAtMillis: openedAt / 1000), tickMicros: tick)
            XCTAssertEqual(transitions, [StateTransition(state: .down, atMicros: dieAt, cause: "exited with code 137")], "die at \(dieAt)")
            let unhealthy = ContainerStatus.transitions(
                current: .up, currentSince: openedAt, events: [event("die", atMicros: dieAt, exitCode: 1)],
                sample: sample(state: "running", health: "unhealthy", startedAtMillis: openedAt / 1000), tickMicros: tick)
            XCTAssertEqual(unhealthy.map(\.state), [.down], "die at \(dieAt)")
        }
        // Started again after the die (its start event still to come): the sample is newer and counts.
        let dieAt = tick - 3_000_000
        let restarted = ContainerStatus.transitions(
            current: .up, currentSince: openedAt, events: [event("die", atMicros: dieAt, exitCode: 1)],
            sample: sample(state: "running", startedAtMillis: (dieAt + 1_000_000) / 1000), tickMicros: tick)
        XCTAssertEqual(restarted.map(\.state), [.down, .up])
        XCTAssertEqual(restarted.last?.atMicros, dieAt + 1_000_000)
    }

    func testAnExitedSampleReadBeforeAStartInTheSameBatchDoesNotUndoIt() {
        let startAt = tick + 20_000
        let transitions = ContainerStatus.transitions(
            current: .down, currentSince: openedAt, events: [event("start", atMicros: startAt)],
            sample: sample(state: "exited", exitCode: 1, finishedAtMillis: openedAt / 1000), tickMicros: tick)
        XCTAssertEqual(transitions, [StateTransition(state: .up, atMicros: startAt, cause: "started")])
    }

    func testAnUnhealthyHealthStatusMakesTheContainerDegraded() {
        let at = tick - 3_000_000
        let transitions = ContainerStatus.transitions(
            current: .up, currentSince: openedAt, events: [event("health_status", atMicros: at, detail: "unhealthy")],
            sample: sample(state: "running", health: "unhealthy", healthOutput: "  curl: (7) refused \n"), tickMicros: tick)
        XCTAssertEqual(transitions, [StateTransition(state: .degraded, atMicros: at, cause: "health check failing: curl: (7) refused")])
    }

    func testAHealthyStatusAfterDegradedGoesBackUp() {
        let at = tick - 1_000_000
        let transitions = ContainerStatus.transitions(
            current: .degraded, currentSince: openedAt, events: [event("health_status", atMicros: at, detail: "healthy")],
            sample: sample(state: "running", health: "healthy"), tickMicros: tick)
        XCTAssertEqual(transitions, [StateTransition(state: .up, atMicros: at, cause: "running, healthy")])
    }

    func testAnExitedSampleWithoutEventsGoesDownAtItsFinishTime() {
        let finished: Int64 = 1_700_000_017_250  // ms
        let transitions = ContainerStatus.transitions(
            current: .up, currentSince: openedAt, events: [],
            sample: sample(state: "exited", exitCode: 137, finishedAtMillis: finished, oomKilled: true), tickMicros: tick)
        XCTAssertEqual(transitions, [StateTransition(state: .down, atMicros: finished * 1000, cause: "exited with code 137 (OOM killed)")])
    }

    func testAFinishTimeAfterTheTickIsClampedToTheTick() {
        let transitions = ContainerStatus.transitions(
            current: .up, currentSince: openedAt, events: [],
            sample: sample(state: "exited", exitCode: 0, finishedAtMillis: tick / 1000 + 5_000), tickMicros: tick)
        XCTAssertEqual(transitions.map(\.atMicros), [tick])
    }

    func testNoChangeMeansNoTransitions() {
        XCTAssertEqual(ContainerStatus.transitions(current: .up, currentSince: openedAt, events: [],
                                                   sample: sample(state: "running"), tickMicros: tick), [])
        XCTAssertEqual(ContainerStatus.transitions(current: .down, currentSince: openedAt, events: [],
                                                   sample: sample(state: "exited", finishedAtMillis: 5), tickMicros: tick), [])
        XCTAssertEqual(ContainerStatus.transitions(current: .up, currentSince: openedAt, events: [], sample: nil,
                                                   tickMicros: tick), [])
    }

    func testTransitionsNeverGoBeforeTheOpenSpansStart() {
        // An event (or finish time) older than the open span, e.g. replayed from a restored agent.
        let transitions = ContainerStatus.transitions(
            current: .up, currentSince: openedAt, events: [event("die", atMicros: openedAt - 60_000_000, exitCode: 2)],
            sample: sample(state: "exited", exitCode: 2, finishedAtMillis: openedAt / 1000 - 60_000), tickMicros: tick)
        XCTAssertEqual(transitions, [StateTransition(state: .down, atMicros: openedAt, cause: "exited with code 2")])

        let fromSample = ContainerStatus.transitions(
            current: .up, currentSince: openedAt, events: [],
            sample: sample(state: "exited", exitCode: 2, finishedAtMillis: openedAt / 1000 - 60_000), tickMicros: tick)
        XCTAssertEqual(fromSample.map(\.atMicros), [openedAt])
    }

    func testAFirstSeenRunningContainerIsUpSinceItsStartTime() {
        let started: Int64 = 1_699_999_000_000
        let transitions = ContainerStatus.transitions(
            current: nil, currentSince: nil, events: [], sample: sample(state: "running", startedAtMillis: started),
            tickMicros: tick)
        XCTAssertEqual(transitions, [StateTransition(state: .up, atMicros: started * 1000, cause: "running")])
    }

    func testDockerStatesMapOntoSpanStates() {
        XCTAssertEqual(ContainerStatus.state(dockerState: "running", health: "healthy"), .up)
        XCTAssertEqual(ContainerStatus.state(dockerState: "running", health: "starting"), .up)
        XCTAssertEqual(ContainerStatus.state(dockerState: "running", health: "unhealthy"), .degraded)
        XCTAssertEqual(ContainerStatus.state(dockerState: "paused", health: "none"), .degraded)
        XCTAssertEqual(ContainerStatus.state(dockerState: "exited", health: "none"), .down)
        XCTAssertEqual(ContainerStatus.state(dockerState: "restarting", health: "none"), .down)
        XCTAssertEqual(ContainerStatus.state(dockerState: "created", health: "none"), .unknown)
    }
}
