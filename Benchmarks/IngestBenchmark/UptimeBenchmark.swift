import CrowsnestProbes
import CrowsnestServer
import CrowsnestWire
import Foundation
import Logging
import PostgresNIO

/// `crowsnest-bench --uptime`: latency of the uptime and dashboard API on a tenant with 1,000 targets (20 hosts,
/// 900 containers, 80 checks) and 90 days of history (spans with an outage every two days per container, every
/// three per check; 1-hour rollups of every host and container), generated straight into the database. Each route
/// is requested `requests` times in turn over HTTP (a new connection each, as a browser's first request), after a
/// warm-up; p50 and p99 reported.
struct UptimeBenchmark {
    var requests: Int

    static let hosts = 20, containersPerHost = 45, checks = 80, days = 90

    func measure(client: PostgresClient, httpPort: Int, logger: Logger) async throws {
        let administration = ServerAdministration(client: client, logger: logger)
        let tenant = "uptime-" + String(UUID().uuidString.prefix(6)).lowercased()
        let tenantID = try await administration.createTenant(name: tenant)
        let key = try await administration.createAPIKey(tenant: tenant, role: .read)
        let generating = ContinuousClock.now
        try await Self.generate(client: client, tenantID: tenantID, logger: logger)
        print(String(format: "generated 1,000 targets with %d days of spans and 1-hour rollups in %.1f s", Self.days,
                     (ContinuousClock.now - generating).benchMilliseconds / 1000))
        let counts = try await client.query("""
            SELECT (SELECT count(*) FROM status_spans WHERE tenant_id = \(tenantID)),
                   (SELECT count(*) FROM metric_rollups WHERE tenant_id = \(tenantID))
            """, logger: logger)
        for try await (spans, rollups) in counts.decode((Int64, Int64).self) {
            print("rows: \(spans) spans, \(rollups) rollup buckets")
        }
        let container = try await client.query("""
            SELECT 'c-' || agent_id::text || '-' || name FROM containers WHERE tenant_id = \(tenantID) ORDER BY agent_id, name LIMIT 1
            """, logger: logger)
        var containerID = ""
        for try await id in container.decode(String.self) { containerID = id }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let lastMonth = calendar.date(byAdding: .month, value: -1, to: Date())!
        let period = String(format: "%04d-%02d", calendar.component(.year, from: lastMonth), calendar.component(.month, from: lastMonth))
        let now = Date()
        func time(_ date: Date) -> String { RFC3339.string(from: date) }
        let routes: [(String, String)] = [
            ("overview", "/api/v1/dashboard/overview"),
            ("30-day timeline of a container", "/api/v1/uptime/\(containerID)/timeline?from=\(time(now.addingTimeInterval(-30 * 86_400)))"),
            ("90-day metrics series of a container", "/api/v1/dashboard/metrics/\(containerID)?from=\(time(now.addingTimeInterval(-90 * 86_400)))"),
            ("monthly SLA report (10 services)", "/api/v1/sla/report?period=\(period)"),
        ]
        let prober = Prober()
        let guardAgent = AddressGuard(runner: .agent)
        let headers = JSONValue.object(["Authorization": .string("Bearer \(key)")]).jsonText
        for (name, path) in routes {
            var latencies: [Double] = []
            var bytes = 0.0
            for index in 0..<(requests + 5) {
                let outcome = await prober.run(type: "http", target: "http://127.0.0.1:\(httpPort)\(path)",
                                               options: ["headers": headers], timeout: .seconds(30), addressGuard: guardAgent)
                guard outcome.ok, outcome.httpStatus == 200 else {
                    throw BenchmarkError("\(name): \(outcome.httpStatus) \(outcome.error)")
                }
                if index >= 5 { latencies.append(outcome.latencyMs) }
                bytes = outcome.figures["body_bytes"] ?? 0
            }
            print(String(format: "%@: p50 %.1f ms, p99 %.1f ms (%d requests, %.0f KiB each)", name,
                         latencies.benchPercentile(0.5), latencies.benchPercentile(0.99), requests, bytes / 1024))
        }
    }

