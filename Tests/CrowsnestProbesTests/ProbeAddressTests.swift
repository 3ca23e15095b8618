import XCTest

@testable import CrowsnestProbes

final class ProbeAddressTests: XCTestCase {
    func testURLsSplitIntoWhatARequestNeeds() throws {
        let url = try ProbeURL("HTTPS://user:p%40ss@Example.com:8443/a/b?x=1#frag")
        XCTAssertEqual(url.scheme, "https")
        XCTAssertEqual(url.host, "Example.com")
        XCTAssertEqual(url.port, 8443)
        XCTAssertEqual(url.pathAndQuery, "/a/b?x=1")
        XCTAssertEqual(url.userInfo, "user:p%40ss")
        XCTAssertEqual(url.hostHeader, "Example.com:8443")
        XCTAssertEqual(HTTPProber.percentDecoded("user:p%40ss"), "user:p@ss")
        let bare = try ProbeURL("http://[::1]?q")
        XCTAssertEqual(bare.host, "::1")
        XCTAssertEqual(bare.port, 80)
        XCTAssertEqual(bare.pathAndQuery, "/?q")
        XCTAssertEqual(bare.hostHeader, "[::1]")
        XCTAssertThrowsError(try ProbeURL("ftp://example.com/"))
        XCTAssertThrowsError(try ProbeURL("example.com/path"))
        XCTAssertThrowsError(try ProbeURL("http://example.com:99999/"))
        XCTAssertThrowsError(try ProbeURL("http:///path"))
        XCTAssertThrowsError(try ProbeURL("http:/example.com/"))
        XCTAssertThrowsError(try ProbeURL("http://[::1/"))
    }

    func testURLsWithNonASCIIPartsSplitAtTheirDelimiters() throws {
        // Scanned as bytes: a multi-byte character next to a delimiter must not shift where the parts end.
        let url = try ProbeURL("http://bücher.example:8080/ä/ö?q=é#ü")
        XCTAssertEqual(url.host, "bücher.example")
        XCTAssertEqual(url.port, 8080)
        XCTAssertEqual(url.pathAndQuery, "/ä/ö?q=é")
        let withUser = try ProbeURL("https://ü:é@[2001:db8::1]")
        XCTAssertEqual(withUser.userInfo, "ü:é")
        XCTAssertEqual(withUser.host, "2001:db8::1")
        XCTAssertEqual(withUser.port, 443)
        XCTAssertEqual(withUser.pathAndQuery, "/")
        XCTAssertEqual(try ProbeHostPort("ü.example:53"), ProbeHostPort(host: "ü.example", port: 53))
        XCTAssertThrowsError(try ProbeHostPort("[::1]x"))
    }

    func testRedirectLocationsResolveAgainstTheURL() throws {
        let url = try ProbeURL("https://example.com/a/b?x=1")
        XCTAssertEqual(try url.resolving("/c").description, "https://example.com/c")
        XCTAssertEqual(try url.resolving("c?y").description, "https://example.com/a/c?y")
        XCTAssertEqual(try url.resolving("//other.example:8080/d").description, "https://other.example:8080/d")
        XCTAssertEqual(try url.resolving("http://third.example/").description, "http://third.example/")
    }

    func testHostPortsNeedAPortUnlessOneIsGiven() throws {
        XCTAssertEqual(try ProbeHostPort("db.example.com:5432"), ProbeHostPort(host: "db.example.com", port: 5432))
        XCTAssertEqual(try ProbeHostPort("[2001:db8::1]:443"), ProbeHostPort(host: "2001:db8::1", port: 443))
        XCTAssertEqual(try ProbeHostPort("2001:db8::1", defaultPort: 53), ProbeHostPort(host: "2001:db8::1", port: 53))
        XCTAssertEqual(try ProbeHostPort("9.9.9.9", defaultPort: 53).description, "9.9.9.9:53")
        XCTAssertThrowsError(try ProbeHostPort("db.example.com"))
        XCTAssertThrowsError(try ProbeHostPort("db.example.com:0"))
        XCTAssertThrowsError(try ProbeHostPort(":80"))
    }
}
