import Foundation
import Logging
import PostgresNIO

/// Whether a host's agent is reporting, read from the host's open status span (`h-<agent id>`), which ingest
/// opens as `up` and the liveness job turns `unknown` after two sampling intervals plus a grace with no batch.
/// Never `down`: a silent agent says nothing about whether its host runs.
public enum HostLiveness: String, Sendable, Codable {
    /// Batches arrive.
    case up
    /// No batch for two sampling intervals plus the grace, or never seen since enrollment.
    case unknown

    /// Seconds added to two sampling intervals before a silent host turns unknown.
    public static let graceSeconds = 10

    /// The SQL expression reading this from the host's open span (table alias `a` for `agents`), so every reader
    /// uses the same rule.
    static let sqlExpression = """
        COALESCE((SELECT s.state FROM status_spans s
                  WHERE s.tenant_id = a.tenant_id AND s.target_id = 'h-' || a.id::text AND s.ended_at IS NULL), 'unknown')
        """
}

/// A host (one agent) as the infrastructure view shows it.
public struct HostSummary: Sendable, Equatable {
    /// The agent's id; the host's target id is `h-<agentID>`.
    public var agentID: UUID
    /// The hostname the agent reported.
    public var hostname: String
    /// Liveness by the database clock.
    public var state: HostLiveness
    /// When the agent last committed a batch; nil when never.
    public var lastSeen: Date?
    /// The agent's version string.
    public var agentVersion: String
    /// Why the agent cannot see containers (e.g. Docker socket not readable); nil when it can.
    public var containersUnavailableReason: String?
    /// The agent's sampling interval in seconds.
    public var intervalSeconds: Int
    /// The agent's clock minus the server's, in ms, from its last Hello or heartbeat; nil when not known.
    public var clockOffsetMillis: Int64? = nil
    /// Strings shortened (or labels dropped) to fit the wire bounds, in total.
    public var truncatedValues: Int64 = 0
    /// Samples skipped because one for the same container and time was already stored, in total.
    public var duplicateSamples: Int64 = 0
    /// Entries in the agent's ingest rejection log (`GET /api/v1/agents/{id}/rejections`).
    public var ingestRejections: Int64 = 0
    /// Batches the agent set aside after the server could not decode them three times, in total.
    public var deadLetteredBatches: Int64 = 0
    /// Sessions of this agent alternated between two boot ids: two hosts seem to share its identity.
    public var cloneSuspected: Bool = false
    /// Containers currently present on the host (not removed), by name.
    public var containers: [ContainerSummary]
}

/// A container's current state as the agent last reported it (`containers` table).
public struct ContainerSummary: Sendable, Equatable {
    /// The host's agent id.
    public var agentID: UUID
    /// The container name (stable across re-creation; part of the target id).
    public var name: String
    /// The image reference.
    public var image: String
    /// Docker's id of the current incarnation.
    public var dockerID: String
    /// Docker's state: `running`, `exited`, `restarting`, ….
    public var state: String
    /// `healthy`, `unhealthy`, `starting` or `none`.
    public var health: String
    /// Output of the last health check probe ('' when none).
    public var healthOutput: String
    /// Last exit code.
    public var exitCode: Int
    /// Docker's restart count.
    public var restartCount: Int
    /// Whether the last exit was an OOM kill.
    public var oomKilled: Bool
    /// When the current incarnation started.
    public var startedAt: Date?
    /// When it last finished.
    public var finishedAt: Date?

    /// The container's target id.
    public var targetID: TargetID { .container(agentID: self.agentID, name: self.name) }
}

/// What a target id refers to within a tenant: its id, kind and display name.
public struct TargetDescriptor: Sendable, Equatable {
    /// The parsed id.
    public var id: TargetID
    /// Hostname for a host, container name for a container.
    public var name: String
    /// Sampling interval of the agent behind the target (seconds).
    public var intervalSeconds: Int
}

/// Read-side queries over agents and containers for the infrastructure view; every query is confined
/// to one tenant.
public struct InfrastructureQueries: Sendable {
    private let database: PostgresClient
    private let logger: Logger

    /// Creates the queries on a running `PostgresClient`.
    public init(database: PostgresClient, logger: Logger) {
        self.database = database
        self.logger = logger
    }

    /// All enrolled, unrevoked hosts of the tenant by hostname, each with its present containers by name.
    public func hosts(tenantID: UUID) async throws -> [HostSummary] {
        var hosts = try await self.hostRows(tenantID: tenantID, agentID: nil)
        guard !hosts.isEmpty else { return [] }
        let containers = try await self.containerRows(tenantID: tenantID, agentID: nil, name: nil, includeRemoved: false)
        var byAgent: [UUID: [ContainerSummary]] = [:]
        for container in containers { byAgent[container.agentID, default: []].append(container) }
        for index in hosts.indices { hosts[index].containers = byAgent[hosts[index].agentID] ?? [] }
        return hosts
    }

    /// The present containers of one host of the tenant, by name.
    public func containers(tenantID: UUID, agentID: UUID) async throws -> [ContainerSummary] {
        try await self.containerRows(tenantID: tenantID, agentID: agentID, name: nil, includeRemoved: false)
    }

    /// A container's Docker labels by name (as the agent last sent them, bounded by the wire's limits).
    public func containerLabels(tenantID: UUID, agentID: UUID, name: String) async throws -> [(key: String, value: String)] {
        let rows = try await database.query("""
            SELECT l.key, l.value FROM containers c CROSS JOIN LATERAL jsonb_each_text(
                CASE WHEN jsonb_typeof(c.labels) = 'object' THEN c.labels ELSE '{}'::jsonb END) AS l(key, value)
            WHERE c.tenant_id = \(tenantID) AND c.agent_id = \(agentID) AND c.name = \(name)
            ORDER BY l.key
            """, logger: logger)
        var labels: [(key: String, value: String)] = []
        for try await (key, value) in rows.decode((String, String).self) { labels.append((key, value)) }
        return labels
    }

