import CrowsnestWire
import Foundation
import Logging
import PostgresNIO
import XCTest

@testable import CrowsnestServer

/// `crowsnest-server tenant allow-network NAME CIDR`: what it stores, for whom, and what it refuses.
final class TenantAllowedNetworksTests: XCTestCase {
    private static let logger = Logger(label: "crowsnest.tests.allowed-networks")

    func testANetworkIsStoredNormalisedOncePerTenantAndOpensTheGuardForItOnly() async throws {
        let logger = Self.logger
        try await TestPostgres.withTestDatabase { client in
            let admin = ServerAdministration(client: client, logger: logger)
            let acme = try await admin.createTenant(name: "acme")
            let other = try await admin.createTenant(name: "other")
            let first = try await admin.allowNetwork(tenant: "acme", cidr: " 10.20.0.0/16 ")
            XCTAssertEqual(first.network.description, "10.20.0.0/16")
            XCTAssertTrue(first.added)
            let again = try await admin.allowNetwork(tenant: "acme", cidr: "10.20.0.0/16")
            XCTAssertFalse(again.added, "allowing it twice changes nothing")
            _ = try await admin.allowNetwork(tenant: "acme", cidr: "169.254.169.254")

            let tenants = TenantStore(client: client, logger: logger)
            let allowed = try await tenants.allowedNetworks(tenantID: acme)
            XCTAssertEqual(allowed.map(\.description), ["10.20.0.0/16", "169.254.169.254/32"])
            let others = try await tenants.allowedNetworks(tenantID: other)
            XCTAssertEqual(others, [], "another tenant's checks gain nothing")

            let guardOfServer = AddressGuard(runner: .server, allowedNetworks: allowed)
            XCTAssertNil(guardOfServer.refusal(for: IPAddress("10.20.1.1")!))
            XCTAssertNotNil(guardOfServer.refusal(for: IPAddress("10.21.1.1")!))
        }
    }

    func testABadNetworkOrAnUnknownTenantIsRefusedWithoutWriting() async throws {
        let logger = Self.logger
        try await TestPostgres.withTestDatabase { client in
            let admin = ServerAdministration(client: client, logger: logger)
            let acme = try await admin.createTenant(name: "acme")
            for bad in ["10.0.0.0/33", "intranet.example", "", "10.0.0.0/8/8"] {
                do {
                    _ = try await admin.allowNetwork(tenant: "acme", cidr: bad)
                    XCTFail("\(bad) was accepted")
                } catch {
                    XCTAssertTrue(String(describing: error).contains("is not an IP address or CIDR network"), "\(error)")
                }
            }
            do {
                _ = try await admin.allowNetwork(tenant: "nobody", cidr: "10.0.0.0/8")
                XCTFail("an unknown tenant was accepted")
            } catch {
                XCTAssertTrue(String(describing: error).contains("no tenant named \"nobody\""), "\(error)")
            }
            let stored = try await TenantStore(client: client, logger: logger).allowedNetworks(tenantID: acme)
            XCTAssertEqual(stored, [])
        }
    }
}
