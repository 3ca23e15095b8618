import CrowsnestWire
import Foundation
import Logging
import PostgresNIO

/// What the server knows of an agent when its session starts.
public struct AgentRecord: Sendable, Equatable {
    public var tenantID: UUID
    public var agentID: UUID
    public var hostname: String
    /// Highest batch sequence committed for this agent.
    public var committedSeq: UInt64
    public var revoked: Bool
    /// `ts_unix_ms` of the batch committed under `committedSeq` (0 when none).
    public var committedBatchTsMillis: Int64 = 0
    /// Sessions of this agent alternated between two boot ids: two hosts share its identity.
    public var cloneSuspected: Bool = false
}

/// An agent as `crowsnest-server agent list` shows it.
public struct AgentListing: Sendable, Equatable {
    public var agentID: UUID
    public var tenant: String
    public var hostname: String
    public var agentVersion: String
    public var lastSeen: Date?
    public var enrolledAt: Date
    public var revokedAt: Date?
    public var cloneSuspected: Bool
}

/// The state of an agent's live session, as a session checks it.
public enum AgentSessionState: Sendable, Equatable {
    case current
    /// Another session of the agent said Hello after this one.
    case takenOver
    case revoked
    /// The agent row is gone.
    case unknown
}

/// SQL for the `agents` table.
public struct AgentStore: Sendable {
    public let client: PostgresClient
    public let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// Inserts a newly enrolled agent inside the caller's transaction.
    public static func insert(tenantID: UUID, agentID: UUID, host: Crowsnest_V1_HostFacts, agentVersion: String,
                              certificateSerial: String, on connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query("""
            INSERT INTO agents (tenant_id, id, hostname, agent_version, os, kernel, architecture, cpu_count,
                                memory_total_bytes, docker_version, certificate_serial)
            VALUES (\(tenantID), \(agentID), \(host.hostname), \(agentVersion), \(host.os), \(host.kernel),
                    \(host.architecture), \(Int32(clamping: host.cpuCount)), \(Int64(clamping: host.memoryTotalBytes)),
                    \(host.dockerVersion), \(certificateSerial))
            """, logger: logger)
    }

    /// Records a `Hello` and makes `sessionID` the agent's live session (any other session of the agent is taken
    /// over); refreshes the host facts and `last_seen`; returns the agent or nil when unknown.
    public func recordHello(tenantID: UUID, agentID: UUID, hello: Crowsnest_V1_Hello, sessionID: UUID = UUID(),
                            clockOffsetMillis: Int64? = nil) async throws -> AgentRecord? {
        let host = hello.host
        let rows = try await client.query("""
            UPDATE agents SET hostname = \(host.hostname), agent_version = \(hello.agentVersion), os = \(host.os),
                kernel = \(host.kernel), architecture = \(host.architecture), cpu_count = \(Int32(clamping: host.cpuCount)),
                memory_total_bytes = \(Int64(clamping: host.memoryTotalBytes)), docker_version = \(host.dockerVersion),
                boot_id = \(hello.bootID), last_seen = now(), clock_offset_ms = \(clockOffsetMillis),
                labels = \(hello.labels),
                session_id = CASE WHEN revoked_at IS NULL THEN \(sessionID) ELSE session_id END,
                recent_boot_ids = (array_append(recent_boot_ids, \(hello.bootID)))[greatest(1, cardinality(recent_boot_ids) - 6):cardinality(recent_boot_ids) + 1],
                -- The last four sessions, this one included, alternated between two boot ids (A B A B): one host
                -- rebooting cannot do that, two hosts sharing this identity (a cloned VM) do.
                clone_suspected = clone_suspected OR (\(hello.bootID) <> '' AND cardinality(recent_boot_ids) >= 3
                    AND recent_boot_ids[cardinality(recent_boot_ids) - 2] = recent_boot_ids[cardinality(recent_boot_ids)]
                    AND recent_boot_ids[cardinality(recent_boot_ids) - 1] = \(hello.bootID)
                    AND recent_boot_ids[cardinality(recent_boot_ids)] <> \(hello.bootID))
            WHERE tenant_id = \(tenantID) AND id = \(agentID) AND revoked_at IS NULL
            RETURNING hostname, committed_seq, revoked_at IS NOT NULL, clone_suspected, committed_batch_ts_ms
            """, logger: logger)
        for try await (hostname, committed, revoked, clone, committedTs) in rows.decode((String, Int64, Bool, Bool, Int64).self) {
            return AgentRecord(tenantID: tenantID, agentID: agentID, hostname: hostname,
                               committedSeq: UInt64(max(0, committed)), revoked: revoked,
                               committedBatchTsMillis: committedTs, cloneSuspected: clone)
        }
        // Not updated: unknown, or revoked (a revoked certificate changes nothing about its agent, not even last_seen).
        let revoked = try await client.query(
            "SELECT hostname, committed_seq FROM agents WHERE tenant_id = \(tenantID) AND id = \(agentID)", logger: logger)
        for try await (hostname, committed) in revoked.decode((String, Int64).self) {
            return AgentRecord(tenantID: tenantID, agentID: agentID, hostname: hostname,
                               committedSeq: UInt64(max(0, committed)), revoked: true)
        }
        return nil
    }

