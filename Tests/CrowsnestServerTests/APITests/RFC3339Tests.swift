import Foundation
import XCTest

@testable import CrowsnestServer

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
}
