import CrowsnestWire
import Foundation

/// One value of a metric at one time.
public struct MetricPoint: Sendable, Equatable {
    public var micros: Int64
    public var value: Double

    public init(micros: Int64, value: Double) {
        (self.micros, self.value) = (micros, value)
    }
}

/// Turns a metric's series into spans a state machine can judge: `down` while it breaches the threshold, `up` while
/// it is clear, with hysteresis (fires beyond `bound`, clears only past `resolve`), so a threshold rule fires,
/// recovers, flaps, reminds and escalates through the same `AlertStateMachine` as a state rule. Pure.
public enum ThresholdSeries {
    /// A series whose newest point is older than this (or than three of its widest gaps) says nothing any more: its
    /// last span ends there and `unknown` follows, which no rule watches (a stopped container's CPU alert recovers).
    public static let minimumStaleness: Int64 = 300_000_000

    /// `points` in time order; `breachingBefore`: whether the rule was firing, which decides the hysteresis band at
    /// the first point.
    public static func spans(_ points: [MetricPoint], threshold: AlertRuleDefinition.Threshold, breachingBefore: Bool,
                             nowMicros: Int64) -> [SpanInterval] {
        let points = points.filter { $0.value.isFinite && $0.micros <= nowMicros }
        guard let last = points.last else { return [] }
        var spans: [SpanInterval] = []
        var breaching = breachingBefore
        var widestGap: Int64 = 0
        for (index, point) in points.enumerated() {
            if index > 0 { widestGap = max(widestGap, point.micros - points[index - 1].micros) }
            let now = threshold.breaches(point.value, before: breaching)
            if index == 0 || now != breaching {
                if !spans.isEmpty { spans[spans.count - 1].endMicros = point.micros }
                spans.append(SpanInterval(state: now ? .down : .up, startMicros: point.micros, endMicros: nil,
                                          cause: cause(threshold, value: point.value, breaching: now)))
            } else if now {
                // The newest value carries the cause (what the notification reports).
                spans[spans.count - 1].cause = cause(threshold, value: point.value, breaching: true)
            }
            breaching = now
        }
        let stale = max(minimumStaleness, 3 * widestGap)
        if !threshold.metric.isCounted, nowMicros - last.micros > stale {
            spans[spans.count - 1].endMicros = last.micros + stale
            spans.append(SpanInterval(state: .unknown, startMicros: last.micros + stale, endMicros: nil,
                                      cause: "no \(threshold.metric.rawValue) figure since \(RFC3339Micros.string(last.micros))"))
        }
        return spans
    }

    /// For a counted metric: the number of `events` in the `window` ending at each moment the count changes,
    /// from `fromMicros` to `nowMicros` (a point at both ends).
    public static func counts(of events: [Int64], windowMicros: Int64, fromMicros: Int64, nowMicros: Int64) -> [MetricPoint] {
        let events = events.sorted()
        var moments = Set([fromMicros, nowMicros])
        for event in events {
            if event >= fromMicros, event <= nowMicros { moments.insert(event) }
            if event + windowMicros >= fromMicros, event + windowMicros <= nowMicros { moments.insert(event + windowMicros) }
        }
        return moments.sorted().map { moment in
            // Events in (moment − window, moment].
            MetricPoint(micros: moment, value: Double(events.filter { $0 > moment - windowMicros && $0 <= moment }.count))
        }
    }

    static func cause(_ threshold: AlertRuleDefinition.Threshold, value: Double, breaching: Bool) -> String {
        let metric = threshold.metric.rawValue
        let shown = format(value)
        if breaching {
            return "\(metric) \(shown) \(threshold.above ? "above" : "below") \(format(threshold.bound)) (\(threshold.metric.unit))"
        }
        return "\(metric) \(shown), clear of \(format(threshold.resolve)) (\(threshold.metric.unit))"
    }

    /// One decimal at most, none when it rounds to a whole number (9.99999 days reads "10").
    static func format(_ value: Double) -> String {
        let tenths = (value * 10).rounded() / 10
        return tenths == tenths.rounded() && abs(tenths) < 1e12 ? String(Int64(tenths)) : String(format: "%.1f", tenths)
    }
}

/// RFC 3339 of whole microseconds since 1970.
enum RFC3339Micros {
    static func string(_ micros: Int64) -> String {
        RFC3339.string(from: Date(unixMicros: micros))
    }
}
