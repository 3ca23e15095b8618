import CrowsnestWire
import NIOCore
import NIOPosix
import XCTest

@testable import CrowsnestProbes

/// HTTP and TCP probes against real servers this test starts on loopback, run as an agent runs them (loopback
/// allowed) and as the server runs them (loopback refused by the SSRF guard).
final class HTTPProberTests: XCTestCase {
    private let prober = Prober()
    private let agent = AddressGuard(runner: .agent)
    private let server = AddressGuard(runner: .server)

    private func run(_ target: String, _ options: [String: String] = [:], type: String = "http",
                     timeout: Duration = .seconds(5), guard addressGuard: AddressGuard? = nil) async -> ProbeOutcome {
        await prober.run(type: type, target: target, options: options, timeout: timeout, addressGuard: addressGuard ?? agent)
    }

    func testAnHTTPCheckPassesOnAnExpectedAnswerAndSaysWhyItFailsOtherwise() async throws {
        let http = try await TestHTTPServer.start()
        defer { Task { try? await http.stop() } }
        let ok = await run("\(http.base)/ok", ["keyword": #""crowsnest""#])
        XCTAssertTrue(ok.ok, ok.error)
        XCTAssertEqual(ok.httpStatus, 200)
        XCTAssertGreaterThan(ok.latencyMs, 0)
        XCTAssertEqual(ok.figures["body_bytes"], 15)

        let down = await run("\(http.base)/fail")
        XCTAssertFalse(down.ok)
        XCTAssertEqual(down.httpStatus, 503)
        XCTAssertEqual(down.error, "HTTP 503, expected 200-299")
        let expected503 = await run("\(http.base)/fail", ["expected_status": #"["503"]"#])
        XCTAssertTrue(expected503.ok, expected503.error)

        let missing = await run("\(http.base)/ok", ["keyword": #""absent-word""#])
        XCTAssertEqual(missing.error, #"the body does not contain "absent-word""#)
        let present = await run("\(http.base)/ok", ["keyword": #""hello""#, "keyword_absent": "true"])
        XCTAssertEqual(present.error, #"the body contains "hello", which must be absent"#)
        let regex = await run("\(http.base)/ok", ["regex": #""^hello [a-z]+$""#])
        XCTAssertTrue(regex.ok, regex.error)
        let noMatch = await run("\(http.base)/ok", ["regex": #""^[0-9]+$""#])
        XCTAssertFalse(noMatch.ok)

        let json = await run("\(http.base)/json", ["json_path": #""$.items[0].name""#, "json_equals": #""a""#])
        XCTAssertTrue(json.ok, json.error)
        let count = await run("\(http.base)/json", ["json_path": #""$.count""#, "json_equals": "3.0"])
        XCTAssertTrue(count.ok, "3 equals 3.0: \(count.error)")
        let wrong = await run("\(http.base)/json", ["json_path": #""$.status""#, "json_equals": #""red""#])
        XCTAssertEqual(wrong.error, #"the JSON value at the path is "green", expected "red""#)
        let notJSON = await run("\(http.base)/ok", ["json_path": #""$.status""#, "json_equals": #""red""#])
        XCTAssertEqual(notJSON.error, "the body is not JSON")

        let tooSlow = await run("\(http.base)/ok", ["max_latency_ms": "0"])
        XCTAssertTrue(tooSlow.error.hasPrefix("answered in"), tooSlow.error)
    }

    func testRequestsCarryTheMethodHeadersAndBodyAndReadAtMostTheBodyLimit() async throws {
        let http = try await TestHTTPServer.start()
        defer { Task { try? await http.stop() } }
        let echo = await run("\(http.base)/echo", [
            "method": #""POST""#, "headers": #"{"X-Token":"abc"}"#, "body": #""ping""#, "keyword": #""x-token=abc""#,
        ])
        XCTAssertTrue(echo.ok, echo.error)
        let methodAndBody = await run("\(http.base)/echo", ["method": #""POST""#, "body": #""ping""#, "regex": #""method=POST\nbody=ping""#])
        XCTAssertTrue(methodAndBody.ok, methodAndBody.error)
        let userAgent = await run("\(http.base)/echo", ["keyword": #""user-agent=crowsnest-probe""#])
        XCTAssertTrue(userAgent.ok, userAgent.error)
        // The prober frames the body itself: a check's own Transfer-Encoding or Content-Length is not sent (the
        // server would wait for a body that never comes), and a body-less POST says Content-Length: 0.
        let framed = await run("\(http.base)/echo", [
            "method": #""POST""#, "headers": #"{"Transfer-Encoding":"chunked","Content-Length":"99"}"#,
            "regex": #""content-length=0""#,
        ])
        XCTAssertTrue(framed.ok, framed.error)
        let noTransferEncoding = await run("\(http.base)/echo", [
            "method": #""POST""#, "headers": #"{"Transfer-Encoding":"chunked"}"#, "keyword": #""transfer-encoding""#,
            "keyword_absent": "true",
        ])
        XCTAssertTrue(noTransferEncoding.ok, noTransferEncoding.error)
        // 3 MiB body: only the first MiB is read, so a keyword at its end is not seen.
        let big = await run("\(http.base)/big", ["keyword": #""needle""#])
        XCTAssertEqual(big.figures["body_bytes"], Double(1 << 20))
        XCTAssertFalse(big.ok)
    }

    func testRedirectsAreFollowedWithinALimitOrNotAtAll() async throws {
        let http = try await TestHTTPServer.start()
        defer { Task { try? await http.stop() } }
        let followed = await run("\(http.base)/redirect", ["keyword": #""hello""#])
        XCTAssertTrue(followed.ok, followed.error)
        XCTAssertEqual(followed.details["final_url"], "\(http.base)/ok")
        let notFollowed = await run("\(http.base)/redirect", ["follow_redirects": "false", "expected_status": #"["302"]"#])
        XCTAssertTrue(notFollowed.ok, notFollowed.error)
        let loop = await run("\(http.base)/loop")
        XCTAssertFalse(loop.ok)
        XCTAssertTrue(loop.error.hasPrefix("more than 10 redirects"), loop.error)
    }

    func testTheSSRFGuardChecksEveryAddressOfEveryHop() async throws {
        let http = try await TestHTTPServer.start()
        defer { Task { try? await http.stop() } }
        // A server-run check may not reach loopback: by address, by a name resolving to it, by a redirect.
        let direct = await run("\(http.base)/ok", guard: server)
        XCTAssertFalse(direct.ok)
        XCTAssertTrue(direct.error.contains("127.0.0.1 is loopback, refused for checks the server runs"), direct.error)
        XCTAssertEqual(direct.httpStatus, 0, "nothing was sent")
        let byName = await run("http://localhost:\(http.port)/ok", guard: server)
        XCTAssertTrue(byName.error.contains("localhost resolves to"), byName.error)
        XCTAssertTrue(byName.error.contains("loopback"), byName.error)
        // An agent may reach loopback, but a redirect to the metadata address is refused on that hop.
        let metadata = await run("\(http.base)/to-metadata")
        XCTAssertFalse(metadata.ok)
        XCTAssertTrue(metadata.error.contains("169.254.169.254 is cloud metadata, refused for checks an agent runs"), metadata.error)
        // A tenant's allowed network opens loopback to the server too.
        let allowed = await run("\(http.base)/to-localhost", guard: AddressGuard(runner: .server, allowedNetworks: [IPNetwork("127.0.0.0/8")!, IPNetwork("::1")!]))
        XCTAssertTrue(allowed.ok, allowed.error)
        let tcpRefused = await run("127.0.0.1:\(http.port)", type: "tcp", guard: server)
        XCTAssertTrue(tcpRefused.error.contains("loopback"), tcpRefused.error)
        let unspecified = await run("0.0.0.0:\(http.port)", type: "tcp")
        XCTAssertTrue(unspecified.error.contains("nothing to probe there"), unspecified.error)
    }

    func testTCPChecksConnectOrSayWhyNot() async throws {
        let http = try await TestHTTPServer.start()
        let port = http.port
        let open = await run("127.0.0.1:\(port)", type: "tcp")
        XCTAssertTrue(open.ok, open.error)
        XCTAssertEqual(open.details["address"], "127.0.0.1:\(port)")
        try await http.stop()
        let closed = await run("127.0.0.1:\(port)", type: "tcp")
        XCTAssertFalse(closed.ok)
        XCTAssertEqual(closed.error, "cannot connect to 127.0.0.1:\(port): connection refused")
        let noPort = await run("127.0.0.1", type: "tcp")
        XCTAssertEqual(noPort.error, #"target "127.0.0.1" has no port (host:port)"#)
        let unknownName = await run("no-such-host.invalid:80", type: "tcp")
        XCTAssertTrue(unknownName.error.hasPrefix("cannot resolve no-such-host.invalid"), unknownName.error)
    }

    func testARunEndsAtItsDeadline() async throws {
        let http = try await TestHTTPServer.start()
        defer { Task { try? await http.stop() } }
        let start = ContinuousClock.now
        let slow = await run("\(http.base)/slow", timeout: .milliseconds(500))
        XCTAssertFalse(slow.ok)
        XCTAssertEqual(slow.error, "no answer within 500 ms")
        XCTAssertLessThan(ContinuousClock.now - start, .seconds(2), "the run was cut at its deadline, not at the answer")
        let unsupported = await run("mail.example.com:25", type: "smtp")
        XCTAssertEqual(unsupported.error, "checks of type smtp are not run here yet")
    }
}
