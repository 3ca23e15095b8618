import Foundation
import Logging

/// Why a backup or restore did not happen, in one line for the operator.
public struct DatabaseBackupError: Error, CustomStringConvertible {
    public let description: String

    init(_ description: String) { self.description = description }
}

/// `crowsnest-server backup` and `restore`: the database as one `pg_dump` custom-format file (a consistent
/// snapshot, taken while the server runs and ingests) in a backup directory, beside a copy of the server's secret
/// key — without it the certificate authority's private key in the database cannot be opened, and agents could not
/// renew. Works on the embedded cluster (through its unix socket, with the installed PostgreSQL's `pg_dump` and
/// `pg_restore`) and on an external database (`database_url`). A restore goes only into an empty database: a new
/// data directory, or an external database with no tables.
public struct DatabaseBackup: Sendable {
    public static let dumpFileName = "crowsnest.dump"
    public static let secretKeyFileName = "secret.key"

    public let configuration: ServerConfiguration
    public let logger: Logger

    public init(configuration: ServerConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    /// Writes `directory/crowsnest.dump` and `directory/secret.key` (when the server has one); returns the dump's size.
    public func backup(to directory: String) async throws -> Int {
        let files = FileManager.default
        let dump = directory + "/" + Self.dumpFileName
        guard !files.fileExists(atPath: dump) else {
            throw DatabaseBackupError("\(dump) exists already; back up into a new directory (nothing was written)")
        }
        try files.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let partial = dump + ".partial"
        try await withDatabase { connection, binDirectory in
            try Self.run(binDirectory + "/pg_dump", ["--format=custom", "--no-owner", "--file=\(partial)"] + connection.arguments,
                         environment: connection.environment, what: "pg_dump")
        }
        // Only a finished dump carries the final name: an interrupted backup never looks like a good one.
        try files.moveItem(atPath: partial, toPath: dump)
        try files.setAttributes([.posixPermissions: 0o600], ofItemAtPath: dump)
        if let key = secretKeyPath, files.fileExists(atPath: key) {
            let copy = directory + "/" + Self.secretKeyFileName
            try? files.removeItem(atPath: copy)
            try files.copyItem(atPath: key, toPath: copy)
            try files.setAttributes([.posixPermissions: 0o600], ofItemAtPath: copy)
        }
        let size = (try files.attributesOfItem(atPath: dump)[.size] as? NSNumber)?.intValue ?? 0
        logger.info("backup written", metadata: ["backup.file": "\(dump)", "backup.bytes": "\(size)"])
        return size
    }

    /// Restores `directory/crowsnest.dump` into this configuration's database, which must hold no tables, and puts
    /// the backed-up secret key where this configuration reads it (refusing to replace a different one).
    public func restore(from directory: String) async throws {
        let files = FileManager.default
        let dump = directory + "/" + Self.dumpFileName
        guard files.fileExists(atPath: dump) else { throw DatabaseBackupError("\(dump) does not exist: not a backup directory") }
        let backedUpKey = directory + "/" + Self.secretKeyFileName
        if let key = secretKeyPath, files.fileExists(atPath: backedUpKey) {
            if files.fileExists(atPath: key) {
                guard files.contentsEqual(atPath: key, andPath: backedUpKey) else {
                    throw DatabaseBackupError("\(key) holds another secret key than the backup's; restore into a new data directory "
                        + "(or move that file away): the backup's database needs its own key")
                }
            } else {
                try files.createDirectory(atPath: (key as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                try files.copyItem(atPath: backedUpKey, toPath: key)
                try files.setAttributes([.posixPermissions: 0o600], ofItemAtPath: key)
            }
        }
        try await withDatabase { connection, binDirectory in
            let tables = try Self.run(binDirectory + "/psql", ["-X", "-At", "-v", "ON_ERROR_STOP=1",
                                                               "-c", "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"]
                                          + connection.arguments, environment: connection.environment, what: "psql")
            guard tables.trimmingCharacters(in: .whitespacesAndNewlines) == "0" else {
                throw DatabaseBackupError("the database is not empty (\(tables.trimmingCharacters(in: .whitespacesAndNewlines)) tables); "
                    + "restore into a new data directory or an empty database")
            }
            try Self.run(binDirectory + "/pg_restore", ["--exit-on-error", "--single-transaction", "--no-owner"]
                             + connection.arguments + [dump],
                         environment: connection.environment, what: "pg_restore")
        }
        logger.info("backup restored", metadata: ["backup.file": "\(dump)"])
    }

    /// Where the server's secret key lives for this configuration.
    var secretKeyPath: String? {
        configuration.secretKeyFile ?? (configuration.databaseURL == nil ? configuration.dataDirectory + "/" + SecretKey.defaultFileName : nil)
    }

    struct Connection {
        var arguments: [String]
        var environment: [String: String]
    }

    /// Runs `body` with the database reachable: the embedded cluster started if it is not running (and stopped
    /// again after), or the external URL.
    private func withDatabase(_ body: (Connection, String) async throws -> Void) async throws {
        guard let binDirectory = EmbeddedPostgres.locateBinDirectory() else {
            throw DatabaseBackupError("no PostgreSQL client tools (pg_dump, pg_restore) found; install Debian's postgresql package")
        }
        var environment = ProcessInfo.processInfo.environment
        if let url = configuration.databaseURL {
            try await body(Connection(arguments: ["--dbname=\(url)"], environment: environment), binDirectory)
            return
        }
        try FileManager.default.createDirectory(atPath: configuration.dataDirectory, withIntermediateDirectories: true)
        let cluster = EmbeddedPostgres(dataDirectory: configuration.dataDirectory, runAsUser: configuration.postgresUser, logger: logger)
        let startedHere = !(await cluster.isRunning)
        try await cluster.start()
        environment["PGPASSWORD"] = ((try? String(contentsOfFile: cluster.passwordPath, encoding: .utf8)) ?? "")
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let connection = Connection(arguments: ["--host=\(cluster.socketDirectory)", "--port=\(EmbeddedPostgres.port)",
                                                "--username=\(EmbeddedPostgres.username)", "--dbname=\(EmbeddedPostgres.databaseName)"],
                                    environment: environment)
        do {
            try await body(connection, binDirectory)
        } catch {
            if startedHere { try? await cluster.stop() }
            throw error
        }
        if startedHere { try await cluster.stop() }
    }

    /// Runs a PostgreSQL tool to its end (its output through a file, so a chatty tool cannot fill a pipe and stall);
    /// its standard output, or an error with the last of what it said.
    @discardableResult
    static func run(_ executable: String, _ arguments: [String], environment: [String: String], what: String) throws -> String {
        let output = NSTemporaryDirectory() + "crowsnest-\(what)-\(UUID().uuidString)"
        let errors = output + ".err"
        FileManager.default.createFile(atPath: output, contents: nil)
        FileManager.default.createFile(atPath: errors, contents: nil)
        defer {
            try? FileManager.default.removeItem(atPath: output)
            try? FileManager.default.removeItem(atPath: errors)
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = environment
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: output))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errors))
        try process.run()
        process.waitUntilExit()
        let said = ((try? String(contentsOfFile: errors, encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        guard process.terminationStatus == 0 else {
            throw DatabaseBackupError("\(what) failed (exit \(process.terminationStatus)): \(said.suffix(500))")
        }
        return (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
    }
}
