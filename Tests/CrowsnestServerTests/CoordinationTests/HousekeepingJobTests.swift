import CrowsnestWire
import Foundation
import Logging
import PostgresNIO
import XCTest

@testable import CrowsnestServer

/// The singleton upkeep job against a real PostgreSQL: one holder among replicas, missed push calls recorded.
final class HousekeepingJobTests: XCTestCase {
    private static let logger: Logger = {
        var logger = Logger(label: "crowsnest.tests.housekeeping")
        logger.logLevel = .critical
        return logger
    }()

    private static func job(_ client: PostgresClient, ttl: Duration = .seconds(30)) -> HousekeepingJob {
        var configuration = HousekeepingJob.Configuration()
        configuration.leaseTTL = ttl
        return HousekeepingJob(configuration: configuration, client: client, logger: logger)
    }

    func testOneReplicaHoldsTheJobAndAnotherTakesOverWhenItLapses() async throws {
        try await TestPostgres.withTestDatabase { client in
            // A ttl the first round (partition DDL, rollups, cleanup, each committed) stays well inside on a busy machine.
            let first = Self.job(client, ttl: .seconds(3)), second = Self.job(client, ttl: .seconds(3))
            let a = try await first.round()
            let b = try await second.round()
            XCTAssertTrue(a.holder)
            XCTAssertTrue(a.cleanedUp, "the first round of a holder cleans up")
            XCTAssertFalse(b.holder, "only one replica holds the job")
            // The holder made today's and tomorrow's partitions of every time-series table.
            let partitions = try await client.query("""
                SELECT count(*) FROM pg_class WHERE relname IN (
                    SELECT t || '_' || to_char(d, 'YYYYMMDD')
                    FROM unnest(ARRAY['container_samples', 'host_samples', 'check_results']) t,
                         unnest(ARRAY[(now() AT TIME ZONE 'UTC')::date, (now() AT TIME ZONE 'UTC')::date + 1]) d)
                """, logger: Self.logger)
            var made: Int64 = 0
            for try await count in partitions.decode(Int64.self) { made = count }
            XCTAssertEqual(made, 6)
            let renewed = try await first.round()
            XCTAssertTrue(renewed.holder)
            XCTAssertFalse(renewed.cleanedUp, "cleanup runs every ten minutes, not every round")
            try await Task.sleep(for: .milliseconds(3500))  // the first replica stops renewing
            let takeover = try await second.round()
            XCTAssertTrue(takeover.holder)
            let lost = try await first.round()
            XCTAssertFalse(lost.holder, "a lapsed holder finds the job taken")
        }
    }

    func testAPushCheckWithNoCallWithinItsIntervalAndGraceGetsAFailedResultOnce() async throws {
        // The slot judged is the last whole minute: a minute boundary passing between the late call's insert and
        // the job's round would judge the next one. Start at least 10 s before a boundary (waits at most 10 s).
        let intoMinute = Date().timeIntervalSince1970.truncatingRemainder(dividingBy: 60)
        if intoMinute > 50 { try await Task.sleep(for: .milliseconds(Int((60 - intoMinute + 0.5) * 1000))) }
        try await TestPostgres.withTestDatabase { client in
            let tenantID = try await TenantStore(client: client, logger: Self.logger).create(name: "acme")
            func pushCheck(_ name: String, updatedAgo: Int = 3600, paused: Bool = false) async throws -> UUID {
                let id = UUID()
                try await client.query("""
                    INSERT INTO checks (tenant_id, id, name, type, interval_seconds, timeout_ms, run_on, options, push_token,
                                        paused, created_at, updated_at)
                    VALUES (\(tenantID), \(id), \(name), 'push', 60, 1000, '{"mode":"server"}', '{"grace_seconds":0}',
                            \("cnp_" + UUID().uuidString), \(paused), now() - interval '2 hours',
                            now() - \(updatedAgo) * interval '1 second')
                    """, logger: Self.logger)
                return id
            }
            let silent = try await pushCheck("silent")
            let lateCaller = try await pushCheck("late caller")
            _ = try await pushCheck("paused", paused: true)
            _ = try await pushCheck("just created", updatedAgo: 5)
            try await PartitionStore(client: client, logger: Self.logger).ensurePartitions(forMillis: [Int64(Date().timeIntervalSince1970 * 1000)])
            // The late caller called 30 s into the slot being judged; its call was stored under the next slot.
            try await client.query("""
                INSERT INTO check_results (tenant_id, check_id, slot_at, ts, runner, token, ok)
                SELECT \(tenantID), \(lateCaller), s + interval '60 seconds', s + interval '30 seconds', 'push', 0, true
                FROM (SELECT to_timestamp(floor((extract(epoch FROM now()) - 60) / 60) * 60) AS s) slot
                """, logger: Self.logger)
            let job = Self.job(client)
            let round = try await job.round()
            XCTAssertEqual(round.missedPushes, 1)
            let rows = try await client.query(
                "SELECT check_id, ok, error FROM check_results WHERE runner = 'push' AND NOT ok", logger: Self.logger)
            var missed: [(UUID, Bool, String)] = []
            for try await row in rows.decode((UUID, Bool, String).self) { missed.append(row) }
            XCTAssertEqual(missed.map(\.0), [silent])
            XCTAssertEqual(missed.first?.2, "no push call within 60 s (the interval plus the grace period)")
            let again = try await job.round()
            XCTAssertEqual(again.missedPushes, 0, "a slot is judged once")
            let state = try await CheckStore(client: client, logger: Self.logger).get(tenantID: tenantID, id: silent)
            XCTAssertEqual(state?.state, .down)
            let spans = try await client.query(
                "SELECT target_id, state, cause FROM status_spans WHERE ended_at IS NULL ORDER BY target_id", logger: Self.logger)
            var open: [(String, String, String)] = []
            for try await row in spans.decode((String, String, String).self) { open.append(row) }
            XCTAssertEqual(open.map(\.0), [TargetID.check(checkID: silent).description], "only the missed check has a span")
            XCTAssertEqual(open.first?.1, "down")
            XCTAssertEqual(open.first?.2, "no push call within 60 s (the interval plus the grace period)")
        }
    }

