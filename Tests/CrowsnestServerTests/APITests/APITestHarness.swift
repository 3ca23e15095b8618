import CrowsnestWire
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import PostgresNIO
import Prometheus
import XCTest

@testable import CrowsnestServer

/// Runs the real API router (`.router` test mode) on a fresh migrated database, and seeds rows with
/// plain SQL into the real tables.
enum APITestHarness {
    static let logger: Logger = {
        var logger = Logger(label: "crowsnest.tests.api")
        logger.logLevel = .warning
        return logger
    }()

    /// The secret key the test routers seal alert channels with (one file per test process).
    static let secretKey: SecretKey = {
        try! SecretKey.loadOrCreate(path: NSTemporaryDirectory() + "crowsnest-test-secret-\(UUID().uuidString).key")
    }()

    /// Runs `body` with a seeder on a fresh database and a client for the API router built on it.
    static func withAPI(
        registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry(),
        ready: Bool = true,
        requestsPerMinute: Int = APIRateLimitMiddleware.defaultRequestsPerMinute,
        _ body: @escaping @Sendable (APISeed, any TestClientProtocol) async throws -> Void
    ) async throws {
        try await TestPostgres.withTestDatabase { database in
            let router = makeAPIRouter(database: database, registry: registry, readiness: { ready },
                                       requestsPerMinute: requestsPerMinute, secretKey: secretKey, logger: logger)
            let app = Application(router: router, logger: logger)
            let seed = APISeed(database: database)
            try await app.test(.router) { client in
                try await body(seed, client)
            }
        }
    }

    /// Like `withAPI`, with the web pages served too (bcrypt at a low cost, so tests sign in quickly).
    /// `live` serves over a real loopback socket (the peer's address is known), `trustedProxies` as configured.
    static func withWeb(
        secureCookies: Bool = false,
        live: Bool = false,
        trustedProxies: [IPNetwork] = [],
        publicOrigin: String? = nil,
        _ body: @escaping @Sendable (APISeed, any TestClientProtocol) async throws -> Void
    ) async throws {
        try await TestPostgres.withTestDatabase { database in
            let web = (templates: try WebTemplates.bundled(),
                       settings: WebSettings(secureCookies: secureCookies, publicOrigin: publicOrigin, passwords: PasswordHasher(cost: 4)))
            let router = makeAPIRouter(database: database, registry: PrometheusCollectorRegistry(), readiness: { true },
                                       web: web, trustedProxies: trustedProxies, secretKey: secretKey, logger: logger)
            let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)), logger: logger)
            let seed = APISeed(database: database)
            try await app.test(live ? .live : .router) { client in
                try await body(seed, client)
            }
        }
    }

    /// Runs `body` against a router whose database is never contacted (for the routes that need none).
    static func withDatabaselessAPI(
        registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry(),
        ready: Bool,
        _ body: @escaping @Sendable (any TestClientProtocol) async throws -> Void
    ) async throws {
        let unused = PostgresClient(
            configuration: .init(host: "127.0.0.1", port: 1, username: "unused", password: nil, database: nil, tls: .disable),
            backgroundLogger: logger
        )
        let router = makeAPIRouter(database: unused, registry: registry, readiness: { ready }, logger: logger)
        try await Application(router: router, logger: logger).test(.router) { client in
            try await body(client)
        }
    }
}

/// A seeding statement failed; carries PostgreSQL's full error (PSQLError's description hides it).
struct APISeedError: Error, CustomStringConvertible {
    let description: String
}

/// Inserts test rows with plain SQL into the real schema.
struct APISeed: Sendable {
    let database: PostgresClient

    /// Runs one seeding statement, turning a PSQLError into a readable failure.
    private func execute(_ query: PostgresQuery) async throws {
        do {
            try await self.database.query(query, logger: self.logger)
        } catch {
            throw APISeedError(description: "seeding failed: \(String(reflecting: error))")
        }
    }

    private var logger: Logger { APITestHarness.logger }

    /// A new tenant; returns its id.
    func tenant(_ name: String = "tenant-\(UUID().uuidString.prefix(8))") async throws -> UUID {
        let id = UUID()
        try await self.execute("INSERT INTO tenants (id, name) VALUES (\(id), \(name))")
        return id
    }

