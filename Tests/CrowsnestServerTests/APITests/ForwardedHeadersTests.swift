import CrowsnestWire
import XCTest

@testable import CrowsnestServer

/// Whose address a request is counted under behind a reverse proxy.
final class ForwardedHeadersTests: XCTestCase {
    let proxies = [IPNetwork("10.0.0.0/8")!, IPNetwork("fd00::/8")!]

    func testAnUntrustedPeerIsItselfWhateverItForwards() {
        XCTAssertEqual(ForwardedHeadersMiddleware.clientAddress(peer: "203.0.113.7", forwardedFor: ["198.51.100.1"], trusted: proxies),
                       "203.0.113.7")
        XCTAssertEqual(ForwardedHeadersMiddleware.clientAddress(peer: "203.0.113.7", forwardedFor: [], trusted: []), "203.0.113.7")
    }

    func testATrustedProxyNamesTheRightMostUntrustedAddress() {
        // The client forged the first entry; the proxy chain appended the real one.
        XCTAssertEqual(ForwardedHeadersMiddleware.clientAddress(peer: "10.0.0.2", forwardedFor: ["1.2.3.4, 198.51.100.9", "10.0.0.1"],
                                                                trusted: proxies), "198.51.100.9")
        XCTAssertEqual(ForwardedHeadersMiddleware.clientAddress(peer: "fd00::1", forwardedFor: ["2001:db8::5"], trusted: proxies), "2001:db8::5")
        XCTAssertEqual(ForwardedHeadersMiddleware.clientAddress(peer: "10.0.0.2", forwardedFor: [], trusted: proxies), "10.0.0.2",
                       "no header: the proxy's own address")
        XCTAssertEqual(ForwardedHeadersMiddleware.clientAddress(peer: "10.0.0.2", forwardedFor: ["10.0.0.9"], trusted: proxies), "10.0.0.9",
                       "only proxies in the chain: the left-most")
        XCTAssertEqual(ForwardedHeadersMiddleware.clientAddress(peer: "10.0.0.2", forwardedFor: ["198.51.100.9, garbage"], trusted: proxies),
                       "10.0.0.2", "a malformed entry: the proxy's own address, never the text")
    }
}
