import Foundation
import Logging
import PostgresNIO
import XCTest

@testable import CrowsnestServer

/// The lease keyspace against a real PostgreSQL with the real migrations: NX acquisition, term-scoped renew and
/// release, fencing tokens that only grow, INCR with expiry, and fenced writes that refuse a stalled holder.
/// Short ttls (200–300 ms) are waited out; nothing asserts how fast anything is.
final class LeaseStoreTests: XCTestCase {
    private let logger: Logger = {
        var logger = Logger(label: "crowsnest.tests.leases")
        logger.logLevel = .critical
        return logger
    }()

    private func makeStore(_ client: PostgresClient) -> LeaseStore {
        LeaseStore(client: client, logger: logger)
    }

    /// A scratch table standing in for the resource fenced writes protect.
    private func createResultsTable(_ client: PostgresClient) async throws {
        try await client.query(
            "CREATE TABLE lease_test_results (key text NOT NULL, token bigint NOT NULL, note text NOT NULL)",
            logger: logger)
    }

    /// One bigint from a single-row query.
    private func integer(_ client: PostgresClient, _ query: PostgresQuery) async throws -> Int64? {
        let rows = try await client.query(query, logger: logger)
        var result: Int64?
        for try await value in rows.decode(Int64.self) { result = value }
        return result
    }

    // MARK: - Acquire

    func testAcquiringAFreeKeyStartsATermWithTheRequestedTTL() async throws {
        try await TestPostgres.withTestDatabase { client in
            let store = makeStore(client)
            let lease = try await acquired(store, key: "job:rollup", holder: "replica-a", ttl: .seconds(30))
            XCTAssertEqual(lease.key, "job:rollup")
            XCTAssertEqual(lease.holder, "replica-a")
            XCTAssertGreaterThan(lease.token, 0)
            XCTAssertEqual(lease.expiresAt.timeIntervalSince(lease.acquiredAt), 30, accuracy: 0.001)
            let current = try await store.current(key: "job:rollup")
            XCTAssertEqual(current, lease)
            let none = try await store.current(key: "job:retention")
            XCTAssertNil(none, "a key never acquired has no holder")
        }
    }

    func testAcquireIsNXWhileHeldEvenForTheSameHolderAndDoesNotExtendTheLease() async throws {
        try await TestPostgres.withTestDatabase { client in
            let store = makeStore(client)
            let held = try await acquired(store, key: "agent:7", holder: "replica-a", ttl: .seconds(30))
            let other = try await store.acquire(key: "agent:7", holder: "replica-b", ttl: .seconds(30))
            XCTAssertNil(other, "another holder must not get a held key")
            let same = try await store.acquire(key: "agent:7", holder: "replica-a", ttl: .seconds(60))
            XCTAssertNil(same, "NX: the holder itself gets nil too (renew extends, acquire does not)")
            let current = try await store.current(key: "agent:7")
            XCTAssertEqual(current, held, "the failed acquisitions left token and expiry as they were")
        }
    }

    func testAcquireAfterExpiryHandsAStrictlyLargerTokenToTheNewHolder() async throws {
        try await TestPostgres.withTestDatabase { client in
            let store = makeStore(client)
            let first = try await acquired(store, key: "check:1", holder: "agent-a", ttl: .milliseconds(200))
            try await Task.sleep(for: .milliseconds(300))
            let gone = try await store.current(key: "check:1")
            XCTAssertNil(gone, "an expired lease has no current holder")
            let second = try await acquired(store, key: "check:1", holder: "agent-b", ttl: .seconds(30))
            XCTAssertGreaterThan(second.token, first.token)
            XCTAssertEqual(second.holder, "agent-b")
            XCTAssertGreaterThanOrEqual(second.acquiredAt, first.expiresAt)
            let current = try await store.current(key: "check:1")
            XCTAssertEqual(current, second)
        }
    }

    // MARK: - Renew and release

