import Foundation
import Logging
import PostgresNIO
import XCTest

@testable import CrowsnestServer

#if canImport(Glibc)
import Glibc
#endif

final class EmbeddedPostgresTests: XCTestCase {
    private let logger: Logger = {
        var logger = Logger(label: "crowsnest.tests.embedded-postgres")
        logger.logLevel = .warning
        return logger
    }()

    func testStartsUnprivilegedAndAnswersQueriesOnItsUnixSocket() async throws {
        try await TestPostgres.withEmbeddedCluster { cluster, directory in
            try await cluster.start()
            XCTAssertEqual(cluster.socketPath, directory + "/postgres/run/.s.PGSQL.5432")
            XCTAssertTrue(FileManager.default.fileExists(atPath: cluster.socketPath))

            let pid = try XCTUnwrap(cluster.postmasterProcessID)
            let owner = try processOwner(pid)
            if geteuid() == 0 {
                let expected = EmbeddedPostgres.lookupUser(EmbeddedPostgres.defaultSystemUser)?.0
                XCTAssertNotNil(expected, "the server creates its own system user for PostgreSQL")
                XCTAssertEqual(owner, expected, "postmaster must run as its own unprivileged user, not root")
                XCTAssertNotEqual(owner, 0)
            } else {
                XCTAssertEqual(owner, geteuid())
            }

            try await TestPostgres.withRunningClient(try DatabaseConnection.clientConfiguration(embedded: cluster)) { client in
                let user: String? = try await scalar(client, "SELECT current_user::text")
                XCTAssertEqual(user, "crowsnest")
                let database: String? = try await scalar(client, "SELECT current_database()::text")
                XCTAssertEqual(database, "crowsnest")
                let listen: String? = try await scalar(client, "SELECT current_setting('listen_addresses')")
                XCTAssertEqual(listen, "", "the embedded cluster must not listen on TCP")
                let encoding: String? = try await scalar(client, "SELECT pg_encoding_to_char(encoding)::text FROM pg_database WHERE datname = current_database()")
                XCTAssertEqual(encoding, "UTF8")
                let fsync: String? = try await scalar(client, "SELECT current_setting('fsync')")
                XCTAssertEqual(fsync, "on")
            }
        }
    }

    func testStopShutsDownAndRestartOnSameDirectoryKeepsData() async throws {
        try await TestPostgres.withEmbeddedCluster { cluster, directory in
            try await cluster.start()
            try await TestPostgres.withRunningClient(try DatabaseConnection.clientConfiguration(embedded: cluster)) { client in
                try await client.query("CREATE TABLE kept (value text)")
                try await client.query("INSERT INTO kept VALUES ('survives a restart')")
            }
            try await cluster.stop()
            XCTAssertFalse(cluster.isRunning)
            XCTAssertFalse(FileManager.default.fileExists(atPath: cluster.socketPath), "socket must be gone after stop")
            XCTAssertFalse(FileManager.default.fileExists(atPath: cluster.pgDataDirectory + "/postmaster.pid"))

            // A new instance, as a restarted server would create.
            let restarted = EmbeddedPostgres(dataDirectory: directory, logger: logger)
            try await restarted.start()
            try await TestPostgres.withRunningClient(try DatabaseConnection.clientConfiguration(embedded: restarted)) { client in
                let value: String? = try await scalar(client, "SELECT value FROM kept")
                XCTAssertEqual(value, "survives a restart")
            }
            try await restarted.stop()
            XCTAssertFalse(restarted.isRunning)
        }
    }

    func testStartRecoversAfterPostmasterWasKilled() async throws {
        try await TestPostgres.withEmbeddedCluster { cluster, directory in
            try await cluster.start()
            try await TestPostgres.withRunningClient(try DatabaseConnection.clientConfiguration(embedded: cluster)) { client in
                try await client.query("CREATE TABLE committed (value int)")
                try await client.query("INSERT INTO committed VALUES (42)")
            }
            let pid = try XCTUnwrap(cluster.postmasterProcessID)
            XCTAssertEqual(kill(pid, SIGKILL), 0)
            // Wait until the killed postmaster is gone (dead or a zombie).
            for _ in 0..<200 where EmbeddedPostgres.isLivePostgres(pid: pid) {
                try await Task.sleep(for: .milliseconds(25))
            }
            XCTAssertFalse(EmbeddedPostgres.isLivePostgres(pid: pid))
            XCTAssertTrue(
                FileManager.default.fileExists(atPath: cluster.pgDataDirectory + "/postmaster.pid"),
                "the killed postmaster leaves its pid file behind")

            let recovered = EmbeddedPostgres(dataDirectory: directory, logger: logger)
            try await recovered.start()
            let newPid = try XCTUnwrap(recovered.postmasterProcessID)
            XCTAssertNotEqual(newPid, pid)
            try await TestPostgres.withRunningClient(try DatabaseConnection.clientConfiguration(embedded: recovered)) { client in
                let value: Int32? = try await scalar(client, "SELECT value FROM committed")
                XCTAssertEqual(value, 42, "committed data must survive a crash of the postmaster")
            }
            try await recovered.stop()
        }
    }

