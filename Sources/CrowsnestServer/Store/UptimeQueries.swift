import CrowsnestWire
import Foundation
import Logging
import PostgresNIO

/// A target as uptime reports name it.
public struct NamedTarget: Sendable, Equatable {
    public var id: TargetID
    public var name: String
}

/// Read-side queries the uptime and SLA routes need besides spans: the tenant's name and time zone, which
/// targets exist, and the members of a service. Every query is confined to one tenant.
public struct UptimeQueries: Sendable {
    private let client: PostgresClient
    private let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// The tenant's name and time zone (UTC when the stored name is not a known zone).
    public func tenant(_ tenantID: UUID) async throws -> (name: String, timeZone: TimeZone) {
        let rows = try await client.query("SELECT name, time_zone FROM tenants WHERE id = \(tenantID)", logger: logger)
        for try await (name, zone) in rows.decode((String, String).self) {
            return (name, TimeZone(identifier: zone) ?? TimeZone(identifier: "UTC")!)
        }
        throw StoreError(.notFound, "tenant \(tenantID) does not exist")
    }

    /// Which of `ids` name a host, container (present or removed) or check of the tenant, with their names.
    public func existing(tenantID: UUID, ids: [TargetID]) async throws -> [TargetID: String] {
        var hosts: [UUID] = [], checks: [UUID] = [], containerAgents: [UUID] = [], containerNames: [String] = []
        for id in ids {
            switch id {
            case .host(let agentID): hosts.append(agentID)
            case .check(let checkID): checks.append(checkID)
            case .container(let agentID, let name):
                containerAgents.append(agentID)
                containerNames.append(name)
            }
        }
        var names: [TargetID: String] = [:]
        if !hosts.isEmpty {
            let rows = try await client.query(
                "SELECT id, hostname FROM agents WHERE tenant_id = \(tenantID) AND id = ANY(\(hosts))", logger: logger)
            for try await (id, hostname) in rows.decode((UUID, String).self) { names[.host(agentID: id)] = hostname }
        }
        if !checks.isEmpty {
            let rows = try await client.query(
                "SELECT id, name FROM checks WHERE tenant_id = \(tenantID) AND id = ANY(\(checks))", logger: logger)
            for try await (id, name) in rows.decode((UUID, String).self) { names[.check(checkID: id)] = name }
        }
        if !containerAgents.isEmpty {
            let rows = try await client.query("""
                SELECT c.agent_id, c.name FROM containers c
                JOIN unnest(\(containerAgents)::uuid[], \(containerNames)::text[]) AS wanted(agent_id, name)
                  ON c.agent_id = wanted.agent_id AND c.name = wanted.name
                WHERE c.tenant_id = \(tenantID)
                """, logger: logger)
            for try await (agentID, name) in rows.decode((UUID, String).self) { names[.container(agentID: agentID, name: name)] = name }
        }
        return names
    }

    /// Every current target of the tenant: enrolled, unrevoked hosts; containers not removed; checks. With the
    /// check states (paused or not), which spans do not carry.
    public func allTargets(tenantID: UUID) async throws -> (targets: [NamedTarget], pausedChecks: Set<TargetID>) {
        var targets: [NamedTarget] = []
        let hosts = try await client.query(
            "SELECT id, hostname FROM agents WHERE tenant_id = \(tenantID) AND revoked_at IS NULL ORDER BY hostname, id",
            logger: logger)
        for try await (id, hostname) in hosts.decode((UUID, String).self) { targets.append(NamedTarget(id: .host(agentID: id), name: hostname)) }
        let containers = try await client.query("""
            SELECT c.agent_id, c.name FROM containers c JOIN agents a ON a.tenant_id = c.tenant_id AND a.id = c.agent_id
            WHERE c.tenant_id = \(tenantID) AND c.removed_at IS NULL AND a.revoked_at IS NULL ORDER BY c.agent_id, c.name
            """, logger: logger)
        for try await (agentID, name) in containers.decode((UUID, String).self) {
            targets.append(NamedTarget(id: .container(agentID: agentID, name: name), name: name))
        }
        var paused = Set<TargetID>()
        let checks = try await client.query(
            "SELECT id, name, paused FROM checks WHERE tenant_id = \(tenantID) ORDER BY name, id", logger: logger)
        for try await (id, name, isPaused) in checks.decode((UUID, String, Bool).self) {
            targets.append(NamedTarget(id: .check(checkID: id), name: name))
            if isPaused { paused.insert(.check(checkID: id)) }
        }
        return (targets, paused)
    }

    /// A service's targets: those it lists that exist, and every container (present or removed) and host carrying
    /// all of its labels; by id, each once.
    public func members(tenantID: UUID, service: ServiceDefinition) async throws -> [NamedTarget] {
        let listed = service.targets.compactMap(TargetID.init)
        let names = try await existing(tenantID: tenantID, ids: listed)
        var members = listed.compactMap { id in names[id].map { NamedTarget(id: id, name: $0) } }
        if !service.labels.isEmpty {
            var containerLabels: [String: JSONValue] = [:]
            for label in service.labels {
                let parts = label.split(separator: "=", maxSplits: 1)
                containerLabels[String(parts[0])] = .string(parts.count > 1 ? String(parts[1]) : "")
            }
            let containers = try await client.query("""
                SELECT agent_id, name FROM containers
                WHERE tenant_id = \(tenantID) AND labels @> \(JSONValue.object(containerLabels).jsonText)::jsonb
                ORDER BY agent_id, name
                """, logger: logger)
            for try await (agentID, name) in containers.decode((UUID, String).self) {
                members.append(NamedTarget(id: .container(agentID: agentID, name: name), name: name))
            }
            let hosts = try await client.query("""
                SELECT id, hostname FROM agents WHERE tenant_id = \(tenantID) AND labels @> \(service.labels)::text[] ORDER BY id
                """, logger: logger)
            for try await (agentID, hostname) in hosts.decode((UUID, String).self) {
                members.append(NamedTarget(id: .host(agentID: agentID), name: hostname))
            }
        }
        var seen = Set<TargetID>()
        return members.filter { seen.insert($0.id).inserted }
    }
}
