import Foundation
import Logging
import PostgresNIO

/// Opens the server's database — the embedded cluster in the data directory, or an external URL — runs
/// the migrations, and hands a ready `PostgresClient` to `body`.
public enum ServerDatabase {
    /// What each pool may use, and how long its statements and lock waits may take: ingest and the API get
    /// separate pools so a burst of one cannot take every connection from the other, and a statement stuck
    /// behind a lock fails (and is retried by its caller) instead of holding a connection forever.
    public struct PoolSettings: Sendable {
        public var name: String
        public var maximumConnections: Int
        public var statementTimeout: Duration
        public var lockTimeout: Duration

        public static let ingest = PoolSettings(name: "crowsnest-ingest", maximumConnections: 16,
                                                statementTimeout: .seconds(30), lockTimeout: .seconds(10))
        public static let api = PoolSettings(name: "crowsnest-api", maximumConnections: 8,
                                             statementTimeout: .seconds(15), lockTimeout: .seconds(5))
        /// Administrative commands and migrations: no statement timeout (a migration may build an index on a large
        /// table), but no endless wait for a lock either.
        public static let admin = PoolSettings(name: "crowsnest-admin", maximumConnections: 2,
                                               statementTimeout: .zero, lockTimeout: .seconds(60))

        /// The same settings, with the replica's tag in the application name (`crowsnest-ingest:3f2a9c1d`), so this
        /// replica's connections can be told from the others' in `pg_stat_activity`.
        func tagged(_ replicaTag: String) -> PoolSettings {
            var settings = self
            settings.name = "\(name):\(replicaTag)"
            return settings
        }

        func apply(to configuration: PostgresClient.Configuration) -> PostgresClient.Configuration {
            var configuration = configuration
            configuration.options.maximumConnections = maximumConnections
            configuration.options.additionalStartupParameters.removeAll { $0.0 == "application_name" }
            configuration.options.additionalStartupParameters += [
                ("application_name", name),
                ("statement_timeout", "\(Self.milliseconds(statementTimeout))"),
                ("lock_timeout", "\(Self.milliseconds(lockTimeout))"),
            ]
            return configuration
        }

        static func milliseconds(_ duration: Duration) -> Int64 {
            duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
        }
    }

    /// The server's two pools.
    public struct Pools: Sendable {
        public let ingest: PostgresClient
        public let api: PostgresClient
        /// Each pool's settings as applied (its application name carries this replica's tag), by pool name.
        public var settings: [String: PoolSettings] = [:]
    }

    /// Runs `body` with a migrated database (one client, administrative settings); an embedded cluster this call
    /// started is stopped afterwards, one that was already running (a serving process next to an admin command)
    /// is left running.
    public static func with<T: Sendable>(_ configuration: ServerConfiguration, logger: Logger,
                                         _ body: @Sendable (PostgresClient) async throws -> T) async throws -> T {
        try await withClients(configuration, settings: [.admin], logger: logger) { clients, _ in try await body(clients[0]) }
    }

    /// Runs `body` with a migrated database: the administrative client (running, for setup such as loading the
    /// CA) and the server's ingest and API pools, created but *not running*. `body` runs the pools as services of
    /// its service group, listed before the listeners that use them, so a graceful shutdown stops the gateway and
    /// the HTTP API first and closes the pools' connections after them.
    public static func withPools<T: Sendable>(_ configuration: ServerConfiguration, logger: Logger,
                                              _ body: @Sendable (_ admin: PostgresClient, _ pools: Pools) async throws -> T) async throws -> T {
        // The administrative client (no short statement timeout) runs the migrations.
        try await withClients(configuration, settings: [.admin], logger: logger) { clients, base in
            let tag = String(UUID().uuidString.prefix(8)).lowercased()
            let ingest = PoolSettings.ingest.tagged(tag), api = PoolSettings.api.tagged(tag)
            let pools = Pools(ingest: PostgresClient(configuration: ingest.apply(to: base), backgroundLogger: logger),
                              api: PostgresClient(configuration: api.apply(to: base), backgroundLogger: logger),
                              settings: ["ingest": ingest, "api": api])
            return try await body(clients[0], pools)
        }
    }

    private static func withClients<T: Sendable>(
        _ configuration: ServerConfiguration, settings: [PoolSettings], logger: Logger,
        _ body: @Sendable (_ clients: [PostgresClient], _ base: PostgresClient.Configuration) async throws -> T
    ) async throws -> T {
        var embedded: EmbeddedPostgres?
        var startedHere = false
        let base: PostgresClient.Configuration
        if let url = configuration.databaseURL {
            base = try DatabaseConnection.clientConfiguration(url: url)
        } else {
            try FileManager.default.createDirectory(atPath: configuration.dataDirectory, withIntermediateDirectories: true)
            let cluster = EmbeddedPostgres(dataDirectory: configuration.dataDirectory, runAsUser: configuration.postgresUser,
                                           logger: logger)
            startedHere = !(await cluster.isRunning)
            try await cluster.start()
            embedded = cluster
            base = try DatabaseConnection.clientConfiguration(embedded: cluster)
        }
        let clients = settings.map { PostgresClient(configuration: $0.apply(to: base), backgroundLogger: logger) }
        let result: Result<T, Error> = await withTaskGroup(of: Void.self) { group in
            for client in clients { group.addTask { await client.run() } }
            defer { group.cancelAll() }
            do {
                // run() marks a client running as its first step; leasing a connection before that logs a
                // misleading warning on every administrative command. A moment's wait lets the tasks start.
                try await Task.sleep(for: .milliseconds(50))
                try await migrate(clients[0], logger: logger)
                return .success(try await body(clients, base))
            } catch {
                return .failure(error)
            }
        }
        if let embedded, startedHere {
            do { try await embedded.stop() } catch {
                logger.error("cannot stop the embedded PostgreSQL", metadata: ["error": "\(error)"])
            }
        }
        return try result.get()
    }

    /// Applies pending migrations, waiting up to a minute for a database that is still starting.
    static func migrate(_ client: PostgresClient, logger: Logger) async throws {
        let runner = try MigrationRunner(logger: logger)
        var attempt = 0
        while true {
            do {
                _ = try await runner.migrate(client)
                return
            } catch let error as MigrationError {
                throw error
            } catch {
                attempt += 1
                if attempt >= 30 { throw error }
                logger.warning("database not reachable yet; retrying migrations",
                               metadata: ["attempt": "\(attempt)", "error": "\(DatabaseConnection.describe(error))"])
                try await Task.sleep(for: .seconds(2))
            }
        }
    }
}
