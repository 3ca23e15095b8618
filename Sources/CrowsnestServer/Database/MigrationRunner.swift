import Crypto
import Foundation
import Logging
import PostgresNIO

/// One numbered SQL migration file, e.g. `0001_initial.sql`.
public struct Migration: Sendable, Equatable {
    /// The number the file name starts with; migrations apply in ascending order.
    public let version: Int
    /// The file name, recorded in `schema_migrations.name` and used in messages.
    public let fileName: String
    /// The file's SQL text.
    public let sql: String
    /// Lowercase hex SHA-256 of the file's bytes; detects a file edited after it was applied.
    public let checksum: String

    /// A migration from its parts; the checksum is computed from `sql`.
    public init(version: Int, fileName: String, sql: String) {
        self.version = version
        self.fileName = fileName
        self.sql = sql
        self.checksum = SHA256.hash(data: Data(sql.utf8)).map { String(format: "%02x", $0) }.joined()
    }
}

/// Why migrations could not be loaded or applied; the server must not start on such a database.
public enum MigrationError: Error, CustomStringConvertible, Sendable {
    /// The migrations directory is missing or unreadable.
    case directoryUnreadable(path: String, reason: String)
    /// A `.sql` file whose name is not `NNNN_name.sql`.
    case badFileName(String)
    /// Two files share a version number.
    case duplicateVersion(Int, [String])
    /// A migration recorded as applied no longer matches its file.
    case editedAfterApplied(fileName: String, recordedChecksum: String, fileChecksum: String)
    /// The database records a migration newer than any file: a newer server version ran on it.
    case databaseNewerThanFiles(version: Int, name: String, newestFile: String?)
    /// A migration recorded as applied has no file any more.
    case appliedMigrationMissing(version: Int, name: String)
    /// A statement of a migration failed; the migration's transaction was rolled back.
    case statementFailed(fileName: String, statement: Int, line: Int, reason: String)
    /// Bookkeeping (lock, schema_migrations) failed.
    case bookkeepingFailed(String)

    public var description: String {
        switch self {
        case .directoryUnreadable(let path, let reason):
            return "cannot read migrations directory \(path): \(reason)"
        case .badFileName(let name):
            return "migration file \(name) is not named NNNN_name.sql (a number, an underscore, a name)"
        case .duplicateVersion(let version, let files):
            return "migrations \(files.joined(separator: " and ")) share version \(version)"
        case .editedAfterApplied(let fileName, let recorded, let current):
            return "migration \(fileName) was edited after it was applied: the database recorded checksum \(recorded), "
                + "the file now has \(current); restore the file and put changes in a new numbered migration"
        case .databaseNewerThanFiles(let version, let name, let newestFile):
            return "the database has migration \(name) (version \(version)) applied, newer than this server's newest "
                + "migration \(newestFile ?? "(none)"): a newer crowsnest-server has used this database; run that version or newer"
        case .appliedMigrationMissing(let version, let name):
            return "the database has migration \(name) (version \(version)) applied but this server has no such file"
        case .statementFailed(let fileName, let statement, let line, let reason):
            return "migration \(fileName) failed at statement \(statement) (line \(line)) and was rolled back: \(reason)"
        case .bookkeepingFailed(let reason):
            return "cannot run migrations: \(reason)"
        }
    }
}

/// Applies the numbered SQL migrations to a database, each exactly once, in order.
///
/// Every migration runs in its own transaction and is recorded in `schema_migrations(version, name, checksum,
/// applied_at)`. The whole run holds a PostgreSQL advisory lock, so server replicas starting together serialise
/// and each migration is applied once. A changed file or a database migrated by a newer server stops the run.
///
/// Files are split into statements at top-level semicolons; quotes, `"identifiers"`, comments and dollar-quoted
/// bodies (`DO $$ ... $$`, function bodies) are understood, so semicolons inside them are safe. (postgres-nio only
/// speaks the extended query protocol, which takes one statement at a time.)
public struct MigrationRunner: Sendable {
    /// Advisory lock key held while migrating ("crowsnes" in ASCII).
    public static let advisoryLockKey: Int64 = 0x6372_6f77_736e_6573

