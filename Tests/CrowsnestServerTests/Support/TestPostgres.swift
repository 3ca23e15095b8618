import Foundation
import Logging
import PostgresNIO
import XCTest

@testable import CrowsnestServer

#if canImport(Glibc)
import Glibc
#endif

/// Thrown (instead of XCTSkip) when PostgreSQL is unavailable and `CI` is "true": CI must not silently skip.
struct TestPostgresUnavailable: Error, CustomStringConvertible {
    let description: String
}

/// Ready-to-use PostgreSQL databases for tests.
///
/// `withTestDatabase` hands the test a `PostgresClient` (already running) on a fresh, uniquely named database with
/// the schema applied, and drops the database afterwards. The server is, in order of preference:
/// - the one at `CROWSNEST_TEST_DATABASE_URL` (a superuser-ish role that may CREATE/DROP DATABASE), or
/// - an embedded cluster started once per test process in `/tmp/cn-test-<pid>-XXXXXX`, stopped and deleted when
///   the process exits (leftovers of crashed runs are cleaned up on the next run).
/// Without PostgreSQL binaries the test is skipped, or fails when `CI` is "true".
enum TestPostgres {
    /// What schema the fresh database gets.
    enum Schema {
        /// The server's real migrations (Sources/CrowsnestServer/Migrations).
        case bundled
        /// Nothing: an empty database.
        case empty
        /// The migrations in this directory.
        case directory(URL)
    }

    static let logger: Logger = {
        var logger = Logger(label: "crowsnest.tests.postgres")
        // CROWSNEST_TEST_LOG_LEVEL=debug shows the cluster's lifecycle while debugging a test.
        logger.logLevel = ProcessInfo.processInfo.environment["CROWSNEST_TEST_LOG_LEVEL"]
            .flatMap(Logger.Level.init(rawValue:)) ?? .warning
        return logger
    }()

    /// postgres-nio warns when a query waits for `run()` to begin, which `withRunningClient` races by design.
    private static let clientBackgroundLogger: Logger = {
        var logger = Logger(label: "crowsnest.tests.postgres.client")
        logger.logLevel = ProcessInfo.processInfo.environment["CROWSNEST_TEST_LOG_LEVEL"]
            .flatMap(Logger.Level.init(rawValue:)) ?? .error
        return logger
    }()

    /// Runs `body` with a running client on a fresh database carrying `schema`; drops the database afterwards.
    static func withTestDatabase<T>(
        schema: Schema = .bundled,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (PostgresClient) async throws -> T
    ) async throws -> T {
        try await withTestDatabaseConfiguration(schema: schema) { client, _ in try await body(client) }
    }

