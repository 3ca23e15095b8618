import CrowsnestWire
import Foundation
import Logging
import Metrics
import PostgresNIO
import ServiceLifecycle

/// Gives every due slot of every check one runner among the agents whose sessions this replica serves, under the
/// check's `check:{id}` lease, and pushes it to that agent as an `Assign` with the term's fencing token.
///
/// Each tick (once a second by default): renew the check leases held by this replica's responsive agents (one
/// statement); read the checks whose current slot needs a runner here; take a lease for each free one, for the
/// candidate `RunnerChoice` picks; record the slots (fenced by the lease tokens, in one statement); send them out.
/// Several replicas do this at once: the leases decide, and a slot is recorded only under its check's live term.
/// When an agent dies its leases are no longer renewed; after one ttl its checks go to another agent.
public final class CheckCoordinator: Service, Sendable {
    public struct Configuration: Sendable {
        /// How often due slots are looked for (a slot begins at most this late).
        public var tick: Duration = .seconds(1)
        /// The ttl of a `check:{id}` term, renewed every tick while its agent is responsive: a dead runner's checks
        /// move after at most this long (plus the check's interval for its next slot).
        public var leaseTTL: Duration = .seconds(10)
        /// An agent not heard from for this long (no batch, no heartbeat) gets no runs and its leases lapse.
        public var responsiveWithin: Duration = .seconds(35)
        /// Most slots handled per tick; the rest wait for the next.
        public var maximumSlotsPerTick = 5_000
        /// How long sending one agent its runs may take before the rest of its runs this tick are skipped (they
        /// are reassigned when its leases lapse).
        public var sendTimeout: Duration = .seconds(2)

        public init() {}
    }

    /// What one tick did.
    public struct TickReport: Sendable, Equatable {
        public var renewed = 0
        public var due = 0
        public var acquired = 0
        public var assigned = 0
        public var sent = 0
    }

    public let configuration: Configuration
    private let client: PostgresClient
    private let sessions: LiveSessions
    private let leases: LeaseStore
    private let tenants: TenantStore
    private let logger: Logger
    private let dispatched = Counter(label: "crowsnest_check_runs_dispatched_total")
    private let failedTicks = Counter(label: "crowsnest_check_coordinator_failed_ticks_total")

    public init(configuration: Configuration = .init(), client: PostgresClient, sessions: LiveSessions, logger: Logger) {
        self.configuration = configuration
        self.client = client
        self.sessions = sessions
        self.leases = LeaseStore(client: client, logger: logger)
        self.tenants = TenantStore(client: client, logger: logger)
        self.logger = logger
    }

