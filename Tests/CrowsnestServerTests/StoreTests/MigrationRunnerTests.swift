import Foundation
import Logging
import PostgresNIO
import XCTest

@testable import CrowsnestServer

final class MigrationRunnerTests: XCTestCase {
    private let logger: Logger = {
        var logger = Logger(label: "crowsnest.tests.migrations")
        logger.logLevel = .warning
        return logger
    }()

    private var directories: [URL] = []

    override func tearDown() {
        for directory in directories { try? FileManager.default.removeItem(at: directory) }
        directories = []
        super.tearDown()
    }

    /// A temp directory holding the given migration files.
    private func migrationsDirectory(_ files: [String: String]) throws -> URL {
        let directory = URL(fileURLWithPath: NSTemporaryDirectory())
            .appendingPathComponent("cn-migrations-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        for (name, sql) in files {
            try sql.write(to: directory.appendingPathComponent(name), atomically: true, encoding: .utf8)
        }
        directories.append(directory)
        return directory
    }

    private let initial = """
        -- the first migration
        CREATE TABLE events (id serial PRIMARY KEY, what text NOT NULL);
        INSERT INTO events (what) VALUES ('0001; with a semicolon in a string');
        """
    private let second = """
        CREATE FUNCTION shout(t text) RETURNS text LANGUAGE plpgsql AS $$
        BEGIN
            RETURN upper(t) || '!';
        END;
        $$;
        DO $body$
        BEGIN
            INSERT INTO events (what) VALUES (shout('0002'));
        END
        $body$;
        """
    private let third = """
        ALTER TABLE events ADD COLUMN at timestamptz NOT NULL DEFAULT now();
        INSERT INTO events (what) VALUES ('0003')
        """

    func testAppliesMigrationsInVersionOrderAndRecordsThem() async throws {
        // Names sort differently as strings than as numbers: 10 must run after 9.
        let directory = try migrationsDirectory([
            "0001_initial.sql": initial,
            "0002_functions.sql": second,
            "9_third.sql": third,
            "10_tenth.sql": "INSERT INTO events (what) VALUES ('10');",
            "README.md": "not a migration",
        ])
        try await TestPostgres.withTestDatabase(schema: .empty) { client in
            let runner = try MigrationRunner(directory: directory, logger: logger)
            XCTAssertEqual(runner.migrations.map(\.version), [1, 2, 9, 10])
            let applied = try await runner.migrate(client)
            XCTAssertEqual(applied.map(\.fileName), ["0001_initial.sql", "0002_functions.sql", "9_third.sql", "10_tenth.sql"])

            let events = try await strings(client, "SELECT what FROM events ORDER BY id")
            XCTAssertEqual(events, ["0001; with a semicolon in a string", "0002!", "0003", "10"])
            let recorded = try await strings(
                client, "SELECT version::text || ' ' || name || ' ' || checksum FROM schema_migrations ORDER BY version")
            XCTAssertEqual(recorded, runner.migrations.map { "\($0.version) \($0.fileName) \($0.checksum)" })
            XCTAssertEqual(runner.migrations[0].checksum.count, 64)
        }
    }

    func testSecondRunAppliesNothingAndLaterFilesApplyIncrementally() async throws {
        let first = try migrationsDirectory(["0001_initial.sql": initial])
        let both = try migrationsDirectory(["0001_initial.sql": initial, "0002_functions.sql": second])
        try await TestPostgres.withTestDatabase(schema: .empty) { client in
            let applied = try await MigrationRunner(directory: first, logger: logger).migrate(client)
            XCTAssertEqual(applied.count, 1)
            let again = try await MigrationRunner(directory: first, logger: logger).migrate(client)
            XCTAssertEqual(again, [], "a second run must apply nothing")
            let upgraded = try await MigrationRunner(directory: both, logger: logger).migrate(client)
            XCTAssertEqual(upgraded.map(\.fileName), ["0002_functions.sql"])
            let events = try await strings(client, "SELECT what FROM events ORDER BY id")
            XCTAssertEqual(events, ["0001; with a semicolon in a string", "0002!"], "0001 ran exactly once")
        }
    }

