import NIOCore
import XCTest

@testable import CrowsnestServer

/// Rows in PostgreSQL's COPY text format.
final class CopyTextTests: XCTestCase {
    private func row(_ build: (inout CopyTextRow) -> Void) -> String {
        var buffer = ByteBuffer()
        CopyTextRow.append(to: &buffer, build)
        return buffer.readString(length: buffer.readableBytes)!
    }

    func testFieldsAreTabSeparatedAndTheRowEndsWithANewline() {
        XCTAssertEqual(row { $0.text("a"); $0.integer(42); $0.double(1.5) }, "a\t42\t1.5\n")
    }

    func testTabNewlineCarriageReturnAndBackslashAreEscaped() {
        XCTAssertEqual(row { $0.text("a\tb\nc\rd\\e") }, "a\\tb\\nc\\rd\\\\e\n")
    }

    func testAnEscapedBackslashBeforeAnNIsNotMistakenForNull() {
        XCTAssertEqual(row { $0.text("\\N") }, "\\\\N\n")
    }

    func testNonASCIITextIsWrittenAsUTF8() {
        XCTAssertEqual(row { $0.text("größe 🐳") }, "größe 🐳\n")
    }

    func testNilAndNonFiniteValuesAreNull() {
        XCTAssertEqual(row { $0.null(); $0.integer(Int64?.none); $0.double(nil); $0.double(.nan); $0.double(.infinity) },
                       "\\N\t\\N\t\\N\t\\N\t\\N\n")
    }

    func testAnEmptyStringIsNotNull() {
        XCTAssertEqual(row { $0.text(""); $0.text("x") }, "\tx\n")
    }

    func testNegativeAndLargeIntegers() {
        XCTAssertEqual(row { $0.integer(Int64.min); $0.integer(Int64.max); $0.integer(Int32(-7)) },
                       "-9223372036854775808\t9223372036854775807\t-7\n")
    }

    func testTimestampsAreUTCWithMilliseconds() {
        XCTAssertEqual(CopyTextRow.format(millis: 0), "1970-01-01 00:00:00.000+00")
        XCTAssertEqual(CopyTextRow.format(millis: 1_700_000_000_123), "2023-11-14 22:13:20.123+00")
        XCTAssertEqual(CopyTextRow.format(millis: 1_577_836_800_007), "2020-01-01 00:00:00.007+00")
        XCTAssertEqual(CopyTextRow.format(millis: 951_782_400_000), "2000-02-29 00:00:00.000+00")
    }

    func testTimestampsBefore1970KeepAPositiveFraction() {
        XCTAssertEqual(CopyTextRow.format(millis: -1), "1969-12-31 23:59:59.999+00")
        XCTAssertEqual(CopyTextRow.format(millis: -1_000), "1969-12-31 23:59:59.000+00")
        XCTAssertEqual(CopyTextRow.format(millis: -1_001), "1969-12-31 23:59:58.999+00")
        XCTAssertEqual(CopyTextRow.format(millis: -86_400_000), "1969-12-31 00:00:00.000+00")
    }

    func testRowsAppendToTheSameBuffer() {
        var buffer = ByteBuffer(string: "before\n")
        CopyTextRow.append(to: &buffer) { $0.text("one") }
        CopyTextRow.append(to: &buffer) { $0.timestamp(millis: 1_000); $0.integer(2) }
        XCTAssertEqual(buffer.readString(length: buffer.readableBytes), "before\none\n1970-01-01 00:00:01.000+00\t2\n")
    }

    /// What COPY's text format makes of `text`, written the slow obvious way.
    private func escaped(_ text: String) -> String {
        text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\t", with: "\\t")
            .replacingOccurrences(of: "\n", with: "\\n").replacingOccurrences(of: "\r", with: "\\r")
    }

    func testTextsLongerThanTheStagingAreaKeepEveryByteAndEveryEscape() {
        // Escapes on both sides of the staging area's edge, a run longer than the whole area, and multi-byte
        // characters: each row must equal the obvious escaping of its texts.
        let edge = CopyTextRow.stagingBytes
        for length in [edge - 2, edge - 1, edge, edge + 1, 3 * edge + 5] {
            for escapeAt in [0, edge - 3, edge - 2, edge - 1, edge, length - 1] where escapeAt >= 0 && escapeAt < length {
                var bytes = Array(repeating: UInt8(ascii: "a"), count: length)
                bytes[escapeAt] = UInt8(ascii: "\t")
                if escapeAt + 1 < length { bytes[escapeAt + 1] = UInt8(ascii: "\\") }
                let text = String(decoding: bytes, as: UTF8.self) + "größe 🐳\r\n"
                XCTAssertEqual(row { $0.integer(7); $0.text(text); $0.text("x") }, "7\t" + escaped(text) + "\tx\n",
                               "text of \(length) bytes with an escape at \(escapeAt)")
            }
        }
    }

    func testASeparatorOrTheNewlineArrivingAtAFullStagingArea() {
        let full = String(repeating: "a", count: CopyTextRow.stagingBytes)
        XCTAssertEqual(row { $0.text(full) }, full + "\n")
        XCTAssertEqual(row { $0.text(full); $0.text("x") }, full + "\tx\n")
        XCTAssertEqual(row { $0.text(String(full.dropLast(5))); $0.integer(UInt64.max) },
                       String(full.dropLast(5)) + "\t18446744073709551615\n")
    }

    func testRowsWithMoreFieldsThanTheStagingAreaHolds() {
        // 300 numbers of 20 characters: about 6 KiB, several times the staging area.
        let values = (0..<300).map { Int64.max - Int64($0) }
        XCTAssertEqual(row { row in values.forEach { row.integer($0) }; row.double(0.25); row.null() },
                       values.map(String.init).joined(separator: "\t") + "\t0.25\t\\N\n")
    }
}
