import Foundation
import XCTest

@testable import CrowsnestWire

final class RFC3339Tests: XCTestCase {
    func testFormatsWholeSecondsWithoutFraction() {
        XCTAssertEqual(RFC3339.string(from: Date(timeIntervalSince1970: 0)), "1970-01-01T00:00:00Z")
        XCTAssertEqual(RFC3339.string(from: Date(timeIntervalSince1970: 1_735_689_600)), "2025-01-01T00:00:00Z")
        XCTAssertEqual(RFC3339.string(from: Date(timeIntervalSince1970: 951_782_400)), "2000-02-29T00:00:00Z")
    }

    func testFormatsMillisecondsAndMicroseconds() {
        XCTAssertEqual(RFC3339.string(from: Date(timeIntervalSince1970: 1_735_689_600.25)), "2025-01-01T00:00:00.250Z")
        XCTAssertEqual(RFC3339.string(from: Date(timeIntervalSince1970: 1_735_689_600.123456)), "2025-01-01T00:00:00.123456Z")
    }

    func testFormatsInstantsBeforeTheEpoch() {
        XCTAssertEqual(RFC3339.string(from: Date(timeIntervalSince1970: -1)), "1969-12-31T23:59:59Z")
        XCTAssertEqual(RFC3339.string(from: Date(timeIntervalSince1970: -0.5)), "1969-12-31T23:59:59.500Z")
    }

    func testParsesUTCOffsetsAndFractions() throws {
        XCTAssertEqual(RFC3339.date(from: "2025-01-01T00:00:00Z")?.timeIntervalSince1970, 1_735_689_600)
        XCTAssertEqual(RFC3339.date(from: "2025-01-01t00:00:00z")?.timeIntervalSince1970, 1_735_689_600)
        XCTAssertEqual(RFC3339.date(from: "2025-01-01T02:00:00+02:00")?.timeIntervalSince1970, 1_735_689_600)
        XCTAssertEqual(RFC3339.date(from: "2024-12-31T19:30:00-04:30")?.timeIntervalSince1970, 1_735_689_600)
        let fractional = try XCTUnwrap(RFC3339.date(from: "2025-01-01T00:00:00.123456789Z"))
        XCTAssertEqual(fractional.timeIntervalSince1970, 1_735_689_600.123456, accuracy: 1e-6)
    }

    func testReadsASpaceBeforeTheOffsetAsPlus() {
        // An unencoded "+" in a query string often arrives as a space.
        XCTAssertEqual(RFC3339.date(from: "2025-01-01T02:00:00 02:00")?.timeIntervalSince1970, 1_735_689_600)
    }

    func testRejectsMalformedAndImpossibleTimestamps() {
        for text in [
            "", "yesterday", "1735689600", "2025-01-01", "2025-01-01T00:00:00", "2025-01-01T00:00Z",
            "2025-13-01T00:00:00Z", "2025-02-29T00:00:00Z", "2025-01-01T24:00:00Z", "2025-01-01T00:00:00.Z",
            "2025-01-01T00:00:00Zjunk", "2025-01-01T00:00:00+2:00",
        ] {
            XCTAssertNil(RFC3339.date(from: text), "accepted \"\(text)\"")
        }
    }

    func testRoundTripsMicrosecondInstants() {
        for micros: Int64 in [0, 1, 999_999, 1_735_689_600_123_456, 4_102_444_799_999_999] {
            let date = Date(timeIntervalSince1970: Double(micros) / 1_000_000)
            let text = RFC3339.string(from: date)
            let parsed = RFC3339.date(from: text)
            XCTAssertEqual(parsed.map { Int64(($0.timeIntervalSince1970 * 1_000_000).rounded()) }, micros, text)
        }
    }

    func testNanosecondsKeepNineDigitsAndTruncateTheRest() {
        XCTAssertEqual(RFC3339.unixNanoseconds(from: "2026-11-25T13:30:00.123456789Z"), 1_795_613_400_123_456_789)
        XCTAssertEqual(RFC3339.unixNanoseconds(from: "2026-11-25T13:30:00.1234567891234Z"), 1_795_613_400_123_456_789)
        XCTAssertEqual(RFC3339.unixNanoseconds(from: "2026-11-25T14:30:00.5+01:00"), 1_795_613_400_500_000_000)
        XCTAssertEqual(RFC3339.unixNanoseconds(from: "1969-12-31T23:59:59.5Z"), -500_000_000)
    }

    func testNanosecondsRefuseInstantsOutsideSixtyFourBits() {
        // 64-bit nanoseconds end at 2262-04-11T23:47:16.854775807Z and begin at 1677-09-21T00:12:43.145224192Z.
        XCTAssertEqual(RFC3339.unixNanoseconds(from: "2262-04-11T23:47:16.854775807Z"), Int64.max)
        XCTAssertNil(RFC3339.unixNanoseconds(from: "2262-04-11T23:47:16.854775808Z"))
        XCTAssertNil(RFC3339.unixNanoseconds(from: "0001-01-01T00:00:00Z"))
        XCTAssertNotNil(RFC3339.date(from: "0001-01-01T00:00:00Z"), "a Date holds what nanoseconds cannot")
    }

    func testTheMicrosecondAndNanosecondReadingsAgree() {
        for text in ["2024-02-29T23:59:59.123456Z", "2000-01-01T00:00:00Z", "2026-11-25T08:00:00.25-05:30"] {
            let nanoseconds = RFC3339.unixNanoseconds(from: text)!
            let micros = Int64((RFC3339.date(from: text)!.timeIntervalSince1970 * 1_000_000).rounded())
            XCTAssertEqual(micros, nanoseconds / 1_000, text)
        }
    }
}