    func testRenewByTheHolderExtendsTheExpiryAndKeepsTheToken() async throws {
        try await TestPostgres.withTestDatabase { client in
            let store = makeStore(client)
            let lease = try await acquired(store, key: "job:partitions", holder: "replica-a", ttl: .seconds(10))
            let renewal = try await store.renew(lease, ttl: .seconds(60))
            let renewed = try XCTUnwrap(renewal)
            XCTAssertEqual(renewed.token, lease.token, "renewal never changes the token")
            XCTAssertEqual(renewed.acquiredAt, lease.acquiredAt, "renewal continues the same term")
            XCTAssertGreaterThan(renewed.expiresAt, lease.expiresAt)
            XCTAssertGreaterThanOrEqual(renewed.expiresAt.timeIntervalSince(lease.acquiredAt), 60 - 0.001)
            let current = try await store.current(key: "job:partitions")
            XCTAssertEqual(current, renewed)
        }
    }

    func testRenewAfterExpiryReturnsNilAndTheKeyIsFreeForOthers() async throws {
        try await TestPostgres.withTestDatabase { client in
            let store = makeStore(client)
            let lease = try await acquired(store, key: "job:offline", holder: "replica-a", ttl: .milliseconds(200))
            try await Task.sleep(for: .milliseconds(300))
            let renewed = try await store.renew(lease, ttl: .seconds(30))
            XCTAssertNil(renewed, "a lost term is never revived")
            let current = try await store.current(key: "job:offline")
            XCTAssertNil(current, "the failed renewal did not extend the lease")
            let next = try await store.acquire(key: "job:offline", holder: "replica-b", ttl: .seconds(30))
            XCTAssertNotNil(next)
        }
    }

    func testRenewAndReleaseByANonHolderOrWithAnOldTokenLeaveTheTermUntouched() async throws {
        try await TestPostgres.withTestDatabase { client in
            let store = makeStore(client)
            let key = "check:99"
            let old = try await acquired(store, key: key, holder: "agent-a", ttl: .milliseconds(200))
            try await Task.sleep(for: .milliseconds(300))
            let now = try await acquired(store, key: key, holder: "agent-b", ttl: .seconds(30))

            let staleRenewal = try await store.renew(old, ttl: .seconds(30))
            XCTAssertNil(staleRenewal, "the old term cannot renew its successor's")
            let staleRelease = try await store.release(old)
            XCTAssertFalse(staleRelease, "the old term cannot release its successor's")
            // The new holder's name with the old token, and another name with the new token: both refused.
            let oldToken = Lease(key: key, holder: "agent-b", token: old.token, acquiredAt: old.acquiredAt, expiresAt: old.expiresAt)
            let stranger = Lease(key: key, holder: "agent-c", token: now.token, acquiredAt: now.acquiredAt, expiresAt: now.expiresAt)
            for forged in [oldToken, stranger] {
                let renewed = try await store.renew(forged, ttl: .seconds(60))
                XCTAssertNil(renewed, "\(forged)")
                let released = try await store.release(forged)
                XCTAssertFalse(released, "\(forged)")
            }

            let current = try await store.current(key: key)
            XCTAssertEqual(current, now, "holder, token and expiry are as agent-b left them")
            let releasedAt = try await integer(client, "SELECT count(*) FROM leases WHERE key = \(key) AND released_at IS NOT NULL")
            XCTAssertEqual(releasedAt, 0)
        }
    }

    func testReleaseFreesTheKeyAndReacquiringGivesALargerToken() async throws {
        try await TestPostgres.withTestDatabase { client in
            let store = makeStore(client)
            let lease = try await acquired(store, key: "job:alerts", holder: "replica-a", ttl: .seconds(30))
            let released = try await store.release(lease)
            XCTAssertTrue(released)
            let again = try await store.release(lease)
            XCTAssertFalse(again, "a term is released once")
            let current = try await store.current(key: "job:alerts")
            XCTAssertNil(current)
            let next = try await acquired(store, key: "job:alerts", holder: "replica-a", ttl: .seconds(30))
            XCTAssertGreaterThan(next.token, lease.token, "the same holder's next term has a new, larger token")
            let blocked = try await store.acquire(key: "job:alerts", holder: "replica-b", ttl: .seconds(30))
            XCTAssertNil(blocked, "the new term is held like any other")
            let staleRelease = try await store.release(lease)
            XCTAssertFalse(staleRelease, "the released term cannot end the new one")
            let stillHeld = try await store.current(key: "job:alerts")
            XCTAssertEqual(stillHeld, next)
        }
    }