    func testCleanupDropsDayPartitionsPastTheRawRetentionAndSpansPastTheirs() async throws {
        try await TestPostgres.withTestDatabase { client in
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            let day: Int64 = 86_400_000
            try await PartitionStore(client: client, logger: Self.logger).ensurePartitions(forMillis: [now - 40 * day, now - 29 * day, now])
            let tenantID = try await TenantStore(client: client, logger: Self.logger).create(name: "acme")
            try await client.query("""
                INSERT INTO status_spans (tenant_id, target_id, state, started_at, ended_at) VALUES
                    (\(tenantID), 'k-old', 'up', now() - interval '600 days', now() - interval '500 days'),
                    (\(tenantID), 'k-old', 'down', now() - interval '500 days', now() - interval '10 days'),
                    (\(tenantID), 'k-old', 'up', now() - interval '10 days', NULL)
                """, logger: Self.logger)
            // Notifications: old and delivered, old and given up, old and still due, recent and delivered.
            try await client.query("""
                INSERT INTO alert_notifications (tenant_id, id, rule_id, channel_id, target_id, kind, payload, created_at, delivered_at, failed_at)
                VALUES (\(tenantID), gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), 'k-old', 'firing', '{}', now() - interval '500 days', now(), NULL),
                       (\(tenantID), gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), 'k-old', 'firing', '{}', now() - interval '500 days', NULL, now()),
                       (\(tenantID), gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), 'k-old', 'resolved', '{}', now() - interval '500 days', NULL, NULL),
                       (\(tenantID), gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), 'k-old', 'firing', '{}', now() - interval '10 days', now(), NULL)
                """, logger: Self.logger)
            var configuration = HousekeepingJob.Configuration()
            configuration.rawRetentionDays = 30
            let round = try await HousekeepingJob(configuration: configuration, client: client, logger: Self.logger).round()
            XCTAssertTrue(round.cleanedUp)
            let oldDay = Date(timeIntervalSince1970: Double(now - 40 * day) / 1000)
            var calendar = Calendar(identifier: .gregorian)
            calendar.timeZone = TimeZone(identifier: "UTC")!
            let parts = calendar.dateComponents([.year, .month, .day], from: oldDay)
            let suffix = String(format: "%04d%02d%02d", parts.year!, parts.month!, parts.day!)
            XCTAssertEqual(Set(round.droppedPartitions), Set(PartitionStore.tables.map { "\($0)_\(suffix)" }),
                           "only the day that ended more than 30 days ago goes")
            let left = try await client.query("""
                SELECT count(*) FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'host_samples'
                """, logger: Self.logger)
            for try await count in left.decode(Int64.self) { XCTAssertEqual(count, 3, "29 days ago, today and tomorrow stay") }
            let spans = try await client.query("SELECT count(*) FROM status_spans", logger: Self.logger)
            for try await count in spans.decode(Int64.self) { XCTAssertEqual(count, 2, "the span that ended 500 days ago went") }
            let notifications = try await client.query("SELECT string_agg(kind, ',' ORDER BY created_at, kind) FROM alert_notifications",
                                                       logger: Self.logger)
            for try await kinds in notifications.decode(String.self) {
                XCTAssertEqual(kinds, "resolved,firing", "old finished notifications went; one still due and a recent one stay")
            }
        }
    }

    func testOnlyPartitionNamesOfKnownTablesAndRealDaysAreRead() {
        XCTAssertEqual(PartitionStore.dayEnd(ofPartition: "host_samples_20250228"), instant("2025-03-01T00:00:00Z"))
        XCTAssertNil(PartitionStore.dayEnd(ofPartition: "host_samples_20250230"))
        XCTAssertNil(PartitionStore.dayEnd(ofPartition: "agents_20250228"))
        XCTAssertNil(PartitionStore.dayEnd(ofPartition: "host_samples_2025022"))
        XCTAssertNil(PartitionStore.dayEnd(ofPartition: "host_samples_2025-02-2"))
    }
}