    func testRefusesAMigrationEditedAfterItWasApplied() async throws {
        let original = try migrationsDirectory(["0001_initial.sql": initial])
        let edited = try migrationsDirectory(["0001_initial.sql": initial + "\nCREATE TABLE sneaky (x int);\n"])
        try await TestPostgres.withTestDatabase(schema: .empty) { client in
            try await MigrationRunner(directory: original, logger: logger).migrate(client)
            do {
                try await MigrationRunner(directory: edited, logger: logger).migrate(client)
                XCTFail("an edited migration must be refused")
            } catch let error as MigrationError {
                guard case .editedAfterApplied = error else { return XCTFail("unexpected error \(error)") }
                XCTAssertTrue(
                    error.description.hasPrefix("migration 0001_initial.sql was edited after it was applied"),
                    error.description)
            }
            let sneaky = try await strings(client, "SELECT relname::text FROM pg_class WHERE relname = 'sneaky'")
            XCTAssertEqual(sneaky, [])
        }
    }

    func testRefusesADatabaseMigratedByANewerServer() async throws {
        let newer = try migrationsDirectory(["0001_initial.sql": initial, "0002_functions.sql": second])
        let older = try migrationsDirectory(["0001_initial.sql": initial])
        try await TestPostgres.withTestDatabase(schema: .empty) { client in
            try await MigrationRunner(directory: newer, logger: logger).migrate(client)
            do {
                try await MigrationRunner(directory: older, logger: logger).migrate(client)
                XCTFail("a database newer than the files must be refused")
            } catch let error as MigrationError {
                guard case .databaseNewerThanFiles(let version, let name, let newestFile) = error else {
                    return XCTFail("unexpected error \(error)")
                }
                XCTAssertEqual(version, 2)
                XCTAssertEqual(name, "0002_functions.sql")
                XCTAssertEqual(newestFile, "0001_initial.sql")
                XCTAssertTrue(error.description.contains("newer crowsnest-server"), error.description)
            }
        }
    }

    func testFailingMigrationIsRolledBackAndNamesTheStatement() async throws {
        let directory = try migrationsDirectory([
            "0001_initial.sql": initial,
            "0002_broken.sql": """
                CREATE TABLE half_done (x int);

                SELECT * FROM no_such_table;
                """,
        ])
        try await TestPostgres.withTestDatabase(schema: .empty) { client in
            do {
                try await MigrationRunner(directory: directory, logger: logger).migrate(client)
                XCTFail("a failing migration must throw")
            } catch let error as MigrationError {
                guard case .statementFailed(let fileName, let statement, let line, let reason) = error else {
                    return XCTFail("unexpected error \(error)")
                }
                XCTAssertEqual(fileName, "0002_broken.sql")
                XCTAssertEqual(statement, 2)
                XCTAssertEqual(line, 3)
                XCTAssertTrue(reason.contains("no_such_table"), reason)
                XCTAssertTrue(reason.contains("42P01"), reason)
            }
            let versions = try await strings(client, "SELECT version::text FROM schema_migrations ORDER BY version")
            XCTAssertEqual(versions, ["1"], "0001 stays applied, 0002 is not recorded")
            let halfDone = try await strings(client, "SELECT relname::text FROM pg_class WHERE relname = 'half_done'")
            XCTAssertEqual(halfDone, [], "the failed migration's earlier statements are rolled back")
            // The lock was released: a fixed migration set runs afterwards.
            let fixed = try migrationsDirectory(["0001_initial.sql": initial, "0002_broken.sql": "CREATE TABLE half_done (x int);"])
            let applied = try await MigrationRunner(directory: fixed, logger: logger).migrate(client)
            XCTAssertEqual(applied.map(\.version), [2])
        }
    }

    func testConcurrentRunnersApplyEachMigrationExactlyOnce() async throws {
        let directory = try migrationsDirectory([
            "0001_log.sql": "CREATE TABLE applied_log (migration text NOT NULL);\nINSERT INTO applied_log VALUES ('0001');",
            "0002_slow.sql": "SELECT pg_sleep(0.3);\nINSERT INTO applied_log VALUES ('0002');",
            "0003_more.sql": "CREATE TABLE more (x int);\nINSERT INTO applied_log VALUES ('0003');",
        ])
        try await TestPostgres.withTestDatabaseConfiguration(schema: .empty) { client, configuration in
            // A second client: its own connection, as a second server replica would have.
            let runnerA = try MigrationRunner(directory: directory, logger: logger)
            let runnerB = try MigrationRunner(directory: directory, logger: logger)
            try await TestPostgres.withRunningClient(configuration) { otherClient in
                async let first = runnerA.migrate(client)
                async let second = runnerB.migrate(otherClient)
                let (a, b) = try await (first, second)
                XCTAssertEqual(Set(a.map(\.version)).intersection(b.map(\.version)), [], "no migration applied twice")
                XCTAssertEqual(Set(a.map(\.version)).union(b.map(\.version)), [1, 2, 3])
            }
            let log = try await strings(client, "SELECT migration FROM applied_log ORDER BY migration")
            XCTAssertEqual(log, ["0001", "0002", "0003"])
        }
    }