    // MARK: - Races

    func testConcurrentAcquirersExactlyOneWinsEachRoundAndTokensGrowAcrossRounds() async throws {
        try await TestPostgres.withTestDatabase { client in
            let store = makeStore(client)
            let key = "job:race"
            var previousToken: Int64 = 0
            for round in 0..<4 {
                let winners = try await withThrowingTaskGroup(of: Lease?.self, returning: [Lease].self) { group in
                    for racer in 0..<20 {
                        group.addTask {
                            try await store.acquire(key: key, holder: "racer-\(racer)", ttl: .seconds(30))
                        }
                    }
                    var won: [Lease] = []
                    for try await lease in group {
                        if let lease { won.append(lease) }
                    }
                    return won
                }
                XCTAssertEqual(winners.count, 1, "round \(round): exactly one of 20 racers holds the key")
                guard let winner = winners.first else { continue }
                XCTAssertGreaterThan(winner.token, previousToken, "round \(round)")
                previousToken = winner.token
                let current = try await store.current(key: key)
                XCTAssertEqual(current, winner, "round \(round)")
                let released = try await store.release(winner)
                XCTAssertTrue(released, "round \(round)")
            }
        }
    }

    // MARK: - Counters

    func testIncrementCountsWithinTheWindowAndStartsAgainAfterIt() async throws {
        try await TestPostgres.withTestDatabase { client in
            let store = makeStore(client)
            let key = "rate:login:10.0.0.1"
            // A window the three calls stay well inside on a busy machine (each one a commit).
            let first = try await store.increment(key: key, window: .seconds(2))
            let second = try await store.increment(key: key, window: .seconds(2))
            let third = try await store.increment(key: key, window: .seconds(60))
            XCTAssertEqual([first.value, second.value, third.value], [1, 2, 3])
            XCTAssertEqual(second.expiresAt, first.expiresAt, "INCR does not move the window's end")
            XCTAssertEqual(third.expiresAt, first.expiresAt, "nor does a later call's different window")
            try await Task.sleep(for: .milliseconds(2500))
            let restarted = try await store.increment(key: key, window: .milliseconds(800))
            XCTAssertEqual(restarted.value, 1, "a new window counts from 1")
            XCTAssertGreaterThan(restarted.expiresAt, first.expiresAt)
            let other = try await store.increment(key: "rate:login:10.0.0.2", window: .seconds(60))
            XCTAssertEqual(other.value, 1, "keys count separately")
        }
    }

    func testIncrementFromTwentyConcurrentTasksCountsEveryOneOnce() async throws {
        try await TestPostgres.withTestDatabase { client in
            let store = makeStore(client)
            let key = "rate:api:tenant-1"
            let values = try await withThrowingTaskGroup(of: Int64.self, returning: [Int64].self) { group in
                for _ in 0..<20 {
                    group.addTask { try await store.increment(key: key, window: .seconds(60)).value }
                }
                var all: [Int64] = []
                for try await value in group { all.append(value) }
                return all
            }
            XCTAssertEqual(values.sorted(), Array(1...Int64(20)), "each increment saw a distinct count")
            let stored = try await integer(client, "SELECT value FROM lease_counters WHERE key = \(key)")
            XCTAssertEqual(stored, 20)
        }
    }

    func testIncrementPastInt64MaxIsAClearErrorAndLeavesTheCounter() async throws {
        try await TestPostgres.withTestDatabase { client in
            let store = makeStore(client)
            let key = "rate:overflow"
            _ = try await store.increment(key: key, window: .seconds(60))
            try await client.query("UPDATE lease_counters SET value = \(Int64.max) WHERE key = \(key)", logger: logger)
            do {
                _ = try await store.increment(key: key, window: .seconds(60))
                XCTFail("incrementing past Int64.max must throw")
            } catch let error as LeaseError {
                XCTAssertEqual(error, .counterOverflow(key: key))
                XCTAssertTrue(error.description.contains(key), error.description)
            }
            let stored = try await integer(client, "SELECT value FROM lease_counters WHERE key = \(key)")
            XCTAssertEqual(stored, Int64.max, "no wrap to a negative count")
        }
    }

