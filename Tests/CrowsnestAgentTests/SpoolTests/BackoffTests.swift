import XCTest

@testable import CrowsnestAgent

/// Always returns the largest value, so every jittered delay equals its ceiling.
private struct MaxGenerator: RandomNumberGenerator {
    mutating func next() -> UInt64 { .max }
}

final class BackoffTests: XCTestCase {
    func testCeilingsDoubleFromHalfASecondUpToThirtySeconds() {
        let backoff = Backoff()
        let ceilings = (0..<9).map { backoff.ceiling(afterFailures: $0) }
        XCTAssertEqual(ceilings, [
            .milliseconds(500), .seconds(1), .seconds(2), .seconds(4), .seconds(8),
            .seconds(16), .seconds(30), .seconds(30), .seconds(30),
        ])
        XCTAssertEqual(backoff.ceiling(afterFailures: 1000), .seconds(30))
    }

    func testEveryDelayStaysWithinZeroAndItsCeiling() {
        var backoff = Backoff()
        var random = SeededGenerator(state: 7)
        for attempt in 0..<200 {
            let ceiling = backoff.ceiling(afterFailures: attempt)
            let delay = backoff.nextDelay(using: &random)
            XCTAssertGreaterThanOrEqual(delay, .zero)
            XCTAssertLessThanOrEqual(delay, ceiling)
            XCTAssertLessThanOrEqual(delay, .seconds(30))
        }
    }

    func testDelaysGrowWithFailuresAndResetAfterSuccess() {
        var backoff = Backoff()
        var random = MaxGenerator()
        let delays = (0..<8).map { _ in backoff.nextDelay(using: &random) }
        XCTAssertEqual(delays.first, .milliseconds(500))
        XCTAssertEqual(delays.last, .seconds(30))
        for (earlier, later) in zip(delays, delays.dropFirst()) { XCTAssertLessThanOrEqual(earlier, later) }
        XCTAssertEqual(backoff.attempt, 8)
        backoff.reset()
        XCTAssertEqual(backoff.attempt, 0)
        XCTAssertEqual(backoff.nextDelay(using: &random), .milliseconds(500))
    }

    func testAverageDelayGrowsWithJitter() {
        var random = SeededGenerator(state: 99)
        func meanSeconds(afterFailures failures: Int) -> Double {
            var total = 0.0
            for _ in 0..<500 {
                var backoff = Backoff()
                for _ in 0..<failures { _ = backoff.nextDelay(using: &random) }
                let (seconds, attoseconds) = backoff.nextDelay(using: &random).components
                total += Double(seconds) + Double(attoseconds) / 1e18
            }
            return total / 500
        }
        let means = [0, 2, 4, 6].map(meanSeconds)
        for (earlier, later) in zip(means, means.dropFirst()) { XCTAssertLessThan(earlier, later) }
        XCTAssertEqual(means[3], 15, accuracy: 2.5, "at the cap the mean is about half of 30 s")
    }

    func testSameSeedGivesTheSameDelays() {
        var first = Backoff(), second = Backoff()
        var randomA = SeededGenerator(state: 5), randomB = SeededGenerator(state: 5)
        for _ in 0..<10 {
            XCTAssertEqual(first.nextDelay(using: &randomA), second.nextDelay(using: &randomB))
        }
    }
}