    /// Inside the ingest transaction: the agent's committed sequence, with its row locked until COMMIT, or nil
    /// when the agent is not registered. Batches at or below it are replays. The row lock serialises two sessions
    /// (or replicas) ingesting for the same agent, so one batch can never be committed twice.
    public static func lockCommittedSeq(tenantID: UUID, agentID: UUID, on connection: PostgresConnection,
                                        logger: Logger) async throws -> UInt64? {
        let rows = try await connection.query("""
            SELECT committed_seq FROM agents WHERE tenant_id = \(tenantID) AND id = \(agentID) FOR UPDATE
            """, logger: logger)
        for try await seq in rows.decode(Int64.self) { return UInt64(max(0, seq)) }
        return nil
    }

    /// Inside the ingest transaction, after `lockCommittedSeq`: records `seq` as committed, the agent as seen now,
    /// and what the newly stored batches reported (batches its spool dropped, why containers are missing, interval).
    public static func recordCommitted(tenantID: UUID, agentID: UUID, seq: UInt64, batchTsMillis: Int64 = 0, spoolDroppedBatches: UInt64,
                                       containersUnavailableReason: String, intervalSeconds: UInt32,
                                       truncatedValues: UInt64 = 0, duplicateSamples: UInt64 = 0,
                                       deadLetteredBatches: UInt64 = 0,
                                       on connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query("""
            UPDATE agents SET committed_seq = \(Int64(clamping: seq)), committed_batch_ts_ms = \(batchTsMillis), last_seen = now(),
                spool_dropped_batches = spool_dropped_batches + \(Int64(clamping: spoolDroppedBatches)),
                truncated_values = truncated_values + \(Int64(clamping: truncatedValues)),
                duplicate_samples = duplicate_samples + \(Int64(clamping: duplicateSamples)),
                dead_lettered_batches = dead_lettered_batches + \(Int64(clamping: deadLetteredBatches)),
                containers_unavailable_reason = \(containersUnavailableReason),
                interval_seconds = \(Int32(clamping: min(3600, max(1, intervalSeconds))))
            WHERE tenant_id = \(tenantID) AND id = \(agentID)
            """, logger: logger)
    }

    /// Records the agent's clock minus the server's, as measured from a heartbeat.
    public func recordClockOffset(tenantID: UUID, agentID: UUID, offsetMillis: Int64) async throws {
        try await client.query(
            "UPDATE agents SET clock_offset_ms = \(offsetMillis) WHERE tenant_id = \(tenantID) AND id = \(agentID)",
            logger: logger)
    }

    /// Records the serial of the agent's renewed certificate.
    public func recordCertificate(tenantID: UUID, agentID: UUID, serial: String) async throws {
        try await client.query(
            "UPDATE agents SET certificate_serial = \(serial) WHERE tenant_id = \(tenantID) AND id = \(agentID)", logger: logger)
    }

