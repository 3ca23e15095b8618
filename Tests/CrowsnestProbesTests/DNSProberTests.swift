import CrowsnestWire
import Foundation
import NIOCore
import XCTest

@testable import CrowsnestProbes

/// `dns` checks against a stub DNS server this test starts on loopback (UDP, and TCP for truncated answers).
final class DNSProberTests: XCTestCase {
    private let prober = Prober()
    private let agent = AddressGuard(runner: .agent)

    private func run(_ name: String, _ options: [String: String], guard addressGuard: AddressGuard? = nil) async -> ProbeOutcome {
        await prober.run(type: "dns", target: name, options: options, timeout: .seconds(3), addressGuard: addressGuard ?? agent)
    }

    func testADNSCheckComparesTheAnswersOfEachRecordTypeWithTheExpectedOnes() async throws {
        let dns = try await TestDNSServer.start()
        let resolver = "\"\(dns.address)\""
        let a = await run("www.test", ["resolver": resolver, "expected": #"["192.0.2.11"]"#])
        XCTAssertTrue(a.ok, a.error)
        XCTAssertEqual(a.details["answers"], "192.0.2.10, 192.0.2.11")
        XCTAssertEqual(a.figures["answer_count"], 2)
        XCTAssertEqual(a.details["transport"], "udp")

        let missing = await run("www.test", ["resolver": resolver, "expected": #"["192.0.2.10", "192.0.2.12"]"#])
        XCTAssertFalse(missing.ok)
        XCTAssertEqual(missing.error, "www.test A is 192.0.2.10, 192.0.2.11, without 192.0.2.12")

        let aaaa = await run("www.test", ["resolver": resolver, "record_type": #""AAAA""#, "expected": #""2001:0db8:0:0::10""#])
        XCTAssertTrue(aaaa.ok, "addresses compare by value: \(aaaa.error)")
        let cname = await run("alias.test", ["resolver": resolver, "record_type": #""CNAME""#, "expected": #""WWW.test.""#])
        XCTAssertTrue(cname.ok, cname.error)
        let viaAlias = await run("alias.test", ["resolver": resolver, "expected": #""192.0.2.10""#])
        XCTAssertTrue(viaAlias.ok, "the A record behind the CNAME: \(viaAlias.error)")
        let mx = await run("test", ["resolver": resolver, "record_type": #""MX""#, "expected": #""mail.test""#])
        XCTAssertTrue(mx.ok, mx.error)
        XCTAssertEqual(mx.details["answers"], "10 mail.test")
        let ns = await run("test", ["resolver": resolver, "record_type": #""NS""#, "expected": #""ns1.test""#])
        XCTAssertTrue(ns.ok, ns.error)
        let txt = await run("txt.test", ["resolver": resolver, "record_type": #""TXT""#, "expected": #""v=spf1 -all""#])
        XCTAssertTrue(txt.ok, txt.error)
        await dns.stop()
    }

    func testADNSCheckFailsOnNXDOMAINServfailAndNoRecordsAndIgnoresAForgedAnswer() async throws {
        let dns = try await TestDNSServer.start()
        let resolver = "\"\(dns.address)\""
        let nx = await run("nope.example", ["resolver": resolver])
        XCTAssertFalse(nx.ok)
        XCTAssertEqual(nx.error, "nope.example does not exist (NXDOMAIN)")
        let servfail = await run("fail.test", ["resolver": resolver])
        XCTAssertEqual(servfail.error, "the resolver answered SERVFAIL for fail.test")
        let none = await run("txt.test", ["resolver": resolver])
        XCTAssertEqual(none.error, "txt.test has no A records")
        let spoof = await run("spoof.test", ["resolver": resolver, "expected": #""192.0.2.99""#])
        XCTAssertTrue(spoof.ok, "the answer with the wrong id is ignored: \(spoof.error)")
        XCTAssertEqual(spoof.details["answers"], "192.0.2.99")
        await dns.stop()
    }

    func testATruncatedAnswerIsAskedAgainOverTCP() async throws {
        let dns = try await TestDNSServer.start()
        let big = await run("big.test", ["resolver": "\"\(dns.address)\"", "expected": #""198.51.100.60""#])
        XCTAssertTrue(big.ok, big.error)
        XCTAssertEqual(big.details["transport"], "tcp")
        XCTAssertEqual(big.figures["answer_count"], 60)
        await dns.stop()
    }

    func testAResolverTheGuardRefusesIsNeverAskedAndASilentOneTimesOut() async throws {
        let dns = try await TestDNSServer.start()
        let refused = await run("www.test", ["resolver": "\"\(dns.address)\""], guard: AddressGuard(runner: .server))
        XCTAssertFalse(refused.ok)
        XCTAssertTrue(refused.error.contains("127.0.0.1"), refused.error)
        await dns.stop()
        let metadata = await run("www.test", ["resolver": #""169.254.169.254""#])
        XCTAssertFalse(metadata.ok, "link-local stays blocked for agents")
        XCTAssertTrue(metadata.error.contains("169.254.169.254"), metadata.error)
        let silent = await prober.run(type: "dns", target: "www.test", options: ["resolver": "\"127.0.0.1:9\""],
                                      timeout: .milliseconds(1500), addressGuard: agent)
        XCTAssertFalse(silent.ok)
        XCTAssertEqual(silent.error, "no answer within 1500 ms")
    }

    func testTheSystemResolverIsTheFirstNameserverOfResolvConf() throws {
        let path = NSTemporaryDirectory() + "resolv-\(UInt32.random(in: 0...UInt32.max)).conf"
        try "# comment\nsearch example\nnameserver fe80::1%eth0\nnameserver 10.0.0.2\n".write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        XCTAssertEqual(try DNSProber.systemResolver(path: path).ipAddress, "fe80::1")
        try "search example\n".write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try DNSProber.systemResolver(path: path)) { error in
            XCTAssertEqual((error as? ProbeFailure)?.reason, "\(path) names no nameserver; set the check's resolver option")
        }
    }

    func testAMalformedAnswerIsRefusedNotLoopedOn() {
        var loop = ByteBuffer(bytes: [0, 1, 0x81, 0x80, 0, 0, 0, 1, 0, 0, 0, 0])
        loop.writeBytes([0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 1, 2, 3, 4])  // a name pointing at itself
        XCTAssertThrowsError(try DNSMessage(parsing: loop)) { error in
            XCTAssertEqual((error as? ProbeFailure)?.reason, "the resolver's answer has a bad name pointer")
        }
        let short = ByteBuffer(bytes: [0, 1, 0x81, 0x80, 0, 0, 0, 1])
        XCTAssertThrowsError(try DNSMessage(parsing: short))
    }
}