    /// Like `withTestDatabase`, also passing the database's client configuration (to open more clients on it,
    /// e.g. to act as a second server replica).
    static func withTestDatabaseConfiguration<T>(
        schema: Schema = .bundled,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (PostgresClient, PostgresClient.Configuration) async throws -> T
    ) async throws -> T {
        let server = try await serverConfiguration()
        let name = "cn_test_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(12).lowercased()
        try await adminQuery(server, "CREATE DATABASE \(name)")
        var configuration = server
        configuration.database = name
        do {
            let result = try await withRunningClient(configuration) { client in
                switch schema {
                case .bundled:
                    try await MigrationRunner(logger: logger).migrate(client)
                case .directory(let url):
                    try await MigrationRunner(directory: url, logger: logger).migrate(client)
                case .empty:
                    break
                }
                return try await body(client, configuration)
            }
            try? await adminQuery(server, "DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
            return result
        } catch {
            try? await adminQuery(server, "DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
            throw error
        }
    }

    /// Runs `body` with a `PostgresClient` for `configuration` whose `run()` is going; shuts it down afterwards.
    static func withRunningClient<T>(
        _ configuration: PostgresClient.Configuration,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (PostgresClient) async throws -> T
    ) async throws -> T {
        let client = PostgresClient(configuration: configuration, backgroundLogger: clientBackgroundLogger)
        let runTask = Task { await client.run() }
        do {
            let result = try await body(client)
            runTask.cancel()
            await runTask.value
            return result
        } catch {
            runTask.cancel()
            await runTask.value
            throw error
        }
    }

    /// Runs `body` with a private, not yet started `EmbeddedPostgres` in a fresh short temp directory; stops the
    /// cluster and deletes the directory afterwards. For tests of the cluster's own lifecycle.
    static func withEmbeddedCluster<T>(
        runAsUser: String? = nil,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (EmbeddedPostgres, String) async throws -> T
    ) async throws -> T {
        try requirePostgresBinaries()
        let directory = try makeTemporaryDirectory()
        let cluster = EmbeddedPostgres(dataDirectory: directory, runAsUser: runAsUser, logger: logger)
        do {
            let result = try await body(cluster, directory)
            try? await cluster.stop()
            removeClusterDirectory(directory)
            return result
        } catch {
            try? await cluster.stop()
            removeClusterDirectory(directory)
            throw error
        }
    }

    /// Skips the test (or fails it in CI) when the PostgreSQL binaries are not installed.
    static func requirePostgresBinaries() throws {
        if EmbeddedPostgres.locateBinDirectory() == nil {
            try unavailable(
                "PostgreSQL binaries (initdb, pg_ctl) not found; run scripts/ensure-postgres.sh "
                    + "or set CROWSNEST_TEST_DATABASE_URL")
        }
    }

    /// Throws XCTSkip, or a failure when `CI` is "true".
    static func unavailable(_ reason: String) throws -> Never {
        if ProcessInfo.processInfo.environment["CI"] == "true" {
            throw TestPostgresUnavailable(description: "PostgreSQL is required in CI: \(reason)")
        }
        throw XCTSkip(reason)
    }

    /// Creates `/tmp/cn-test-<pid>-XXXXXX` (short, to stay under the unix socket path limit).
    static func makeTemporaryDirectory() throws -> String {
        var template = Array("/tmp/cn-test-\(getpid())-XXXXXX".utf8CString)
        guard let result = mkdtemp(&template) else {
            throw TestPostgresUnavailable(description: "cannot create a temporary directory in /tmp: errno \(errno)")
        }
        return String(cString: result)
    }

    // MARK: - Server selection

    private static func serverConfiguration() async throws -> PostgresClient.Configuration {
        if let url = ProcessInfo.processInfo.environment["CROWSNEST_TEST_DATABASE_URL"], !url.isEmpty {
            return try DatabaseConnection.clientConfiguration(url: url)
        }
        try requirePostgresBinaries()
        let cluster = try await SharedCluster.shared.cluster()
        var configuration = try DatabaseConnection.clientConfiguration(embedded: cluster)
        configuration.database = "postgres"
        return configuration
    }

    /// Runs one statement on the server's admin database (the URL's database, or `postgres` when embedded).
    private static func adminQuery(_ server: PostgresClient.Configuration, _ sql: String) async throws {
        try await withRunningClient(server) { client in
            _ = try await client.query(PostgresQuery(unsafeSQL: sql), logger: logger)
        }
    }

    static func removeClusterDirectory(_ directory: String) {
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// The embedded cluster shared by all `withTestDatabase` calls of this test process.
private actor SharedCluster {
    static let shared = SharedCluster()

    private var started: EmbeddedPostgres?

    func cluster() async throws -> EmbeddedPostgres {
        if let started { return started }
        SharedClusterCleanup.removeLeftoversOfDeadRuns()
        let directory = try TestPostgres.makeTemporaryDirectory()
        let cluster = EmbeddedPostgres(dataDirectory: directory, logger: TestPostgres.logger)
        SharedClusterCleanup.register(directory: directory, pgData: cluster.pgDataDirectory)
        try await cluster.start()
        started = cluster
        return cluster
    }
}

/// Stops the shared cluster when the test process exits, and removes clusters of earlier runs that crashed.
private enum SharedClusterCleanup {
    private final class State: @unchecked Sendable {
        let lock = NSLock()
        var clusters: [(directory: String, pgData: String)] = []
        var installed = false
    }
    private static let state = State()

    static func register(directory: String, pgData: String) {
        state.lock.lock()
        defer { state.lock.unlock() }
        state.clusters.append((directory, pgData))
        if !state.installed {
            state.installed = true
            atexit { SharedClusterCleanup.stopAll() }
        }
    }

    static func stopAll() {
        state.lock.lock()
        let clusters = state.clusters
        state.clusters = []
        state.lock.unlock()
        for cluster in clusters {
            shutDownImmediately(pgData: cluster.pgData)
            try? FileManager.default.removeItem(atPath: cluster.directory)
        }
    }

    /// Sends SIGQUIT (immediate shutdown) to the cluster's postmaster and waits up to 5 s for it to go.
    static func shutDownImmediately(pgData: String) {
        guard let contents = try? String(contentsOfFile: pgData + "/postmaster.pid", encoding: .utf8),
            let first = contents.split(separator: "\n").first, let pid = Int32(first), pid > 0,
            EmbeddedPostgres.isLivePostgres(pid: pid)
        else { return }
        kill(pid, SIGQUIT)
        for _ in 0..<100 where EmbeddedPostgres.isLivePostgres(pid: pid) {
            usleep(50_000)
        }
    }

    /// Removes `/tmp/cn-test-<pid>-*` directories whose test process is gone (a crashed or killed run).
    static func removeLeftoversOfDeadRuns() {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: "/tmp") else { return }
        for name in names where name.hasPrefix("cn-test-") {
            let parts = name.split(separator: "-")
            guard parts.count >= 4, let pid = Int32(parts[2]), pid != getpid() else { continue }
            if kill(pid, 0) == 0 || errno != ESRCH { continue }
            let directory = "/tmp/" + name
            shutDownImmediately(pgData: directory + "/postgres/data")
            try? FileManager.default.removeItem(atPath: directory)
        }
    }
}
