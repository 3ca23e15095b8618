import Crypto

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The bounds on every string a batch carries, in UTF-8 bytes. The agent applies them before encoding and the
/// server again after decoding, so nothing a container says (names, labels, health output) can make a batch too
/// big to store or a row too wide to index. Values over a bound are truncated and counted, never refused.
public enum WireTextBounds {
    /// Container names, interface names, mount points, devices: anything that identifies a target or a row.
    public static let nameBytes = 200
    public static let imageBytes = 512
    /// Docker ids, states, health words, actions, file-system types, versions.
    public static let tokenBytes = 128
    public static let labelKeyBytes = 256
    public static let labelValueBytes = 1_024
    /// Labels kept per container (in key order) and their total size (keys plus values).
    public static let labelCount = 64
    public static let labelTotalBytes = 16 * 1_024
    public static let healthOutputBytes = 4_096
    /// Event details, reasons, host facts such as the OS name, a check run's error.
    public static let textBytes = 1_024
    /// Check results one batch carries, and named figures (or details) one result carries.
    public static let checkResults = 1_000
    public static let checkFigures = 64
    /// Containers listed as missing from a sweep.
    public static let missingContainers = 10_000
    /// The latest time a batch may name: 9999-12-31T23:59:59Z, in unix milliseconds.
    public static let latestMillis: Int64 = 253_402_300_799_000
    /// The earliest time that is still a calendar time: 0001-01-01T00:00:00Z, in unix milliseconds.
    public static let earliestMillis: Int64 = -62_135_596_800_000
    /// Times PostgreSQL and RFC 3339 can both hold (years 1–9999).
    public static let calendarMillis = earliestMillis ... latestMillis
}

/// Cleans one string for the wire and the database: NUL removed (PostgreSQL text cannot hold it) and the
/// result bounded in UTF-8 bytes, cut on a character boundary. Swift strings are valid Unicode already; bytes
/// that were not valid UTF-8 became U+FFFD where they were turned into strings.
public struct WireTextCleaner: Sendable {
    /// How many values were shortened (or dropped, for labels over the count) so far.
    public private(set) var truncated: UInt64 = 0

    public init() {}

    /// A free-text value: NUL removed, cut to `maxBytes`.
    public mutating func text(_ value: String, maxBytes: Int) -> String {
        let clean = Self.withoutNul(value)
        guard clean.utf8.count > maxBytes else { return clean }
        truncated &+= 1
        return Self.prefix(clean, maxBytes: maxBytes)
    }

    /// An identifying value: like `text`, but a shortened one ends in `~` and the first 8 hex digits of the
    /// SHA-256 of the whole original, so two long names that share a prefix stay two targets.
    public mutating func name(_ value: String, maxBytes: Int = WireTextBounds.nameBytes) -> String {
        let clean = Self.withoutNul(value)
        guard clean.utf8.count > maxBytes else { return clean }
        truncated &+= 1
        let digest = SHA256.hash(data: Array(value.utf8))
        let suffix = "~" + digest.prefix(4).map { byte in
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }.joined()
        return Self.prefix(clean, maxBytes: maxBytes - suffix.utf8.count) + suffix
    }

    /// Labels bounded in count, key and value size and total size; keys keep their order, the rest is dropped
    /// (and counted). Keys are shortened like names so distinct keys stay distinct.
    public mutating func labels(_ labels: [String: String]) -> [String: String] {
        var result: [String: String] = [:]
        var total = 0
        for key in labels.keys.sorted() {
            let cleanKey = name(key, maxBytes: WireTextBounds.labelKeyBytes)
            let cleanValue = text(labels[key] ?? "", maxBytes: WireTextBounds.labelValueBytes)
            let size = cleanKey.utf8.count + cleanValue.utf8.count
            guard !cleanKey.isEmpty, result[cleanKey] == nil, result.count < WireTextBounds.labelCount,
                  total + size <= WireTextBounds.labelTotalBytes else {
                truncated &+= 1
                continue
            }
            total += size
            result[cleanKey] = cleanValue
        }
        return result
    }

    /// Whether `value` is already what `text` or `name` would return for it (no NUL, within `maxBytes`): the
    /// check that lets an already clean message go through without being written to (no copy of its storage).
    public static func isClean(_ value: String, maxBytes: Int) -> Bool {
        value.utf8.count <= maxBytes && !containsNul(value)
    }

    /// At most the first 80 characters (Unicode scalars) of `value`, with "…" when cut: for quoting a value an
    /// agent or caller sent inside an error message or log line (a 10 MB value must not become a 10 MB line).
    public static func excerpt(_ value: String) -> String {
        let scalars = value.unicodeScalars
        guard scalars.count > 80 else { return value }
        return String(String.UnicodeScalarView(scalars.prefix(80))) + "…"
    }

    /// Whether `value` holds a NUL character: `memchr` over its UTF-8 bytes (the server asks this of every string of
    /// every sample, and the generic byte-by-byte `contains` was 3 % of ingest's CPU).
    public static func containsNul(_ value: String) -> Bool {
        let found = value.utf8.withContiguousStorageIfAvailable { bytes -> Bool in
            guard let base = bytes.baseAddress, !bytes.isEmpty else { return false }
            return memchr(base, 0, bytes.count) != nil
        }
        return found ?? value.utf8.contains(0)
    }

    /// Whether `labels` is already what `labels(_:)` would return for it.
    public static func areClean(_ labels: [String: String]) -> Bool {
        guard labels.count <= WireTextBounds.labelCount else { return false }
        var total = 0
        for (key, value) in labels {
            guard !key.isEmpty, isClean(key, maxBytes: WireTextBounds.labelKeyBytes),
                  isClean(value, maxBytes: WireTextBounds.labelValueBytes) else { return false }
            total += key.utf8.count + value.utf8.count
        }
        return total <= WireTextBounds.labelTotalBytes
    }

    /// Counts values dropped whole (entries over a count bound).
    public mutating func countDropped(_ count: UInt64) {
        truncated &+= count
    }

    static func withoutNul(_ value: String) -> String {
        guard containsNul(value) else { return value }
        return String(String.UnicodeScalarView(value.unicodeScalars.lazy.filter { $0 != "\u{0}" }))
    }

    /// The longest prefix of whole characters that fits in `maxBytes` UTF-8 bytes.
    static func prefix(_ value: String, maxBytes: Int) -> String {
        guard maxBytes > 0 else { return "" }
        var bytes = 0
        var end = value.startIndex
        for index in value.indices {
            let next = value.index(after: index)
            let size = value.utf8.distance(from: index, to: next)
            if bytes + size > maxBytes { break }
            bytes += size
            end = next
        }
        return String(value[..<end])
    }
}