    func testBundledMigrationsApplyToAnEmptyDatabaseAndAreIdempotent() async throws {
        let runner = try MigrationRunner(logger: logger)
        XCTAssertFalse(runner.migrations.isEmpty, "the server ships at least one migration")
        try await TestPostgres.withTestDatabase(schema: .empty) { client in
            let applied = try await runner.migrate(client)
            XCTAssertEqual(applied.map(\.version), runner.migrations.map(\.version))
            let again = try await runner.migrate(client)
            XCTAssertEqual(again, [])
        }
    }

    /// Migration 0015 on a database holding events: every row moves into its day's partition, keys and defaults stay.
    func testContainerEventsMoveIntoDayPartitionsOnUpgrade() async throws {
        let bundled = try MigrationRunner(logger: logger).migrations
        try await TestPostgres.withTestDatabase(schema: .empty) { client in
            _ = try await MigrationRunner(migrations: bundled.filter { $0.version < 15 }, logger: logger).migrate(client)
            let tenant = UUID(), agent = UUID()
            try await client.query("INSERT INTO tenants (id, name) VALUES (\(tenant), 'acme')", logger: logger)
            try await client.query("""
                INSERT INTO container_events (tenant_id, agent_id, name, ts, action, docker_id, exit_code)
                VALUES (\(tenant), \(agent), 'web', '2025-03-01 23:59:59.5+00', 'die', 'd1', 1),
                       (\(tenant), \(agent), 'web', '2025-03-02 00:00:01+00', 'start', 'd1', NULL),
                       (\(tenant), \(agent), 'db', '2025-03-05 12:00:00+00', 'oom', 'd2', NULL)
                """, logger: logger)
            let applied = try await MigrationRunner(migrations: bundled, logger: logger).migrate(client)
            XCTAssertTrue(applied.map(\.version).contains(15))
            let partitions = try await strings(client, """
                SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
                WHERE p.relname = 'container_events' ORDER BY 1
                """)
            XCTAssertEqual(partitions, ["container_events_20250301", "container_events_20250302", "container_events_20250305"])
            let rows = try await strings(client, "SELECT name || ' ' || action FROM container_events ORDER BY ts")
            XCTAssertEqual(rows, ["web die", "web start", "db oom"])
            let old = try await strings(client, "SELECT relname FROM pg_class WHERE relname LIKE 'container_events_before%'")
            XCTAssertEqual(old, [], "the unpartitioned table is gone")
            // The key still refuses a duplicate, and stored_at keeps its default.
            try await client.query("""
                INSERT INTO container_events (tenant_id, agent_id, name, ts, action, docker_id)
                VALUES (\(tenant), \(agent), 'db', '2025-03-05 12:00:00+00', 'oom', 'd2') ON CONFLICT DO NOTHING
                """, logger: logger)
            let count = try await strings(client, "SELECT count(*)::text || ' ' || bool_and(stored_at IS NOT NULL)::text FROM container_events")
            XCTAssertEqual(count, ["3 true"])
        }
    }

    func testRejectsBadlyNamedAndDuplicateMigrationFiles() throws {
        let badName = try migrationsDirectory(["initial.sql": "SELECT 1;"])
        XCTAssertThrowsError(try MigrationRunner.loadMigrations(from: badName)) { error in
            XCTAssertEqual("\(error)", "migration file initial.sql is not named NNNN_name.sql (a number, an underscore, a name)")
        }
        let duplicate = try migrationsDirectory(["0001_a.sql": "SELECT 1;", "1_b.sql": "SELECT 2;"])
        XCTAssertThrowsError(try MigrationRunner.loadMigrations(from: duplicate)) { error in
            XCTAssertTrue("\(error)".contains("share version 1"), "\(error)")
        }
        XCTAssertThrowsError(
            try MigrationRunner.loadMigrations(from: URL(fileURLWithPath: "/nonexistent/migrations"))
        ) { error in
            XCTAssertTrue("\(error)".hasPrefix("cannot read migrations directory /nonexistent/migrations"), "\(error)")
        }
    }
}

/// All values of the first column of `sql`, as strings.
private func strings(_ client: PostgresClient, _ sql: String) async throws -> [String] {
    var result: [String] = []
    for try await row in try await client.query(PostgresQuery(unsafeSQL: sql)) {
        result.append(try row.decode(String.self))
    }
    return result
}
