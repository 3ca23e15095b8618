import CrowsnestProbes
import CrowsnestServer
import CrowsnestWire
import Foundation
import Logging
import PostgresNIO

/// `crowsnest-bench --web`: the overview page for a tenant with 200 hosts and 5,000 containers (30 days of
/// spans, an outage every two days per container; a fresh sample per host), generated straight into the database.
/// Server time: the page requested `requests` times over HTTP with a signed-in session cookie (a new connection
/// each), p50/p99 of the complete response and its weight. Full render: headless Chromium through
/// `scripts/browser-check.sh --timing`, time to first byte and to the load event as the browser measures them.
struct WebBenchmark {
    var requests: Int
    var browserRuns: Int

    static let hosts = 200, containersPerHost = 25, days = 30
    static let password = "benchmark password 1"

    func measure(client: PostgresClient, httpPort: Int, logger: Logger) async throws {
        let administration = ServerAdministration(client: client, logger: logger)
        let tenant = "web-" + String(UUID().uuidString.prefix(6)).lowercased()
        let tenantID = try await administration.createTenant(name: tenant)
        let user = try await administration.createUser(tenant: tenant, username: tenant + "-ops", role: .read, password: Self.password,
                                                       hasher: PasswordHasher(cost: 4))
        let generating = ContinuousClock.now
        try await Self.generate(client: client, tenantID: tenantID, logger: logger)
        print(String(format: "generated %d hosts, %d containers, %d days of spans in %.1f s", Self.hosts, Self.hosts * Self.containersPerHost,
                     Self.days, (ContinuousClock.now - generating).benchMilliseconds / 1000))
        try await Self.breakdown(client: client, tenantID: tenantID, logger: logger)
        let (token, _) = try await WebSessionStore(client: client, logger: logger).create(for: user)
        let prober = Prober()
        let guardAgent = AddressGuard(runner: .agent)
        let headers = JSONValue.object(["Cookie": .string("crowsnest_session=\(token)")]).jsonText
        var latencies: [Double] = []
        var bytes = 0.0
        for index in 0..<(requests + 5) {
            let outcome = await prober.run(type: "http", target: "http://127.0.0.1:\(httpPort)/",
                                           options: ["headers": headers, "follow_redirects": "false"], timeout: .seconds(30),
                                           addressGuard: guardAgent)
            guard outcome.ok, outcome.httpStatus == 200 else { throw BenchmarkError("overview page: \(outcome.httpStatus) \(outcome.error)") }
            if index >= 5 { latencies.append(outcome.latencyMs) }
            bytes = outcome.figures["body_bytes"] ?? 0
        }
        print(String(format: "overview page, server: p50 %.1f ms, p99 %.1f ms (%d requests, %.1f KiB of HTML)",
                     latencies.benchPercentile(0.5), latencies.benchPercentile(0.99), requests, bytes / 1024))
        guard browserRuns > 0 else { return }
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("scripts/browser-check.sh").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [script, "--base", "http://127.0.0.1:\(httpPort)", "--username", user.username, "--page", "/",
                             "--timing", "\(browserRuns)"]
        var environment = ProcessInfo.processInfo.environment
        environment["CROWSNEST_BROWSER_PASSWORD"] = Self.password
        process.environment = environment
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0,
              let result = try JSONSerialization.jsonObject(with: data) as? [String: Any],
              let page = (result["pages"] as? [[String: Any]])?.first, let timing = page["timing"] as? [String: Any] else {
            throw BenchmarkError("browser-check failed (status \(process.terminationStatus)): \(String(decoding: data, as: UTF8.self).prefix(500))")
        }
        let ttfb = (timing["ttfb_ms"] as? [Double]) ?? [], load = (timing["load_ms"] as? [Double]) ?? []
        print(String(format: "overview page, Chromium (%d loads): first byte p50 %.1f ms, p99 %.1f ms; load event p50 %.1f ms, p99 %.1f ms; "
                     + "%.1f KiB transferred with its CSS and script", browserRuns, ttfb.benchPercentile(0.5), ttfb.benchPercentile(0.99),
                     load.benchPercentile(0.5), load.benchPercentile(0.99), ((timing["transfer_bytes"] as? Double) ?? 0) / 1024))
    }

