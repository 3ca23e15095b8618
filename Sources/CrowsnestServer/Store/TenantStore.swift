import CrowsnestWire
import Foundation
import Logging
import PostgresNIO

/// SQL for the `tenants` table.
public struct TenantStore: Sendable {
    public let client: PostgresClient
    public let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// Creates a tenant; names are unique. Returns its id.
    public func create(name: String) async throws -> UUID {
        let trimmed = name.trimmingCharacters(in: .whitespaces)
        guard !trimmed.isEmpty, trimmed.count <= 100 else {
            throw StoreError(.invalid, "tenant name must be 1 to 100 characters")
        }
        let id = UUID()
        let rows = try await client.query(
            "INSERT INTO tenants (id, name) VALUES (\(id), \(trimmed)) ON CONFLICT (name) DO NOTHING RETURNING id",
            logger: logger)
        for try await _ in rows { return id }
        throw StoreError(.alreadyExists, "a tenant named \"\(trimmed)\" already exists")
    }

    /// Adds `network` to the networks the tenant's checks may reach whatever the SSRF guard's class of their
    /// addresses; returns false when it was there already.
    @discardableResult
    public func allowNetwork(tenantID: UUID, network: IPNetwork) async throws -> Bool {
        let rows = try await client.query("""
            INSERT INTO tenant_allowed_networks (tenant_id, network) VALUES (\(tenantID), \(network.description))
            ON CONFLICT (tenant_id, network) DO NOTHING RETURNING 1::int4
            """, logger: logger)
        var added = false
        for try await _ in rows.decode(Int32.self) { added = true }
        return added
    }

    /// The networks the tenant allowed, in the order they sort as text.
    public func allowedNetworks(tenantID: UUID) async throws -> [IPNetwork] {
        let rows = try await client.query(
            "SELECT network FROM tenant_allowed_networks WHERE tenant_id = \(tenantID) ORDER BY network", logger: logger)
        var networks: [IPNetwork] = []
        for try await text in rows.decode(String.self) {
            if let network = IPNetwork(text) { networks.append(network) }
        }
        return networks
    }

    /// The id of the tenant called `name`.
    public func id(named name: String) async throws -> UUID {
        let rows = try await client.query("SELECT id FROM tenants WHERE name = \(name)", logger: logger)
        for try await id in rows.decode(UUID.self) { return id }
        throw StoreError(.notFound, "no tenant named \"\(name)\": create it with 'crowsnest-server tenant create \(name)'")
    }
}
