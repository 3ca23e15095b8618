import CrowsnestWire
import Foundation
import XCTest

final class CAPinTests: XCTestCase {
    private func caDER() throws -> [UInt8] {
        let body = IdentityFixtures.caCertificatePEM
            .split(separator: "\n")
            .filter { !$0.hasPrefix("-----") }
            .joined()
        return try XCTUnwrap(Data(base64Encoded: body).map { Array($0) })
    }

    func testComputesSHA256OfTheDERAsLowercaseHex() throws {
        let pin = CAPin.compute(derBytes: try caDER())
        XCTAssertEqual(pin.description, "sha256:" + IdentityFixtures.caCertificateSHA256Hex)
    }

    func testParseRoundTripsAndAcceptsUppercaseHexAndSurroundingSpace() throws {
        let text = "sha256:" + IdentityFixtures.caCertificateSHA256Hex
        XCTAssertEqual(try CAPin.parse(text).description, text)
        XCTAssertEqual(try CAPin.parse("  SHA256:" + IdentityFixtures.caCertificateSHA256Hex.uppercased() + "\n"), try CAPin.parse(text))
    }

    func testMatchesOnlyTheSameCertificate() throws {
        let der = try caDER()
        let pin = try CAPin.parse("sha256:" + IdentityFixtures.caCertificateSHA256Hex)
        XCTAssertTrue(pin.matches(derBytes: der))
        var altered = der
        altered[altered.count - 1] ^= 0x01
        XCTAssertFalse(pin.matches(derBytes: altered))
    }

    func testRejectsAPinWithoutTheSHA256Prefix() {
        XCTAssertThrowsError(try CAPin.parse("md5:" + IdentityFixtures.caCertificateSHA256Hex)) { error in
            XCTAssertEqual(error as? CAPinError, .missingPrefix("md5:" + IdentityFixtures.caCertificateSHA256Hex))
            XCTAssertTrue(String(describing: error).contains("must start with \"sha256:\""), "\(error)")
        }
        XCTAssertThrowsError(try CAPin.parse(IdentityFixtures.caCertificateSHA256Hex))
    }

    func testRejectsAPinOfTheWrongLength() {
        XCTAssertThrowsError(try CAPin.parse("sha256:abcd")) { error in
            XCTAssertEqual(error as? CAPinError, .wrongHexLength(found: 4))
            XCTAssertTrue(String(describing: error).contains("expected 64 hex digits"), "\(error)")
        }
        XCTAssertThrowsError(try CAPin.parse("sha256:" + IdentityFixtures.caCertificateSHA256Hex + "00"))
    }

    func testRejectsNonHexDigits() {
        let bad = "sha256:" + String(IdentityFixtures.caCertificateSHA256Hex.dropLast()) + "g"
        XCTAssertThrowsError(try CAPin.parse(bad)) { error in
            XCTAssertEqual(error as? CAPinError, .invalidHexDigit(bad))
        }
    }
}