    // MARK: - Fenced writes

    func testAStalledHolderIsFencedOutAndItsWritesAreRefusedWhileTheNewHolderWrites() async throws {
        try await TestPostgres.withTestDatabase { client in
            let store = makeStore(client)
            let logger = self.logger
            try await createResultsTable(client)
            let key = "check:42"
            let stalled = try await acquired(store, key: key, holder: "agent-a", ttl: .milliseconds(300))
            try await Task.sleep(for: .milliseconds(400))
            let successor = try await acquired(store, key: key, holder: "agent-b", ttl: .seconds(30))

            for requireUnexpired in [true, false] {
                do {
                    try await store.withFencedTransaction(key: key, token: stalled.token,
                                                          requireUnexpired: requireUnexpired) { connection in
                        try await recordResult(key: key, token: stalled.token, note: "stalled", on: connection, logger: logger)
                    }
                    XCTFail("requireUnexpired \(requireUnexpired): the stalled holder's write must be refused")
                } catch let error as LeaseError {
                    XCTAssertEqual(error, .fenced(key: key, token: stalled.token, currentToken: successor.token))
                    XCTAssertTrue(error.isFencingRefusal)
                    XCTAssertTrue(error.description.contains("taken over by a newer holder"), error.description)
                    XCTAssertTrue(error.description.contains("\(successor.token)"), error.description)
                }
            }
            let stalledRows = try await integer(client, "SELECT count(*) FROM lease_test_results WHERE token = \(stalled.token)")
            XCTAssertEqual(stalledRows, 0, "nothing from the old term was written")

            let written: Int = try await store.withFencedTransaction(key: key, token: successor.token) { connection in
                try await recordResult(key: key, token: successor.token, note: "current", on: connection, logger: logger)
                return 1
            }
            XCTAssertEqual(written, 1)
            let successorRows = try await integer(client, "SELECT count(*) FROM lease_test_results WHERE token = \(successor.token)")
            XCTAssertEqual(successorRows, 1)
        }
    }

    func testAFencedBodyThatThrowsIsRolledBackAndItsErrorComesOutUnwrapped() async throws {
        struct ProbeFailed: Error, Equatable {}
        try await TestPostgres.withTestDatabase { client in
            let store = makeStore(client)
            let logger = self.logger
            try await createResultsTable(client)
            let lease = try await acquired(store, key: "check:5", holder: "agent-a", ttl: .seconds(30))
            do {
                try await store.withFencedTransaction(key: "check:5", token: lease.token) { connection in
                    try await recordResult(key: "check:5", token: lease.token, note: "half", on: connection, logger: logger)
                    throw ProbeFailed()
                }
                XCTFail("the body's error must come out")
            } catch let error as ProbeFailed {
                XCTAssertEqual(error, ProbeFailed())
            }
            let rows = try await integer(client, "SELECT count(*) FROM lease_test_results")
            XCTAssertEqual(rows, 0, "the body's write was rolled back")
        }
    }