    /// Whether `sessionID` is still the agent's live session.
    public func sessionState(tenantID: UUID, agentID: UUID, sessionID: UUID) async throws -> AgentSessionState {
        let rows = try await client.query("""
            SELECT session_id = \(sessionID), revoked_at IS NOT NULL FROM agents WHERE tenant_id = \(tenantID) AND id = \(agentID)
            """, logger: logger)
        for try await (current, revoked) in rows.decode((Bool?, Bool).self) {
            if revoked { return .revoked }
            return current == true ? .current : .takenOver
        }
        return .unknown
    }

    /// Every agent (of one tenant, or all), in tenant and hostname order.
    public func list(tenantName: String?) async throws -> [AgentListing] {
        var query: PostgresQuery = """
            SELECT a.id, t.name, a.hostname, a.agent_version, a.last_seen, a.enrolled_at, a.revoked_at, a.clone_suspected
            FROM agents a JOIN tenants t ON t.id = a.tenant_id
            """
        if let tenantName {
            query.sql += " WHERE t.name = $1"
            query.binds.append(tenantName)
        }
        query.sql += " ORDER BY t.name, a.hostname, a.id"
        let rows = try await client.query(query, logger: logger)
        var result: [AgentListing] = []
        for try await (id, tenant, hostname, version, lastSeen, enrolled, revoked, clone) in rows.decode(
            (UUID, String, String, String, Date?, Date, Date?, Bool).self) {
            result.append(AgentListing(agentID: id, tenant: tenant, hostname: hostname, agentVersion: version, lastSeen: lastSeen,
                                       enrolledAt: enrolled, revokedAt: revoked, cloneSuspected: clone))
        }
        return result
    }

    /// Revokes an agent: its live session is closed within seconds and every reconnect is refused. Returns
    /// false when there is no such agent or it was already revoked.
    @discardableResult
    public func revoke(agentID: UUID) async throws -> Bool {
        let rows = try await client.query("""
            UPDATE agents SET revoked_at = now(), session_id = NULL WHERE id = \(agentID) AND revoked_at IS NULL RETURNING id
            """, logger: logger)
        for try await _ in rows.decode(UUID.self) {
            logger.notice("agent revoked", metadata: ["agent.id": "\(agentID)"])
            return true
        }
        return false
    }

    /// The highest committed sequence of an agent (0 when none).
    public func committedSeq(tenantID: UUID, agentID: UUID) async throws -> UInt64 {
        let rows = try await client.query(
            "SELECT committed_seq FROM agents WHERE tenant_id = \(tenantID) AND id = \(agentID)", logger: logger)
        for try await seq in rows.decode(Int64.self) { return UInt64(max(0, seq)) }
        return 0
    }

    /// The agents of `tenants` that hold a live `agent:{id}` term (a session on some replica, heard from within the
    /// ttl), with their labels: the runners checks can be placed on, across every replica.
    public func liveAgents(tenants: [UUID]) async throws -> [LiveAgentRecord] {
        guard !tenants.isEmpty else { return [] }
        let rows = try await client.query("""
            SELECT a.tenant_id, a.id, a.hostname, a.labels
            FROM leases l JOIN agents a ON l.key = 'agent:' || a.id::text
            WHERE starts_with(l.key, 'agent:') AND l.released_at IS NULL AND l.expires_at > statement_timestamp()
              AND a.tenant_id = ANY(\(tenants)::uuid[]) AND a.revoked_at IS NULL
            """, logger: logger)
        var agents: [LiveAgentRecord] = []
        for try await (tenantID, agentID, hostname, labels) in rows.decode((UUID, UUID, String, [String]).self) {
            agents.append(LiveAgentRecord(tenantID: tenantID, agentID: agentID, hostname: hostname, labels: Set(labels)))
        }
        return agents
    }
}

/// An agent with a live session on some replica (`AgentStore.liveAgents`).
public struct LiveAgentRecord: Sendable, Equatable {
    public var tenantID: UUID
    public var agentID: UUID
    public var hostname: String
    public var labels: Set<String>
}
