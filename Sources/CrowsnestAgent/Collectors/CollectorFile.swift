#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The bytes of a small kernel file (cgroupfs, procfs), viewed without copying.
typealias CollectorBytes = Slice<UnsafeBufferPointer<UInt8>>

/// Reading small pseudo-files once, and the byte-level parsing every collector shares.
enum CollectorFile {
    /// Errors of a kept descriptor whose file went away (or was replaced): reopen once.
    @inline(__always)
    static func isGone(_ code: Int32) -> Bool {
        code == ENOENT || code == ESTALE || code == ENODEV || code == ESRCH
    }

    /// Calls `body` with the whole content of `path`, opened, read and closed now; returns nil when the file does
    /// not exist. For files read once (a process's cgroup table when its container starts); what sweeps read again
    /// and again is a `KeptFile`, which this borrows for the one read.
    /// Throws `CollectorError.cannotRead` for any other failure (permission denied, I/O error).
    static func withContents<R>(
        of path: String,
        _ body: (UnsafeBufferPointer<UInt8>) throws -> R
    ) throws -> R? {
        try KeptFile(path).withContents(body)
    }

    /// The content of `path` as a `String`; nil when the file does not exist.
    static func string(at path: String) throws -> String? {
        try withContents(of: path) { String(decoding: $0, as: UTF8.self) }
    }

    /// Whether `path` names an existing directory.
    static func isDirectory(_ path: String) -> Bool {
        var info = stat()
        let rc = path.withCString { stat($0, &info) }
        return rc == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }

    /// Whether anything exists at `path`.
    static func exists(_ path: String) -> Bool {
        path.withCString { access($0, F_OK) } == 0
    }
}

/// Iterates the lines of a byte buffer without allocating; empty lines are skipped.
struct CollectorLines: Sequence, IteratorProtocol {
    private let bytes: CollectorBytes
    private var position: Int

    init(_ bytes: CollectorBytes) {
        self.bytes = bytes
        self.position = bytes.startIndex
    }

    mutating func next() -> CollectorBytes? {
        let end = bytes.endIndex
        while position < end {
            let start = position
            while position < end && bytes[position] != UInt8(ascii: "\n") { position += 1 }
            let line = bytes[start..<position]
            if position < end { position += 1 }
            if !line.isEmpty { return line }
        }
        return nil
    }
}

/// Iterates the whitespace-separated fields of a line (spaces and tabs, runs collapsed).
struct CollectorFields: Sequence, IteratorProtocol {
    private let bytes: CollectorBytes
    private var position: Int

    init(_ bytes: CollectorBytes) {
        self.bytes = bytes
        self.position = bytes.startIndex
    }

    @inline(__always)
    static func isSpace(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") || byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\r")
    }

    mutating func next() -> CollectorBytes? {
        let end = bytes.endIndex
        while position < end && Self.isSpace(bytes[position]) { position += 1 }
        guard position < end else { return nil }
        let start = position
        while position < end && !Self.isSpace(bytes[position]) { position += 1 }
        return bytes[start..<position]
    }
}

/// Number and token parsing on raw bytes.
enum CollectorParse {
    /// A decimal unsigned integer made only of digits; nil if empty, not numeric or overflowing.
    static func uint64(_ bytes: CollectorBytes) -> UInt64? {
        guard !bytes.isEmpty else { return nil }
        var value: UInt64 = 0
        for byte in bytes {
            let digit = byte &- UInt8(ascii: "0")
            guard digit < 10 else { return nil }
            let (times10, o1) = value.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times10.addingReportingOverflow(UInt64(digit))
            if o1 || o2 { return nil }
            value = sum
        }
        return value
    }

    /// A non-negative decimal such as `0.52` or `12` (the load averages); nil if anything else.
    ///
    /// The digits are read as one integer and divided once by a power of ten, so the result is the correctly
    /// rounded value (the same `Double("0.52")` gives) while the integer stays below 2^53.
    static func decimal(_ bytes: CollectorBytes) -> Double? {
        guard !bytes.isEmpty else { return nil }
        var mantissa: UInt64 = 0
        var fractionDigits = 0
        var sawPoint = false
        var sawDigit = false
        for byte in bytes {
            if byte == UInt8(ascii: "."), !sawPoint {
                sawPoint = true
                continue
            }
            let digit = byte &- UInt8(ascii: "0")
            guard digit < 10, mantissa < (1 << 53) / 10 else { return nil }
            mantissa = mantissa * 10 + UInt64(digit)
            sawDigit = true
            if sawPoint { fractionDigits += 1 }
        }
        guard sawDigit, fractionDigits <= 15 else { return nil }
        var scale = 1.0
        for _ in 0..<fractionDigits { scale *= 10 }
        return Double(mantissa) / scale
    }

    /// Whether `bytes` starts with the UTF-8 of `prefix`.
    static func hasPrefix(_ bytes: CollectorBytes, _ prefix: String) -> Bool {
        var prefix = prefix
        return prefix.withUTF8 { p in
            guard bytes.count >= p.count else { return false }
            var index = bytes.startIndex
            for byte in p {
                if bytes[index] != byte { return false }
                index += 1
            }
            return true
        }
    }

    /// Whether `bytes` spells exactly `literal` (an ASCII string literal).
    static func equals(_ bytes: CollectorBytes, _ literal: StaticString) -> Bool {
        guard bytes.count == literal.utf8CodeUnitCount else { return false }
        let lit = literal.utf8Start
        var i = 0
        for byte in bytes {
            if byte != lit[i] { return false }
            i += 1
        }
        return true
    }

    /// Whether `bytes` contains the ASCII/UTF-8 text `needle`.
    static func contains(_ haystack: CollectorBytes, _ needle: String) -> Bool {
        var needle = needle
        return needle.withUTF8 { n -> Bool in
            guard n.count > 0 else { return true }
            guard haystack.count >= n.count else { return false }
            var start = haystack.startIndex
            let last = haystack.endIndex - n.count
            while start <= last {
                var match = true
                for j in 0..<n.count where haystack[start + j] != n[j] {
                    match = false
                    break
                }
                if match { return true }
                start += 1
            }
            return false
        }
    }

    /// Calls `body(key, value)` for each "key value" line (cpu.stat, memory.stat); lines whose
    /// second field is not a number are skipped.
    static func forEachKeyValue(_ bytes: UnsafeBufferPointer<UInt8>, _ body: (CollectorBytes, UInt64) -> Void) {
        for line in CollectorLines(bytes[...]) {
            var fields = CollectorFields(line)
            guard let key = fields.next(), let valueField = fields.next(), let value = uint64(valueField) else { continue }
            body(key, value)
        }
    }

    /// Runs `body` on the UTF-8 bytes of `text` (used by the string-based public parse functions).
    static func withBytes<R>(of text: String, _ body: (UnsafeBufferPointer<UInt8>) throws -> R) rethrows -> R {
        var text = text
        return try text.withUTF8 { try body($0) }
    }
}
