import Foundation
import Logging
import PostgresNIO
import XCTest

@testable import CrowsnestServer

/// The lease operations the check coordinator runs every tick for many keys at once, against a real PostgreSQL.
final class LeaseStoreBulkTests: XCTestCase {
    private let logger: Logger = {
        var logger = Logger(label: "crowsnest.tests.leases")
        logger.logLevel = .critical
        return logger
    }()

    func testAcquireManyTakesOnlyFreeKeysAndRefusesAKeyNamedTwice() async throws {
        try await TestPostgres.withTestDatabase { client in
            let store = LeaseStore(client: client, logger: logger)
            let held = try await store.acquire(key: "check:b", holder: "agent:other", ttl: .seconds(30))
            XCTAssertNotNil(held)
            let expiring = try await store.acquire(key: "check:c", holder: "agent:other", ttl: .milliseconds(150))
            try await Task.sleep(for: .milliseconds(300))
            let got = try await store.acquireMany([("check:c", "agent:1"), ("check:a", "agent:1"), ("check:b", "agent:2")],
                                                  ttl: .seconds(10))
            XCTAssertEqual(Set(got.keys), ["check:a", "check:c"], "a held key stays with its holder")
            XCTAssertEqual(got["check:a"]?.holder, "agent:1")
            XCTAssertGreaterThan(got["check:c"]!.token, expiring!.token, "an expired key is taken with a larger token")
            let stillHeld = try await store.current(key: "check:b")
            XCTAssertEqual(stillHeld, held)
            do {
                _ = try await store.acquireMany([("check:x", "agent:1"), ("check:x", "agent:2")], ttl: .seconds(10))
                XCTFail("a key named twice must be refused")
            } catch let error as LeaseError {
                XCTAssertTrue(error.description.contains("named twice"), error.description)
            }
            let empty = try await store.acquireMany([], ttl: .seconds(10))
            XCTAssertTrue(empty.isEmpty)
        }
    }

    func testRenewAllExtendsOnlyTheLiveTermsOfTheseHoldersUnderThePrefix() async throws {
        try await TestPostgres.withTestDatabase { client in
            let store = LeaseStore(client: client, logger: logger)
            let mine = try await store.acquire(key: "check:1", holder: "agent:1", ttl: .seconds(2))!
            let otherPrefix = try await store.acquire(key: "job:1", holder: "agent:1", ttl: .seconds(2))!
            let theirs = try await store.acquire(key: "check:2", holder: "agent:2", ttl: .seconds(2))!
            let lapsed = try await store.acquire(key: "check:3", holder: "agent:1", ttl: .milliseconds(150))!
            let released = try await store.acquire(key: "check:4", holder: "agent:1", ttl: .seconds(2))!
            try await store.release(released)
            try await Task.sleep(for: .milliseconds(300))
            let renewed = try await store.renewAll(keyPrefix: "check:", holders: ["agent:1", "agent:9"], ttl: .seconds(60))
            XCTAssertEqual(renewed.map(\.key), ["check:1"], "expired and released terms are never revived")
            XCTAssertEqual(renewed.first?.token, mine.token, "renewal keeps the token")
            // Extended to (now + 60 s): at least 58 s past the old end (it was 2 s after an earlier now).
            let extended = renewed.first!.expiresAt.timeIntervalSince(mine.expiresAt)
            XCTAssertTrue(extended > 58 && extended < 60, "extended by \(extended) s")
            let job = try await store.current(key: "job:1")
            XCTAssertEqual(job?.expiresAt, otherPrefix.expiresAt, "another prefix is not touched")
            let other = try await store.current(key: "check:2")
            XCTAssertEqual(other?.expiresAt, theirs.expiresAt, "another holder's term is not touched")
            let gone = try await store.current(key: "check:3")
            XCTAssertNil(gone)
            _ = lapsed
            let none = try await store.renewAll(keyPrefix: "check:", holders: [], ttl: .seconds(60))
            XCTAssertTrue(none.isEmpty)
        }
    }

    func testOnlyTheAgentsNewestSessionClaimsItsTermAndAReconnectTakesItOver() async throws {
        try await TestPostgres.withTestDatabase { client in
            let store = LeaseStore(client: client, logger: logger)
            let tenantID = try await TenantStore(client: client, logger: logger).create(name: "acme")
            let agentID = UUID(), first = UUID(), second = UUID()
            try await client.query("""
                INSERT INTO agents (tenant_id, id, hostname, session_id) VALUES (\(tenantID), \(agentID), 'h', \(first))
                """, logger: logger)
            let claimed = try await store.claimAgentSessions([(tenantID, agentID, first)], ttl: .seconds(30))
            let term = try XCTUnwrap(claimed[agentID])
            XCTAssertEqual(term.key, "agent:" + agentID.uuidString.lowercased())
            XCTAssertEqual(term.holder, "session:" + first.uuidString.lowercased())
            // The agent reconnects (elsewhere): its newest Hello recorded the second session.
            try await client.query("UPDATE agents SET session_id = \(second) WHERE id = \(agentID)", logger: logger)
            let stale = try await store.claimAgentSessions([(tenantID, agentID, first)], ttl: .seconds(30))
            XCTAssertTrue(stale.isEmpty, "a session that was taken over claims nothing")
            let takeover = try await store.claimAgentSessions([(tenantID, agentID, second)], ttl: .seconds(30))
            XCTAssertEqual(takeover[agentID]?.holder, "session:" + second.uuidString.lowercased())
            XCTAssertGreaterThan(takeover[agentID]!.token, term.token, "the unexpired term is taken over with a larger token")
            let renewedStale = try await store.renewAll(keyPrefix: "agent:", holders: [term.holder], ttl: .seconds(30))
            XCTAssertTrue(renewedStale.isEmpty, "the old session cannot renew the term it lost")
            // Another tenant's id or a revoked agent claims nothing.
            let wrongTenant = try await store.claimAgentSessions([(UUID(), agentID, second)], ttl: .seconds(30))
            XCTAssertTrue(wrongTenant.isEmpty)
            try await client.query("UPDATE agents SET revoked_at = now() WHERE id = \(agentID)", logger: logger)
            let revoked = try await store.claimAgentSessions([(tenantID, agentID, second)], ttl: .seconds(30))
            XCTAssertTrue(revoked.isEmpty)
        }
    }
}
