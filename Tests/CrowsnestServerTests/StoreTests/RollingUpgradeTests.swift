import Foundation
import PostgresNIO
import XCTest

@testable import CrowsnestServer

/// Rolling upgrades (Migrations/README.md, rule 2): while the first upgraded replica migrates the shared database,
/// the others still run the previous release. Every query that release runs — recorded from its test suite by
/// `scripts/record-release-queries.sh` into `Fixtures/previous-release-queries.sql` — must still prepare (parse,
/// resolve every table, column, type and operator) against the newest migrations.
final class RollingUpgradeTests: XCTestCase {
    static let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/previous-release-queries.sql")

    static func recordedQueries() throws -> [String] {
        let text = try String(contentsOf: fixture, encoding: .utf8)
        return text.components(separatedBy: "\n;;\n")
            .map { $0.split(separator: "\n").filter { !$0.hasPrefix("-- ") }.joined(separator: "\n") }
            .map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
            .filter { !$0.isEmpty }
    }

    func testThePreviousReleasesQueriesStillPrepareAfterTheNewMigrations() async throws {
        let queries = try Self.recordedQueries()
        XCTAssertGreaterThan(queries.count, 100, "the recording holds the store layer's queries")
        for table in ["container_samples", "status_spans", "check_results", "alert_notifications", "agents"] {
            XCTAssertTrue(queries.contains { $0.contains(table) }, "the recording has queries on \(table)")
        }
        try await TestPostgres.withTestDatabase { client in
            var broken: [String] = []
            try await client.withConnection { connection in
                for query in queries {
                    do {
                        try await connection.query(PostgresQuery(unsafeSQL: "PREPARE previous_release AS " + query),
                                                   logger: TestPostgres.logger)
                        try await connection.query("DEALLOCATE previous_release", logger: TestPostgres.logger)
                    } catch let error as PSQLError {
                        broken.append("\(error.serverInfo?[.message] ?? "\(error)"): \(query.prefix(300))")
                    }
                }
            }
            XCTAssertEqual(broken, [], "queries of the previous release that the new migrations break")
        }
    }

    /// The check itself catches a breaking migration: with a column of a recorded query dropped, it fails.
    func testADroppedColumnThePreviousReleaseReadsIsCaught() async throws {
        let queries = try Self.recordedQueries()
        let reader = try XCTUnwrap(queries.first { $0.contains("last_seen") && $0.contains("agents") })
        try await TestPostgres.withTestDatabase { client in
            try await client.query("ALTER TABLE agents DROP COLUMN last_seen CASCADE", logger: TestPostgres.logger)
            do {
                try await client.query(PostgresQuery(unsafeSQL: "PREPARE previous_release AS " + reader), logger: TestPostgres.logger)
                XCTFail("a query reading a dropped column prepared: \(reader)")
            } catch let error as PSQLError {
                XCTAssertTrue((error.serverInfo?[.message] ?? "").contains("last_seen"), "\(error)")
            }
        }
    }
}