    /// A new API key for `tenant` (through the real store); returns the bearer secret.
    func apiKey(tenant: UUID, role: APIKeyRole = .read) async throws -> IssuedAPIKey {
        try await APIKeyStore(database: self.database, logger: self.logger).create(tenantID: tenant, role: role)
    }

    /// An enrolled agent (host); `lastSeenSecondsAgo` nil = never seen. Times are relative to the database clock.
    func agent(
        tenant: UUID, hostname: String, lastSeenSecondsAgo: Double?, intervalSeconds: Int32 = 30,
        agentVersion: String = "1.2.3", containersUnavailableReason: String = "", revoked: Bool = false
    ) async throws -> UUID {
        let id = UUID()
        try await self.execute(
            """
            INSERT INTO agents (tenant_id, id, hostname, agent_version, interval_seconds, containers_unavailable_reason,
                                last_seen, revoked_at)
            VALUES (\(tenant), \(id), \(hostname), \(agentVersion), \(intervalSeconds), \(containersUnavailableReason),
                    CASE WHEN \(lastSeenSecondsAgo)::float8 IS NULL THEN NULL
                         ELSE now() - make_interval(secs => \(lastSeenSecondsAgo)::float8) END,
                    CASE WHEN \(revoked) THEN now() ELSE NULL END)
            """
        )
        return id
    }

    /// A container row; timestamps are RFC 3339 text so tests state them exactly.
    func container(
        tenant: UUID, agent: UUID, name: String, image: String = "nginx:1.27", dockerID: String = "abc123",
        state: String = "running", health: String = "none", healthOutput: String = "", exitCode: Int32 = 0,
        restartCount: Int32 = 0, oomKilled: Bool = false, startedAt: String? = nil, finishedAt: String? = nil,
        removed: Bool = false
    ) async throws {
        try await self.execute(
            """
            INSERT INTO containers (tenant_id, agent_id, name, docker_id, image, state, health, health_output, exit_code,
                                    restart_count, oom_killed, started_at, finished_at, updated_at, removed_at)
            VALUES (\(tenant), \(agent), \(name), \(dockerID), \(image), \(state), \(health), \(healthOutput), \(exitCode),
                    \(restartCount), \(oomKilled), \(startedAt)::timestamptz, \(finishedAt)::timestamptz, now(),
                    CASE WHEN \(removed) THEN now() ELSE NULL END)
            """
        )
    }

    /// Creates the UTC day partitions of the time-series tables that hold `dates` (named like the server's
    /// own, `<table>_YYYYMMDD`, and created only when missing).
    func partitions(for dates: [Date]) async throws {
        for day in Set(dates.map { Int64(($0.timeIntervalSince1970 / 86_400).rounded(.down)) }) {
            let start = RFC3339.string(from: Date(timeIntervalSince1970: Double(day) * 86_400))
            let end = RFC3339.string(from: Date(timeIntervalSince1970: Double(day + 1) * 86_400))
            let suffix = start.prefix(10).replacingOccurrences(of: "-", with: "")
            for table in PartitionStore.tables {
                // Table names and bounds are built from integers above, never from input.
                try await self.execute(
                    PostgresQuery(
                        unsafeSQL: "CREATE TABLE IF NOT EXISTS \(table)_\(suffix) PARTITION OF \(table) FOR VALUES FROM ('\(start)') TO ('\(end)')"
                    )
                )
            }
        }
    }

    /// One container sample row with the figures the API reads.
    func containerSample(
        tenant: UUID, agent: UUID, name: String, ts: Date, cpuPercent: Double?, workingSet: Int64?, usage: Int64?,
        limit: Int64?, rx: Double? = nil, tx: Double? = nil, blockRead: Double? = nil, blockWrite: Double? = nil,
        pids: Int64? = nil
    ) async throws {
        try await self.partitions(for: [ts])
        try await self.execute(
            """
            INSERT INTO container_samples (tenant_id, agent_id, name, ts, docker_id, state, cpu_percent,
                memory_working_set_bytes, memory_usage_bytes, memory_limit_bytes, net_rx_bytes_per_second,
                net_tx_bytes_per_second, block_read_bytes_per_second, block_write_bytes_per_second, pids)
            VALUES (\(tenant), \(agent), \(name), \(ts), 'abc123', 'running', \(cpuPercent), \(workingSet), \(usage),
                \(limit), \(rx), \(tx), \(blockRead), \(blockWrite), \(pids))
            """
        )
    }

