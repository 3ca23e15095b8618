import Foundation
import XCTest

@testable import CrowsnestServer

/// Weekly schedules in a time zone, interval masks, service timelines from their targets, SLA figures.
final class ServiceUptimeTests: XCTestCase {
    private func micros(_ text: String) -> Int64 { instant(text).unixMicros }
    private let minute: Int64 = 60_000_000

    func testBusinessHoursFollowTheTimeZoneAcrossDaylightSavingTime() throws {
        let berlin = try XCTUnwrap(TimeZone(identifier: "Europe/Berlin"))
        let weekdays = WeeklySchedule(days: [1, 2, 3, 4, 5], startMinute: 9 * 60, durationMinutes: 8 * 60)
        // The week of 2025-03-24 (Mon) to 2025-03-31 (Mon): Berlin moves from UTC+1 to UTC+2 on Sunday 30 March.
        let intervals = weekdays.intervals(from: micros("2025-03-24T00:00:00Z"), to: micros("2025-04-01T00:00:00Z"), timeZone: berlin)
        XCTAssertEqual(intervals.count, 6)
        XCTAssertEqual(intervals.first?.start, micros("2025-03-24T08:00:00Z"), "09:00 in Berlin in winter")
        XCTAssertEqual(intervals.first?.end, micros("2025-03-24T16:00:00Z"))
        XCTAssertEqual(intervals.last?.start, micros("2025-03-31T07:00:00Z"), "09:00 in Berlin in summer")
        // A window running past midnight (Sunday 23:00 for 3 hours) starts before the range and is cut to it.
        let night = WeeklySchedule(days: [7], startMinute: 23 * 60, durationMinutes: 180)
        let cut = night.intervals(from: micros("2025-03-03T00:00:00Z"), to: micros("2025-03-03T12:00:00Z"), timeZone: TimeZone(identifier: "UTC")!)
        XCTAssertEqual(cut.map(\.start), [micros("2025-03-03T00:00:00Z")])
        XCTAssertEqual(cut.map(\.end), [micros("2025-03-03T02:00:00Z")])
    }

    func testMaintenanceOverlaysAndBusinessHoursMask() {
        let spans = [SpanInterval(state: .up, startMicros: 0, endMicros: 100), SpanInterval(state: .down, startMicros: 100, endMicros: 200, cause: "x")]
        let overlaid = IntervalSet.overlay(spans, maintenance: [(50, 150)])
        XCTAssertEqual(overlaid.map(\.state), [.up, .maintenance, .down])
        XCTAssertEqual(overlaid.map(\.startMicros), [0, 50, 150])
        let masked = IntervalSet.intersect(spans, with: [(20, 40), (90, 110), (190, 300)])
        XCTAssertEqual(UptimeArithmetic.timeInStates(masked).up, 30)
        XCTAssertEqual(UptimeArithmetic.timeInStates(masked).down, 20)
    }

    func testAServiceIsDownByItsRuleCountingOnlyTargetsThatReport() {
        // web down 10–20, api down 15–30, db in maintenance 0–40.
        let web = ServiceTimeline.Member(name: "web", spans: [
            SpanInterval(state: .up, startMicros: 0, endMicros: 10), SpanInterval(state: .down, startMicros: 10, endMicros: 20, cause: "exited"),
            SpanInterval(state: .up, startMicros: 20, endMicros: 40)])
        let api = ServiceTimeline.Member(name: "api", spans: [
            SpanInterval(state: .up, startMicros: 0, endMicros: 15), SpanInterval(state: .down, startMicros: 15, endMicros: 30),
            SpanInterval(state: .degraded, startMicros: 30, endMicros: 40, cause: "unhealthy")])
        let db = ServiceTimeline.Member(name: "db", spans: [SpanInterval(state: .maintenance, startMicros: 0, endMicros: 40)])
        let any = ServiceTimeline.combine([web, api, db], rule: .any, from: 0, to: 40)
        XCTAssertEqual(UptimeArithmetic.timeInStates(any).down, 20, "10–30")
        XCTAssertEqual(UptimeArithmetic.timeInStates(any).degraded, 10)
        XCTAssertEqual(any.first { $0.state == .down }?.cause, "1 of 3 targets down (web: exited)")
        let all = ServiceTimeline.combine([web, api, db], rule: .all, from: 0, to: 40)
        XCTAssertEqual(UptimeArithmetic.timeInStates(all).down, 5, "15–20: both reporting targets down; db in maintenance is not counted")
        let two = ServiceTimeline.combine([web, api, db], rule: .atLeast(2), from: 0, to: 40)
        XCTAssertEqual(UptimeArithmetic.timeInStates(two).down, 5)
        let maintenance = ServiceTimeline.combine([db], rule: .any, from: 0, to: 40)
        XCTAssertEqual(maintenance.map(\.state), [.maintenance])
        XCTAssertEqual(ServiceTimeline.combine([], rule: .any, from: 0, to: 40).map(\.state), [.unknown])
    }

