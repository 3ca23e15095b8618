import Foundation

/// A line chart drawn on the server: each series becomes `<polyline>` point lists in a fixed viewBox, broken
/// where data is missing, so pages show charts without JavaScript. Only numbers reach the markup.
struct SVGChart {
    struct Series {
        let name: String
        /// CSS class of the line (`line-0`…): colours live in the stylesheet.
        let css: String
        /// One `points` attribute per unbroken stretch.
        let segments: [String]
        /// The newest value, formatted.
        let latest: String
    }

    static let width = 600.0
    static let height = 120.0

    let title: String
    let series: [Series]
    let yMaxLabel: String
    let fromLabel: String
    let toLabel: String
    let isEmpty: Bool
    let width = SVGChart.width
    let height = SVGChart.height

    /// - Parameters:
    ///   - lines: each series' name and its points (time, value; nil where there is no value).
    ///   - yMax: a fixed top (100 for percentages), else the largest value with some headroom.
    ///   - gap: points further apart than this break the line (missing samples are not drawn as a slope).
    ///   - format: how values read in the labels.
    static func make(title: String, from: Date, to: Date, lines: [(name: String, points: [(Date, Double?)])], yMax fixed: Double? = nil,
                     gap: TimeInterval, format: (Double) -> String) -> SVGChart {
        let span = max(to.timeIntervalSince(from), 1)
        let values = lines.flatMap { $0.points.compactMap(\.1) }.filter(\.isFinite)
        let top = fixed ?? max((values.max() ?? 0) * 1.1, 1e-9)
        let series = lines.enumerated().map { index, line -> Series in
            var segments: [String] = []
            var current: [String] = []
            var previous: Date?
            for (time, value) in line.points.sorted(by: { $0.0 < $1.0 }) {
                guard let value, value.isFinite, time >= from, time <= to else {
                    if !current.isEmpty { segments.append(current.joined(separator: " ")); current = [] }
                    continue
                }
                if let previous, time.timeIntervalSince(previous) > gap, !current.isEmpty {
                    segments.append(current.joined(separator: " "))
                    current = []
                }
                let x = time.timeIntervalSince(from) / span * width
                let y = height - min(max(value / top, 0), 1) * height
                current.append(String(format: "%.1f,%.1f", x, y))
                previous = time
            }
            if !current.isEmpty { segments.append(current.joined(separator: " ")) }
            // A single point is drawn as a tiny segment so it stays visible.
            segments = segments.map { $0.contains(" ") ? $0 : "\($0) \($0)" }
            let latest = line.points.sorted(by: { $0.0 < $1.0 }).last(where: { $0.1 != nil })?.1.map(format) ?? "–"
            return Series(name: line.name, css: "line-\(index % 4)", segments: segments, latest: latest)
        }
        return SVGChart(title: title, series: series, yMaxLabel: values.isEmpty ? "" : format(top),
                        fromLabel: WebFormat.timestamp(from), toLabel: WebFormat.timestamp(to), isEmpty: values.isEmpty)
    }
}

/// A bar of a target's states over a range: one rectangle per span, as fractions of the bar's width.
struct StateBar {
    struct Segment {
        let x: String
        let width: String
        let state: String
        let label: String
    }

    let segments: [Segment]

    static func make(_ spans: [SpanInterval], from: Int64, to: Int64) -> StateBar {
        let length = Double(max(to - from, 1))
        let segments = spans.compactMap { span -> Segment? in
            let start = max(span.startMicros, from), end = min(span.endMicros ?? to, to)
            guard end > start else { return nil }
            let x = Double(start - from) / length * 100, width = Double(end - start) / length * 100
            return Segment(x: String(format: "%.3f", x), width: String(format: "%.3f", width), state: span.state.rawValue,
                           label: "\(span.state.rawValue) for \(WebFormat.duration(seconds: Double(end - start) / 1e6))"
                               + (span.cause.isEmpty ? "" : ": \(span.cause)"))
        }
        return StateBar(segments: segments)
    }
}
