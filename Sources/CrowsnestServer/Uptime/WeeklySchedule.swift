import Foundation

/// Times of the week in a time zone — business hours (`09:00`–`17:00` on weekdays) or a recurring maintenance
/// window (Sundays from `02:00` for 90 minutes) — turned into concrete intervals, daylight saving time included.
public struct WeeklySchedule: Sendable, Equatable {
    /// ISO weekdays, 1 = Monday … 7 = Sunday.
    public var days: Set<Int>
    /// Minutes after local midnight the interval starts.
    public var startMinute: Int
    /// Length in minutes (may run past midnight).
    public var durationMinutes: Int

    public static let dayNames = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]

    public init(days: Set<Int>, startMinute: Int, durationMinutes: Int) {
        self.days = days
        self.startMinute = startMinute
        self.durationMinutes = durationMinutes
    }

    /// The schedule's intervals (unix µs) that overlap `[from, to)`, cut to it, sorted and merged.
    public func intervals(from: Int64, to: Int64, timeZone: TimeZone) -> [(start: Int64, end: Int64)] {
        guard from < to, !days.isEmpty, durationMinutes > 0 else { return [] }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        let first = calendar.startOfDay(for: Date(unixMicros: from))
        // An interval that began the day before (or earlier, for long ones) may still run into the range.
        let lookBackDays = durationMinutes / 1440 + 1
        guard var day = calendar.date(byAdding: .day, value: -lookBackDays, to: first) else { return [] }
        let last = Date(unixMicros: to)
        var result: [(start: Int64, end: Int64)] = []
        while day < last {
            let weekday = calendar.component(.weekday, from: day)  // 1 = Sunday
            let iso = weekday == 1 ? 7 : weekday - 1
            if days.contains(iso) {
                let parts = calendar.dateComponents([.year, .month, .day], from: day)
                var startParts = parts
                startParts.hour = startMinute / 60
                startParts.minute = startMinute % 60
                if let start = calendar.date(from: startParts) {
                    let end = start.addingTimeInterval(Double(durationMinutes) * 60)
                    let s = max(start.unixMicros, from), e = min(end.unixMicros, to)
                    if s < e {
                        if let previous = result.last, previous.end >= s {
                            result[result.count - 1].end = max(previous.end, e)
                        } else {
                            result.append((s, e))
                        }
                    }
                }
            }
            guard let next = calendar.date(byAdding: .day, value: 1, to: day) else { break }
            day = next
        }
        return result
    }
}

/// Interval arithmetic on sorted, non-overlapping µs intervals.
public enum IntervalSet {
    /// The parts of `spans` (clipped, covering a window) inside `mask`.
    public static func intersect(_ spans: [SpanInterval], with mask: [(start: Int64, end: Int64)]) -> [SpanInterval] {
        var result: [SpanInterval] = []
        var index = 0
        for span in spans {
            guard let spanEnd = span.endMicros else { continue }
            while index < mask.count, mask[index].end <= span.startMicros { index += 1 }
            var probe = index
            while probe < mask.count, mask[probe].start < spanEnd {
                let s = max(span.startMicros, mask[probe].start), e = min(spanEnd, mask[probe].end)
                if s < e {
                    var piece = span
                    piece.startMicros = s
                    piece.endMicros = e
                    result.append(piece)
                }
                probe += 1
            }
        }
        return result
    }

    /// `spans` (clipped, covering a window) with the time inside `windows` turned into `maintenance`.
    public static func overlay(_ spans: [SpanInterval], maintenance windows: [(start: Int64, end: Int64)],
                               cause: String = "maintenance window") -> [SpanInterval] {
        guard !windows.isEmpty else { return spans }
        var result: [SpanInterval] = []
        for span in spans {
            guard let spanEnd = span.endMicros else { result.append(span); continue }
            var cursor = span.startMicros
            for window in windows where window.end > cursor && window.start < spanEnd {
                if window.start > cursor {
                    var before = span
                    before.startMicros = cursor
                    before.endMicros = window.start
                    result.append(before)
                }
                let s = max(cursor, window.start), e = min(spanEnd, window.end)
                result.append(SpanInterval(state: .maintenance, startMicros: s, endMicros: e, cause: cause))
                cursor = e
            }
            if cursor < spanEnd {
                var rest = span
                rest.startMicros = cursor
                result.append(rest)
            }
        }
        return merged(result)
    }

    /// Adjacent spans of the same state and cause joined into one.
    public static func merged(_ spans: [SpanInterval]) -> [SpanInterval] {
        var result: [SpanInterval] = []
        for span in spans {
            if let last = result.last, last.state == span.state, last.cause == span.cause, last.endMicros == span.startMicros {
                result[result.count - 1].endMicros = span.endMicros
            } else {
                result.append(span)
            }
        }
        return result
    }
}

extension IntervalSet {
    /// Sorted, with overlapping or touching intervals joined.
    public static func normalized(_ intervals: [(start: Int64, end: Int64)]) -> [(start: Int64, end: Int64)] {
        var result: [(start: Int64, end: Int64)] = []
        for interval in intervals.sorted(by: { $0.start < $1.start }) where interval.start < interval.end {
            if let last = result.last, last.end >= interval.start {
                result[result.count - 1].end = max(last.end, interval.end)
            } else {
                result.append(interval)
            }
        }
        return result
    }
}
