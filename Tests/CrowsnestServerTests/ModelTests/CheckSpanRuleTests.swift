import XCTest

@testable import CrowsnestServer

/// The rule that turns a check's newest slots into spans: same verdict as its state, with exact times.
final class CheckSpanRuleTests: XCTestCase {
    private func slot(_ ok: Bool, _ at: Int64, _ error: String = "") -> CheckSlotOutcome {
        CheckSlotOutcome(ok: ok, atMicros: at, error: error)
    }

    func testTheFirstSuccessOpensUpAtItsRunTime() {
        let transition = CheckSpanRule.transition(open: nil, paused: false, retries: 2, newestFirst: [slot(true, 500)], nowMicros: 900)
        XCTAssertEqual(transition, StateTransition(state: .up, atMicros: 500, cause: ""))
    }

    func testDownStartsAtTheFirstFailureOnceRetriesAreSpent() {
        let up = (state: SpanState.up, sinceMicros: Int64(100))
        // Two failures with two retries: not down yet.
        XCTAssertNil(CheckSpanRule.transition(open: up, paused: false, retries: 2,
                                              newestFirst: [slot(false, 400, "b"), slot(false, 300, "a"), slot(true, 200)],
                                              nowMicros: 900))
        // The third: down from the first of them, with its error.
        let transition = CheckSpanRule.transition(
            open: up, paused: false, retries: 2,
            newestFirst: [slot(false, 500, "c"), slot(false, 400, "b"), slot(false, 300, "HTTP 503")], nowMicros: 900)
        XCTAssertEqual(transition, StateTransition(state: .down, atMicros: 300, cause: "HTTP 503"))
        // Already down: nothing to do.
        XCTAssertNil(CheckSpanRule.transition(open: (.down, 300), paused: false, retries: 2,
                                              newestFirst: [slot(false, 600), slot(false, 500), slot(false, 400)], nowMicros: 900))
    }

    func testRecoveryStartsAtTheFirstSuccessAfterTheOutage() {
        let down = (state: SpanState.down, sinceMicros: Int64(300))
        let transition = CheckSpanRule.transition(open: down, paused: false, retries: 2,
                                                  newestFirst: [slot(true, 700), slot(true, 600), slot(false, 500)], nowMicros: 900)
        XCTAssertEqual(transition, StateTransition(state: .up, atMicros: 600, cause: ""))
    }

    func testATransitionNeverStartsBeforeTheOpenSpan() {
        // A spooled failure older than the open span's start cannot end it in the past.
        let transition = CheckSpanRule.transition(open: (.up, 1_000), paused: false, retries: 0,
                                                  newestFirst: [slot(false, 800, "timed out")], nowMicros: 1_200)
        XCTAssertEqual(transition, StateTransition(state: .down, atMicros: 1_000, cause: "timed out"))
    }

    func testAPausedCheckIsUnknownFromThePauseAndNeverSucceededHasNoSpan() {
        XCTAssertEqual(CheckSpanRule.transition(open: (.up, 100), paused: true, retries: 0, newestFirst: [slot(true, 200)], nowMicros: 900),
                       StateTransition(state: .unknown, atMicros: 900, cause: CheckSpanRule.pausedCause))
        XCTAssertNil(CheckSpanRule.transition(open: (.unknown, 900), paused: true, retries: 0, newestFirst: [], nowMicros: 950))
        XCTAssertNil(CheckSpanRule.transition(open: nil, paused: true, retries: 0, newestFirst: [], nowMicros: 950))
        XCTAssertNil(CheckSpanRule.transition(open: nil, paused: false, retries: 1, newestFirst: [slot(false, 200)], nowMicros: 900),
                     "one failure of a check that never succeeded says nothing yet")
    }

    func testALongErrorIsBoundedInTheCause() {
        let transition = CheckSpanRule.transition(open: (.up, 0), paused: false, retries: 0,
                                                  newestFirst: [slot(false, 10, String(repeating: "x", count: 5_000))], nowMicros: 20)
        XCTAssertEqual(transition?.cause.count, ProbeCause.maximumCharacters)
    }
}
