import CrowsnestWire
import Foundation

/// Query parameters shared by several routes, each refused with a 400 that names it.
enum QueryParameter {
    /// An RFC 3339 timestamp, or nil when the parameter was not given.
    static func timestamp(_ text: String?, name: String) throws -> Date? {
        guard let text else { return nil }
        guard let date = RFC3339.date(from: text) else {
            throw APIError.badRequest("\(name) must be an RFC 3339 timestamp such as 2025-01-31T12:00:00Z (got \"\(text)\")")
        }
        return date
    }

    /// A `from`/`to` range: `to` defaults to `now`, `from` to `defaultSeconds` before `to`; `from` must be before
    /// `to` and the range at most `maximumDays` long.
    static func range(from fromText: String?, to toText: String?, now: Date, defaultSeconds: TimeInterval,
                      maximumDays: Int) throws -> (from: Date, to: Date) {
        let to = try timestamp(toText, name: "to") ?? now
        let from = try timestamp(fromText, name: "from") ?? to.addingTimeInterval(-defaultSeconds)
        guard from < to else {
            throw APIError.badRequest("from (\(RFC3339.string(from: from))) must be before to (\(RFC3339.string(from: to)))")
        }
        guard to.timeIntervalSince(from) <= Double(maximumDays) * 86_400 else {
            throw APIError.badRequest(
                "the range from \(RFC3339.string(from: from)) to \(RFC3339.string(from: to)) is longer than \(maximumDays) days; ask for at most \(maximumDays) days per request"
            )
        }
        return (from, to)
    }

    /// `limit` within `range`, `defaultValue` when not given.
    static func limit(_ text: String?, range: ClosedRange<Int>, defaultValue: Int) throws -> Int {
        guard let text else { return defaultValue }
        guard let value = Int(text), range.contains(value) else {
            throw APIError.badRequest("limit must be an integer from \(range.lowerBound) to \(range.upperBound) (got \"\(text)\")")
        }
        return value
    }
}