    func testACheckSlotResultAfterTheTTLCountsWhileNoNewerTermExists() async throws {
        try await TestPostgres.withTestDatabase { client in
            let store = makeStore(client)
            let logger = self.logger
            try await createResultsTable(client)
            let key = "check:slot"
            let lease = try await acquired(store, key: key, holder: "agent-a", ttl: .milliseconds(200))
            try await Task.sleep(for: .milliseconds(300))

            do {
                try await store.withFencedTransaction(key: key, token: lease.token, requireUnexpired: true) { connection in
                    try await recordResult(key: key, token: lease.token, note: "strict", on: connection, logger: logger)
                }
                XCTFail("an expired term must not write when the lease is required unexpired")
            } catch let error as LeaseError {
                XCTAssertEqual(error, .expired(key: key, token: lease.token, expiredAt: lease.expiresAt))
                XCTAssertTrue(error.isFencingRefusal)
            }

            // Spooled through an outage: the slot's last-issued token still counts.
            try await store.withFencedTransaction(key: key, token: lease.token, requireUnexpired: false) { connection in
                try await recordResult(key: key, token: lease.token, note: "spooled", on: connection, logger: logger)
            }
            let spooled = try await integer(client, "SELECT count(*) FROM lease_test_results WHERE note = 'spooled'")
            XCTAssertEqual(spooled, 1)
            let strict = try await integer(client, "SELECT count(*) FROM lease_test_results WHERE note = 'strict'")
            XCTAssertEqual(strict, 0)

            // Once released, the term accepts nothing more, even without requiring an unexpired lease.
            let released = try await store.release(lease)
            XCTAssertTrue(released, "an expired term that nobody replaced can still be released by its holder")
            do {
                try await store.withFencedTransaction(key: key, token: lease.token, requireUnexpired: false) { connection in
                    try await recordResult(key: key, token: lease.token, note: "after release", on: connection, logger: logger)
                }
                XCTFail("a released term must not write")
            } catch let error as LeaseError {
                XCTAssertEqual(error, .released(key: key, token: lease.token))
            }
            let afterRelease = try await integer(client, "SELECT count(*) FROM lease_test_results WHERE note = 'after release'")
            XCTAssertEqual(afterRelease, 0)
        }
    }

    func testAFencedTransactionHoldsOffATakeoverUntilItCommits() async throws {
        try await TestPostgres.withTestDatabase { client in
            let store = makeStore(client)
            let logger = self.logger
            let key = "job:retention"
            let lease = try await acquired(store, key: key, holder: "replica-a", ttl: .milliseconds(200))
            try await Task.sleep(for: .milliseconds(300))
            // Expired but not replaced; while the fenced transaction is open, another connection cannot take the row
            // lock a takeover needs (the upsert locks it FOR NO KEY UPDATE, which conflicts with FOR SHARE).
            let lockError: String? = try await store.withFencedTransaction(key: key, token: lease.token,
                                                                           requireUnexpired: false) { _ in
                do {
                    try await client.withTransaction(logger: logger) { other in
                        try await other.query("SET LOCAL lock_timeout = '200ms'", logger: logger)
                        let rows = try await other.query(
                            "SELECT token FROM leases WHERE key = \(key) FOR NO KEY UPDATE", logger: logger)
                        for try await _ in rows.decode(Int64.self) {}
                    }
                    return "not blocked"
                } catch {
                    return sqlState(of: error) ?? "\(error)"
                }
            }
            XCTAssertEqual(lockError, "55P03", "the takeover's lock waited for the fenced transaction (lock_not_available)")
            let next = try await acquired(store, key: key, holder: "replica-b", ttl: .seconds(30))
            XCTAssertGreaterThan(next.token, lease.token, "after the commit the takeover goes through")
        }
    }

    // MARK: - Validation

