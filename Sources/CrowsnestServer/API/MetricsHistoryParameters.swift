import CrowsnestWire
import Foundation

/// The validated query of `GET /api/v1/metrics/{target}/history`: range, bucket size and aggregate.
///
/// Limits are explicit so one request cannot make the server scan without bound: the range is at most
/// `maximumRangeDays` long, a response has at most `maximumPoints` buckets, and a step is at least 1 s.
struct MetricsHistoryParameters: Equatable, Sendable {
    /// Longest range one request may ask for.
    static let maximumRangeDays = 400
    /// Most buckets one response may hold.
    static let maximumPoints = 5000
    /// Most buckets when the caller lets the server choose the step.
    static let defaultMaximumPoints = 300
    /// Range when `from` is not given.
    static let defaultRangeSeconds: TimeInterval = 3600
    /// Steps the server chooses from (seconds), so default buckets land on round times.
    static let niceSteps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400]

    /// Start of the range (inclusive).
    var from: Date
    /// End of the range (inclusive).
    var to: Date
    /// The step the caller asked for; nil lets the server choose (`stepSeconds(rawIntervalSeconds:)`).
    var requestedStepSeconds: Int?
    /// How samples within a bucket are combined.
    var aggregation: MetricsAggregation

    /// The bucket size to use: the requested one, else the smallest round step, at least the target's
    /// sampling interval, that keeps the response within `defaultMaximumPoints`.
    func stepSeconds(rawIntervalSeconds: Int) -> Int {
        self.requestedStepSeconds ?? Self.defaultStep(from: self.from, to: self.to, rawIntervalSeconds: rawIntervalSeconds)
    }

    /// Parses and checks the query parameters (`nil` = not given); `now` is the default `to`.
    static func parse(
        from fromText: String?, to toText: String?, step stepText: String?, agg aggText: String?, now: Date
    ) throws -> MetricsHistoryParameters {
        let (from, to) = try QueryParameter.range(from: fromText, to: toText, now: now, defaultSeconds: defaultRangeSeconds,
                                                  maximumDays: maximumRangeDays)
        let rangeSeconds = to.timeIntervalSince(from)

        let aggregation: MetricsAggregation
        if let aggText {
            guard let parsed = MetricsAggregation(rawValue: aggText) else {
                throw APIError.badRequest("agg must be one of avg, min, max (got \"\(aggText)\")")
            }
            aggregation = parsed
        } else {
            aggregation = .avg
        }

        var stepSeconds: Int?
        if let stepText {
            let requested = try step(stepText)
            stepSeconds = requested
            let points = bucketCount(from: from, to: to, stepSeconds: requested)
            guard points <= maximumPoints else {
                let smallest = Int((rangeSeconds / Double(maximumPoints - 2)).rounded(.up))
                throw APIError.badRequest(
                    "step \(requested)s over this range gives \(points) points; at most \(maximumPoints) points per response: use a step of at least \(smallest)s or a shorter range"
                )
            }
        }
        return MetricsHistoryParameters(from: from, to: to, requestedStepSeconds: stepSeconds, aggregation: aggregation)
    }

    /// Number of epoch-aligned buckets of `stepSeconds` that `[from, to]` touches.
    static func bucketCount(from: Date, to: Date, stepSeconds: Int) -> Int {
        let step = Double(stepSeconds)
        let first = (from.timeIntervalSince1970 / step).rounded(.down)
        let last = (to.timeIntervalSince1970 / step).rounded(.down)
        return Int(last - first) + 1
    }

    /// The smallest round step, at least the raw sampling interval, that keeps the response within
    /// `defaultMaximumPoints` buckets.
    static func defaultStep(from: Date, to: Date, rawIntervalSeconds: Int) -> Int {
        let floor = max(1, rawIntervalSeconds)
        for candidate in niceSteps where candidate >= floor {
            if bucketCount(from: from, to: to, stepSeconds: candidate) <= defaultMaximumPoints { return candidate }
        }
        var days = 2
        while bucketCount(from: from, to: to, stepSeconds: days * 86_400) > defaultMaximumPoints { days += 1 }
        return max(days * 86_400, floor)
    }

    /// A step as whole seconds (`60`) or a duration with a unit (`30s`, `5m`, `1h`, `1d`).
    static func step(_ text: String) throws -> Int {
        let invalid = APIError.badRequest("step must be a whole number of seconds or a duration like 30s, 5m, 1h, 1d (got \"\(text)\")")
        var digits = Substring(text)
        var multiplier = 1
        if let unit = text.last, !unit.isNumber {
            switch unit {
            case "s": multiplier = 1
            case "m": multiplier = 60
            case "h": multiplier = 3600
            case "d": multiplier = 86_400
            default: throw invalid
            }
            digits = digits.dropLast()
        }
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }), let value = Int(digits), value <= 400 * 86_400 else {
            throw invalid
        }
        let seconds = value * multiplier
        guard seconds >= 1 else { throw APIError.badRequest("step must be at least 1 second") }
        return seconds
    }
}
