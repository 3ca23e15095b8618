import Foundation
import Hummingbird
import HummingbirdTesting
import XCTest

@testable import CrowsnestServer

final class APIAuthTests: XCTestCase {
    func testRejectsRequestsWithoutAnAPIKey() async throws {
        try await APITestHarness.withAPI { _, client in
            let response = try await client.execute(uri: "/api/v1/infrastructure", method: .get)
            XCTAssertEqual(response.status, .unauthorized)
            XCTAssertEqual(response.headers[.wwwAuthenticate], "Bearer")
            XCTAssertEqual(response.headers[.contentType], "application/json; charset=utf-8")
            let error = try response.apiError()
            XCTAssertEqual(error.code, "unauthorized")
            XCTAssertTrue(error.message.contains("Authorization: Bearer"), error.message)
        }
    }

    func testRejectsUnknownAndMalformedKeys() async throws {
        try await APITestHarness.withAPI { seed, client in
            let tenant = try await seed.tenant()
            let valid = try await seed.apiKey(tenant: tenant)
            let unknown = APIKeyStore.generateSecret()
            for header in ["Bearer \(unknown)", "Bearer nonsense", "Basic dXNlcjpwYXNz", "Bearer", valid.secret, "Bearer \(valid.secret)x"] {
                let response = try await client.execute(uri: "/api/v1/infrastructure", method: .get, headers: [.authorization: header])
                XCTAssertEqual(response.status, .unauthorized, header)
                XCTAssertEqual(try response.apiError().code, "unauthorized", header)
            }
        }
    }

    func testAcceptsAValidKeyWithEitherRoleAndBearerInAnyCase() async throws {
        try await APITestHarness.withAPI { seed, client in
            let tenant = try await seed.tenant()
            for role in APIKeyRole.allCases {
                let key = try await seed.apiKey(tenant: tenant, role: role)
                XCTAssertEqual(key.role, role)
                let response = try await client.execute(uri: "/api/v1/infrastructure", method: .get, headers: bearer(key.secret))
                XCTAssertEqual(response.status, .ok, "\(role)")
                XCTAssertEqual((try response.jsonObject()["hosts"] as? [Any])?.count, 0)
            }
            let key = try await seed.apiKey(tenant: tenant)
            let response = try await client.execute(
                uri: "/api/v1/infrastructure", method: .get, headers: [.authorization: "bearer  \(key.secret)"]
            )
            XCTAssertEqual(response.status, .ok)
        }
    }

    func testRejectsARevokedKey() async throws {
        try await APITestHarness.withAPI { seed, client in
            let tenant = try await seed.tenant()
            let key = try await seed.apiKey(tenant: tenant)
            let before = try await client.execute(uri: "/api/v1/infrastructure", method: .get, headers: bearer(key.secret))
            XCTAssertEqual(before.status, .ok)

            let revoked = try await APIKeyStore(database: seed.database, logger: APITestHarness.logger).revoke(tenantID: tenant, keyID: key.id)
            XCTAssertTrue(revoked)
            let after = try await client.execute(uri: "/api/v1/infrastructure", method: .get, headers: bearer(key.secret))
            XCTAssertEqual(after.status, .unauthorized)
            XCTAssertEqual(try after.apiError().message, "invalid or revoked API key")
        }
    }

    func testStoresOnlyTheHashOfTheSecret() async throws {
        try await APITestHarness.withAPI { seed, _ in
            let tenant = try await seed.tenant()
            let key = try await seed.apiKey(tenant: tenant, role: .admin)
            XCTAssertTrue(key.secret.hasPrefix("cnk_"))
            XCTAssertEqual(key.secret.count, 4 + 43)
            let rows = try await seed.database.query(
                "SELECT key_hash, role FROM api_keys WHERE tenant_id = \(tenant) AND id = \(key.id)", logger: APITestHarness.logger
            )
            var found = false
            for try await (hash, role) in rows.decode((Data, String).self) {
                found = true
                XCTAssertEqual(hash, APIKeyStore.hash(secret: key.secret))
                XCTAssertEqual(hash.count, 32)
                XCTAssertEqual(role, "admin")
            }
            XCTAssertTrue(found)
        }
    }

    func testCreatingAKeyForAnUnknownTenantFailsClearly() async throws {
        try await APITestHarness.withAPI { seed, _ in
            let missing = UUID()
            do {
                _ = try await seed.apiKey(tenant: missing)
                XCTFail("created a key for a missing tenant")
            } catch let error as APIKeyStoreError {
                XCTAssertEqual(error.description, "cannot create API key: no tenant with id \(missing.uuidString.lowercased())")
            }
        }
    }

    func testGeneratesDistinctWellFormedSecrets() {
        let secrets = (0..<100).map { _ in APIKeyStore.generateSecret() }
        XCTAssertEqual(Set(secrets).count, 100)
        XCTAssertTrue(secrets.allSatisfy(APIKeyStore.looksLikeSecret))
        XCTAssertFalse(APIKeyStore.looksLikeSecret("cnk_short"))
        XCTAssertFalse(APIKeyStore.looksLikeSecret("xyz_" + String(repeating: "a", count: 43)))
        XCTAssertFalse(APIKeyStore.looksLikeSecret("cnk_" + String(repeating: "a", count: 42) + "="))
    }
}
