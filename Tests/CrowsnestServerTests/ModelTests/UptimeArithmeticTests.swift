import XCTest

@testable import CrowsnestServer

/// Uptime arithmetic over spans: windows covered exactly, availability from up and down only, incidents merged.
final class UptimeArithmeticTests: XCTestCase {
    func testClipCoversTheWindowExactlyAndFillsGapsAsNoData() {
        let spans = [
            SpanInterval(state: .up, startMicros: 100, endMicros: 200),
            SpanInterval(state: .down, startMicros: 250, endMicros: nil, cause: "exited"),
        ]
        let clipped = UptimeArithmetic.clip(spans, from: 50, to: 400)
        XCTAssertEqual(clipped, [
            SpanInterval(state: .unknown, startMicros: 50, endMicros: 100, cause: UptimeArithmetic.noDataCause),
            SpanInterval(state: .up, startMicros: 100, endMicros: 200),
            SpanInterval(state: .unknown, startMicros: 200, endMicros: 250, cause: UptimeArithmetic.noDataCause),
            SpanInterval(state: .down, startMicros: 250, endMicros: 400, cause: "exited"),
        ])
        let time = UptimeArithmetic.timeInStates(clipped)
        XCTAssertEqual(time.up + time.down + time.unknown, 350, "every microsecond of the window counted once")
        XCTAssertEqual(time.availabilityPercent()!, 100.0 * 100 / 250, accuracy: 1e-12)
        XCTAssertEqual(UptimeArithmetic.clip(spans, from: 300, to: 300), [], "an empty window")
        XCTAssertEqual(UptimeArithmetic.clip([], from: 0, to: 10), [SpanInterval(state: .unknown, startMicros: 0, endMicros: 10, cause: "no data")])
    }

    func testOverlappingSpansAreNeverCountedTwice() {
        let spans = [
            SpanInterval(state: .up, startMicros: 0, endMicros: 100),
            SpanInterval(state: .degraded, startMicros: 80, endMicros: 120),
        ]
        let time = UptimeArithmetic.timeInStates(UptimeArithmetic.clip(spans, from: 0, to: 120))
        XCTAssertEqual(time.up + time.degraded, 120)
    }

    func testDegradedCountsAsUpUnlessThePolicySaysDownAndUnknownAndMaintenanceCountOnNeitherSide() {
        var time = TimeInStates()
        time.up = 900
        time.degraded = 50
        time.down = 50
        time.unknown = 10_000
        time.maintenance = 10_000
        XCTAssertEqual(time.availabilityPercent()!, 95, accuracy: 1e-12)
        XCTAssertEqual(time.availabilityPercent(degradedCountsAsDown: true)!, 90, accuracy: 1e-12)
        XCTAssertNil(TimeInStates().availabilityPercent())
    }

    func testIncidentsAreMaximalDownRuns() {
        let spans = [
            SpanInterval(state: .down, startMicros: 10, endMicros: 20, cause: "exited with code 1"),
            SpanInterval(state: .down, startMicros: 20, endMicros: 30, cause: "OOM killed"),
            SpanInterval(state: .up, startMicros: 30, endMicros: 40),
            SpanInterval(state: .down, startMicros: 40, endMicros: 50, cause: "a"),
            SpanInterval(state: .unknown, startMicros: 50, endMicros: 60),
            SpanInterval(state: .down, startMicros: 60, endMicros: nil, cause: "b"),
        ]
        let incidents = UptimeArithmetic.incidents(spans)
        XCTAssertEqual(incidents, [
            Incident(startMicros: 10, endMicros: 30, cause: "exited with code 1"),
            Incident(startMicros: 40, endMicros: 50, cause: "a"),
            Incident(startMicros: 60, endMicros: nil, cause: "b"),
        ])
        XCTAssertEqual(incidents[2].durationSeconds(nowMicros: 2_000_060), 2)
        XCTAssertEqual(incidents[0].id(target: .check(checkID: UUID())).count, 26)
        let target = TargetID.host(agentID: UUID())
        XCTAssertEqual(incidents[0].id(target: target), incidents[0].id(target: target))
        XCTAssertNotEqual(incidents[0].id(target: target), incidents[1].id(target: target))
    }
}
