import CrowsnestWire
import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import XCTest

@testable import CrowsnestProbes

/// `tls` checks and `http` checks of https servers against real TLS servers on loopback presenting certificates
/// this test makes: self-signed, expiring soon, expired, for another name, and a chain whose CA expires first.
final class TLSProberTests: XCTestCase {
    private let prober = Prober()
    private let agent = AddressGuard(runner: .agent)

    private func serve(_ leaf: TestCertificates.Issued, chain: [TestCertificates.Issued] = []) async throws -> TestHTTPServer {
        try await TestHTTPServer.start(tls: TestCertificates.serverConfiguration(leaf, chain: chain))
    }

    private func run(_ type: String, _ target: String, _ options: [String: String] = [:]) async -> ProbeOutcome {
        await prober.run(type: type, target: target, options: options, timeout: .seconds(5), addressGuard: agent)
    }

    func testATLSCheckReportsTheEarliestExpiryInTheChainAndFailsWithinMinDays() async throws {
        let ca = try TestCertificates.make(commonName: "Test CA", names: [], days: 20.5, isCA: true)
        let leaf = try TestCertificates.make(commonName: "localhost", names: ["localhost", "127.0.0.1"], days: 90, issuer: ca)
        let server = try await serve(leaf, chain: [ca])
        defer { Task { try? await server.stop() } }

        let ok = await run("tls", "localhost:\(server.port)")
        XCTAssertTrue(ok.ok, ok.error)
        XCTAssertEqual(ok.certificateNotAfterUnixMs, ca.notAfterUnix * 1000, "the CA expires first, and counts")
        XCTAssertEqual(ok.figures["chain_length"], 2)
        XCTAssertEqual(ok.figures["days_left"] ?? 0, 20.5, accuracy: 0.1)
        XCTAssertEqual(ok.details["earliest_expiry_in"], "certificate 2 of 2 in the chain")

        let soon = await run("tls", "localhost:\(server.port)", ["min_days": "30"])
        XCTAssertFalse(soon.ok)
        XCTAssertEqual(soon.error, "a certificate in the chain expires in 20 days, fewer than 30")
        XCTAssertEqual(soon.certificateNotAfterUnixMs, ca.notAfterUnix * 1000, "a failed run still reports the expiry")

        let byAddress = await run("tls", "127.0.0.1:\(server.port)")
        XCTAssertTrue(byAddress.ok, "the certificate carries 127.0.0.1 as an IP address: \(byAddress.error)")
    }

    func testATLSCheckFailsOnANameMismatchAndOnAnExpiredCertificate() async throws {
        let leaf = try TestCertificates.make(commonName: "localhost", names: ["localhost"], days: 10)
        let server = try await serve(leaf)
        defer { Task { try? await server.stop() } }
        let other = await run("tls", "localhost:\(server.port)", ["server_name": #""db.example.com""#])
        XCTAssertFalse(other.ok)
        XCTAssertEqual(other.error, "the certificate is not for db.example.com (it is for localhost)")
        XCTAssertEqual(other.certificateNotAfterUnixMs, leaf.notAfterUnix * 1000)

        let wildcard = try TestCertificates.make(commonName: "wildcard", names: ["*.example.com"], days: 10)
        let wildcardServer = try await serve(wildcard)
        defer { Task { try? await wildcardServer.stop() } }
        let matched = await run("tls", "127.0.0.1:\(wildcardServer.port)", ["server_name": #""api.example.com""#])
        XCTAssertTrue(matched.ok, matched.error)
        let deeper = await run("tls", "127.0.0.1:\(wildcardServer.port)", ["server_name": #""a.b.example.com""#])
        XCTAssertFalse(deeper.ok, "a wildcard stands for one label only")

        let expired = try TestCertificates.make(commonName: "localhost", names: ["localhost"], days: -3)
        let expiredServer = try await serve(expired)
        defer { Task { try? await expiredServer.stop() } }
        let late = await run("tls", "localhost:\(expiredServer.port)")
        XCTAssertFalse(late.ok)
        XCTAssertEqual(late.error, "a certificate in the chain expired 3 days ago")
    }

    func testATLSCheckOfSomethingThatIsNotTLSFailsWithTheReason() async throws {
        let plain = try await TestHTTPServer.start()
        defer { Task { try? await plain.stop() } }
        let outcome = await run("tls", "127.0.0.1:\(plain.port)")
        XCTAssertFalse(outcome.ok)
        XCTAssertTrue(outcome.error.contains("TLS handshake with 127.0.0.1:\(plain.port) failed"), outcome.error)
    }

    func testAnHTTPSCheckOfASelfSignedServerFailsVerificationUnlessToldNotToAndThenReportsItsExpiry() async throws {
        let leaf = try TestCertificates.make(commonName: "localhost", names: ["localhost"], days: 12.5)
        let server = try await serve(leaf)
        defer { Task { try? await server.stop() } }
        let url = "https://localhost:\(server.port)/ok"

        let verified = await run("http", url)
        XCTAssertFalse(verified.ok, "a self-signed certificate is not trusted")
        XCTAssertTrue(verified.error.hasPrefix("TLS failed"), verified.error)

        let accepted = await run("http", url, ["verify_tls": "false"])
        XCTAssertTrue(accepted.ok, accepted.error)
        XCTAssertEqual(accepted.httpStatus, 200)
        XCTAssertEqual(accepted.certificateNotAfterUnixMs, leaf.notAfterUnix * 1000)

        let tooSoon = await run("http", url, ["verify_tls": "false", "certificate_min_days": "30"])
        XCTAssertFalse(tooSoon.ok)
        XCTAssertEqual(tooSoon.error, "the certificate expires in 12 days, fewer than 30")
    }

    /// A server that accepts and never says a word: every probe that waits on a handshake or an answer ends at its
    /// deadline with that reason, not when the server gives up.
    func testProbesOfASilentServerEndAtTheirDeadline() async throws {
        let silent = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { $0.eventLoop.makeSucceededVoidFuture() }
            .bind(host: "127.0.0.1", port: 0).get()
        defer { silent.close(promise: nil) }
        let port = silent.localAddress!.port!
        for (type, target) in [("tls", "127.0.0.1:\(port)"), ("http", "https://127.0.0.1:\(port)/"),
                               ("http", "http://127.0.0.1:\(port)/"), ("nginx", "http://127.0.0.1:\(port)/status"),
                               ("postgres", "postgres://u:p@127.0.0.1:\(port)/db?sslmode=require"),
                               ("postgres", "postgres://u:p@127.0.0.1:\(port)/db?sslmode=disable")] {
            let start = ContinuousClock.now
            let outcome = await prober.run(type: type, target: target, options: [:], timeout: .milliseconds(600), addressGuard: agent)
            XCTAssertEqual(outcome.error, "no answer within 600 ms", "\(type) \(target)")
            XCTAssertLessThan(ContinuousClock.now - start, .seconds(3), "\(type) \(target) was cut at its deadline")
        }
    }
}
