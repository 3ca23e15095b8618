/// Splits the newline-delimited JSON of Docker's event stream into lines, whatever the chunking.
///
/// HTTP chunks do not respect line boundaries: one chunk may hold half a line or several lines.
/// Bytes are kept until their newline arrives. A line longer than `maxLineBytes` (a container with megabytes of
/// labels: Docker repeats every label in each of its events) is not buffered: only its first and last
/// `keptEndBytes` are kept, and it comes out as an `OverlongLine`, so one hostile container cannot make the agent
/// buffer without bound, nor end the stream for everyone else.
public struct DockerEventLineSplitter: Sendable {
    /// The longest line passed on whole, in bytes.
    public let maxLineBytes: Int
    /// How much of each end of an overlong line is kept.
    public let keptEndBytes: Int
    private var pending: [UInt8] = []
    private var overlong: OverlongLine?

    /// What is left of a line over `maxLineBytes`: its head and tail, and its full length.
    public struct OverlongLine: Sendable, Equatable {
        /// The first bytes (Docker writes `status`, `id`, `Type` and `Action` first).
        public var head: [UInt8]
        /// The last bytes (`time` and `timeNano` come last).
        public var tail: [UInt8]
        /// The line's full length in bytes.
        public var byteCount: Int

        /// Creates the kept remains of a line.
        public init(head: [UInt8], tail: [UInt8], byteCount: Int) {
            self.head = head
            self.tail = tail
            self.byteCount = byteCount
        }
    }

    /// One piece of output: a complete line, or what is kept of an overlong one.
    public enum Line: Sendable, Equatable {
        case complete([UInt8])
        case overlong(OverlongLine)
    }

    /// Creates a splitter; 1 MiB lines are far above any ordinary Docker event.
    public init(maxLineBytes: Int = 1 << 20, keptEndBytes: Int = 4096) {
        self.maxLineBytes = maxLineBytes
        self.keptEndBytes = min(keptEndBytes, maxLineBytes)
    }

    /// Bytes received but not yet ended by a newline (for an overlong line: only what is kept of it).
    public var pendingByteCount: Int { overlong.map { $0.head.count + $0.tail.count } ?? pending.count }

    /// Feeds one chunk and returns the non-blank lines it finished (without "\n" or "\r\n").
    public mutating func append<Bytes: Sequence>(_ chunk: Bytes) -> [Line] where Bytes.Element == UInt8 {
        var lines: [Line] = []
        for byte in chunk {
            if byte == UInt8(ascii: "\n") {
                if let line = endLine() { lines.append(line) }
            } else if overlong != nil {
                overlong!.byteCount += 1
                overlong!.tail.append(byte)
                if overlong!.tail.count > 2 * keptEndBytes { overlong!.tail.removeFirst(overlong!.tail.count - keptEndBytes) }
            } else if pending.count < maxLineBytes {
                pending.append(byte)
            } else {
                overlong = OverlongLine(head: Array(pending.prefix(keptEndBytes)), tail: Array(pending.suffix(keptEndBytes)) + [byte],
                                        byteCount: pending.count + 1)
                pending.removeAll()
            }
        }
        return lines
    }

    /// Returns what is left when the stream ends (a last line without newline), if not blank.
    public mutating func finish() -> Line? {
        endLine()
    }

    private mutating func endLine() -> Line? {
        defer {
            pending.removeAll(keepingCapacity: pending.count <= 64 * 1024)
            overlong = nil
        }
        if var line = overlong {
            while let last = line.tail.last, last == UInt8(ascii: "\r") || last == UInt8(ascii: " ") { line.tail.removeLast() }
            line.tail = Array(line.tail.suffix(keptEndBytes))
            return .overlong(line)
        }
        return Self.trimmed(pending).map { .complete($0) }
    }

    private static func trimmed(_ bytes: [UInt8]) -> [UInt8]? {
        var end = bytes.count
        while end > 0, bytes[end - 1] == UInt8(ascii: "\r") || bytes[end - 1] == UInt8(ascii: " ") { end -= 1 }
        var start = 0
        while start < end, bytes[start] == UInt8(ascii: " ") || bytes[start] == UInt8(ascii: "\t") { start += 1 }
        return start < end ? Array(bytes[start..<end]) : nil
    }
}
