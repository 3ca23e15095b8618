import CrowsnestWire

/// Reads the RFC 3339 timestamps the Docker Engine API uses ("2026-11-25T13:19:33.0493525Z").
///
/// Docker writes Go's zero time "0001-01-01T00:00:00Z" for "never" (a container that has not
/// finished yet); that, and anything before the Unix epoch, reads as `nil`.
public enum DockerTimestamp {
    /// Nanoseconds since the Unix epoch, or `nil` for the zero time, times before 1970 and malformed text.
    ///
    /// Any number of fraction digits (nanosecond precision kept, more digits truncated) and a "Z" or
    /// "±HH:MM" offset, as `RFC3339.unixNanoseconds(from:)` reads them.
    public static func unixNanoseconds(fromRFC3339 text: String) -> Int64? {
        guard let nanoseconds = RFC3339.unixNanoseconds(from: text), nanoseconds >= 0 else { return nil }
        return nanoseconds
    }
}
