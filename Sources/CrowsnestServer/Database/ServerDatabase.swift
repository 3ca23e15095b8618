import Foundation
import Logging
import PostgresNIO

/// Opens the server's database — the embedded cluster in the data directory, or an external URL — runs
/// the migrations, and hands a ready `PostgresClient` to `body`.
public enum ServerDatabase {
    /// Runs `body` with a migrated database; an embedded cluster this call started is stopped afterwards,
    /// one that was already running (a serving process next to an admin command) is left running.
    public static func with<T: Sendable>(_ configuration: ServerConfiguration, logger: Logger,
                                         _ body: @Sendable (PostgresClient) async throws -> T) async throws -> T {
        var embedded: EmbeddedPostgres?
        var startedHere = false
        let client: PostgresClient
        if let url = configuration.databaseURL {
            client = try DatabaseConnection.makeClient(url: url, logger: logger)
        } else {
            try FileManager.default.createDirectory(atPath: configuration.dataDirectory, withIntermediateDirectories: true)
            let cluster = EmbeddedPostgres(dataDirectory: configuration.dataDirectory, runAsUser: configuration.postgresUser,
                                           logger: logger)
            startedHere = !(await cluster.isRunning)
            try await cluster.start()
            embedded = cluster
            client = DatabaseConnection.makeClient(embedded: cluster, logger: logger)
        }
        let result: Result<T, Error> = await withTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            do {
                // run() marks the client running as its first step; leasing a connection before that logs a
                // misleading warning on every administrative command. A moment's wait lets the task start.
                try await Task.sleep(for: .milliseconds(50))
                try await migrate(client, logger: logger)
                return .success(try await body(client))
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