    /// The migrations found, sorted by version.
    public let migrations: [Migration]
    private let logger: Logger

    /// A runner for the migrations in `directory`.
    public init(directory: URL, logger: Logger) throws {
        self.migrations = try Self.loadMigrations(from: directory)
        self.logger = logger
    }

    /// A runner for the migrations shipped with the server (the `Migrations` resource folder).
    public init(logger: Logger) throws {
        try self.init(directory: try Self.bundledMigrationsDirectory(), logger: logger)
    }

    /// A runner for an explicit list of migrations (sorted here).
    public init(migrations: [Migration], logger: Logger) {
        self.migrations = migrations.sorted { $0.version < $1.version }
        self.logger = logger
    }

    /// The `Migrations` folder inside the server's resource bundle.
    public static func bundledMigrationsDirectory() throws -> URL {
        guard let url = Bundle.module.url(forResource: "Migrations", withExtension: nil) else {
            throw MigrationError.directoryUnreadable(
                path: Bundle.module.bundlePath + "/Migrations", reason: "not found in the server's resource bundle")
        }
        return url
    }

    /// Reads `NNNN_name.sql` files from `directory`, sorted by version; other files are ignored.
    public static func loadMigrations(from directory: URL) throws -> [Migration] {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        } catch {
            throw MigrationError.directoryUnreadable(path: directory.path, reason: "\(error)")
        }
        var migrations: [Migration] = []
        for name in names where name.hasSuffix(".sql") {
            guard let underscore = name.firstIndex(of: "_"),
                let version = Int(name[..<underscore]), version > 0,
                name[..<underscore].allSatisfy(\.isASCII),
                name.index(after: underscore) < name.index(name.endIndex, offsetBy: -4)
            else {
                throw MigrationError.badFileName(name)
            }
            let path = directory.appendingPathComponent(name).path
            guard let data = FileManager.default.contents(atPath: path) else {
                throw MigrationError.directoryUnreadable(path: path, reason: "cannot read file")
            }
            migrations.append(Migration(version: version, fileName: name, sql: String(decoding: data, as: UTF8.self)))
        }
        migrations.sort { $0.version < $1.version }
        for (previous, next) in zip(migrations, migrations.dropFirst()) where previous.version == next.version {
            throw MigrationError.duplicateVersion(next.version, [previous.fileName, next.fileName])
        }
        return migrations
    }

    /// Applies pending migrations using one connection from `client` (whose `run()` must be running).
    /// Returns the migrations this call applied (empty when the database was up to date).
    @discardableResult
    public func migrate(_ client: PostgresClient) async throws -> [Migration] {
        try await client.withConnection { connection in
            try await self.migrate(connection: connection)
        }
    }

    /// Applies pending migrations on `connection`, holding the advisory lock for the whole run.
    @discardableResult
    public func migrate(connection: PostgresConnection) async throws -> [Migration] {
        do {
            try await connection.query("SELECT pg_advisory_lock(\(Self.advisoryLockKey))", logger: logger)
        } catch {
            throw MigrationError.bookkeepingFailed("cannot take the migration lock: \(DatabaseConnection.describe(error))")
        }
        do {
            let applied = try await applyPending(connection: connection)
            try await unlock(connection)
            return applied
        } catch {
            try? await unlock(connection)
            throw error
        }
    }

    private func unlock(_ connection: PostgresConnection) async throws {
        try await connection.query("SELECT pg_advisory_unlock(\(Self.advisoryLockKey))", logger: logger)
    }

    private struct AppliedRecord {
        var version: Int
        var name: String
        var checksum: String
    }

    private func applyPending(connection: PostgresConnection) async throws -> [Migration] {
        var records: [AppliedRecord] = []
        do {
            try await connection.query(
                """
                CREATE TABLE IF NOT EXISTS schema_migrations (
                    version     integer PRIMARY KEY,
                    name        text NOT NULL,
                    checksum    text NOT NULL,
                    applied_at  timestamptz NOT NULL DEFAULT now()
                )
                """, logger: logger)
            let rows = try await connection.query(
                "SELECT version, name, checksum FROM schema_migrations ORDER BY version", logger: logger)
            for try await (version, name, checksum) in rows.decode((Int32, String, String).self) {
                records.append(AppliedRecord(version: Int(version), name: name, checksum: checksum))
            }
        } catch {
            throw MigrationError.bookkeepingFailed("cannot read schema_migrations: \(DatabaseConnection.describe(error))")
        }

        let byVersion = Dictionary(uniqueKeysWithValues: migrations.map { ($0.version, $0) })
        let newestFile = migrations.last
        if let newestRecord = records.last, newestRecord.version > (newestFile?.version ?? 0) {
            throw MigrationError.databaseNewerThanFiles(
                version: newestRecord.version, name: newestRecord.name, newestFile: newestFile?.fileName)
        }
        for record in records {
            guard let migration = byVersion[record.version] else {
                throw MigrationError.appliedMigrationMissing(version: record.version, name: record.name)
            }
            if migration.checksum != record.checksum {
                throw MigrationError.editedAfterApplied(
                    fileName: migration.fileName, recordedChecksum: record.checksum, fileChecksum: migration.checksum)
            }
        }

        let appliedVersions = Set(records.map(\.version))
        var appliedNow: [Migration] = []
        for migration in migrations where !appliedVersions.contains(migration.version) {
            try await apply(migration, connection: connection)
            appliedNow.append(migration)
        }
        if appliedNow.isEmpty {
            logger.debug("database schema is up to date", metadata: ["version": "\(newestFile?.version ?? 0)"])
        }
        return appliedNow
    }

    private func apply(_ migration: Migration, connection: PostgresConnection) async throws {
        let statements = SQLScript.statements(in: migration.sql)
        let clock = ContinuousClock()
        let started = clock.now
        do {
            try await connection.withTransaction(logger: logger) { connection in
                for (index, statement) in statements.enumerated() {
                    do {
                        try await connection.query(PostgresQuery(unsafeSQL: statement.sql), logger: self.logger)
                    } catch {
                        throw MigrationError.statementFailed(
                            fileName: migration.fileName, statement: index + 1, line: statement.line,
                            reason: DatabaseConnection.describe(error))
                    }
                }
                do {
                    try await connection.query(
                        """
                        INSERT INTO schema_migrations (version, name, checksum)
                        VALUES (\(Int32(migration.version)), \(migration.fileName), \(migration.checksum))
                        """, logger: self.logger)
                } catch {
                    throw MigrationError.bookkeepingFailed(
                        "cannot record \(migration.fileName): \(DatabaseConnection.describe(error))")
                }
            }
        } catch let error as PostgresTransactionError {
            if let migrationError = error.closureError as? MigrationError { throw migrationError }
            throw MigrationError.bookkeepingFailed(
                "transaction for \(migration.fileName) failed: \(DatabaseConnection.describe(error))")
        }
        logger.info(
            "applied migration",
            metadata: [
                "migration": "\(migration.fileName)", "statements": "\(statements.count)",
                "duration": "\(clock.now - started)",
            ])
    }
}