    func testInvalidArgumentsAreRefusedBeforeAnySQL() async throws {
        try await TestPostgres.withTestDatabase { client in
            let store = makeStore(client)
            let longKey = String(repeating: "k", count: 201)
            // SQL would accept the ttls (and refuse the names with a PSQLError): a LeaseError proves validation ran first.
            let cases: [(String, String, Duration, [String])] = [
                ("job:a", "replica-a", .zero, ["lease ttl", "0 ms", "100 ms", "86400000 ms"]),
                ("job:a", "replica-a", .milliseconds(99), ["99 ms", "100 ms"]),
                ("job:a", "replica-a", .milliseconds(-500), ["-500 ms"]),
                ("job:a", "replica-a", .seconds(86_401), ["86401000 ms", "86400000 ms"]),
                ("", "replica-a", .seconds(30), ["lease key", "is empty"]),
                (longKey, "replica-a", .seconds(30), ["lease key", "201 characters", "limit is 200", "kkkk"]),
                ("job:a", "", .seconds(30), ["lease holder", "is empty"]),
                ("job:\u{0}a", "replica-a", .seconds(30), ["NUL"]),
            ]
            for (key, holder, ttl, expected) in cases {
                do {
                    _ = try await store.acquire(key: key, holder: holder, ttl: ttl)
                    XCTFail("acquire(\(key.prefix(20)), \(holder), \(ttl)) must be refused")
                } catch let error as LeaseError {
                    XCTAssertFalse(error.isFencingRefusal)
                    for part in expected {
                        XCTAssertTrue(error.description.contains(part), "\(error.description) lacks \(part)")
                    }
                }
            }
            XCTAssertFalse(LeaseError.invalidName(kind: "lease key", value: longKey, reason: "x").description
                .contains(longKey), "a long value is shortened in messages")
            let leases = try await integer(client, "SELECT count(*) FROM leases")
            XCTAssertEqual(leases, 0, "nothing was written")

            let lease = Lease(key: "job:a", holder: "replica-a", token: 1, acquiredAt: Date(), expiresAt: Date())
            await XCTAssertThrowsLeaseError(try await store.renew(lease, ttl: .milliseconds(50)), "50 ms")
            await XCTAssertThrowsLeaseError(try await store.increment(key: "rate:x", window: .zero), "counter window")
            await XCTAssertThrowsLeaseError(try await store.increment(key: "", window: .seconds(1)), "counter key")
            await XCTAssertThrowsLeaseError(try await store.deleteExpired(leasesExpiredFor: .seconds(-1)), "grace period")
            await XCTAssertThrowsLeaseError(try await store.current(key: ""), "lease key")
            let counters = try await integer(client, "SELECT count(*) FROM lease_counters")
            XCTAssertEqual(counters, 0)

            // The limits are inclusive and agree with the tables' CHECKs: 200 characters of two UTF-8 bytes each.
            let widest = String(repeating: "\u{E9}", count: 200)
            let edge = try await store.acquire(key: widest, holder: widest, ttl: .milliseconds(100))
            XCTAssertNotNil(edge)
            let longest = try await store.acquire(key: "job:b", holder: "replica-a", ttl: .seconds(86_400))
            XCTAssertNotNil(longest)
        }
    }

    // MARK: - Tokens

    func testTokensCarryTheTimelineAndKeepGrowingAcrossReleaseAndHousekeeping() async throws {
        try await TestPostgres.withTestDatabase { client in
            let store = makeStore(client)
            let timeline = try await integer(
                client, "SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::bigint")
            let first = try await acquired(store, key: "job:tokens", holder: "replica-a", ttl: .seconds(30))
            XCTAssertEqual(first.token >> 40, timeline)
            XCTAssertEqual(first.timeline, timeline)
            XCTAssertGreaterThan(first.token & ((1 << 40) - 1), 0, "the low bits come from the sequence")
            if (ProcessInfo.processInfo.environment["CROWSNEST_TEST_DATABASE_URL"] ?? "").isEmpty {
                XCTAssertEqual(timeline, 1, "a fresh embedded cluster is on timeline 1")
            }

            let releasedFirst = try await store.release(first)
            XCTAssertTrue(releasedFirst)
            let counter = try await store.increment(key: "rate:tokens", window: .milliseconds(200))
            XCTAssertEqual(counter.value, 1)
            try await Task.sleep(for: .milliseconds(300))
            let removed = try await store.deleteExpired()
            XCTAssertEqual(removed, 2, "the released lease and the ended counter")
            let leaseRows = try await integer(client, "SELECT count(*) FROM leases WHERE key = 'job:tokens'")
            XCTAssertEqual(leaseRows, 0)
            let counterRows = try await integer(client, "SELECT count(*) FROM lease_counters")
            XCTAssertEqual(counterRows, 0)

            // The row is gone, yet the next term's token is still larger: it comes from the sequence.
            let second = try await acquired(store, key: "job:tokens", holder: "replica-b", ttl: .seconds(30))
            XCTAssertGreaterThan(second.token, first.token)
            let elsewhere = try await acquired(store, key: "job:other", holder: "replica-b", ttl: .seconds(30))
            XCTAssertGreaterThan(elsewhere.token, second.token, "tokens grow across keys too")
            XCTAssertEqual(elsewhere.timeline, timeline)
        }
    }