    public func run() async throws {
        var failing = false
        while !Task.isShuttingDownGracefully {
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: self.configuration.tick) }
            } catch {
                return
            }
            do {
                // A tick is bounded: a database that does not answer must not leave the loop waiting forever.
                _ = try await withDeadline(configuration.leaseTTL) { try await self.tick() }
                if failing {
                    logger.notice("check coordination works again")
                    failing = false
                }
            } catch {
                failedTicks.increment()
                if !failing {
                    logger.error("check coordination failed; checks run again once the database answers",
                                 metadata: ["error": "\(String(reflecting: error))"])
                    failing = true
                }
            }
        }
    }

    /// One round: hold the sessions' agent terms, renew their check terms, find due slots, lease, record, send.
    @discardableResult
    public func tick() async throws -> TickReport {
        var report = TickReport()
        let responsive = sessions.responsive(within: configuration.responsiveWithin)
        guard !responsive.isEmpty else { return report }
        // agent:{id} terms: renewed for sessions that hold them; claimed (taken over) for new sessions when they are
        // their agent's newest. A session that holds no term is not given runs.
        let sessionHolders = responsive.map { "session:" + $0.sessionID.uuidString.lowercased() }
        let renewedSessions = try await leases.renewAll(keyPrefix: "agent:", holders: sessionHolders, ttl: configuration.leaseTTL)
        var holding = Set(renewedSessions.map(\.holder))
        let unclaimed = responsive.filter { !holding.contains("session:" + $0.sessionID.uuidString.lowercased()) }
        let claimed = try await leases.claimAgentSessions(unclaimed.map { ($0.tenantID, $0.agentID, $0.sessionID) },
                                                          ttl: configuration.leaseTTL)
        holding.formUnion(claimed.values.map(\.holder))
        let agents = responsive.filter { holding.contains("session:" + $0.sessionID.uuidString.lowercased()) }
        guard !agents.isEmpty else { return report }

        var byHolder: [String: LiveAgent] = [:]
        for agent in agents { byHolder[agent.leaseHolder] = agent }
        let holders = Array(byHolder.keys)
        report.renewed = try await leases.renewAll(keyPrefix: "check:", holders: holders, ttl: configuration.leaseTTL).count
        let tenantIDs = Array(Set(agents.map(\.tenantID)))
        let due = try await CheckSlotStore.dueChecks(
            tenants: tenantIDs, holders: holders, includeAgentRun: true, includeServerRun: false,
            limit: configuration.maximumSlotsPerTick, on: client, logger: logger)
        report.due = due.count
        guard !due.isEmpty else { return report }
        // Every replica's runners: a free check goes to the candidate rendezvous hashing picks among all of them,
        // and only the replica serving that agent takes the lease. So checks spread over the whole fleet, not
        // over whichever replica looked first.
        let fleet = try await AgentStore(client: client, logger: logger).liveAgents(tenants: tenantIDs)

        var assignments: [SlotAssignment] = []
        var releases: [Lease] = []
        var wanted: [(key: String, holder: String)] = []
        var checksByID: [UUID: DueCheck] = [:]
        for check in due {
            checksByID[check.checkID] = check
            guard let placement = CheckPlacement(stored: check.runOn) else { continue }
            // Quorum checks run on every matching agent: not dispatched by this coordinator yet.
            if case .all = placement { continue }
            let key = CheckSlotStore.leaseKey(checkID: check.checkID)
            if let holder = check.leaseHolder, let token = check.leaseToken, let agent = byHolder[holder] {
                if agent.tenantID == check.tenantID && placement.admits(agentLabels: agent.labels) {
                    assignments.append(SlotAssignment(tenantID: check.tenantID, checkID: check.checkID, slotAt: check.slotAt,
                                                      token: token, agentID: agent.agentID, runner: agent.hostname))
                    continue
                }
                // The runner no longer qualifies (its labels or the placement changed): end its term.
                releases.append(Lease(key: key, holder: holder, token: token, acquiredAt: check.slotAt, expiresAt: check.slotAt))
            }
            let candidates = fleet.filter { $0.tenantID == check.tenantID && placement.admits(agentLabels: $0.labels) }
            guard let chosen = RunnerChoice.pick(checkID: check.checkID, among: candidates.map(\.agentID)),
                  byHolder[LiveAgent.leaseHolder(agentID: chosen)] != nil
            else { continue }  // no runner, or another replica's: that replica takes it
            wanted.append((key, LiveAgent.leaseHolder(agentID: chosen)))
        }
        for lease in releases { _ = try await leases.release(lease) }
        let acquired = try await leases.acquireMany(wanted, ttl: configuration.leaseTTL)
        report.acquired = acquired.count
        for lease in acquired.values {
            guard let agent = byHolder[lease.holder],
                  let checkID = UUID(uuidString: String(lease.key.dropFirst("check:".count))),
                  let check = checksByID[checkID] else { continue }
            assignments.append(SlotAssignment(tenantID: check.tenantID, checkID: checkID, slotAt: check.slotAt,
                                              token: lease.token, agentID: agent.agentID, runner: agent.hostname))
        }
        let recorded = try await CheckSlotStore.assignMany(assignments, on: client, logger: logger)
        report.assigned = recorded.count
        guard !recorded.isEmpty else { return report }

        var networks: [UUID: [String]] = [:]
        for tenantID in Set(recorded.map(\.tenantID)) {
            networks[tenantID] = try await tenants.allowedNetworks(tenantID: tenantID).map(\.description)
        }
        var frames: [UUID: [Crowsnest_V1_Frame]] = [:]
        for slot in recorded {
            guard let agentID = slot.agentID, let check = checksByID[slot.checkID] else { continue }
            frames[agentID, default: []].append(.with(.assign(Self.assign(check, slot: slot, allowedNetworks: networks[slot.tenantID] ?? []))))
        }
        report.sent = await send(frames, to: Dictionary(uniqueKeysWithValues: agents.map { ($0.agentID, $0) }))
        dispatched.increment(by: report.sent)
        return report
    }

    /// The `Assign` frame of one recorded slot.
    static func assign(_ check: DueCheck, slot: SlotAssignment, allowedNetworks: [String]) -> Crowsnest_V1_Assign {
        var assign = Crowsnest_V1_Assign()
        assign.checkID = check.checkID.uuidString.lowercased()
        assign.type = check.type
        assign.target = check.target
        assign.intervalSeconds = UInt32(clamping: check.intervalSeconds)
        assign.fencingToken = UInt64(slot.token)
        assign.slotUnixMs = Int64((slot.slotAt.timeIntervalSince1970 * 1000).rounded())
        assign.timeoutMs = UInt32(clamping: check.timeoutMs)
        if case .object(let options) = check.options {
            for (name, value) in options where value != .null { assign.options[name] = value.jsonText }
        }
        assign.allowedNetworks = allowedNetworks
        return assign
    }

    /// Sends each agent its frames, agents in parallel, each within `sendTimeout`; returns how many went out.
    private func send(_ frames: [UUID: [Crowsnest_V1_Frame]], to agents: [UUID: LiveAgent]) async -> Int {
        let timeout = configuration.sendTimeout
        let logger = self.logger
        return await withTaskGroup(of: Int.self) { group in
            for (agentID, list) in frames {
                guard let agent = agents[agentID] else { continue }
                group.addTask {
                    do {
                        return try await withDeadline(timeout) {
                            var sent = 0
                            for frame in list {
                                try await agent.send(frame)
                                sent += 1
                            }
                            return sent
                        }
                    } catch {
                        logger.warning("cannot send check runs to an agent; they move once its leases lapse", metadata: [
                            "agent.id": "\(agentID.uuidString.lowercased())", "runs": "\(list.count)", "error": "\(error)",
                        ])
                        return 0
                    }
                }
            }
            return await group.reduce(0, +)
        }
    }
}
