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

    /// Time per state of `targetIDs` summed per kind (`host`, `container`, `check`) over each window
    /// `[froms[i], to)`, less the time inside `maintenance` (normalized, non-overlapping intervals), computed in
    /// PostgreSQL: thousands of targets' spans come back as a few rows. Time no span covers is not counted (the
    /// caller knows each window's length and calls the rest unknown).
    /// - Returns: per window (in the order of `froms`), per kind, µs per stored state.
    public func stateTotals(tenantID: UUID, targetIDs: [String], to: Int64, froms: [Int64],
                            maintenance: [(start: Int64, end: Int64)]) async throws -> [[String: [SpanState: Int64]]] {
        var result = Array(repeating: [String: [SpanState: Int64]](), count: froms.count)
        guard !targetIDs.isEmpty, let earliest = froms.min() else { return result }
        func time(_ micros: Int64) -> Date { Date(timeIntervalSince1970: Double(micros) / 1e6) }
        // One column per window: the spans' time inside it (whole or, joined with the maintenance intervals, the
        // part inside each interval). Timestamps are bound; the window index only picks a bind.
        var binds = PostgresBindings()
        binds.append(tenantID)
        binds.append(targetIDs)
        binds.append(time(to))
        binds.append(time(earliest))
        var insideColumns: [String] = [], overlapColumns: [String] = []
        for from in froms {
            binds.append(time(from))
            let bind = "$\(binds.count)"
            insideColumns.append("(extract(epoch FROM sum(greatest(interval '0', least(s.ended_at, $3) - greatest(s.started_at, \(bind))))) * 1000000)::int8")
            overlapColumns.append("(extract(epoch FROM sum(greatest(interval '0', least(s.ended_at, $3, m.e) - greatest(s.started_at, \(bind), m.s)))) * 1000000)::int8")
        }
        binds.append(maintenance.map { time($0.start) })
        let startsBind = "$\(binds.count)"
        binds.append(maintenance.map { time($0.end) })
        let endsBind = "$\(binds.count)"
        let spansInRange = """
            WHERE s.tenant_id = $1 AND s.target_id = ANY($2) AND s.started_at < $3 AND (s.ended_at IS NULL OR s.ended_at > $4)
            """
        let inside = PostgresQuery(unsafeSQL: """
            SELECT left(s.target_id, 1), s.state, \(insideColumns.joined(separator: ", "))
            FROM status_spans s \(spansInRange) GROUP BY 1, 2
            """, binds: binds)
        let overlap = PostgresQuery(unsafeSQL: """
            SELECT left(s.target_id, 1), s.state, \(overlapColumns.joined(separator: ", "))
            FROM status_spans s JOIN unnest(\(startsBind)::timestamptz[], \(endsBind)::timestamptz[]) AS m(s, e)
              ON s.started_at < m.e AND (s.ended_at IS NULL OR s.ended_at > m.s)
            \(spansInRange) GROUP BY 1, 2
            """, binds: binds)
        let queries: [(PostgresQuery, Int64)] = maintenance.isEmpty ? [(inside, Int64(1))] : [(inside, Int64(1)), (overlap, Int64(-1))]
        for (query, sign) in queries {
            for try await row in try await client.query(query, logger: logger) {
                let cells = row.makeRandomAccess()
                let prefix = try cells[0].decode(String.self), stateText = try cells[1].decode(String.self)
                guard let state = SpanState(rawValue: stateText), let kind = TargetID.kind(prefix: prefix) else { continue }
                for index in froms.indices {
                    result[index][kind, default: [:]][state, default: 0] += sign * (try cells[2 + index].decode(Int64?.self) ?? 0)
                }
            }
        }
        return result
    }

    /// The newest span of each of `targetIDs`: its state, start and end (µs; nil while open).
    public func lastSpans(tenantID: UUID, targetIDs: [String]) async throws -> [String: SpanInterval] {
        guard !targetIDs.isEmpty else { return [:] }
        let rows = try await client.query("""
            SELECT t.id, s.state, (extract(epoch FROM s.started_at) * 1000000)::int8, (extract(epoch FROM s.ended_at) * 1000000)::int8,
                   s.cause
            FROM unnest(\(targetIDs)::text[]) AS t(id)
            CROSS JOIN LATERAL (SELECT state, started_at, ended_at, cause FROM status_spans
                                WHERE tenant_id = \(tenantID) AND target_id = t.id ORDER BY started_at DESC LIMIT 1) s
            """, logger: logger)
        var spans: [String: SpanInterval] = [:]
        for try await (target, state, start, end, cause) in rows.decode((String, String, Int64, Int64?, String).self) {
            spans[target] = SpanInterval(state: SpanState(rawValue: state) ?? .unknown, startMicros: start, endMicros: end, cause: cause)
        }
        return spans
    }
}