    /// One host sample row with the figures the API reads.
    func hostSample(
        tenant: UUID, agent: UUID, ts: Date, cpuPercent: Double?, memoryTotal: Int64?, memoryAvailable: Int64?,
        rx: Double? = nil, tx: Double? = nil
    ) async throws {
        try await self.partitions(for: [ts])
        try await self.execute(
            """
            INSERT INTO host_samples (tenant_id, agent_id, ts, cpu_percent, memory_total_bytes, memory_available_bytes,
                net_rx_bytes_per_second, net_tx_bytes_per_second)
            VALUES (\(tenant), \(agent), \(ts), \(cpuPercent), \(memoryTotal), \(memoryAvailable), \(rx), \(tx))
            """
        )
    }

    /// One Docker event of a container.
    func containerEvent(
        tenant: UUID, agent: UUID, name: String, ts: Date, action: String, exitCode: Int32? = nil, detail: String = ""
    ) async throws {
        try await self.partitions(for: [ts])
        try await self.execute(
            """
            INSERT INTO container_events (tenant_id, agent_id, name, ts, action, docker_id, exit_code, detail)
            VALUES (\(tenant), \(agent), \(name), \(ts), \(action), 'abc123', \(exitCode), \(detail))
            """
        )
    }

    /// One check result row, as the result writer would store it.
    func checkResult(
        tenant: UUID, check: UUID, slotAt: Date, ok: Bool, ts: Date? = nil, agent: UUID? = nil, runner: String = "replica-1",
        latencyMs: Double? = 12.5, error: String = "", httpStatus: Int32? = nil, certNotAfter: Date? = nil,
        figures: String = "{}"
    ) async throws {
        try await self.partitions(for: [slotAt])
        try await self.execute(
            """
            INSERT INTO check_results (tenant_id, check_id, slot_at, ts, agent_id, runner, token, ok, latency_ms, error,
                                       http_status, cert_not_after, figures)
            VALUES (\(tenant), \(check), \(slotAt), \(ts ?? slotAt.addingTimeInterval(0.25)), \(agent), \(runner), 1, \(ok),
                    \(latencyMs), \(error), \(httpStatus), \(certNotAfter), \(figures)::jsonb)
            """
        )
    }

    /// One status span of a target.
    func statusSpan(tenant: UUID, target: TargetID, state: String, startedAt: Date, endedAt: Date?, cause: String = "") async throws {
        try await self.execute(
            """
            INSERT INTO status_spans (tenant_id, target_id, state, started_at, ended_at, cause)
            VALUES (\(tenant), \(target.description), \(state), \(startedAt), \(endedAt), \(cause))
            """
        )
    }
}

/// Helpers for reading API responses in tests.
extension TestResponse {
    /// The body as a JSON object; fails the test when it is not one.
    func jsonObject(file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
        let data = Data(buffer: self.body)
        let object = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
        return try XCTUnwrap(object as? [String: Any], "body is not a JSON object: \(String(buffer: self.body))", file: file, line: line)
    }

    /// The `(code, message)` of an error body `{"error":{"code","message"}}`; fails when the shape differs.
    func apiError(file: StaticString = #filePath, line: UInt = #line) throws -> (code: String, message: String) {
        let object = try self.jsonObject(file: file, line: line)
        XCTAssertEqual(object.count, 1, "error body has extra keys: \(object.keys)", file: file, line: line)
        let error = try XCTUnwrap(object["error"] as? [String: Any], "no error object", file: file, line: line)
        XCTAssertEqual(Set(error.keys), ["code", "message"], file: file, line: line)
        let code = try XCTUnwrap(error["code"] as? String, file: file, line: line)
        let message = try XCTUnwrap(error["message"] as? String, file: file, line: line)
        XCTAssertFalse(message.isEmpty, "empty error message", file: file, line: line)
        return (code, message)
    }
}

/// `Authorization: Bearer <secret>` headers.
func bearer(_ secret: String) -> HTTPFields {
    [.authorization: "Bearer \(secret)"]
}

/// A fixed instant from RFC 3339 text (test data).
func instant(_ text: String) -> Date {
    RFC3339.date(from: text)!
}
