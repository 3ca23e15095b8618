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

    mutating func text(_ value: String) {
        separator()
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\\"): buffer.writeStaticString("\\\\")
            case UInt8(ascii: "\t"): buffer.writeStaticString("\\t")
            case UInt8(ascii: "\n"): buffer.writeStaticString("\\n")
            case UInt8(ascii: "\r"): buffer.writeStaticString("\\r")
            default: buffer.writeInteger(byte)
            }
        }
    }

    mutating func integer<I: BinaryInteger>(_ value: I?) {
        guard let value else { return null() }
        separator()
        buffer.writeString(String(value))
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
