import CrowsnestWire
import Foundation
import Logging
import PostgresNIO
import XCTest

@testable import CrowsnestServer

/// The CA lives in the database: created once, imported once from an older data directory, the same for every
/// replica and every administrative command, and refused when a data directory disagrees.
final class AuthorityBootstrapTests: XCTestCase {
    private let logger: Logger = {
        var logger = Logger(label: "crowsnest.tests.authority")
        logger.logLevel = .critical
        return logger
    }()

    private func secret(_ directory: String, _ name: String = "secret.key") throws -> SecretKey {
        try SecretKey.loadOrCreate(path: directory + "/" + name)
    }

    func testTheFirstStartCreatesTheCAInTheDatabaseAndEveryLaterStartAndReplicaUsesIt() async throws {
        try await TestPostgres.withTestDatabase { client in
            let directory = try TestPostgres.makeTemporaryDirectory()
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let key = try secret(directory)
            let noPin = try await CertificateAuthorityStore.pin(client: client, logger: logger)
            XCTAssertNil(noPin, "no CA before the first start")
            let first = try await AuthorityBootstrap.loadCA(client: client, secret: key, dataDirectory: directory + "/replica-1", logger: logger)
            let second = try await AuthorityBootstrap.loadCA(client: client, secret: key, dataDirectory: directory + "/replica-2", logger: logger)
            XCTAssertEqual(first.certificate, second.certificate)
            XCTAssertEqual(first.key.rawRepresentation, second.key.rawRepresentation)
            let pin = try await CertificateAuthorityStore.pin(client: client, logger: logger)
            XCTAssertEqual(pin, CAPin.compute(derBytes: try CertificateAuthority.der(first.certificate)).description)
            XCTAssertFalse(FileManager.default.fileExists(atPath: directory + "/replica-1/ca-key.pem"), "the key is not written to disk")
            // The stored key is sealed: its PEM text is nowhere in the row.
            let rows = try await client.query("SELECT sealed_private_key FROM certificate_authority", logger: logger)
            for try await sealed in rows.decode(ByteBuffer.self) {
                XCTAssertFalse(String(decoding: Array(buffer: sealed), as: UTF8.self).contains("PRIVATE KEY"))
            }
        }
    }

    func testConcurrentFirstStartsAgreeOnOneCA() async throws {
        try await TestPostgres.withTestDatabase { client in
            let directory = try TestPostgres.makeTemporaryDirectory()
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let key = try secret(directory)
            let logger = self.logger
            let pins = try await withThrowingTaskGroup(of: String.self) { group in
                for index in 0..<4 {
                    group.addTask {
                        let ca = try await AuthorityBootstrap.loadCA(client: client, secret: key,
                                                                     dataDirectory: directory + "/r\(index)", logger: logger)
                        return CAPin.compute(derBytes: try CertificateAuthority.der(ca.certificate)).description
                    }
                }
                return try await group.reduce(into: Set<String>()) { $0.insert($1) }
            }
            XCTAssertEqual(pins.count, 1)
        }
    }

    func testAWrongSecretKeyIsNamedAsSuch() async throws {
        try await TestPostgres.withTestDatabase { client in
            let directory = try TestPostgres.makeTemporaryDirectory()
            defer { try? FileManager.default.removeItem(atPath: directory) }
            _ = try await AuthorityBootstrap.loadCA(client: client, secret: try secret(directory), dataDirectory: directory, logger: logger)
            do {
                _ = try await AuthorityBootstrap.loadCA(client: client, secret: try secret(directory, "other.key"), dataDirectory: directory,
                                                        logger: logger)
                XCTFail("another secret key must not open the CA")
            } catch let error as AuthorityBootstrapError {
                XCTAssertTrue(error.description.contains("sealed with another secret key"), error.description)
                XCTAssertTrue(error.description.contains("other.key"), error.description)
            }
        }
    }

    func testACAFromAnOlderDataDirectoryIsImportedOnceAndADifferentOneStopsTheServer() async throws {
        try await TestPostgres.withTestDatabase { client in
            let directory = try TestPostgres.makeTemporaryDirectory()
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let old = try CertificateAuthority.loadOrCreate(directory: directory + "/old", logger: logger)
            let key = try secret(directory)
            let imported = try await AuthorityBootstrap.loadCA(client: client, secret: key, dataDirectory: directory + "/old", logger: logger)
            XCTAssertEqual(imported.certificate, old.caCertificate, "the existing CA is kept, so enrolled agents keep working")
            let pin = try await CertificateAuthorityStore.pin(client: client, logger: logger)
            XCTAssertEqual(pin, old.caPin.description)

            let other = try CertificateAuthority.loadOrCreate(directory: directory + "/other", logger: logger)
            do {
                _ = try await AuthorityBootstrap.loadCA(client: client, secret: key, dataDirectory: directory + "/other", logger: logger)
                XCTFail("a data directory with another CA must stop the server")
            } catch let error as AuthorityBootstrapError {
                XCTAssertTrue(error.description.contains(other.caPin.description), error.description)
                XCTAssertTrue(error.description.contains(old.caPin.description), error.description)
            }
        }
    }

    func testTokenCreateReadsThePinFromTheDatabaseAndSaysSoWhenNoServerHasStarted() async throws {
        try await TestPostgres.withTestDatabase { client in
            let admin = ServerAdministration(client: client, logger: logger)
            _ = try await admin.createTenant(name: "acme")
            do {
                _ = try await admin.createEnrollmentToken(tenant: "acme")
                XCTFail("no CA yet: no pin to print")
            } catch let error as StoreError {
                XCTAssertTrue(error.message.contains("no server has started with this database yet"), error.message)
            }
            let directory = try TestPostgres.makeTemporaryDirectory()
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let ca = try await AuthorityBootstrap.loadCA(client: client, secret: try secret(directory), dataDirectory: directory, logger: logger)
            let (_, pin) = try await admin.createEnrollmentToken(tenant: "acme")
            XCTAssertEqual(pin, CAPin.compute(derBytes: try CertificateAuthority.der(ca.certificate)).description)
        }
    }

    func testASecretKeyFileReadableByOthersOrTooShortIsRefused() throws {
        let directory = try TestPostgres.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/secret.key"
        FileManager.default.createFile(atPath: path, contents: Data(String(repeating: "a", count: 64).utf8),
                                       attributes: [.posixPermissions: 0o644])
        XCTAssertThrowsError(try SecretKey.load(path: path)) { XCTAssertTrue("\($0)".contains("readable by other users"), "\($0)") }
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path)
        XCTAssertNoThrow(try SecretKey.load(path: path))
        FileManager.default.createFile(atPath: path, contents: Data("short".utf8), attributes: [.posixPermissions: 0o600])
        XCTAssertThrowsError(try SecretKey.load(path: path)) { XCTAssertTrue("\($0)".contains("at least 32"), "\($0)") }
        XCTAssertThrowsError(try SecretKey.load(path: directory + "/missing")) { XCTAssertTrue("\($0)".contains("does not exist"), "\($0)") }
    }
}
