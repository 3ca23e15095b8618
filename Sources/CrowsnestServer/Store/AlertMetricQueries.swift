import CrowsnestWire
import Foundation
import Logging
import PostgresNIO

/// What threshold rules read: one metric's raw series for many targets of one tenant in one query per target
/// kind (container samples, host samples, check results), or the times of the events a counted metric counts.
/// Every query is confined to the tenant and bounded by time.
public struct AlertMetricQueries: Sendable {
    public let client: PostgresClient
    public let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// The points of a sampled `metric` for `targets` between the two times, by target id, in time order.
    public func series(tenantID: UUID, metric: AlertMetric, targets: [TargetID], fromMicros: Int64, toMicros: Int64) async throws
        -> [String: [MetricPoint]] {
        var containers: (agents: [UUID], names: [String]) = ([], [])
        var hosts: [UUID] = [], checks: [UUID] = []
        for target in targets {
            switch target {
            case .container(let agentID, let name): containers.agents.append(agentID); containers.names.append(name)
            case .host(let agentID): hosts.append(agentID)
            case .check(let checkID): checks.append(checkID)
            }
        }
        var result: [String: [MetricPoint]] = [:]
        func add(_ rows: PostgresRowSequence, _ id: @escaping (UUID, String) -> TargetID) async throws {
            for try await (owner, name, micros, value) in rows.decode((UUID, String, Int64, Double?).self) {
                guard let value else { continue }
                result[id(owner, name).description, default: []].append(MetricPoint(micros: micros, value: value))
            }
        }
        if !containers.agents.isEmpty, let expression = Self.containerExpression(metric) {
            try await add(client.query(PostgresQuery(unsafeSQL: """
                SELECT s.agent_id, s.name, (extract(epoch FROM s.ts) * 1000000)::int8, (\(expression))::float8
                FROM container_samples s
                JOIN containers c ON c.tenant_id = s.tenant_id AND c.agent_id = s.agent_id AND c.name = s.name
                WHERE s.tenant_id = $1 AND s.ts >= 'epoch'::timestamptz + $2 * interval '1 microsecond'
                  AND s.ts <= 'epoch'::timestamptz + $3 * interval '1 microsecond'
                  AND (s.agent_id, s.name) IN (SELECT * FROM unnest($4::uuid[], $5::text[]))
                ORDER BY s.ts
                """, binds: Self.binds(tenantID, fromMicros, toMicros, containers.agents, containers.names)), logger: logger)) {
                TargetID.container(agentID: $0, name: $1)
            }
        }
        if !hosts.isEmpty, let expression = Self.hostExpression(metric) {
            try await add(client.query(PostgresQuery(unsafeSQL: """
                SELECT agent_id, '', (extract(epoch FROM ts) * 1000000)::int8, (\(expression))::float8
                FROM \(RollupStore.hostSampleSource)
                WHERE tenant_id = $1 AND ts >= 'epoch'::timestamptz + $2 * interval '1 microsecond'
                  AND ts <= 'epoch'::timestamptz + $3 * interval '1 microsecond' AND agent_id = ANY($4::uuid[])
                ORDER BY ts
                """, binds: Self.binds(tenantID, fromMicros, toMicros, hosts)), logger: logger)) { agent, _ in TargetID.host(agentID: agent) }
        }
        if !checks.isEmpty, let expression = Self.checkExpression(metric) {
            // Results are partitioned by their slot, which is never after the run.
            try await add(client.query(PostgresQuery(unsafeSQL: """
                SELECT check_id, '', (extract(epoch FROM ts) * 1000000)::int8, (\(expression))::float8
                FROM check_results
                WHERE tenant_id = $1 AND slot_at >= 'epoch'::timestamptz + $2 * interval '1 microsecond' - interval '1 day'
                  AND ts >= 'epoch'::timestamptz + $2 * interval '1 microsecond'
                  AND ts <= 'epoch'::timestamptz + $3 * interval '1 microsecond' AND check_id = ANY($4::uuid[])
                ORDER BY ts
                """, binds: Self.binds(tenantID, fromMicros, toMicros, checks)), logger: logger)) { check, _ in TargetID.check(checkID: check) }
        }
        return result
    }

