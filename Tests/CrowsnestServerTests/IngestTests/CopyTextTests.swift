import NIOCore
import XCTest

@testable import CrowsnestServer

/// Rows in PostgreSQL's COPY text format.
final class CopyTextTests: XCTestCase {
    private func row(_ build: (inout CopyTextRow) -> Void) -> String {
        var row = CopyTextRow(into: ByteBuffer())
        build(&row)
        var buffer = row.endRow()
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
        var first = CopyTextRow(into: ByteBuffer())
        first.text("one")
        var second = CopyTextRow(into: first.endRow())
        second.timestamp(millis: 1_000)
        second.integer(2)
        var buffer = second.endRow()
        XCTAssertEqual(buffer.readString(length: buffer.readableBytes), "one\n1970-01-01 00:00:01.000+00\t2\n")
    }
}
