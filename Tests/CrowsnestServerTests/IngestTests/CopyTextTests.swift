import CrowsnestWire
import Foundation
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

    func testFieldsEscapedOnceAreWrittenAsTheTextsWouldBe() {
        let shared = CopyTextRow.escaped(["a\tb", "c\\d", ""])
        XCTAssertEqual(row { $0.fields(shared) }, "a\\tb\tc\\\\d\t\n")
        XCTAssertEqual(row { $0.integer(1); $0.fields(shared); $0.text("x") },
                       row { $0.integer(1); $0.text("a\tb"); $0.text("c\\d"); $0.text(""); $0.text("x") })
        // Longer than the staging area: written whole, between staged fields.
        let long = String(repeating: "y", count: 3 * CopyTextRow.stagingBytes + 1) + "\n"
        XCTAssertEqual(row { $0.text("x"); $0.fields(CopyTextRow.escaped([long])); $0.integer(2) },
                       row { $0.text("x"); $0.text(long); $0.integer(2) })
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

    func testTimestampsAgreeWithPrintfAcrossTheCalendar() {
        // Every field at its edges, leap days, and years past four digits (an agent may send any number).
        var random = SystemRandomNumberGenerator()
        let samples: [Int64] = [0, 59_999, 946_684_799_999, 253_402_300_799_999, 253_402_300_800_000, -62_167_219_200_000,
                                -62_167_219_200_001, 4_102_444_800_000_000]
            + (0..<2000).map { _ in Int64.random(in: -70_000_000_000_000...300_000_000_000_000, using: &random) }
        for millis in samples {
            var seconds = time_t(millis >= 0 ? millis / 1000 : (millis - 999) / 1000)
            let fraction = Int(millis - Int64(seconds) * 1000)
            var parts = tm()
            gmtime_r(&seconds, &parts)
            let printf = String(format: "%04d-%02d-%02d %02d:%02d:%02d.%03d+00", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1,
                                Int(parts.tm_mday), Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec), fraction)
            XCTAssertEqual(CopyTextRow.format(millis: millis), printf, "\(millis) ms")
        }
    }

    func testTimestampsBefore1970KeepAPositiveFraction() {
        XCTAssertEqual(CopyTextRow.format(millis: -1), "1969-12-31 23:59:59.999+00")
        XCTAssertEqual(CopyTextRow.format(millis: -1_000), "1969-12-31 23:59:59.000+00")
        XCTAssertEqual(CopyTextRow.format(millis: -1_001), "1969-12-31 23:59:58.999+00")
        XCTAssertEqual(CopyTextRow.format(millis: -86_400_000), "1969-12-31 00:00:00.000+00")
    }

    /// The container sample rows of two batches, byte for byte: columns in the COPY's order, NULL for the counters
    /// of a container without figures, unnamed containers left out, rates from the second batch on.
    func testContainerSampleRowsOfTwoBatchesAreExactlyTheseLines() throws {
        let tenant = try XCTUnwrap(UUID(uuidString: "00000000-0000-0000-0000-0000000000aa"))
        let agent = try XCTUnwrap(UUID(uuidString: "00000000-0000-0000-0000-0000000000bb"))
        var web = Crowsnest_V1_ContainerSample()
        web.name = "web\tfront"
        web.dockerID = "abc"
        web.state = "running"
        web.hasStats_p = true
        web.startedAtUnixMs = 1_699_999_000_000  // long before the first batch: no rates from one sample
        web.cpuUsageNs = 1_000_000_000
        web.memoryUsageBytes = 4096
        web.netRxBytes = 100
        web.pids = 3
        var stopped = Crowsnest_V1_ContainerSample()
        stopped.name = "db"
        stopped.dockerID = "def"
        stopped.state = "exited"
        stopped.memoryLimitBytes = 1024  // a limit, but no figures read
        var first = Crowsnest_V1_SampleBatch()
        first.tsUnixMs = 1_700_000_000_000
        first.containers = [web, Crowsnest_V1_ContainerSample(), stopped]
        var second = first
        second.tsUnixMs += 2_000
        web.cpuUsageNs += 1_000_000_000  // one second of CPU in two: 50 %
        web.netRxBytes += 2_000  // 1,000 bytes/s
        second.containers = [web]

        var previous: [String: CounterSnapshot] = [:]
        var buffer = ByteBuffer()
        XCTAssertEqual(IngestWriter.appendSampleRows(first, tenantID: tenant, agentID: agent, previous: &previous, to: &buffer), 2)
        XCTAssertEqual(IngestWriter.appendSampleRows(second, tenantID: tenant, agentID: agent, previous: &previous, to: &buffer), 1)
        let owner = ["00000000-0000-0000-0000-0000000000AA", "00000000-0000-0000-0000-0000000000BB"]
        let unknownRates = Array(repeating: "\\N", count: 5)
        let expected = [
            owner + ["web\\tfront", "2023-11-14 22:13:20.000+00", "abc", "running",
                     "1000000000", "0", "0", "4096", "0", "\\N", "100", "0", "0", "0", "0", "0", "0", "0", "0", "0", "0", "0", "3"]
                + unknownRates,
            owner + ["db", "2023-11-14 22:13:20.000+00", "def", "exited",
                     "\\N", "\\N", "\\N", "\\N", "\\N", "1024"] + Array(repeating: "\\N", count: 13) + unknownRates,
            owner + ["web\\tfront", "2023-11-14 22:13:22.000+00", "abc", "running",
                     "2000000000", "0", "0", "4096", "0", "\\N", "2100", "0", "0", "0", "0", "0", "0", "0", "0", "0", "0", "0", "3",
                     "50.0", "1000.0", "0.0", "0.0", "0.0"],
        ].map { $0.joined(separator: "\t") + "\n" }.joined()
        XCTAssertEqual(buffer.readString(length: buffer.readableBytes), expected)
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
