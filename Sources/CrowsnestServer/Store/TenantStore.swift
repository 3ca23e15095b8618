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

    /// The tenant's public status page: its slug (nil while unpublished) and title.
    public func statusPage(tenantID: UUID) async throws -> (slug: String?, title: String) {
        let rows = try await client.query("SELECT status_slug, status_title FROM tenants WHERE id = \(tenantID)", logger: logger)
        for try await (slug, title) in rows.decode((String?, String).self) { return (slug, title) }
        throw StoreError(.notFound, "tenant \(tenantID) does not exist")
    }

    /// Publishes the status page at `slug` (nil unpublishes it) with `title`; a slug another tenant holds is
    /// `alreadyExists`.
    public func setStatusPage(tenantID: UUID, slug: String?, title: String) async throws {
        do {
            try await client.query("""
                UPDATE tenants SET status_slug = \(slug), status_title = \(title) WHERE id = \(tenantID)
                """, logger: logger)
        } catch let error as PSQLError where error.serverInfo?[.sqlState] == "23505" {
            throw StoreError(.alreadyExists, "the status page address \(slug ?? "") is taken by another tenant; choose another slug")
        }
    }

    /// The tenant publishing its status page at `slug`: id, name, page title and time zone; nil when none does.
    public func tenant(statusSlug slug: String) async throws -> (id: UUID, name: String, title: String, timeZone: TimeZone)? {
        let rows = try await client.query("""
            SELECT id, name, status_title, time_zone FROM tenants WHERE status_slug = \(slug)
            """, logger: logger)
        for try await (id, name, title, zone) in rows.decode((UUID, String, String, String).self) {
            return (id, name, title, TimeZone(identifier: zone) ?? TimeZone(identifier: "UTC")!)
        }
        return nil
    }

    /// The id of the tenant called `name`.
    public func id(named name: String) async throws -> UUID {
        let rows = try await client.query("SELECT id FROM tenants WHERE name = \(name)", logger: logger)
        for try await id in rows.decode(UUID.self) { return id }
        throw StoreError(.notFound, "no tenant named \"\(name)\": create it with 'crowsnest-server tenant create \(name)'")
    }
}