    /// For a counted metric: the times of the events it counts since `fromMicros`, by container target id. An OOM
    /// kill is Docker's `oom` event, or (from an agent that saw no `oom`) a `die` noting OOMKilled.
    public func events(tenantID: UUID, metric: AlertMetric, targets: [TargetID], fromMicros: Int64, toMicros: Int64) async throws
        -> [String: [Int64]] {
        var agents: [UUID] = [], names: [String] = []
        for case .container(let agentID, let name) in targets {
            agents.append(agentID)
            names.append(name)
        }
        guard !agents.isEmpty, metric.isCounted else { return [:] }
        let rows = try await client.query("""
            SELECT agent_id, name, action, (extract(epoch FROM ts) * 1000000)::int8 FROM container_events
            WHERE tenant_id = \(tenantID) AND ts >= 'epoch'::timestamptz + \(fromMicros) * interval '1 microsecond'
              AND ts <= 'epoch'::timestamptz + \(toMicros) * interval '1 microsecond'
              AND (agent_id, name) IN (SELECT * FROM unnest(\(agents)::uuid[], \(names)::text[]))
              AND (\(metric == .restarts) AND action = 'start'
                   OR \(metric == .oomKills) AND (action = 'oom' OR (action = 'die' AND detail LIKE '%OOMKilled%')))
            ORDER BY ts LIMIT 100000
            """, logger: logger)
        var starts: [String: [Int64]] = [:], ooms: [String: [Int64]] = [:], dies: [String: [Int64]] = [:]
        for try await (agent, name, action, micros) in rows.decode((UUID, String, String, Int64).self) {
            let key = TargetID.container(agentID: agent, name: name).description
            switch action {
            case "start": starts[key, default: []].append(micros)
            case "oom": ooms[key, default: []].append(micros)
            default: dies[key, default: []].append(micros)
            }
        }
        if metric == .restarts { return starts }
        return dies.merging(ooms) { $1 }
    }

    static func containerExpression(_ metric: AlertMetric) -> String? {
        switch metric {
        case .cpuPercent: "s.cpu_percent"
        case .cpuPercentOfLimit: "s.cpu_percent / nullif(c.cpu_limit_cores, 0)"
        case .memoryPercentOfLimit: "coalesce(s.memory_working_set_bytes, s.memory_usage_bytes)::float8 * 100 / nullif(s.memory_limit_bytes, 0)"
        default: nil
        }
    }

    static func hostExpression(_ metric: AlertMetric) -> String? {
        switch metric {
        case .cpuPercent: "cpu_percent"
        case .cpuPercentOfLimit: "cpu_percent / nullif(cpu_count, 0)"
        case .memoryPercentOfLimit: "(memory_total_bytes - memory_available_bytes)::float8 * 100 / nullif(memory_total_bytes, 0)"
        case .diskPercent: "d.disk_percent"
        default: nil
        }
    }

    static func checkExpression(_ metric: AlertMetric) -> String? {
        switch metric {
        case .certificateDays: "extract(epoch FROM cert_not_after - ts) / 86400"
        case .replicationLagSeconds:
            "CASE WHEN jsonb_typeof(figures->'replication_lag_seconds') = 'number' THEN (figures->>'replication_lag_seconds')::float8 END"
        default: nil
        }
    }

    private static func binds(_ tenantID: UUID, _ from: Int64, _ to: Int64, _ ids: [UUID], _ names: [String]? = nil) -> PostgresBindings {
        var bindings = PostgresBindings()
        bindings.append(tenantID)
        bindings.append(from)
        bindings.append(to)
        bindings.append(ids)
        if let names { bindings.append(names) }
        return bindings
    }
}
