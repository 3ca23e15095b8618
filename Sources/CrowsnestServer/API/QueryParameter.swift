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

    /// `limit` within `range`, `defaultValue` when not given.
    static func limit(_ text: String?, range: ClosedRange<Int>, defaultValue: Int) throws -> Int {
        guard let text else { return defaultValue }
        guard let value = Int(text), range.contains(value) else {
            throw APIError.badRequest("limit must be an integer from \(range.lowerBound) to \(range.upperBound) (got \"\(text)\")")
        }
        return value
    }
}
