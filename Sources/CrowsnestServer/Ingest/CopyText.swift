import Foundation
import NIOCore

/// Builds rows in PostgreSQL's COPY text format: tab-separated, `\N` for NULL, backslash escapes.
struct CopyTextRow {
    private(set) var buffer: ByteBuffer
    private var first = true

    init(into buffer: ByteBuffer) {
        self.buffer = buffer
    }

    /// Appends one row to `buffer` in place. The row takes the buffer over while it is built, so appending does not
    /// copy everything written before (building from a copy would make a large COPY quadratic).
    static func append(to buffer: inout ByteBuffer, _ build: (inout CopyTextRow) -> Void) {
        var row = CopyTextRow(into: ByteBuffer())
        swap(&row.buffer, &buffer)
        build(&row)
        buffer = row.endRow()
    }

    private mutating func separator() {
        if first { first = false } else { buffer.writeInteger(UInt8(ascii: "\t")) }
    }

    mutating func null() {
        separator()
        buffer.writeStaticString("\\N")
    }

    /// Text with COPY's escapes. Runs without a character to escape (all of most values) go in with one write:
    /// a write per byte cost a tenth of the server's ingest CPU in ByteBuffer's exclusivity checks.
    mutating func text(_ value: String) {
        separator()
        var value = value
        value.withUTF8 { bytes in
            var runStart = 0
            for index in 0..<bytes.count {
                let escape: StaticString
                switch bytes[index] {
                case UInt8(ascii: "\\"): escape = "\\\\"
                case UInt8(ascii: "\t"): escape = "\\t"
                case UInt8(ascii: "\n"): escape = "\\n"
                case UInt8(ascii: "\r"): escape = "\\r"
                default: continue
                }
                buffer.writeBytes(UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: bytes[runStart..<index])))
                buffer.writeStaticString(escape)
                runStart = index + 1
            }
            buffer.writeBytes(UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: bytes[runStart...])))
        }
    }

    mutating func integer<I: BinaryInteger>(_ value: I?) {
        guard let value else { return null() }
        separator()
        // Digits written from the end of a small stack buffer, then one write: no String per number.
        let negative = value < 0
        var magnitude = UInt64(truncatingIfNeeded: value.magnitude)
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 21) { digits in
            var start = digits.count
            repeat {
                start -= 1
                digits[start] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
            } while magnitude > 0
            if negative {
                start -= 1
                digits[start] = UInt8(ascii: "-")
            }
            buffer.writeBytes(UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: digits[start...])))
        }
    }

    mutating func double(_ value: Double?) {
        guard let value, value.isFinite else { return null() }
        separator()
        buffer.writeString(String(value))
    }

    /// A timestamp from unix milliseconds, as `YYYY-MM-DD HH:MM:SS.mmm+00`.
    mutating func timestamp(millis: Int64) {
        separator()
        buffer.writeString(Self.format(millis: millis))
    }

    mutating func endRow() -> ByteBuffer {
        buffer.writeInteger(UInt8(ascii: "\n"))
        first = true
        return buffer
    }

    static func format(millis: Int64) -> String {
        var seconds = time_t(millis >= 0 ? millis / 1000 : (millis - 999) / 1000)
        let fraction = Int(millis - Int64(seconds) * 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        return String(format: "%04d-%02d-%02d %02d:%02d:%02d.%03d+00", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1,
                      Int(parts.tm_mday), Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec), fraction)
    }
}
