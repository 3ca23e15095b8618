import CrowsnestWire
import Foundation
import Logging
import PostgresNIO
import XCTest

@testable import CrowsnestServer

/// Rollups against a real PostgreSQL: 5-minute and 1-hour buckets equal the raw samples they summarise, a series
/// read from rollups equals the same series read from raw samples, and late samples get their hour rolled again.
final class RollupStoreTests: XCTestCase {
    private let logger: Logger = {
        var logger = Logger(label: "crowsnest.tests.rollups")
        logger.logLevel = .warning
        return logger
    }()

    private func value(_ client: PostgresClient, _ sql: String) async throws -> Double? {
        let rows = try await client.query(PostgresQuery(unsafeSQL: sql), logger: logger)
        for try await value in rows.decode(Double?.self) { return value }
        return nil
    }

    func testRollupsSummariseRawSamplesAndLateSamplesAreRolledAgain() async throws {
        do {
            try await rollupScenario()
        } catch let error as PSQLError {
            XCTFail(String(reflecting: error))
        }
    }

    private func rollupScenario() async throws {
        try await TestPostgres.withTestDatabase { client in
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            try await PartitionStore(client: client, logger: self.logger).ensurePartitions(forMillis: [now, now - 86_400_000])
            let tenantID = UUID(), agentID = UUID()
            try await client.query("INSERT INTO tenants (id, name) VALUES (\(tenantID), 'acme')", logger: self.logger)
            try await client.query("INSERT INTO agents (tenant_id, id, hostname) VALUES (\(tenantID), \(agentID), 'vps')", logger: self.logger)
            // Two whole hours of samples every 30 s, ending at least an hour ago.
            try await client.query("""
                INSERT INTO host_samples (tenant_id, agent_id, ts, cpu_percent, memory_total_bytes, memory_available_bytes,
                                          net_rx_bytes_per_second, net_tx_bytes_per_second, filesystems)
                SELECT \(tenantID), \(agentID), date_trunc('hour', now()) - interval '3 hours' + k * interval '30 seconds',
                       (k % 10)::float8, 1000, 1000 - k, k * 2, k * 3,
                       jsonb_build_array(jsonb_build_object('mountpoint', '/', 'size_bytes', 200, 'free_bytes', 200 - (k % 100)))
                FROM generate_series(0, 239) k
                """, logger: self.logger)
            try await client.query("""
                INSERT INTO container_samples (tenant_id, agent_id, name, ts, docker_id, state, cpu_percent, memory_usage_bytes,
                                               memory_limit_bytes, pids)
                SELECT \(tenantID), \(agentID), 'web', date_trunc('hour', now()) - interval '3 hours' + k * interval '30 seconds',
                       'd1', 'running', (k % 7)::float8 * 10, 5000 + k, 10000, k % 4
                FROM generate_series(0, 239) k
                """, logger: self.logger)
            let rollups = RollupStore(client: client, logger: self.logger)
            for step in RollupStore.steps {
                let through = try await rollups.rollForward(step: step)
                XCTAssertNotNil(through, "step \(step) rolled")
            }
            let hostTarget = TargetID.host(agentID: agentID).description
            let buckets = try await value(client, "SELECT count(*)::float8 FROM metric_rollups WHERE target_id = '\(hostTarget)' AND step_seconds = 3600")
            XCTAssertEqual(buckets, 2)
            let five = try await value(client, "SELECT count(*)::float8 FROM metric_rollups WHERE target_id = '\(hostTarget)' AND step_seconds = 300")
            XCTAssertEqual(five, 24)
            let rolledCPU = try await value(client, """
                SELECT cpu_avg FROM metric_rollups WHERE target_id = '\(hostTarget)' AND step_seconds = 3600 ORDER BY bucket LIMIT 1
                """)
            let rawCPU = try await value(client, """
                SELECT avg(cpu_percent) FROM host_samples WHERE ts < date_trunc('hour', now()) - interval '2 hours'
                """)
            XCTAssertEqual(try XCTUnwrap(rolledCPU), try XCTUnwrap(rawCPU), accuracy: 1e-9)
            let disk = try await value(client, "SELECT max(disk_max) FROM metric_rollups WHERE target_id = '\(hostTarget)'")
            XCTAssertEqual(try XCTUnwrap(disk), 99.0 / 200 * 100, accuracy: 1e-9, "the fullest filesystem, in percent")

            // The same series read from rollups and from raw samples.
            let metrics = MetricsQueries(database: client, logger: self.logger)
            let start = Date(timeIntervalSince1970: (Date().timeIntervalSince1970 / 3600).rounded(.down) * 3600 - 3 * 3600)
            let end = start.addingTimeInterval(2 * 3600)
            for target in [TargetID.host(agentID: agentID), .container(agentID: agentID, name: "web")] {
                for (step, rollup) in [(3600, 3600), (900, 300), (300, 300)] {
                    let fromRollups = try await metrics.series(tenantID: tenantID, target: target, from: start, to: end, step: step, rollupStep: rollup)
                    let fromRaw = try await metrics.series(tenantID: tenantID, target: target, from: start, to: end, step: step, rollupStep: nil)
                    XCTAssertEqual(fromRollups.count, 7200 / step)
                    XCTAssertEqual(fromRollups.map(\.samples), fromRaw.map(\.samples), "\(target) \(step)")
                    for (a, b) in zip(fromRollups, fromRaw) {
                        for (x, y) in zip(a.figures, b.figures) {
                            XCTAssertEqual(x.avg ?? -1, y.avg ?? -1, accuracy: 1e-6, "\(target) \(step) \(a.ts)")
                            XCTAssertEqual(x.min, y.min)
                            XCTAssertEqual(x.max, y.max)
                        }
                    }
                }
            }

            // A late (spooled) sample in the first hour: marked by ingest's call, rolled again by the job.
            try await client.query("""
                INSERT INTO host_samples (tenant_id, agent_id, ts, cpu_percent) VALUES
                    (\(tenantID), \(agentID), date_trunc('hour', now()) - interval '3 hours' + interval '15 seconds', 1000)
                """, logger: self.logger)
            try await client.withConnection { connection in
                try await RollupStore.markLate(tenantID: tenantID, agentID: agentID,
                                               timestampsMillis: [Int64(start.timeIntervalSince1970 * 1000) + 15_000],
                                               on: connection, logger: self.logger)
            }
            let waiting = try await rollups.rollDirty()
            XCTAssertEqual(waiting, 0, "an hour just marked waits until no late sample has marked it for a while")
            try await client.query("UPDATE rollup_dirty SET raised_at = raised_at - interval '21 seconds'", logger: self.logger)
            let rerolled = try await rollups.rollDirty()
            XCTAssertEqual(rerolled, 1, "quiet for longer than \(RollupStore.dirtyQuietSeconds) s: rolled again")
            let samples = try await value(client, """
                SELECT samples::float8 FROM metric_rollups WHERE target_id = '\(hostTarget)' AND step_seconds = 3600 ORDER BY bucket LIMIT 1
                """)
            XCTAssertEqual(samples, 121)
            let maximum = try await value(client, """
                SELECT cpu_max FROM metric_rollups WHERE target_id = '\(hostTarget)' AND step_seconds = 300 ORDER BY bucket LIMIT 1
                """)
            XCTAssertEqual(maximum, 1000)
            let again = try await rollups.rollDirty(quietSeconds: 0)
            XCTAssertEqual(again, 0, "a dirty hour is rolled once")

            // Another late sample of that hour stored while the hour is being rolled again (an agent replaying its
            // spool): its mark neither waits for the roll (a lock wait over 5 s fails the insert) nor is lost.
            let lateMillis = Int64(start.timeIntervalSince1970 * 1000) + 45_000
            try await client.withConnection { connection in
                try await RollupStore.markLate(tenantID: tenantID, agentID: agentID, timestampsMillis: [lateMillis],
                                               on: connection, logger: self.logger)
            }
            let logger = self.logger
            let raced = try await rollups.rollDirty(quietSeconds: 0, beforeRolling: {
                try await client.withTransaction(logger: logger) { connection in
                    try await connection.query("SET LOCAL lock_timeout = '5s'", logger: logger)
                    try await connection.query("""
                        INSERT INTO host_samples (tenant_id, agent_id, ts, cpu_percent) VALUES
                            (\(tenantID), \(agentID), date_trunc('hour', now()) - interval '3 hours' + interval '45 seconds', 2000)
                        """, logger: logger)
                    try await RollupStore.markLate(tenantID: tenantID, agentID: agentID, timestampsMillis: [lateMillis],
                                                   on: connection, logger: logger)
                }
            })
            XCTAssertEqual(raced, 1)
            let version = try await value(client, "SELECT version::float8 FROM rollup_dirty WHERE agent_id = '\(agentID)'")
            XCTAssertEqual(version, 1, "the mark made during the roll is kept, with its new version")
            let waitedSince = try await value(client, """
                SELECT extract(epoch FROM marked_at - raised_at)::float8 FROM rollup_dirty WHERE agent_id = '\(agentID)'
                """)
            XCTAssertGreaterThan(try XCTUnwrap(waitedSince), 0, "the kept mark waits its full time again from the roll on")
            // Still being marked (never quiet): rolled again only once the mark has waited its longest.
            let notYet = try await rollups.rollDirty(quietSeconds: 3600)
            XCTAssertEqual(notYet, 0)
            try await client.query("""
                UPDATE rollup_dirty SET marked_at = marked_at - \(RollupStore.dirtyLongestWaitSeconds + 1) * interval '1 second'
                """, logger: self.logger)
            let rolledAgain = try await rollups.rollDirty(quietSeconds: 3600)
            XCTAssertEqual(rolledAgain, 1, "the hour is rolled again for the sample stored during the roll")
            let newest = try await value(client, """
                SELECT cpu_max FROM metric_rollups WHERE target_id = '\(hostTarget)' AND step_seconds = 300 ORDER BY bucket LIMIT 1
                """)
            XCTAssertEqual(newest, 2000)
            let none = try await rollups.rollDirty(quietSeconds: 0)
            XCTAssertEqual(none, 0)
        }
    }

    func testTheResolutionFollowsTheRange() {
        XCTAssertEqual(DashboardMetricsRoutes.resolution(rangeSeconds: 3600, intervalSeconds: 30).name, "raw")
        XCTAssertEqual(DashboardMetricsRoutes.resolution(rangeSeconds: 3600, intervalSeconds: 30).step, 30)
        let week = DashboardMetricsRoutes.resolution(rangeSeconds: 7 * 86_400, intervalSeconds: 30)
        XCTAssertEqual(week.name, "5m")
        XCTAssertEqual(week.step % 300, 0)
        XCTAssertLessThanOrEqual(7 * 86_400 / week.step, DashboardMetricsRoutes.maximumPoints)
        let quarter = DashboardMetricsRoutes.resolution(rangeSeconds: 90 * 86_400, intervalSeconds: 30)
        XCTAssertEqual(quarter.name, "1h")
        XCTAssertEqual(quarter.step % 3600, 0)
        XCTAssertLessThanOrEqual(90 * 86_400 / quarter.step, DashboardMetricsRoutes.maximumPoints)
    }
}