    func testSLAFiguresHonourTheObjectiveDegradedAndBusinessHours() throws {
        let utc = try XCTUnwrap(TimeZone(identifier: "UTC"))
        let period = try XCTUnwrap(ReportPeriod("2025-02"))
        let (start, end) = period.bounds(in: utc)
        XCTAssertEqual(start, micros("2025-02-01T00:00:00Z"))
        XCTAssertEqual(end, micros("2025-03-01T00:00:00Z"))
        // 28 days: down 30 min on 3 Feb 10:00 (a Monday, in business hours) and 60 min on 8 Feb 10:00 (a Saturday);
        // degraded 20 min on 4 Feb 10:00.
        let spans = [
            SpanInterval(state: .up, startMicros: start, endMicros: micros("2025-02-03T10:00:00Z")),
            SpanInterval(state: .down, startMicros: micros("2025-02-03T10:00:00Z"), endMicros: micros("2025-02-03T10:30:00Z"), cause: "a"),
            SpanInterval(state: .up, startMicros: micros("2025-02-03T10:30:00Z"), endMicros: micros("2025-02-04T10:00:00Z")),
            SpanInterval(state: .degraded, startMicros: micros("2025-02-04T10:00:00Z"), endMicros: micros("2025-02-04T10:20:00Z")),
            SpanInterval(state: .up, startMicros: micros("2025-02-04T10:20:00Z"), endMicros: micros("2025-02-08T10:00:00Z")),
            SpanInterval(state: .down, startMicros: micros("2025-02-08T10:00:00Z"), endMicros: micros("2025-02-08T11:00:00Z"), cause: "b"),
            SpanInterval(state: .up, startMicros: micros("2025-02-08T11:00:00Z"), endMicros: end),
        ]
        let whole = SLAReport.figures(name: "shop", policy: SLAPolicy(objectivePercent: 99.9), spans: spans,
                                      periodStart: start, periodEnd: end, timeZone: utc)
        let total = 28.0 * 1440
        XCTAssertEqual(whole.availabilityPercent!, (total - 90) / total * 100, accuracy: 1e-9)
        XCTAssertEqual(whole.errorBudgetMinutes, 0.001 * total, accuracy: 1e-9)
        XCTAssertEqual(whole.errorBudgetUsedMinutes, 90, accuracy: 1e-9)
        XCTAssertEqual(whole.met, false, "90 minutes down is more than 40.32 minutes of budget")
        XCTAssertEqual(whole.incidentCount, 2)
        XCTAssertEqual(whole.mttrSeconds!, 45 * 60, accuracy: 1e-9)
        XCTAssertEqual(whole.longestIncidentSeconds, 3600)

        let strict = SLAReport.figures(name: "shop", policy: SLAPolicy(objectivePercent: 99.0, degradedCountsAsDown: true),
                                       spans: spans, periodStart: start, periodEnd: end, timeZone: utc)
        XCTAssertEqual(strict.errorBudgetUsedMinutes, 110, accuracy: 1e-9)
        XCTAssertEqual(strict.incidentCount, 3)
        XCTAssertEqual(strict.met, true, "110 minutes is within 1 % of 28 days")

        let office = WeeklySchedule(days: [1, 2, 3, 4, 5], startMinute: 9 * 60, durationMinutes: 8 * 60)
        let hours = SLAReport.figures(name: "shop", policy: SLAPolicy(objectivePercent: 99.9, businessHours: office),
                                      spans: spans, periodStart: start, periodEnd: end, timeZone: utc)
        let officeMinutes = 20.0 * 8 * 60  // February 2025 has 20 weekdays
        XCTAssertEqual(hours.errorBudgetUsedMinutes, 30, accuracy: 1e-9, "Saturday's outage is outside business hours")
        XCTAssertEqual(hours.availabilityPercent!, (officeMinutes - 30) / officeMinutes * 100, accuracy: 1e-9)
        XCTAssertEqual(hours.errorBudgetMinutes, 0.001 * officeMinutes, accuracy: 1e-9)
        XCTAssertEqual(hours.incidentCount, 2, "incidents are counted whole, at any hour")
    }

    func testPeriodsParseStrictly() {
        XCTAssertEqual(ReportPeriod("2025-02")?.description, "2025-02")
        for bad in ["2025-2", "2025-13", "25-02", "2025-02-01", "abcd-ef", "", "1999-12", "２０２５-02"] {
            XCTAssertNil(ReportPeriod(bad), bad)
        }
    }
}