    func testReusesClusterLeftRunningByAnEarlierServerProcess() async throws {
        try await TestPostgres.withEmbeddedCluster { cluster, directory in
            try await cluster.start()
            let firstPid = try XCTUnwrap(cluster.postmasterProcessID)
            // The earlier server died without stopping its cluster; a new server starts on the same directory.
            let next = EmbeddedPostgres(dataDirectory: directory, logger: logger)
            try await next.start()
            let nextPid = next.postmasterProcessID
            XCTAssertEqual(nextPid, firstPid, "a running cluster of ours is reused, not started twice")
            try await TestPostgres.withRunningClient(try DatabaseConnection.clientConfiguration(embedded: next)) { client in
                let one: Int32? = try await scalar(client, "SELECT 1")
                XCTAssertEqual(one, 1)
            }
            try await next.stop()
            XCTAssertFalse(EmbeddedPostgres.isLivePostgres(pid: firstPid))
        }
    }

    func testRunsAsConfiguredUserWhenRoot() async throws {
        guard geteuid() == 0 else { throw XCTSkip("runAsUser only applies when the server runs as root") }
        guard let (postgresUid, _) = EmbeddedPostgres.lookupUser("postgres") else { throw XCTSkip("no user 'postgres'") }
        try await TestPostgres.withEmbeddedCluster(runAsUser: "postgres") { cluster, _ in
            try await cluster.start()
            let pid = try XCTUnwrap(cluster.postmasterProcessID)
            XCTAssertEqual(try processOwner(pid), postgresUid)
            var info = stat()
            XCTAssertEqual(stat(cluster.pgDataDirectory, &info), 0)
            XCTAssertEqual(info.st_uid, postgresUid, "the cluster's files belong to the user running it")
        }
    }

    func testNobodyIsRefusedAsTheClustersUser() async throws {
        guard geteuid() == 0 else { throw XCTSkip("runAsUser only applies when the server runs as root") }
        try await TestPostgres.withEmbeddedCluster(runAsUser: "nobody") { cluster, _ in
            do {
                try await cluster.start()
                XCTFail("nobody is shared by unrelated daemons: the cluster must not run as it")
            } catch let error as EmbeddedPostgresError {
                XCTAssertTrue(error.description.contains("nobody"), error.description)
            }
        }
    }

    func testTheClusterRefusesAConnectionWithoutThePasswordAndKeepsItsFilesPrivate() async throws {
        try await TestPostgres.withEmbeddedCluster { cluster, directory in
            try await cluster.start()
            var info = stat()
            XCTAssertEqual(stat(cluster.passwordPath, &info), 0)
            XCTAssertEqual(info.st_mode & 0o777, 0o600, "the password file is private")
            XCTAssertEqual(stat(cluster.socketDirectory, &info), 0)
            XCTAssertEqual(info.st_mode & 0o777, 0o700, "the socket directory is private")
            for password in [nil, "wrong-password"] as [String?] {
                let configuration = PostgresConnection.Configuration(
                    unixSocketPath: cluster.socketPath, username: EmbeddedPostgres.username, password: password, database: "crowsnest")
                do {
                    let connection = try await PostgresConnection.connect(configuration: configuration, id: 1, logger: logger)
                    try? await connection.close()
                    XCTFail("a connection with password \(password ?? "none") must be refused")
                } catch let error as PSQLError {
                    let state = error.serverInfo?[.sqlState]
                    XCTAssertTrue(state == "28P01" || state == "28000" || error.code == .saslError || error.code == .authMechanismRequiresPassword,
                                  "expected an authentication failure, got \(DatabaseConnection.describe(error))")
                }
            }
            try await TestPostgres.withRunningClient(try DatabaseConnection.clientConfiguration(embedded: cluster)) { client in
                let one: Int32? = try await scalar(client, "SELECT 1")
                XCTAssertEqual(one, 1, "the password from the data directory works")
            }
        }
    }

