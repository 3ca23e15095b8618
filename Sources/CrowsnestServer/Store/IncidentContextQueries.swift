import CrowsnestWire
import Foundation
import Logging
import PostgresNIO

/// What the system already knows around the start of an incident, for the operator reading it: for a container
/// its exit code, OOM kill, restarts, last health output, and CPU throttling and memory against its limit in the
/// five minutes before; for a check the failing run's status code, error and latency. Confined to one tenant.
public struct IncidentContextQueries: Sendable {
    /// How far before an incident the container's figures are read.
    public static let lookBackSeconds = 300

    private let client: PostgresClient
    private let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// The context of an incident of `target` that started at `startMicros`, as a JSON object (empty for hosts).
    public func context(tenantID: UUID, target: TargetID, startMicros: Int64) async throws -> JSONValue {
        let at = Date(unixMicros: startMicros)
        switch target {
        case .container(let agentID, let name):
            return try await containerContext(tenantID: tenantID, agentID: agentID, name: name, at: at)
        case .check(let checkID):
            return try await checkContext(tenantID: tenantID, checkID: checkID, at: at)
        case .host:
            return .object([:])
        }
    }

    private func containerContext(tenantID: UUID, agentID: UUID, name: String, at: Date) async throws -> JSONValue {
        var context: [String: JSONValue] = [:]
        let events = try await client.query("""
            SELECT
                (SELECT exit_code FROM container_events
                 WHERE tenant_id = \(tenantID) AND agent_id = \(agentID) AND name = \(name) AND action = 'die'
                   AND ts BETWEEN \(at) - interval '5 seconds' AND \(at) + interval '5 seconds'
                 ORDER BY abs(extract(epoch FROM ts - \(at))) LIMIT 1),
                EXISTS (SELECT 1 FROM container_events
                        WHERE tenant_id = \(tenantID) AND agent_id = \(agentID) AND name = \(name)
                          AND (action = 'oom' OR (action = 'die' AND detail LIKE '%OOMKilled%'))
                          AND ts BETWEEN \(at) - interval '10 seconds' AND \(at) + interval '5 seconds'),
                (SELECT CASE WHEN detail <> '' THEN detail ELSE btrim(substring(action FROM 15)) END FROM container_events
                 WHERE tenant_id = \(tenantID) AND agent_id = \(agentID) AND name = \(name)
                   AND action LIKE 'health_status%' AND ts <= \(at) + interval '1 second' AND ts > \(at) - interval '1 hour'
                 ORDER BY ts DESC LIMIT 1),
                (SELECT restart_count FROM containers WHERE tenant_id = \(tenantID) AND agent_id = \(agentID) AND name = \(name)),
                (SELECT health_output FROM containers WHERE tenant_id = \(tenantID) AND agent_id = \(agentID) AND name = \(name))
            """, logger: logger)
        for try await (exitCode, oom, healthEvent, restarts, healthOutput) in events.decode((Int32?, Bool, String?, Int32?, String?).self) {
            context["exit_code"] = exitCode.map { .integer(Int64($0)) } ?? .null
            context["oom_killed"] = .bool(oom)
            context["health_status"] = healthEvent.map(JSONValue.string) ?? .null
            context["restart_count"] = restarts.map { .integer(Int64($0)) } ?? .null
            context["health_output"] = healthOutput.map(JSONValue.string) ?? .null
        }
        let figures = try await client.query("""
            SELECT max(coalesce(memory_working_set_bytes, memory_usage_bytes)::float8 * 100 / nullif(memory_limit_bytes, 0))::float8,
                   max(coalesce(memory_working_set_bytes, memory_usage_bytes))::float8,
                   max(nullif(memory_limit_bytes, 0))::float8,
                   (max(cpu_throttled_ns) - min(cpu_throttled_ns))::float8 / 1e9,
                   (max(cpu_throttled_periods) - min(cpu_throttled_periods))::float8,
                   max(cpu_percent)::float8
            FROM container_samples
            WHERE tenant_id = \(tenantID) AND agent_id = \(agentID) AND name = \(name)
              AND ts >= \(at) - \(Self.lookBackSeconds) * interval '1 second' AND ts <= \(at)
            """, logger: logger)
        for try await (memoryPercent, memory, limit, throttledSeconds, throttledPeriods, cpu) in figures.decode(
            (Double?, Double?, Double?, Double?, Double?, Double?).self) {
            context["memory_percent_of_limit_max"] = memoryPercent.map(JSONValue.number) ?? .null
            context["memory_bytes_max"] = memory.map(JSONValue.number) ?? .null
            context["memory_limit_bytes"] = limit.map(JSONValue.number) ?? .null
            context["cpu_throttled_seconds"] = throttledSeconds.map(JSONValue.number) ?? .null
            context["cpu_throttled_periods"] = throttledPeriods.map(JSONValue.number) ?? .null
            context["cpu_percent_max"] = cpu.map(JSONValue.number) ?? .null
        }
        context["look_back_seconds"] = .integer(Int64(Self.lookBackSeconds))
        return .object(context)
    }

    private func checkContext(tenantID: UUID, checkID: UUID, at: Date) async throws -> JSONValue {
        // The failing run that opened the incident: the first failed result from (about) its start.
        let rows = try await client.query("""
            SELECT http_status, error, latency_ms, ts, runner FROM check_results
            WHERE tenant_id = \(tenantID) AND check_id = \(checkID) AND NOT ok
              AND slot_at >= \(at) - interval '1 day' AND ts >= \(at) - interval '1 second'
            ORDER BY ts LIMIT 1
            """, logger: logger)
        var context: [String: JSONValue] = ["http_status": .null, "error": .null, "latency_ms": .null, "runner": .null]
        for try await (status, error, latency, ts, runner) in rows.decode((Int32?, String, Double?, Date, String).self) {
            context["http_status"] = status.map { .integer(Int64($0)) } ?? .null
            context["error"] = .string(error)
            context["latency_ms"] = latency.map(JSONValue.number) ?? .null
            context["runner"] = .string(runner)
            context["ts"] = .string(RFC3339.string(from: ts))
        }
        return .object(context)
    }
}
