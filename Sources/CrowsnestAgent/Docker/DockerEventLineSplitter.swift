/// Splits the newline-delimited JSON of Docker's event stream into lines, whatever the chunking.
///
/// HTTP chunks do not respect line boundaries: one chunk may hold half a line or several lines.
/// Bytes are kept until their newline arrives; a line longer than `maxLineBytes` is an error so a
/// misbehaving peer cannot make the agent buffer without bound.
public struct DockerEventLineSplitter: Sendable {
    /// The longest line accepted, in bytes.
    public let maxLineBytes: Int
    private var pending: [UInt8] = []

    /// A line exceeded `maxLineBytes` before its newline arrived.
    public struct LineTooLong: Error, CustomStringConvertible, Sendable {
        /// The cap that was exceeded.
        public var maxLineBytes: Int
        /// Human message.
        public var description: String { "an event line exceeded \(maxLineBytes) bytes without a newline" }
    }

    /// Creates a splitter; 1 MiB lines are far above any real Docker event.
    public init(maxLineBytes: Int = 1 << 20) {
        self.maxLineBytes = maxLineBytes
    }

    /// Bytes received but not yet ended by a newline.
    public var pendingByteCount: Int { pending.count }

    /// Feeds one chunk and returns the complete, non-blank lines it finished (without "\n" or "\r\n").
    public mutating func append<Bytes: Sequence>(_ chunk: Bytes) throws -> [[UInt8]] where Bytes.Element == UInt8 {
        var lines: [[UInt8]] = []
        for byte in chunk {
            if byte == UInt8(ascii: "\n") {
                if let line = Self.trimmed(pending) { lines.append(line) }
                pending.removeAll(keepingCapacity: true)
            } else {
                guard pending.count < maxLineBytes else { throw LineTooLong(maxLineBytes: maxLineBytes) }
                pending.append(byte)
            }
        }
        return lines
    }

    /// Returns what is left when the stream ends (a last line without newline), if not blank.
    public mutating func finish() -> [UInt8]? {
        defer { pending.removeAll() }
        return Self.trimmed(pending)
    }

    private static func trimmed(_ bytes: [UInt8]) -> [UInt8]? {
        var end = bytes.count
        while end > 0, bytes[end - 1] == UInt8(ascii: "\r") || bytes[end - 1] == UInt8(ascii: " ") { end -= 1 }
        var start = 0
        while start < end, bytes[start] == UInt8(ascii: " ") || bytes[start] == UInt8(ascii: "\t") { start += 1 }
        return start < end ? Array(bytes[start..<end]) : nil
    }
}
