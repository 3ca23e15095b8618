import CrowsnestWire
import Foundation
import XCTest

@testable import CrowsnestProbes

/// `nginx` and `postgres` checks against real peers from Debian's packages this test starts on loopback.
final class PeerProberTests: XCTestCase {
    private let prober = Prober()
    private let agent = AddressGuard(runner: .agent)

    private func run(_ type: String, _ target: String, _ options: [String: String] = [:]) async -> ProbeOutcome {
        await prober.run(type: type, target: target, options: options, timeout: .seconds(10), addressGuard: agent)
    }

    func testAnNginxCheckReadsStubStatusAndReportsRequestsPerSecondFromTheSecondRun() async throws {
        let nginx = try TestNginx()
        defer { nginx.stop() }
        let page = "http://127.0.0.1:\(nginx.port)/nginx_status"
        let first = await run("nginx", page)
        XCTAssertTrue(first.ok, first.error)
        XCTAssertEqual(first.figures["active"], 1, "the probe's own connection")
        XCTAssertEqual(first.figures["writing"], 1)
        XCTAssertGreaterThanOrEqual(first.figures["requests"] ?? 0, 1)
        XCTAssertNil(first.figures["requests_per_second"], "no rate before a second run")

        // Ten requests between the runs; the rate counts them and not the probe's own.
        for _ in 0..<10 { _ = await run("http", "http://127.0.0.1:\(nginx.port)/") }
        try await Task.sleep(for: .milliseconds(200))
        let second = await run("nginx", page)
        XCTAssertTrue(second.ok, second.error)
        XCTAssertEqual(second.figures["requests"] ?? 0, (first.figures["requests"] ?? 0) + 11)
        let rate = try XCTUnwrap(second.figures["requests_per_second"])
        XCTAssertGreaterThan(rate, 0)

        let notStatus = await run("nginx", "http://127.0.0.1:\(nginx.port)/")
        XCTAssertFalse(notStatus.ok)
        XCTAssertEqual(notStatus.error, "the page is not nginx's stub_status (expected \"Active connections: …\")")
        nginx.stop()
        let down = await run("nginx", page)
        XCTAssertFalse(down.ok)
        XCTAssertTrue(down.error.contains("connection refused"), down.error)
    }

    func testAPostgresCheckSignsInEveryWayAndReadsStatistics() async throws {
        let postgres = try TestPostgresPeer()
        defer { postgres.stop() }
        let host = "127.0.0.1:\(postgres.port)"
        for (user, password, sslMode) in [("scram_user", "scram-secret", "disable"), ("scram_user", "scram-secret", "require"),
                                          ("md5_user", "md5-secret", "prefer"), ("plain_user", "plain-secret", "disable"),
                                          ("trust_user", "", "disable")] {
            let credentials = password.isEmpty ? user : "\(user):\(password)"
            let outcome = await run("postgres", "postgres://\(credentials)@\(host)/app?sslmode=\(sslMode)")
            XCTAssertTrue(outcome.ok, "\(user) with sslmode=\(sslMode): \(outcome.error)")
            XCTAssertGreaterThanOrEqual(outcome.figures["connections"] ?? 0, 1, user)
            XCTAssertGreaterThan(outcome.figures["commits"] ?? 0, 0, user)
            XCTAssertNotNil(outcome.figures["rollbacks"], user)
            XCTAssertEqual(outcome.figures["in_recovery"], 0, user)
            XCTAssertEqual(outcome.figures["replication_lag_seconds"], 0, user)
            XCTAssertEqual(outcome.figures["replicas"], 0, user)
        }
        let lagLimit = await run("postgres", "postgres://trust_user@\(host)/app", ["max_replication_lag_seconds": "5"])
        XCTAssertTrue(lagLimit.ok, lagLimit.error)
    }

    func testAPostgresCheckSaysWhySigningInFailed() async throws {
        let postgres = try TestPostgresPeer()
        defer { postgres.stop() }
        let host = "127.0.0.1:\(postgres.port)"
        let wrongScram = await run("postgres", "postgres://scram_user:wrong@\(host)/app")
        XCTAssertFalse(wrongScram.ok)
        XCTAssertEqual(wrongScram.error, #"PostgreSQL said 28P01: password authentication failed for user "scram_user""#)
        let wrongMD5 = await run("postgres", "postgres://md5_user:wrong@\(host)/app")
        XCTAssertEqual(wrongMD5.error, #"PostgreSQL said 28P01: password authentication failed for user "md5_user""#)
        let noPassword = await run("postgres", "postgres://scram_user@\(host)/app")
        XCTAssertEqual(noPassword.error, "the server asks for a password and the URL gives none (postgres://user:password@host/db)")
        let noDatabase = await run("postgres", "postgres://trust_user@\(host)/missing")
        XCTAssertEqual(noDatabase.error, #"PostgreSQL said 3D000: database "missing" does not exist"#)
        let unknownUser = await run("postgres", "postgres://nobody_here:x@\(host)/app")
        XCTAssertFalse(unknownUser.ok)
        XCTAssertTrue(unknownUser.error.hasPrefix("PostgreSQL said 28000"), unknownUser.error)
    }

    func testAPostgresCheckOfSomethingElseFailsCleanly() async throws {
        let http = try await TestHTTPServer.start()
        defer { Task { try? await http.stop() } }
        let outcome = await run("postgres", "postgres://u:p@127.0.0.1:\(http.port)/db?sslmode=disable")
        XCTAssertFalse(outcome.ok)
        XCTAssertFalse(outcome.error.isEmpty)
        let required = await run("postgres", "postgres://u:p@127.0.0.1:\(http.port)/db?sslmode=require")
        XCTAssertFalse(required.ok)
    }

    func testSCRAMProofsMatchTheRFC7677Example() throws {
        // RFC 7677 section 3 (user "user", password "pencil"); the client nonce is fixed to the example's.
        var client = SCRAMClient(password: "pencil", clientNonce: "rOprNGfwEbeRWgbNEkqO")
        let final = try client.clientFinal(serverFirst: "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
                                           clientFirstBare: "n=user,r=rOprNGfwEbeRWgbNEkqO")
        XCTAssertEqual(final, "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
        XCTAssertNoThrow(try client.verify(serverFinal: "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="))
        XCTAssertThrowsError(try client.verify(serverFinal: "v=AAAA"))
    }
}