    /// A cluster created before passwords (trust authentication, no password file) is converted on the next start.
    func testAClusterFromBeforePasswordsIsConvertedOnUpgrade() async throws {
        try await TestPostgres.withEmbeddedCluster { cluster, directory in
            try await cluster.start()
            // Make it look like an older install: trust rules, no role password, no password file.
            try await TestPostgres.withRunningClient(try DatabaseConnection.clientConfiguration(embedded: cluster)) { client in
                try await client.query("ALTER ROLE crowsnest PASSWORD NULL", logger: logger)
            }
            try await cluster.stop()
            try "local all all trust\n".write(toFile: cluster.pgDataDirectory + "/pg_hba.conf", atomically: false, encoding: .utf8)
            try FileManager.default.removeItem(atPath: cluster.passwordPath)

            let upgraded = EmbeddedPostgres(dataDirectory: directory, logger: logger)
            try await upgraded.start()
            XCTAssertTrue(FileManager.default.fileExists(atPath: upgraded.passwordPath), "a password was generated")
            let rules = try String(contentsOfFile: upgraded.pgDataDirectory + "/pg_hba.conf", encoding: .utf8)
            XCTAssertFalse(rules.contains("trust"), rules)
            let withoutPassword = PostgresConnection.Configuration(
                unixSocketPath: upgraded.socketPath, username: EmbeddedPostgres.username, password: nil, database: "crowsnest")
            do {
                let connection = try await PostgresConnection.connect(configuration: withoutPassword, id: 1, logger: logger)
                try? await connection.close()
                XCTFail("after the upgrade a connection without the password must be refused")
            } catch is PSQLError {}
            try await TestPostgres.withRunningClient(try DatabaseConnection.clientConfiguration(embedded: upgraded)) { client in
                let one: Int32? = try await scalar(client, "SELECT 1")
                XCTAssertEqual(one, 1)
            }
            try await upgraded.stop()
        }
    }

    func testUnknownRunAsUserIsAClearError() async throws {
        guard geteuid() == 0 else { throw XCTSkip("runAsUser only applies when the server runs as root") }
        try await TestPostgres.withEmbeddedCluster(runAsUser: "crowsnest-no-such-user") { cluster, _ in
            do {
                try await cluster.start()
                XCTFail("start must fail for an unknown user")
            } catch let error as EmbeddedPostgresError {
                XCTAssertTrue(error.description.contains("crowsnest-no-such-user"), error.description)
                XCTAssertTrue(error.description.contains("no such user"), error.description)
            }
        }
    }

    func testSocketPathOverTheUnixLimitIsRejectedBeforeAnythingIsCreated() async throws {
        let longDirectory = "/tmp/" + String(repeating: "d", count: 90)
        let cluster = EmbeddedPostgres(dataDirectory: longDirectory, logger: logger)
        do {
            try await cluster.start()
            XCTFail("start must fail for a socket path over 107 bytes")
        } catch let error as EmbeddedPostgresError {
            guard case .socketPathTooLong(let path, let length, let limit) = error else {
                return XCTFail("unexpected error \(error)")
            }
            XCTAssertEqual(path, cluster.socketPath)
            XCTAssertGreaterThan(length, limit)
            XCTAssertEqual(limit, 107)
            XCTAssertTrue(error.description.contains("unix socket limit"), error.description)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: longDirectory))
    }

    func testMissingBinariesAreReportedWithWhereItLooked() async throws {
        let directory = try TestPostgres.makeTemporaryDirectory()
        defer { TestPostgres.removeClusterDirectory(directory) }
        let cluster = EmbeddedPostgres(
            dataDirectory: directory, binDirectory: "/nonexistent/postgresql/bin", logger: logger)
        do {
            try await cluster.start()
            XCTFail("start must fail without binaries")
        } catch let error as EmbeddedPostgresError {
            guard case .binariesNotFound = error else { return XCTFail("unexpected error \(error)") }
            XCTAssertTrue(error.description.contains("/nonexistent/postgresql/bin"), error.description)
        }
    }

    func testInitdbFailureCarriesTheToolOutput() async throws {
        try await TestPostgres.withEmbeddedCluster { cluster, _ in
            // A non-empty PGDATA without PG_VERSION makes initdb refuse.
            try FileManager.default.createDirectory(atPath: cluster.pgDataDirectory, withIntermediateDirectories: true)
            try "junk".write(toFile: cluster.pgDataDirectory + "/junk", atomically: false, encoding: .utf8)
            do {
                try await cluster.start()
                XCTFail("start must fail when initdb fails")
            } catch let error as EmbeddedPostgresError {
                XCTAssertTrue(error.description.hasPrefix("initdb failed"), error.description)
                XCTAssertTrue(error.description.contains("not empty"), error.description)
            }
        }
    }

    private func processOwner(_ pid: Int32) throws -> uid_t {
        var info = stat()
        guard stat("/proc/\(pid)", &info) == 0 else {
            throw XCTSkip("cannot stat /proc/\(pid)")
        }
        return info.st_uid
    }
}

/// First column of the first row of `sql`, decoded as `T`; nil when there is no row.
private func scalar<T: PostgresDecodable>(_ client: PostgresClient, _ sql: String) async throws -> T? {
    let rows = try await client.query(PostgresQuery(unsafeSQL: sql))
    for try await row in rows {
        return try row.decode(T.self)
    }
    return nil
}
