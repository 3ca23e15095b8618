import PostgresNIO
import XCTest

@testable import CrowsnestServer

final class DatabaseConnectionTests: XCTestCase {
    func testParsesTCPURLWithCredentialsPortAndDatabase() throws {
        let configuration = try DatabaseConnection.clientConfiguration(
            url: "postgres://crow%40ops:p%2Fss@db.example.internal:6543/fleet?sslmode=disable&connect_timeout=3")
        XCTAssertEqual(configuration.host, "db.example.internal")
        XCTAssertEqual(configuration.port, 6543)
        XCTAssertNil(configuration.unixSocketPath)
        XCTAssertEqual(configuration.username, "crow@ops")
        XCTAssertEqual(configuration.password, "p/ss")
        XCTAssertEqual(configuration.database, "fleet")
        XCTAssertEqual(configuration.options.connectTimeout, .seconds(3))
    }

    func testDefaultsPortAndDatabaseLikeLibpq() throws {
        let configuration = try DatabaseConnection.clientConfiguration(url: "postgresql://crowsnest@localhost")
        XCTAssertEqual(configuration.port, 5432)
        XCTAssertEqual(configuration.database, "crowsnest")
        XCTAssertNil(configuration.password)
    }

    func testHostParameterWithADirectorySelectsTheUnixSocket() throws {
        let configuration = try DatabaseConnection.clientConfiguration(
            url: "postgres://crowsnest@/fleet?host=/var/run/postgresql")
        XCTAssertEqual(configuration.unixSocketPath, "/var/run/postgresql/.s.PGSQL.5432")
        XCTAssertNil(configuration.host)
        XCTAssertEqual(configuration.database, "fleet")
        let encoded = try DatabaseConnection.clientConfiguration(url: "postgres://crowsnest@%2Frun%2Fpg:5433/fleet")
        XCTAssertEqual(encoded.unixSocketPath, "/run/pg/.s.PGSQL.5433")
    }

    func testIPv6HostLosesItsBrackets() throws {
        let configuration = try DatabaseConnection.clientConfiguration(url: "postgres://u@[::1]:5433/db")
        XCTAssertEqual(configuration.host, "::1")
        XCTAssertEqual(configuration.port, 5433)
    }

    func testRejectsWrongSchemeMissingUserUnknownParametersAndBadSSLMode() {
        let cases: [(String, String)] = [
            ("mysql://u@h/db", "must start with postgres://"),
            ("postgres://h/db", "names no user"),
            ("postgres://u@h/db?sslmode=sometimes", "sslmode 'sometimes'"),
            ("postgres://u@h/db?target_session_attrs=any", "'target_session_attrs' is not supported"),
        ]
        for (url, expected) in cases {
            XCTAssertThrowsError(try DatabaseConnection.clientConfiguration(url: url), url) { error in
                XCTAssertTrue("\(error)".contains(expected), "\(url): \(error)")
            }
        }
    }

    func testErrorsAndRedactionNeverShowThePassword() {
        XCTAssertEqual(
            DatabaseConnection.redact("postgres://u:hunter2@h:5432/db"), "postgres://u:***@h:5432/db")
        XCTAssertThrowsError(try DatabaseConnection.clientConfiguration(url: "postgres://u:hunter2@h/db?bogus=1")) {
            error in
            XCTAssertFalse("\(error)".contains("hunter2"))
        }
        XCTAssertThrowsError(try DatabaseConnection.clientConfiguration(url: "redis://u:hunter2@h/db")) { error in
            XCTAssertFalse("\(error)".contains("hunter2"), "\(error)")
        }
    }

    func testEmbeddedConfigurationUsesTheClusterSocketAndPassword() throws {
        let directory = try TestPostgres.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let cluster = EmbeddedPostgres(dataDirectory: directory, logger: .init(label: "test"))
        let configuration = try DatabaseConnection.clientConfiguration(embedded: cluster)
        XCTAssertEqual(configuration.unixSocketPath, directory + "/postgres/run/.s.PGSQL.5432")
        XCTAssertEqual(configuration.password, try cluster.password())
        XCTAssertEqual(configuration.password?.count, 40)
        XCTAssertEqual(configuration.username, "crowsnest")
        XCTAssertEqual(configuration.database, "crowsnest")
    }
}