/// Splits an SQL script into statements at top-level semicolons.
///
/// Understands `'strings'` (with `''`), `E'escape strings'` (with backslashes), `"identifiers"`, `-- comments`,
/// nested `/* comments */` and dollar quotes (`$$...$$`, `$tag$...$tag$`). Empty statements and statements made
/// only of comments are dropped.
enum SQLScript {
    /// One statement and the 1-based line where its first token starts.
    struct Statement: Equatable {
        var sql: String
        var line: Int
    }

    static func statements(in script: String) -> [Statement] {
        let bytes = Array(script.utf8)
        let count = bytes.count
        var result: [Statement] = []

        func isIdentifierByte(_ byte: UInt8) -> Bool {
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == 0x5F || byte == 0x24 || byte >= 0x80
        }

        var index = 0
        var statementStart = 0
        var firstContent: Int? = nil
        var lineCountedUpTo = 0
        var line = 1
        func lineNumber(at position: Int) -> Int {
            while lineCountedUpTo < position {
                if bytes[lineCountedUpTo] == 0x0A { line += 1 }
                lineCountedUpTo += 1
            }
            return line
        }
        func emit(upTo end: Int) {
            defer {
                statementStart = end + 1
                firstContent = nil
            }
            guard let first = firstContent else { return }
            let text = String(decoding: bytes[statementStart..<end], as: UTF8.self)
                .trimmingCharacters(in: .whitespacesAndNewlines)
            result.append(Statement(sql: text, line: lineNumber(at: first)))
        }

        while index < count {
            let byte = bytes[index]
            let next: UInt8? = index + 1 < count ? bytes[index + 1] : nil
            switch byte {
            case UInt8(ascii: "-") where next == UInt8(ascii: "-"):
                while index < count && bytes[index] != 0x0A { index += 1 }
                continue
            case UInt8(ascii: "/") where next == UInt8(ascii: "*"):
                var depth = 1
                index += 2
                while index < count && depth > 0 {
                    if bytes[index] == UInt8(ascii: "/") && index + 1 < count && bytes[index + 1] == UInt8(ascii: "*") {
                        depth += 1
                        index += 2
                    } else if bytes[index] == UInt8(ascii: "*") && index + 1 < count
                        && bytes[index + 1] == UInt8(ascii: "/")
                    {
                        depth -= 1
                        index += 2
                    } else {
                        index += 1
                    }
                }
                continue
            case UInt8(ascii: ";"):
                emit(upTo: index)
                index += 1
                continue
            case 0x20, 0x09, 0x0A, 0x0D, 0x0C:
                index += 1
                continue
            default:
                break
            }

            if firstContent == nil { firstContent = index }
            switch byte {
            case UInt8(ascii: "'"):
                let escapes =
                    index >= 1 && (bytes[index - 1] == UInt8(ascii: "E") || bytes[index - 1] == UInt8(ascii: "e"))
                    && (index < 2 || !isIdentifierByte(bytes[index - 2]))
                index += 1
                while index < count {
                    if escapes && bytes[index] == UInt8(ascii: "\\") {
                        index += 2
                    } else if bytes[index] == UInt8(ascii: "'") {
                        if index + 1 < count && bytes[index + 1] == UInt8(ascii: "'") {
                            index += 2
                        } else {
                            index += 1
                            break
                        }
                    } else {
                        index += 1
                    }
                }
            case UInt8(ascii: "\""):
                index += 1
                while index < count {
                    if bytes[index] == UInt8(ascii: "\"") {
                        if index + 1 < count && bytes[index + 1] == UInt8(ascii: "\"") {
                            index += 2
                        } else {
                            index += 1
                            break
                        }
                    } else {
                        index += 1
                    }
                }
            case UInt8(ascii: "$") where index == 0 || !isIdentifierByte(bytes[index - 1]):
                // $tag$ opens a dollar quote when the tag is empty or an identifier not starting with a digit.
                var tagEnd = index + 1
                while tagEnd < count && isIdentifierByte(bytes[tagEnd]) && bytes[tagEnd] != UInt8(ascii: "$") {
                    tagEnd += 1
                }
                let tagIsValid =
                    tagEnd < count && bytes[tagEnd] == UInt8(ascii: "$")
                    && (tagEnd == index + 1 || !(bytes[index + 1] >= 0x30 && bytes[index + 1] <= 0x39))
                guard tagIsValid else {
                    index += 1
                    continue
                }
                let delimiter = Array(bytes[index...tagEnd])
                index = tagEnd + 1
                while index < count {
                    if bytes[index] == UInt8(ascii: "$") && index + delimiter.count <= count
                        && Array(bytes[index..<(index + delimiter.count)]) == delimiter
                    {
                        index += delimiter.count
                        break
                    }
                    index += 1
                }
            default:
                index += 1
            }
        }
        emit(upTo: count)
        return result
    }
}
