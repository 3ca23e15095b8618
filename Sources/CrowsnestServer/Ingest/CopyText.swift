import Foundation
import NIOCore

/// Builds rows in PostgreSQL's COPY text format: tab-separated, `\N` for NULL, backslash escapes.
///
/// A row is assembled in a small stack buffer and goes into the `ByteBuffer` with one write (more only when a long
/// text fills the stack buffer): a `ByteBuffer` write per field and separator, about 60 per sample row, was most of
/// the cost of formatting rows (each pays the buffer's capacity and exclusivity checks).
///
/// Not copyable: it points into stack memory that lives only while `append` builds the row.
struct CopyTextRow: ~Copyable {
    /// Bytes assembled on the stack before they go into the buffer; a field never needs more than this at once
    /// (a number takes at most 24 characters), a longer text is written in runs.
    static let stagingBytes = 1024

    private var buffer: ByteBuffer
    private let staging: UnsafeMutableBufferPointer<UInt8>
    private var staged = 0
    private var first = true

    private init(buffer: ByteBuffer, staging: UnsafeMutableBufferPointer<UInt8>) {
        self.buffer = buffer
        self.staging = staging
    }

    /// Appends one row to `buffer` in place. The row takes the buffer over while it is built, so appending does not
    /// copy everything written before (building from a copy would make a large COPY quadratic).
    static func append(to buffer: inout ByteBuffer, _ build: (inout CopyTextRow) -> Void) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: stagingBytes) { staging in
            var row = CopyTextRow(buffer: ByteBuffer(), staging: staging)
            swap(&row.buffer, &buffer)
            build(&row)
            row.put(UInt8(ascii: "\n"))
            row.flush()
            swap(&row.buffer, &buffer)
        }
    }

    /// Moves what is staged into the buffer.
    private mutating func flush() {
        guard staged > 0 else { return }
        buffer.writeBytes(UnsafeRawBufferPointer(UnsafeMutableBufferPointer(rebasing: staging[..<staged])))
        staged = 0
    }

    /// Room for `count` more staged bytes (`count` ≤ `stagingBytes`).
    private mutating func reserve(_ count: Int) {
        if staged + count > staging.count { flush() }
    }

    private mutating func put(_ byte: UInt8) {
        reserve(1)
        staging[staged] = byte
        staged += 1
    }

    private mutating func put(_ bytes: UnsafeBufferPointer<UInt8>) {
        guard !bytes.isEmpty else { return }
        if bytes.count > staging.count - staged {
            flush()
            if bytes.count > staging.count {
                buffer.writeBytes(UnsafeRawBufferPointer(bytes))
                return
            }
        }
        UnsafeMutableRawPointer(staging.baseAddress! + staged).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
        staged += bytes.count
    }

    private mutating func put(_ text: StaticString) {
        text.withUTF8Buffer { put($0) }
    }

    private mutating func put(_ text: String) {
        var text = text
        text.withUTF8 { put($0) }
    }

    private mutating func separator() {
        if first { first = false } else { put(UInt8(ascii: "\t")) }
    }

    mutating func null() {
        separator()
        put("\\N")
    }

    /// Text with COPY's escapes; runs without a character to escape (all of most values) are copied whole.
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
                put(UnsafeBufferPointer(rebasing: bytes[runStart..<index]))
                put(escape)
                runStart = index + 1
            }
            put(UnsafeBufferPointer(rebasing: bytes[runStart...]))
        }
    }

    /// Fields already in COPY text (`escaped(_:)`), written as they are: what every row of a batch shares (tenant,
    /// agent, time) is escaped once per batch instead of once per row.
    mutating func fields(_ escaped: EscapedFields) {
        separator()
        escaped.bytes.withUnsafeBufferPointer { put($0) }
    }

    /// `values` as COPY text fields, escaped and tab-separated, for `fields(_:)`.
    static func escaped(_ values: [String]) -> EscapedFields {
        var buffer = ByteBuffer()
        append(to: &buffer) { row in values.forEach { row.text($0) } }
        var bytes = Array(buffer.readableBytesView)
        bytes.removeLast()  // the row's newline
        return EscapedFields(bytes: bytes)
    }

    mutating func integer<I: BinaryInteger>(_ value: I?) {
        guard let value else { return null() }
        separator()
        // Digits staged directly, least significant first, then put in order: no String per number.
        reserve(20)  // UInt64.max has 20 digits; a negative Int64 at most 19 and its sign
        let negative = value < 0
        var magnitude = UInt64(truncatingIfNeeded: value.magnitude)
        var end = staged
        if negative {
            staging[end] = UInt8(ascii: "-")
            end += 1
        }
        var low = end
        repeat {
            staging[end] = UInt8(ascii: "0") + UInt8(magnitude % 10)
            magnitude /= 10
            end += 1
        } while magnitude > 0
        var high = end - 1
        while low < high {
            staging.swapAt(low, high)
            low += 1
            high -= 1
        }
        staged = end
    }

    mutating func double(_ value: Double?) {
        guard let value, value.isFinite else { return null() }
        separator()
        put(value.description)
    }

    /// A timestamp from unix milliseconds, as `YYYY-MM-DD HH:MM:SS.mmm+00`.
    mutating func timestamp(millis: Int64) {
        separator()
        put(Self.format(millis: millis))
    }

    static func format(millis: Int64) -> String {
        var seconds = time_t(millis >= 0 ? millis / 1000 : (millis - 999) / 1000)
        let fraction = Int(millis - Int64(seconds) * 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        let year = Int(parts.tm_year) + 1900
        guard (0...9999).contains(year) else {
            // Outside what four digits hold (an agent may send any number): printf's own widening and sign.
            return String(format: "%04d-%02d-%02d %02d:%02d:%02d.%03d+00", year, Int(parts.tm_mon) + 1, Int(parts.tm_mday),
                          Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec), fraction)
        }
        // Digits written directly: `String(format:)` took about 16 µs a call, once per batch.
        return String(unsafeUninitializedCapacity: 26) { text in
            var index = 0
            func put(_ value: Int, digits: Int, then separator: UInt8?) {
                var divisor = 1
                for _ in 1..<digits { divisor *= 10 }
                while divisor > 0 {
                    text[index] = UInt8(ascii: "0") + UInt8(value / divisor % 10)
                    index += 1
                    divisor /= 10
                }
                if let separator {
                    text[index] = separator
                    index += 1
                }
            }
            put(year, digits: 4, then: UInt8(ascii: "-"))
            put(Int(parts.tm_mon) + 1, digits: 2, then: UInt8(ascii: "-"))
            put(Int(parts.tm_mday), digits: 2, then: UInt8(ascii: " "))
            put(Int(parts.tm_hour), digits: 2, then: UInt8(ascii: ":"))
            put(Int(parts.tm_min), digits: 2, then: UInt8(ascii: ":"))
            put(Int(parts.tm_sec), digits: 2, then: UInt8(ascii: "."))
            put(fraction, digits: 3, then: UInt8(ascii: "+"))
            put(0, digits: 2, then: nil)
            return index
        }
    }
}

/// One or more COPY text fields, escaped and tab-separated, ready to be written into rows (`CopyTextRow.escaped`).
struct EscapedFields: Sendable {
    fileprivate let bytes: [UInt8]
}
