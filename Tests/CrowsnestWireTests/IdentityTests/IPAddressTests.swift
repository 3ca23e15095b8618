import XCTest

@testable import CrowsnestWire

/// Telling literal addresses from host names by parsing them.
final class IPAddressTests: XCTestCase {
    func testLiteralAddressesParseToNetworkOrderBytes() throws {
        XCTAssertEqual(IPAddress("192.0.2.1")?.bytes, [192, 0, 2, 1])
        XCTAssertEqual(IPAddress("::1")?.bytes, Array(repeating: 0, count: 15) + [1])
        XCTAssertEqual(IPAddress("2001:db8::7")?.bytes.count, 16)
        XCTAssertEqual(IPAddress("::ffff:192.0.2.1")?.bytes.suffix(4), [192, 0, 2, 1])
    }

    func testNamesAndNearMissesAreNotAddresses() {
        for text in ["example.com", "localhost", "10.0.0.1.example.net", "1.2.3", "256.1.1.1", "[::1]", "", " 192.0.2.1",
                     "2001:db8::zz"] {
            XCTAssertNil(IPAddress(text), text)
        }
    }
}