    /// The tenant's hosts, containers, checks, services, a weekly maintenance window, spans and rollups.
    static func generate(client: PostgresClient, tenantID: UUID, logger: Logger) async throws {
        let start = "date_trunc('day', now()) - interval '\(days) days'"
        try await client.query("""
            INSERT INTO agents (tenant_id, id, hostname, last_seen, interval_seconds)
            SELECT \(tenantID), gen_random_uuid(), 'host-' || lpad(h::text, 2, '0'), now(), 30 FROM generate_series(1, \(hosts)) h
            """, logger: logger)
        try await client.query("""
            INSERT INTO containers (tenant_id, agent_id, name, docker_id, image, state, labels, updated_at)
            SELECT a.tenant_id, a.id, 'svc-' || lpad(c::text, 2, '0'), md5(a.id::text || c), 'example/app:1', 'running',
                   jsonb_build_object('com.docker.compose.project', 'project-' || (c % 10)), now()
            FROM agents a CROSS JOIN generate_series(1, \(containersPerHost)) c WHERE a.tenant_id = \(tenantID)
            """, logger: logger)
        try await client.query("""
            INSERT INTO checks (tenant_id, id, name, type, target, interval_seconds, timeout_ms)
            SELECT \(tenantID), gen_random_uuid(), 'check-' || n, 'http', 'http://127.0.0.1:9/', 60, 5000
            FROM generate_series(1, \(checks)) n
            """, logger: logger)
        // Hosts up all along; containers down 10 minutes every two days; checks down 5 minutes every three.
        try await client.query("""
            INSERT INTO status_spans (tenant_id, target_id, state, started_at, ended_at)
            SELECT \(tenantID), 'h-' || id::text, 'up', \(unescaped: start), NULL FROM agents WHERE tenant_id = \(tenantID)
            """, logger: logger)
        for (targets, period, outage) in [
            ("SELECT 'c-' || agent_id::text || '-' || name AS target FROM containers WHERE tenant_id = '\(tenantID)'", 2, 10),
            ("SELECT 'k-' || id::text AS target FROM checks WHERE tenant_id = '\(tenantID)'", 3, 5),
        ] {
            try await client.query(PostgresQuery(unsafeSQL: """
                INSERT INTO status_spans (tenant_id, target_id, state, started_at, ended_at, cause)
                SELECT '\(tenantID)', t.target, s.state, s.started_at, s.ended_at, s.cause
                FROM (\(targets)) t
                CROSS JOIN generate_series(0, \(days / period)) k
                CROSS JOIN LATERAL (VALUES
                    ('up', \(start) + k * interval '\(period) days',
                     \(start) + (k + 1) * interval '\(period) days' - interval '\(outage) minutes', ''),
                    ('down', \(start) + (k + 1) * interval '\(period) days' - interval '\(outage) minutes',
                     \(start) + (k + 1) * interval '\(period) days', 'exited with code 1')
                ) AS s(state, started_at, ended_at, cause)
                WHERE s.started_at < now()
                """), logger: logger)
        }
        // The last span of each target stays open.
        try await client.query("""
            UPDATE status_spans s SET ended_at = NULL
            FROM (SELECT target_id, max(started_at) AS last FROM status_spans WHERE tenant_id = \(tenantID) GROUP BY target_id) l
            WHERE s.tenant_id = \(tenantID) AND s.target_id = l.target_id AND s.started_at = l.last
            """, logger: logger)
        try await client.query("""
            DELETE FROM status_spans WHERE tenant_id = \(tenantID) AND ended_at IS NOT NULL AND ended_at > now()
            """, logger: logger)
        try await client.query("""
            INSERT INTO metric_rollups (tenant_id, target_id, step_seconds, bucket, samples, cpu_avg, cpu_min, cpu_max,
                                        memory_avg, memory_min, memory_max, memory_limit_avg, memory_limit_min, memory_limit_max,
                                        rx_avg, rx_min, rx_max, tx_avg, tx_min, tx_max)
            SELECT \(tenantID), t.target, 3600, b, 120, 20 + random() * 10, 5, 80, 2e8, 1e8, 3e8, 5e8, 5e8, 5e8,
                   1e4, 0, 1e5, 2e4, 0, 2e5
            FROM (SELECT 'c-' || agent_id::text || '-' || name AS target FROM containers WHERE tenant_id = \(tenantID)
                  UNION ALL SELECT 'h-' || id::text FROM agents WHERE tenant_id = \(tenantID)) t
            CROSS JOIN generate_series(\(unescaped: start), now() - interval '1 hour', interval '1 hour') b
            """, logger: logger)
        try await client.query("""
            INSERT INTO rollup_progress (step_seconds, rolled_through) VALUES (3600, date_trunc('hour', now()))
            ON CONFLICT (step_seconds) DO UPDATE SET rolled_through = EXCLUDED.rolled_through
            """, logger: logger)
        let services = DefinitionStore(.services, client: client, logger: logger)
        for project in 0..<10 {
            let service = try ServiceDefinition.parse(JSONValue.parse(Data(
                #"{"name":"project-\#(project)","labels":["com.docker.compose.project=project-\#(project)"],"objective_percent":99.5}"#.utf8)))
            _ = try await services.create(tenantID: tenantID, name: service.name, definition: service.json)
        }
        let window = try MaintenanceWindowDefinition.parse(JSONValue.parse(Data(
            #"{"name":"patch night","recurrence":{"days":["sun"],"start":"02:00","duration_minutes":60}}"#.utf8)))
        _ = try await DefinitionStore(.maintenanceWindows, client: client, logger: logger)
            .create(tenantID: tenantID, name: window.name, definition: window.json)
        // A database that grew for 90 days has statistics (autovacuum analyses it); one generated a second ago has
        // none until autovacuum's next round, and without them the planner reads every span of the tenant.
        try await client.query("ANALYZE status_spans, metric_rollups, containers, agents, checks", logger: logger)
    }
}
