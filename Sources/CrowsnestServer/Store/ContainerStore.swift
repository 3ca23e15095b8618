import CrowsnestWire
import Foundation
import Logging
import PostgresNIO

/// SQL that writes the `containers` table: the current state of every container, keyed by host and name.
public enum ContainerStore {
    /// Upserts the given containers' identity and state as of the tick `tsMillis`.
    public static func upsert(_ samples: [Crowsnest_V1_ContainerSample], tsMillis: Int64, tenantID: UUID, agentID: UUID,
                              on connection: PostgresConnection, logger: Logger) async throws {
        // One row per name (the last sample wins): ON CONFLICT DO UPDATE cannot touch a row twice in one statement.
        var seen = Set<String>()
        let samples = samples.reversed().filter { !$0.name.isEmpty && seen.insert($0.name).inserted }.reversed() as [Crowsnest_V1_ContainerSample]
        let ts = Double(tsMillis) / 1000
        if !samples.isEmpty {
            let labels = try samples.map { sample -> String in
                String(decoding: try JSONSerialization.data(withJSONObject: sample.labels, options: [.sortedKeys]), as: UTF8.self)
            }
            try await connection.query("""
                INSERT INTO containers (tenant_id, agent_id, name, docker_id, image, labels, state, health, health_output,
                    exit_code, restart_count, oom_killed, started_at, finished_at, cpu_limit_cores, memory_limit_bytes,
                    updated_at, removed_at)
                SELECT \(tenantID), \(agentID), u.name, u.docker_id, u.image, u.labels::jsonb, u.state, u.health, u.health_output,
                    u.exit_code, u.restart_count, u.oom_killed,
                    CASE WHEN u.started_ms > 0 THEN 'epoch'::timestamptz + u.started_ms * interval '1 millisecond' END,
                    CASE WHEN u.finished_ms > 0 THEN 'epoch'::timestamptz + u.finished_ms * interval '1 millisecond' END,
                    u.cpu_limit, u.memory_limit, to_timestamp(\(ts)), NULL
                FROM unnest(\(samples.map(\.name)), \(samples.map(\.dockerID)), \(samples.map(\.image)), \(labels),
                            \(samples.map(\.state)), \(samples.map { $0.health.isEmpty ? "none" : $0.health }),
                            \(samples.map { String($0.healthOutput.prefix(4096)) }), \(samples.map(\.exitCode)),
                            \(samples.map { Int32(clamping: $0.restartCount) }), \(samples.map(\.oomKilled)),
                            \(samples.map(\.startedAtUnixMs)), \(samples.map(\.finishedAtUnixMs)),
                            \(samples.map(\.cpuLimitCores)), \(samples.map { Int64(clamping: $0.memoryLimitBytes) }))
                     AS u(name, docker_id, image, labels, state, health, health_output, exit_code, restart_count,
                          oom_killed, started_ms, finished_ms, cpu_limit, memory_limit)
                ON CONFLICT (tenant_id, agent_id, name) DO UPDATE SET
                    docker_id = EXCLUDED.docker_id, image = EXCLUDED.image, labels = EXCLUDED.labels,
                    state = EXCLUDED.state, health = EXCLUDED.health, health_output = EXCLUDED.health_output,
                    exit_code = EXCLUDED.exit_code, restart_count = EXCLUDED.restart_count,
                    oom_killed = EXCLUDED.oom_killed, started_at = EXCLUDED.started_at,
                    finished_at = EXCLUDED.finished_at, cpu_limit_cores = EXCLUDED.cpu_limit_cores,
                    memory_limit_bytes = EXCLUDED.memory_limit_bytes, updated_at = EXCLUDED.updated_at, removed_at = NULL
                WHERE containers.updated_at <= EXCLUDED.updated_at
                """, logger: logger)
        }
    }

    /// Marks the agent's containers not in `names` as removed (gone from Docker's list) at `tsMillis`.
    public static func markRemoved(exceptNames names: [String], tsMillis: Int64, tenantID: UUID, agentID: UUID,
                                   on connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query("""
            UPDATE containers SET removed_at = to_timestamp(\(Double(tsMillis) / 1000))
            WHERE tenant_id = \(tenantID) AND agent_id = \(agentID) AND removed_at IS NULL
              AND NOT (name = ANY(\(names)))
            """, logger: logger)
    }
}

/// SQL that writes the `container_events` table: Docker events with Docker's own timestamps.
public enum ContainerEventStore {
    public static func insert(_ events: [Crowsnest_V1_ContainerEvent], tenantID: UUID, agentID: UUID,
                              on connection: PostgresConnection, logger: Logger) async throws {
        let events = events.filter { !$0.name.isEmpty && !$0.action.isEmpty }
        guard !events.isEmpty else { return }
        try await connection.query("""
            INSERT INTO container_events (tenant_id, agent_id, name, ts, action, docker_id, exit_code, detail)
            SELECT \(tenantID), \(agentID), u.name, 'epoch'::timestamptz + u.micros * interval '1 microsecond', u.action,
                   u.docker_id, CASE WHEN u.exit_code >= 0 THEN u.exit_code END, u.detail
            FROM unnest(\(events.map(\.name)), \(events.map { $0.timeUnixNano / 1000 }), \(events.map(\.action)),
                        \(events.map(\.dockerID)), \(events.map(\.exitCode)), \(events.map(\.detail)))
                 AS u(name, micros, action, docker_id, exit_code, detail)
            ON CONFLICT DO NOTHING
            """, logger: logger)
    }
}