    /// Median time of each part of the overview page, measured in this process (10 rounds each).
    static func breakdown(client: PostgresClient, tenantID: UUID, logger: Logger) async throws {
        func median(_ name: String, _ body: () async throws -> Void) async throws {
            var times: [Double] = []
            for _ in 0..<10 {
                let start = ContinuousClock.now
                try await body()
                times.append((ContinuousClock.now - start).benchMilliseconds)
            }
            print(String(format: "  part: %@ p50 %.1f ms", name, times.benchPercentile(0.5)))
        }
        let reports = UptimeReports(client: client, logger: logger)
        try await median("hosts and containers") { _ = try await InfrastructureQueries(database: client, logger: logger).hosts(tenantID: tenantID) }
        try await median("newest host figures") { _ = try await MetricsQueries(database: client, logger: logger).latestHostFigures(tenantID: tenantID) }
        let queries = UptimeQueries(client: client, logger: logger)
        let targets = try await queries.allTargets(tenantID: tenantID).targets.map(\.id.description)
        try await median("every target") { _ = try await queries.allTargets(tenantID: tenantID) }
        try await median("every target's newest span") { _ = try await queries.lastSpans(tenantID: tenantID, targetIDs: targets) }
        let end = Int64(Date().timeIntervalSince1970 * 1e6)
        try await median("time per state, in SQL") {
            _ = try await queries.stateTotals(tenantID: tenantID, targetIDs: targets, to: end, froms: [end - 86_400_000_000, end - 30 * 86_400_000_000],
                                              maintenance: [])
        }
        try await median("the overview's figures together") { _ = try await reports.overviewForBenchmark(tenantID: tenantID, now: Date()) }
        try await median("30 days of every target's spans") {
            _ = UptimeReports.totals(try await reports.tenantTargets(tenantID: tenantID, from: Int64(Date().timeIntervalSince1970 * 1e6) - 30 * 86_400_000_000,
                                                                     to: Int64(Date().timeIntervalSince1970 * 1e6)).targets)
        }
    }

    static func generate(client: PostgresClient, tenantID: UUID, logger: Logger) async throws {
        let start = "date_trunc('day', now()) - interval '\(days) days'"
        try await client.query("""
            INSERT INTO agents (tenant_id, id, hostname, last_seen, interval_seconds)
            SELECT \(tenantID), gen_random_uuid(), 'host-' || lpad(h::text, 3, '0'), now(), 30 FROM generate_series(1, \(hosts)) h
            """, logger: logger)
        try await client.query("""
            INSERT INTO containers (tenant_id, agent_id, name, docker_id, image, state, health, labels, updated_at)
            SELECT a.tenant_id, a.id, 'svc-' || lpad(c::text, 2, '0'), md5(a.id::text || c), 'example/app:1',
                   CASE WHEN c = 25 THEN 'exited' ELSE 'running' END, CASE WHEN c = 24 THEN 'unhealthy' ELSE 'none' END,
                   jsonb_build_object('com.docker.compose.project', 'project-' || (c % 10)), now()
            FROM agents a CROSS JOIN generate_series(1, \(containersPerHost)) c WHERE a.tenant_id = \(tenantID)
            """, logger: logger)
        try await client.query("""
            INSERT INTO status_spans (tenant_id, target_id, state, started_at, ended_at)
            SELECT \(tenantID), 'h-' || id::text, 'up', \(unescaped: start), NULL FROM agents WHERE tenant_id = \(tenantID)
            """, logger: logger)
        // Containers down 10 minutes every two days.
        try await client.query(PostgresQuery(unsafeSQL: """
            INSERT INTO status_spans (tenant_id, target_id, state, started_at, ended_at, cause)
            SELECT '\(tenantID)', 'c-' || c.agent_id::text || '-' || c.name, s.state, s.started_at, s.ended_at, s.cause
            FROM containers c CROSS JOIN LATERAL (
                SELECT 'up' AS state, \(start) + (n * 2) * interval '1 day' AS started_at,
                       \(start) + (n * 2 + 2) * interval '1 day' - interval '10 minutes' AS ended_at, '' AS cause
                FROM generate_series(0, \(days / 2 - 1)) n
                UNION ALL
                SELECT 'down', \(start) + (n * 2 + 2) * interval '1 day' - interval '10 minutes',
                       \(start) + (n * 2 + 2) * interval '1 day', 'exit code 1'
                FROM generate_series(0, \(days / 2 - 2)) n) s
            WHERE c.tenant_id = '\(tenantID)'
            """), logger: logger)
        try await PartitionStore(client: client, logger: logger).ensurePartitions(forMillis: [Int64(Date().timeIntervalSince1970 * 1000)])
        try await client.query("""
            INSERT INTO host_samples (tenant_id, agent_id, ts, cpu_percent, cpu_count, memory_total_bytes, memory_available_bytes, filesystems)
            SELECT tenant_id, id, now() - interval '5 seconds', 20 + random() * 50, 4, 8589934592, 4294967296,
                   '[{"mount":"/","size_bytes":100000000000,"free_bytes":40000000000}]'::jsonb
            FROM agents WHERE tenant_id = \(tenantID)
            """, logger: logger)
        try await client.query("ANALYZE status_spans, containers, agents, host_samples", logger: logger)
    }
}
