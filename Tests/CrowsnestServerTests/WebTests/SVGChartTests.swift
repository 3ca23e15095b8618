import Foundation
import XCTest

@testable import CrowsnestServer

final class SVGChartTests: XCTestCase {
    let from = Date(timeIntervalSince1970: 1_700_000_000)

    func testPointsScaleToTheViewBoxAndMissingValuesBreakTheLine() {
        let points: [(Date, Double?)] = [
            (from, 0), (from.addingTimeInterval(60), 50), (from.addingTimeInterval(120), nil),
            (from.addingTimeInterval(180), 100), (from.addingTimeInterval(240), 25),
        ]
        let chart = SVGChart.make(title: "CPU", from: from, to: from.addingTimeInterval(240), lines: [("cpu", points)], yMax: 100,
                                  gap: 90, format: WebFormat.percent)
        XCTAssertEqual(chart.series.count, 1)
        XCTAssertEqual(chart.series[0].segments, ["0.0,120.0 150.0,60.0", "450.0,0.0 600.0,90.0"])
        XCTAssertEqual(chart.series[0].latest, "25.0 %")
        XCTAssertEqual(chart.yMaxLabel, "100.0 %")
        XCTAssertFalse(chart.isEmpty)
    }

    func testAGapLongerThanAllowedBreaksTheLineAndValuesAreClampedIntoTheBox() {
        let points: [(Date, Double?)] = [(from, 10), (from.addingTimeInterval(30), 10), (from.addingTimeInterval(600), 500)]
        let chart = SVGChart.make(title: "CPU", from: from, to: from.addingTimeInterval(600), lines: [("cpu", points)], yMax: 100,
                                  gap: 60, format: WebFormat.percent)
        XCTAssertEqual(chart.series[0].segments, ["0.0,108.0 30.0,108.0", "600.0,0.0 600.0,0.0"],
                       "a lone point is a visible dot; a value above the top sits at the top")
    }

    func testWithoutAFixedTopTheLargestValueGetsHeadroomAndNoDataIsEmpty() {
        let chart = SVGChart.make(title: "Net", from: from, to: from.addingTimeInterval(100),
                                  lines: [("rx", [(from, 1000), (from.addingTimeInterval(100), 500)]), ("tx", [(from, nil)])],
                                  gap: 200, format: WebFormat.bytes)
        XCTAssertEqual(chart.yMaxLabel, "1.1 KiB")
        XCTAssertEqual(chart.series[1].segments, [])
        XCTAssertEqual(chart.series[1].latest, "–")
        XCTAssertEqual(chart.series.map(\.css), ["line-0", "line-1"])
        let empty = SVGChart.make(title: "Net", from: from, to: from.addingTimeInterval(100), lines: [("rx", [])], gap: 10, format: WebFormat.bytes)
        XCTAssertTrue(empty.isEmpty)
    }

    func testAStateBarCutsSpansToTheRange() {
        let start = Int64(1_700_000_000) * 1_000_000
        let spans = [
            SpanInterval(state: .up, startMicros: start - 1_000_000, endMicros: start + 75_000_000),
            SpanInterval(state: .down, startMicros: start + 75_000_000, endMicros: start + 100_000_000, cause: "exit code 1"),
            SpanInterval(state: .up, startMicros: start + 100_000_000, endMicros: nil),
        ]
        let bar = StateBar.make(spans, from: start, to: start + 200_000_000)
        XCTAssertEqual(bar.segments.map(\.x), ["0.000", "37.500", "50.000"])
        XCTAssertEqual(bar.segments.map(\.width), ["37.500", "12.500", "50.000"])
        XCTAssertEqual(bar.segments[1].label, "down for 25 s: exit code 1")
    }
}
