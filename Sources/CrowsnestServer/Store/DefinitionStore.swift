import CrowsnestWire
import Foundation
import Logging
import PostgresNIO

/// A tenant-owned object kept as the validated definition the API took: a service, a maintenance window or an
/// alert rule.
public struct StoredDefinition: Sendable, Equatable {
    public var id: UUID
    public var name: String
    public var definition: JSONValue
    public var createdAt: Date
    public var updatedAt: Date
}

/// SQL for the tables of that shape, `services`, `maintenance_windows` and `alert_rules` (id, name, definition, times):
/// create, list, read, replace, delete, each confined to one tenant, at most `table.maximumPerTenant` rows a tenant.
public struct DefinitionStore: Sendable {
    public enum Table: String, Sendable {
        case services
        case maintenanceWindows = "maintenance_windows"
        case alertRules = "alert_rules"

        /// Most rows one tenant may have: 1,000 services or windows; 5,000 alert rules (a few per target).
        public var maximumPerTenant: Int { self == .alertRules ? 5000 : 1000 }

        /// "service", "maintenance window", "alert rule": for messages.
        var noun: String {
            switch self {
            case .services: "service"
            case .maintenanceWindows: "maintenance window"
            case .alertRules: "alert rule"
            }
        }
    }


    public let table: Table
    public let client: PostgresClient
    public let logger: Logger

    public init(_ table: Table, client: PostgresClient, logger: Logger) {
        self.table = table
        self.client = client
        self.logger = logger
    }

    /// Stores a new definition with a new id. Throws `StoreError(.alreadyExists)` for a service name already taken
    /// and `StoreError(.invalid)` at the per-tenant limit.
    public func create(tenantID: UUID, name: String, definition: JSONValue) async throws -> StoredDefinition {
        let created = try await mapConflicts(name: name) {
            try await decode(client.query("""
                INSERT INTO \(unescaped: table.rawValue) (tenant_id, id, name, definition)
                SELECT \(tenantID), \(UUID()), \(name), \(definition.jsonText)::jsonb
                WHERE (SELECT count(*) FROM \(unescaped: table.rawValue) WHERE tenant_id = \(tenantID)) < \(table.maximumPerTenant)
                RETURNING id, name, definition::text, created_at, updated_at
                """, logger: logger))
        }
        guard let row = created.first else {
            throw StoreError(.invalid, "the tenant already has \(table.maximumPerTenant) \(table.noun)s, the most it may have; delete one first")
        }
        return row
    }

    public func list(tenantID: UUID) async throws -> [StoredDefinition] {
        try await decode(client.query("""
            SELECT id, name, definition::text, created_at, updated_at FROM \(unescaped: table.rawValue)
            WHERE tenant_id = \(tenantID) ORDER BY name, id
            """, logger: logger))
    }

    /// A definition found by its id alone, with its tenant (badges name a service by id, with no tenant to
    /// start from; callers must then check that the tenant made it public).
    public func find(id: UUID) async throws -> (tenantID: UUID, stored: StoredDefinition)? {
        let rows = try await client.query("""
            SELECT tenant_id FROM \(unescaped: table.rawValue) WHERE id = \(id)
            """, logger: logger)
        for try await tenantID in rows.decode(UUID.self) {
            guard let stored = try await get(tenantID: tenantID, id: id) else { return nil }
            return (tenantID, stored)
        }
        return nil
    }

    public func get(tenantID: UUID, id: UUID) async throws -> StoredDefinition? {
        try await decode(client.query("""
            SELECT id, name, definition::text, created_at, updated_at FROM \(unescaped: table.rawValue)
            WHERE tenant_id = \(tenantID) AND id = \(id)
            """, logger: logger)).first
    }

    /// Replaces the definition; nil when the tenant has no such row.
    public func update(tenantID: UUID, id: UUID, name: String, definition: JSONValue) async throws -> StoredDefinition? {
        try await mapConflicts(name: name) {
            try await decode(client.query("""
                UPDATE \(unescaped: table.rawValue) SET name = \(name), definition = \(definition.jsonText)::jsonb, updated_at = now()
                WHERE tenant_id = \(tenantID) AND id = \(id)
                RETURNING id, name, definition::text, created_at, updated_at
                """, logger: logger)).first
        }
    }

    /// false when the tenant has no such row.
    public func delete(tenantID: UUID, id: UUID) async throws -> Bool {
        let rows = try await client.query(
            "DELETE FROM \(unescaped: table.rawValue) WHERE tenant_id = \(tenantID) AND id = \(id) RETURNING id", logger: logger)
        var found = false
        for try await _ in rows.decode(UUID.self) { found = true }
        return found
    }

    private func decode(_ rows: PostgresRowSequence) async throws -> [StoredDefinition] {
        var result: [StoredDefinition] = []
        for try await (id, name, definition, createdAt, updatedAt) in rows.decode((UUID, String, String, Date, Date).self) {
            result.append(StoredDefinition(id: id, name: name, definition: try JSONValue.parse(Data(definition.utf8)),
                                           createdAt: createdAt, updatedAt: updatedAt))
        }
        return result
    }

    private func mapConflicts<T>(name: String, _ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as PSQLError where error.serverInfo?[.sqlState] == "23505" {
            throw StoreError(.alreadyExists, "a \(table.noun) named \"\(name)\" already exists; choose another name or update that \(table.noun)")
        }
    }
}
