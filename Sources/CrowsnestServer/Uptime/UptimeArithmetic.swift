import Crypto
import Foundation

/// One state span of a target in unix microseconds; `endMicros` nil while it is still open.
public struct SpanInterval: Sendable, Equatable {
    public var state: SpanState
    public var startMicros: Int64
    public var endMicros: Int64?
    public var cause: String

    public init(state: SpanState, startMicros: Int64, endMicros: Int64?, cause: String = "") {
        self.state = state
        self.startMicros = startMicros
        self.endMicros = endMicros
        self.cause = cause
    }
}

/// Microseconds spent in each state over a window.
public struct TimeInStates: Sendable, Equatable {
    public var up: Int64 = 0
    public var degraded: Int64 = 0
    public var down: Int64 = 0
    public var unknown: Int64 = 0
    public var maintenance: Int64 = 0

    public init() {}

    subscript(state: SpanState) -> Int64 {
        get {
            switch state {
            case .up: up
            case .degraded: degraded
            case .down: down
            case .unknown: unknown
            case .maintenance: maintenance
            }
        }
        set {
            switch state {
            case .up: up = newValue
            case .degraded: degraded = newValue
            case .down: down = newValue
            case .unknown: unknown = newValue
            case .maintenance: maintenance = newValue
            }
        }
    }

    /// Availability in percent: up-time / (up-time + down-time), `degraded` on the side the policy says;
    /// `unknown` and `maintenance` are on neither side. nil when there is neither up nor down time.
    public func availabilityPercent(degradedCountsAsDown: Bool = false) -> Double? {
        let upTime = up + (degradedCountsAsDown ? 0 : degraded)
        let downTime = down + (degradedCountsAsDown ? degraded : 0)
        guard upTime + downTime > 0 else { return nil }
        return Double(upTime) / Double(upTime + downTime) * 100
    }
}

/// A maximal down span of a target: consecutive down spans (a container that died, restarted and died again
/// without coming up) are one incident, with the first one's cause.
public struct Incident: Sendable, Equatable {
    public var startMicros: Int64
    /// nil while still down.
    public var endMicros: Int64?
    public var cause: String

    /// Seconds down, up to `nowMicros` while open.
    public func durationSeconds(nowMicros: Int64) -> Double {
        Double((endMicros ?? nowMicros) - startMicros) / 1_000_000
    }

    /// A stable id: the same incident always gets the same one, and it names no target (ids travel in URLs).
    public func id(target: TargetID) -> String {
        let digest = SHA256.hash(data: Data("\(target.description)\u{0}\(startMicros)".utf8))
        return "i-" + digest.prefix(12).map { String(format: "%02x", $0) }.joined()
    }
}

/// Uptime arithmetic over status spans, exact to the microsecond: what the timeline, summaries and SLA reports
/// are computed with. Pure functions; the spans come from `StatusSpanStore`.
public enum UptimeArithmetic {
    /// Cause of the time no span covers (before a target was first seen, or a gap).
    public static let noDataCause = "no data"

    /// The spans cut to `[from, to)`, sorted, with the time no span covers filled as `unknown` ("no data"), so the
    /// result covers the window exactly. An open span ends at `to`; so does the window, which callers cut at now.
    public static func clip(_ spans: [SpanInterval], from: Int64, to: Int64) -> [SpanInterval] {
        guard from < to else { return [] }
        var result: [SpanInterval] = []
        var cursor = from
        for span in spans.sorted(by: { $0.startMicros < $1.startMicros }) {
            let start = max(span.startMicros, from)
            let end = min(span.endMicros ?? to, to)
            guard end > start, end > cursor else { continue }
            if start > cursor {
                result.append(SpanInterval(state: .unknown, startMicros: cursor, endMicros: start, cause: noDataCause))
            }
            result.append(SpanInterval(state: span.state, startMicros: max(start, cursor), endMicros: end, cause: span.cause))
            cursor = end
        }
        if cursor < to {
            result.append(SpanInterval(state: .unknown, startMicros: cursor, endMicros: to, cause: noDataCause))
        }
        return result
    }

    /// Time in each state of spans already clipped to a window (every span closed).
    public static func timeInStates(_ clipped: [SpanInterval]) -> TimeInStates {
        var time = TimeInStates()
        for span in clipped {
            time[span.state] += (span.endMicros ?? span.startMicros) - span.startMicros
        }
        return time
    }

    /// The incidents among `spans` (unclipped, sorted or not): maximal runs of down spans that touch.
    public static func incidents(_ spans: [SpanInterval]) -> [Incident] {
        var incidents: [Incident] = []
        for span in spans.sorted(by: { $0.startMicros < $1.startMicros }) where span.state == .down {
            if var last = incidents.last, let lastEnd = last.endMicros, lastEnd >= span.startMicros {
                last.endMicros = span.endMicros.map { max($0, lastEnd) }
                incidents[incidents.count - 1] = last
            } else {
                incidents.append(Incident(startMicros: span.startMicros, endMicros: span.endMicros, cause: span.cause))
            }
        }
        return incidents
    }
}