    func testHousekeepingKeepsALeaseWithinItsGracePeriodForLateResults() async throws {
        try await TestPostgres.withTestDatabase { client in
            let store = makeStore(client)
            let logger = self.logger
            try await createResultsTable(client)
            let key = "check:grace"
            let lease = try await acquired(store, key: key, holder: "agent-a", ttl: .milliseconds(200))
            let live = try await acquired(store, key: "check:live", holder: "agent-a", ttl: .seconds(30))
            try await Task.sleep(for: .milliseconds(300))

            let kept = try await store.deleteExpired(leasesExpiredFor: .seconds(60))
            XCTAssertEqual(kept, 0, "expired 300 ms ago, within a 60 s grace")
            try await store.withFencedTransaction(key: key, token: lease.token, requireUnexpired: false) { connection in
                try await recordResult(key: key, token: lease.token, note: "late", on: connection, logger: logger)
            }

            let removed = try await store.deleteExpired()
            XCTAssertEqual(removed, 1, "only the expired lease goes; the live one stays")
            let stillLive = try await store.current(key: "check:live")
            XCTAssertEqual(stillLive, live)
            do {
                try await store.withFencedTransaction(key: key, token: lease.token, requireUnexpired: false) { connection in
                    try await recordResult(key: key, token: lease.token, note: "too late", on: connection, logger: logger)
                }
                XCTFail("a removed lease accepts no more results")
            } catch let error as LeaseError {
                XCTAssertEqual(error, .fenced(key: key, token: lease.token, currentToken: nil))
                XCTAssertTrue(error.description.contains("removed by housekeeping"), error.description)
            }
            let late = try await integer(client, "SELECT count(*) FROM lease_test_results WHERE note = 'late'")
            XCTAssertEqual(late, 1)
            let tooLate = try await integer(client, "SELECT count(*) FROM lease_test_results WHERE note = 'too late'")
            XCTAssertEqual(tooLate, 0)
        }
    }

    func testLeaseTablesAndTheTokenSequenceAreLogged() async throws {
        try await TestPostgres.withTestDatabase { client in
            let rows = try await client.query("""
                SELECT relname::text, relpersistence::text FROM pg_class
                WHERE relname IN ('leases', 'lease_counters', 'lease_token_seq') ORDER BY relname
                """, logger: logger)
            var persistence: [String: String] = [:]
            for try await (name, kind) in rows.decode((String, String).self) { persistence[name] = kind }
            XCTAssertEqual(persistence, ["lease_counters": "p", "lease_token_seq": "p", "leases": "p"],
                           "fencing must survive a crash: no UNLOGGED tables or sequence")
        }
    }
}

/// Acquires `key` or fails the test.
private func acquired(_ store: LeaseStore, key: String, holder: String, ttl: Duration,
                      file: StaticString = #filePath, line: UInt = #line) async throws -> Lease {
    let lease = try await store.acquire(key: key, holder: holder, ttl: ttl)
    return try XCTUnwrap(lease, "\(holder) could not acquire \(key)", file: file, line: line)
}

/// Writes one row of the scratch table `lease_test_results` (the resource fenced writes protect).
private func recordResult(key: String, token: Int64, note: String, on connection: PostgresConnection,
                          logger: Logger) async throws {
    try await connection.query(
        "INSERT INTO lease_test_results (key, token, note) VALUES (\(key), \(token), \(note))", logger: logger)
}

/// The SQLSTATE of a PostgreSQL error (unwrapping a transaction error), or nil.
private func sqlState(of error: any Error) -> String? {
    if let transaction = error as? PostgresTransactionError {
        return (transaction.closureError ?? transaction.commitError).flatMap { sqlState(of: $0) }
    }
    return (error as? PSQLError)?.serverInfo?[.sqlState]
}

/// Fails unless `expression` throws a `LeaseError` whose description contains `fragment`.
private func XCTAssertThrowsLeaseError<T>(
    _ expression: @autoclosure () async throws -> T, _ fragment: String,
    file: StaticString = #filePath, line: UInt = #line
) async {
    do {
        _ = try await expression()
        XCTFail("expected a LeaseError mentioning \(fragment)", file: file, line: line)
    } catch let error as LeaseError {
        XCTAssertTrue(error.description.contains(fragment), "\(error.description) lacks \(fragment)", file: file, line: line)
    } catch {
        XCTFail("expected a LeaseError, got \(error)", file: file, line: line)
    }
}
