import Foundation
import XCTest

@testable import CrowsnestServer

final class MetricsHistoryParametersTests: XCTestCase {
    private let now = instant("2025-01-01T12:00:00Z")

    private func parse(from: String? = nil, to: String? = nil, step: String? = nil, agg: String? = nil) throws -> MetricsHistoryParameters {
        try MetricsHistoryParameters.parse(from: from, to: to, step: step, agg: agg, now: self.now)
    }

    /// The message of the 400 that `body` throws.
    private func badRequestMessage(_ body: () throws -> Any, file: StaticString = #filePath, line: UInt = #line) -> String {
        do {
            _ = try body()
            XCTFail("accepted", file: file, line: line)
            return ""
        } catch let error as APIError {
            XCTAssertEqual(error.status, .badRequest, file: file, line: line)
            XCTAssertEqual(error.code, "bad_request", file: file, line: line)
            return error.message
        } catch {
            XCTFail("unexpected error \(error)", file: file, line: line)
            return ""
        }
    }

    func testDefaultsToTheLastHourAveragedAtTheSamplingInterval() throws {
        let parameters = try self.parse()
        XCTAssertEqual(parameters.to, self.now)
        XCTAssertEqual(parameters.from, self.now.addingTimeInterval(-3600))
        XCTAssertEqual(parameters.aggregation, .avg)
        XCTAssertNil(parameters.requestedStepSeconds)
        XCTAssertEqual(parameters.stepSeconds(rawIntervalSeconds: 30), 30)
        XCTAssertEqual(parameters.stepSeconds(rawIntervalSeconds: 1), 15, "3600 s in at most 300 points needs >= 12 s")
    }

    func testDefaultStepKeepsLongRangesWithinThreeHundredPoints() throws {
        for (from, expected) in [
            ("2024-12-31T12:00:00Z", 300), ("2024-12-01T12:00:00Z", 10800), ("2024-01-01T12:00:00Z", 2 * 86_400),
        ] {
            let parameters = try self.parse(from: from)
            let step = parameters.stepSeconds(rawIntervalSeconds: 30)
            XCTAssertEqual(step, expected, from)
            XCTAssertLessThanOrEqual(
                MetricsHistoryParameters.bucketCount(from: parameters.from, to: parameters.to, stepSeconds: step), 300
            )
        }
    }

    func testAcceptsStepsInSecondsOrWithUnits() throws {
        XCTAssertEqual(try self.parse(step: "60").requestedStepSeconds, 60)
        XCTAssertEqual(try self.parse(step: "45s").requestedStepSeconds, 45)
        XCTAssertEqual(try self.parse(step: "5m").requestedStepSeconds, 300)
        XCTAssertEqual(try self.parse(step: "1h").requestedStepSeconds, 3600)
        XCTAssertEqual(try self.parse(from: "2024-12-01T00:00:00Z", step: "1d").requestedStepSeconds, 86_400)
        XCTAssertEqual(try self.parse(step: "120").stepSeconds(rawIntervalSeconds: 30), 120)
    }

    func testAcceptsEachAggregation() throws {
        XCTAssertEqual(try self.parse(agg: "avg").aggregation, .avg)
        XCTAssertEqual(try self.parse(agg: "min").aggregation, .min)
        XCTAssertEqual(try self.parse(agg: "max").aggregation, .max)
    }

    func testRejectsBadTimestampsNamingTheParameter() {
        XCTAssertTrue(self.badRequestMessage { try self.parse(from: "yesterday") }.hasPrefix("from must be an RFC 3339 timestamp"))
        XCTAssertTrue(self.badRequestMessage { try self.parse(to: "1735689600") }.hasPrefix("to must be an RFC 3339 timestamp"))
    }

    func testRejectsAnEmptyOrReversedRange() {
        XCTAssertTrue(self.badRequestMessage { try self.parse(from: "2025-01-01T12:00:00Z") }.contains("must be before to"))
        XCTAssertTrue(
            self.badRequestMessage { try self.parse(from: "2025-01-01T13:00:00Z", to: "2025-01-01T12:00:00Z") }
                .contains("must be before to")
        )
    }

    func testRejectsRangesLongerThanFourHundredDays() throws {
        XCTAssertNoThrow(try self.parse(from: "2023-11-28T12:00:00Z"))  // exactly 400 days
        let message = self.badRequestMessage { try self.parse(from: "2023-11-27T12:00:00Z") }
        XCTAssertTrue(message.contains("400 days"), message)
    }

    func testRejectsMoreThanFiveThousandPoints() {
        let message = self.badRequestMessage { try self.parse(from: "2025-01-01T10:00:00Z", step: "1") }
        XCTAssertTrue(message.contains("7201 points"), message)
        XCTAssertTrue(message.contains("at most 5000 points"), message)
        XCTAssertNoThrow(try self.parse(from: "2025-01-01T10:00:00Z", step: "2"))
    }

    func testRejectsStepsBelowOneSecondOrMalformed() {
        XCTAssertEqual(self.badRequestMessage { try self.parse(step: "0") }, "step must be at least 1 second")
        XCTAssertEqual(self.badRequestMessage { try self.parse(step: "0m") }, "step must be at least 1 second")
        for step in ["", "-5", "1.5", "5x", "m", "abc", "99999999999999999999"] {
            XCTAssertTrue(self.badRequestMessage { try self.parse(step: step) }.hasPrefix("step must be a whole number"), step)
        }
    }

    func testRejectsUnknownAggregations() {
        XCTAssertEqual(self.badRequestMessage { try self.parse(agg: "median") }, "agg must be one of avg, min, max (got \"median\")")
    }

    func testCountsEpochAlignedBuckets() {
        let from = instant("2025-01-01T00:00:30Z")
        XCTAssertEqual(MetricsHistoryParameters.bucketCount(from: from, to: instant("2025-01-01T00:01:00Z"), stepSeconds: 60), 2)
        XCTAssertEqual(MetricsHistoryParameters.bucketCount(from: from, to: instant("2025-01-01T00:00:59Z"), stepSeconds: 60), 1)
    }
}
