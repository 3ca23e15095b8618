import XCTest

@testable import CrowsnestServer

/// A check's state from its newest results: down only after retries + 1 consecutive failures.
final class CheckStateTests: XCTestCase {
    func testNoResultsIsUnknownAndPausedWinsOverResults() {
        XCTAssertEqual(CheckState.derive(paused: false, retries: 0, newestFirst: []), .unknown)
        XCTAssertEqual(CheckState.derive(paused: true, retries: 0, newestFirst: [false]), .paused)
        XCTAssertEqual(CheckState.derive(paused: true, retries: 0, newestFirst: []), .paused)
    }

    func testWithoutRetriesTheNewestResultDecides() {
        XCTAssertEqual(CheckState.derive(paused: false, retries: 0, newestFirst: [true, false]), .up)
        XCTAssertEqual(CheckState.derive(paused: false, retries: 0, newestFirst: [false, true]), .down)
    }

    func testRetriesToleratesThatManyFailuresAfterASuccess() {
        // retries 2: down after 3 consecutive failures.
        XCTAssertEqual(CheckState.derive(paused: false, retries: 2, newestFirst: [false, false, true]), .up)
        XCTAssertEqual(CheckState.derive(paused: false, retries: 2, newestFirst: [false, false, false, true]), .down)
        XCTAssertEqual(CheckState.derive(paused: false, retries: 2, newestFirst: [false, true, false, false]), .up)
    }

    func testTooFewFailuresWithoutAnySuccessIsUnknown() {
        XCTAssertEqual(CheckState.derive(paused: false, retries: 2, newestFirst: [false, false]), .unknown)
        XCTAssertEqual(CheckState.derive(paused: false, retries: 10, newestFirst: Array(repeating: false, count: 11)), .down)
        XCTAssertEqual(CheckState.derive(paused: false, retries: 10, newestFirst: Array(repeating: false, count: 10)), .unknown)
    }
}
