import CrowsnestWire
import Foundation
import Synchronization

/// One established agent session on this replica, as the check coordinator sees it: who the agent is, its labels,
/// when it was last heard from, and how to push an `Assign` to it.
public struct LiveAgent: Sendable {
    public var tenantID: UUID
    public var agentID: UUID
    public var sessionID: UUID
    public var hostname: String
    /// The agent's `key=value` labels from its Hello (malformed ones already dropped).
    public var labels: Set<String>
    /// Sends one frame on the session; throws once the connection is gone.
    public var send: @Sendable (Crowsnest_V1_Frame) async throws -> Void
    /// The last time a frame arrived on the session (any frame: batches, heartbeats).
    public var heardAt: ContinuousClock.Instant

    public init(tenantID: UUID, agentID: UUID, sessionID: UUID, hostname: String, labels: Set<String>,
                heardAt: ContinuousClock.Instant = .now, send: @escaping @Sendable (Crowsnest_V1_Frame) async throws -> Void) {
        self.tenantID = tenantID
        self.agentID = agentID
        self.sessionID = sessionID
        self.hostname = hostname
        self.labels = labels
        self.heardAt = heardAt
        self.send = send
    }

    /// The holder name of the leases this agent's runs are given under (`check:{id}` terms).
    public var leaseHolder: String { Self.leaseHolder(agentID: agentID) }

    public static func leaseHolder(agentID: UUID) -> String { "agent:" + agentID.uuidString.lowercased() }
}

/// The agent sessions established on this replica, by agent. A newer session of the same agent replaces the older
/// one; a session leaving removes only itself. Locks are held for dictionary operations only.
public final class LiveSessions: Sendable {
    private let sessions = Mutex<[UUID: LiveAgent]>([:])

    public init() {}

    public func register(_ agent: LiveAgent) {
        sessions.withLock { $0[agent.agentID] = agent }
    }

    /// Removes the agent's entry when it is still this session's.
    public func unregister(agentID: UUID, sessionID: UUID) {
        sessions.withLock { all in
            if all[agentID]?.sessionID == sessionID { all[agentID] = nil }
        }
    }

    /// Notes that a frame arrived on the session.
    public func heard(agentID: UUID, sessionID: UUID, at instant: ContinuousClock.Instant = .now) {
        sessions.withLock { all in
            if all[agentID]?.sessionID == sessionID { all[agentID]?.heardAt = instant }
        }
    }

    /// The sessions heard from within `window` of `now`: the agents that can be given runs. A session that went
    /// silent (a stopped process behind an open connection) drops out here long before its connection times out.
    public func responsive(within window: Duration, now: ContinuousClock.Instant = .now) -> [LiveAgent] {
        sessions.withLock { all in all.values.filter { now - $0.heardAt <= window } }
    }

    public var count: Int { sessions.withLock { $0.count } }
}
