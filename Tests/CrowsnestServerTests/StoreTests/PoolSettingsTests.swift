import Foundation
import PostgresNIO
import XCTest

@testable import CrowsnestServer

/// Every pool's sessions carry its statement and lock timeouts, so an API query that runs away is cancelled by
/// PostgreSQL instead of holding a connection.
final class PoolSettingsTests: XCTestCase {
    func testTheAPIPoolsSessionsHaveTheirTimeoutsAndAStatementOverItIsCancelled() async throws {
        try await TestPostgres.withTestDatabaseConfiguration { _, configuration in
            XCTAssertEqual(ServerDatabase.PoolSettings.api.statementTimeout, .seconds(15))
            var short = ServerDatabase.PoolSettings.api
            short.statementTimeout = .milliseconds(300)
            try await TestPostgres.withRunningClient(ServerDatabase.PoolSettings.api.apply(to: configuration)) { api in
                let rows = try await api.query("SELECT current_setting('statement_timeout'), current_setting('lock_timeout'), current_setting('application_name')")
                for try await (statement, lock, name) in rows.decode((String, String, String).self) {
                    XCTAssertEqual(statement, "15s")
                    XCTAssertEqual(lock, "5s")
                    XCTAssertEqual(name, "crowsnest-api")
                }
            }
            try await TestPostgres.withRunningClient(short.apply(to: configuration)) { api in
                do {
                    _ = try await api.query("SELECT pg_sleep(5)").collect()
                    XCTFail("a statement longer than the pool's timeout must be cancelled")
                } catch let error as PSQLError {
                    XCTAssertEqual(error.serverInfo?[.sqlState], "57014", "query_canceled: \(String(reflecting: error))")
                }
            }
        }
    }

    func testThePoolMonitorCountsThisReplicasConnectionsByPoolAndState() async throws {
        try await TestPostgres.withTestDatabaseConfiguration { _, configuration in
            let mine = ServerDatabase.PoolSettings.api.tagged("replica1"), other = ServerDatabase.PoolSettings.api.tagged("replica2")
            XCTAssertEqual(mine.name, "crowsnest-api:replica1")
            try await TestPostgres.withRunningClient(other.apply(to: configuration)) { otherReplica in
                _ = try await otherReplica.query("SELECT 1").collect()  // another replica's connection, idle now
                try await TestPostgres.withRunningClient(mine.apply(to: configuration)) { api in
                    let counts = try await DatabasePoolMonitor.connections(client: api, applicationNames: ["api": mine.name],
                                                                           logger: TestPostgres.logger)
                    XCTAssertEqual(counts["api"]?["active"], 1, "the monitor's own query: \(counts)")
                    XCTAssertEqual(counts["api"]?.values.reduce(0, +), 1, "the other replica's connection is not counted: \(counts)")
                    let both = try await DatabasePoolMonitor.connections(client: api, applicationNames: ["api": mine.name, "other": other.name],
                                                                         logger: TestPostgres.logger)
                    XCTAssertEqual(both["other"]?["idle"], 1, "\(both)")
                }
            }
        }
    }
}