    /// One host of the tenant (revoked ones too, so their history stays reachable), without containers.
    public func host(tenantID: UUID, agentID: UUID) async throws -> HostSummary? {
        try await self.hostRows(tenantID: tenantID, agentID: agentID).first
    }

    /// One container of the tenant by host and name, removed or not; nil when the tenant has none such.
    public func container(tenantID: UUID, agentID: UUID, name: String) async throws -> ContainerSummary? {
        try await self.containerRows(tenantID: tenantID, agentID: agentID, name: name, includeRemoved: true).first
    }

    /// Resolves a target id within the tenant (a host, a container, a check); nil when it names nothing the
    /// tenant owns.
    public func describe(tenantID: UUID, target: TargetID) async throws -> TargetDescriptor? {
        switch target {
        case .host(let agentID):
            guard let host = try await self.host(tenantID: tenantID, agentID: agentID) else { return nil }
            return TargetDescriptor(id: target, name: host.hostname, intervalSeconds: host.intervalSeconds)
        case .container(let agentID, let name):
            let rows = try await self.database.query(
                """
                SELECT c.name, a.interval_seconds
                FROM containers c JOIN agents a ON a.tenant_id = c.tenant_id AND a.id = c.agent_id
                WHERE c.tenant_id = \(tenantID) AND c.agent_id = \(agentID) AND c.name = \(name)
                """,
                logger: self.logger
            )
            for try await (containerName, interval) in rows.decode((String, Int32).self) {
                return TargetDescriptor(id: target, name: containerName, intervalSeconds: Int(interval))
            }
            return nil
        case .check(let checkID):
            let rows = try await self.database.query(
                "SELECT name, interval_seconds FROM checks WHERE tenant_id = \(tenantID) AND id = \(checkID)",
                logger: self.logger)
            for try await (name, interval) in rows.decode((String, Int32).self) {
                return TargetDescriptor(id: target, name: name, intervalSeconds: Int(interval))
            }
            return nil
        }
    }

    private func hostRows(tenantID: UUID, agentID: UUID?) async throws -> [HostSummary] {
        var query: PostgresQuery = """
            SELECT a.id, a.hostname, \(unescaped: HostLiveness.sqlExpression), a.last_seen, a.agent_version,
                   a.containers_unavailable_reason, a.interval_seconds, a.clock_offset_ms, a.truncated_values,
                   a.duplicate_samples,
                   (SELECT count(*) FROM ingest_rejections r WHERE r.tenant_id = a.tenant_id AND r.agent_id = a.id),
                   a.dead_lettered_batches, a.clone_suspected
            FROM agents a
            WHERE a.tenant_id = \(tenantID)
            """
        if let agentID {
            query.sql += " AND a.id = $2"
            query.binds.append(agentID)
        } else {
            query.sql += " AND a.revoked_at IS NULL ORDER BY a.hostname, a.id"
        }
        let rows = try await self.database.query(query, logger: self.logger)
        var hosts: [HostSummary] = []
        for try await row in rows {
            let (id, hostname, state, lastSeen, version, reason, interval, offset, truncated, duplicates, rejections, deadLettered, clone) =
                try row.decode((UUID, String, String, Date?, String, String, Int32, Int64?, Int64, Int64, Int64, Int64, Bool).self)
            hosts.append(
                HostSummary(
                    agentID: id,
                    hostname: hostname,
                    state: HostLiveness(rawValue: state) ?? .unknown,
                    lastSeen: lastSeen,
                    agentVersion: version,
                    containersUnavailableReason: reason.isEmpty ? nil : reason,
                    intervalSeconds: Int(interval),
                    clockOffsetMillis: offset,
                    truncatedValues: truncated,
                    duplicateSamples: duplicates,
                    ingestRejections: rejections,
                    deadLetteredBatches: deadLettered,
                    cloneSuspected: clone,
                    containers: []
                )
            )
        }
        return hosts
    }

    private func containerRows(tenantID: UUID, agentID: UUID?, name: String?, includeRemoved: Bool) async throws -> [ContainerSummary] {
        var query: PostgresQuery = """
            SELECT agent_id, name, image, docker_id, state, health, health_output, exit_code, restart_count,
                   oom_killed, started_at, finished_at
            FROM containers
            WHERE tenant_id = \(tenantID)
            """
        if let agentID {
            query.sql += " AND agent_id = $2"
            query.binds.append(agentID)
            if let name {
                query.sql += " AND name = $3"
                query.binds.append(name)
            }
        }
        if !includeRemoved {
            query.sql += " AND removed_at IS NULL"
        }
        query.sql += " ORDER BY agent_id, name"
        let rows = try await self.database.query(query, logger: self.logger)
        var containers: [ContainerSummary] = []
        for try await row in rows {
            let (agentID, name, image, dockerID, state, health, healthOutput, exitCode, restartCount, oomKilled, startedAt, finishedAt) =
                try row.decode((UUID, String, String, String, String, String, String, Int32, Int32, Bool, Date?, Date?).self)
            containers.append(
                ContainerSummary(
                    agentID: agentID, name: name, image: image, dockerID: dockerID, state: state, health: health,
                    healthOutput: healthOutput, exitCode: Int(exitCode), restartCount: Int(restartCount),
                    oomKilled: oomKilled, startedAt: startedAt, finishedAt: finishedAt
                )
            )
        }
        return containers
    }
}
