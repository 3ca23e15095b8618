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
/// When an agent dies its leases are no longer renewed; after one ttl its checks go to another agent. Quorum checks
/// (`all`) are run by every matching agent, each slot once per agent under that agent's own `check:{id}:{agent}`
/// term; the check is down when at least `quorum` of them report down.
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
        /// This replica's id (its `replica:{id}` term) and its name in results (the host name by default).
        public var replicaID = UUID()
        public var replicaName = "server"
        /// Whether this replica runs checks placed on the server (`run_on: {"mode":"server"}`).
        public var runsServerChecks = true

        public init() {}
    }

    /// What one tick did.
    public struct TickReport: Sendable, Equatable {
        public var renewed = 0
        public var due = 0
        public var acquired = 0
        public var assigned = 0
        public var sent = 0
        /// Server-run checks started on this replica.
        public var startedHere = 0
    }

    public let configuration: Configuration
    private let client: PostgresClient
    private let sessions: LiveSessions
    private let leases: LeaseStore
    private let tenants: TenantStore
    private let logger: Logger
    /// Runs this replica's server-run checks and records their results.
    public let serverRuns: ServerCheckRuns
    private var replicaHolder: String { "replica:" + configuration.replicaID.uuidString.lowercased() }
    private let dispatched = Counter(label: "crowsnest_check_runs_dispatched_total")
    private let failedTicks = Counter(label: "crowsnest_check_coordinator_failed_ticks_total")

    public init(configuration: Configuration = .init(), client: PostgresClient, sessions: LiveSessions, logger: Logger) {
        self.configuration = configuration
        self.client = client
        self.sessions = sessions
        self.leases = LeaseStore(client: client, logger: logger)
        self.tenants = TenantStore(client: client, logger: logger)
        self.logger = logger
        self.serverRuns = ServerCheckRuns(client: client, replicaName: configuration.replicaName, logger: logger)
    }

    public func run() async throws {
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { await self.serverRuns.run() }
            try await self.coordinate()
            self.serverRuns.finish()
        }
    }

    private func coordinate() async throws {
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

    /// One round: hold this replica's and the sessions' agent terms, renew their check terms, find due slots,
    /// lease, record, then send agents their runs and start the server-run ones here.
    @discardableResult
    public func tick() async throws -> TickReport {
        var report = TickReport()
        // replica:{id}: the replicas that share server-run checks. The key is this replica's own, so it is free.
        let me = replicaHolder
        if try await leases.renewAll(keyPrefix: me, holders: [me], ttl: configuration.leaseTTL).isEmpty {
            _ = try await leases.acquire(key: me, holder: me, ttl: configuration.leaseTTL)
        }
        let agents = try await holdAgentTerms()
        var byHolder: [String: LiveAgent] = [:]
        for agent in agents { byHolder[agent.leaseHolder] = agent }
        let holders = Array(byHolder.keys) + [me]
        report.renewed = try await leases.renewAll(keyPrefix: "check:", holders: holders, ttl: configuration.leaseTTL).count
        let tenantIDs = Array(Set(agents.map(\.tenantID)))
        let due = try await CheckSlotStore.dueChecks(
            tenants: tenantIDs, holders: holders, includeAgentRun: !agents.isEmpty, includeServerRun: configuration.runsServerChecks,
            limit: configuration.maximumSlotsPerTick, on: client, logger: logger)
        // Quorum checks: every matching agent this replica serves runs each slot itself, under its own member term.
        let dueMembers = try await CheckSlotStore.dueMemberRuns(
            agents: agents.map { ($0.tenantID, $0.agentID, $0.leaseHolder) }, limit: configuration.maximumSlotsPerTick,
            on: client, logger: logger)
        report.due = due.count + dueMembers.count
        guard !due.isEmpty || !dueMembers.isEmpty else { return report }
        // Every replica's runners: a free check goes to the candidate rendezvous hashing picks among all of them,
        // and only the replica serving that agent (or that replica itself) takes the lease. So checks spread over
        // the whole fleet, not over whichever replica looked first.
        let fleet = agents.isEmpty ? [] : try await AgentStore(client: client, logger: logger).liveAgents(tenants: tenantIDs)
        let replicas = due.contains(where: { CheckPlacement(stored: $0.runOn) == .server })
            ? try await leases.live(keyPrefix: "replica:").compactMap { UUID(uuidString: String($0.holder.dropFirst("replica:".count))) }
            : []

        var assignments: [SlotAssignment] = []
        var releases: [Lease] = []
        var wanted: [(key: String, holder: String)] = []
        var checksByID: [UUID: DueCheck] = [:]
        for check in due {
            checksByID[check.checkID] = check
            guard let placement = CheckPlacement(stored: check.runOn) else { continue }
            // Quorum checks run on every matching agent, each under its own term: below.
            if case .all = placement { continue }
            let key = CheckSlotStore.leaseKey(checkID: check.checkID)
            // Who should run it: among the replicas for server-run checks, else among the matching agents.
            let winner: String?
            if case .server = placement {
                winner = RunnerChoice.pick(checkID: check.checkID, among: replicas).map { "replica:" + $0.uuidString.lowercased() }
            } else {
                let candidates = fleet.filter { $0.tenantID == check.tenantID && placement.admits(agentLabels: $0.labels) }
                winner = RunnerChoice.pick(checkID: check.checkID, among: candidates.map(\.agentID)).map(LiveAgent.leaseHolder(agentID:))
            }
            if let holder = check.leaseHolder, let token = check.leaseToken {
                let agent = byHolder[holder]
                let qualifies = holder == me ? placement == .server
                    : agent.map { $0.tenantID == check.tenantID && placement.admits(agentLabels: $0.labels) } ?? false
                // A runner keeps its check while it qualifies; at the start of a slot it hands the check to the
                // runner that rendezvous hashing now picks (one that joined since), so load spreads over new runners.
                let handOver = check.slotToken == nil && winner != nil && winner != holder
                if qualifies && !handOver {
                    assignments.append(SlotAssignment(tenantID: check.tenantID, checkID: check.checkID, slotAt: check.slotAt,
                                                      token: token, agentID: agent?.agentID,
                                                      runner: agent?.hostname ?? configuration.replicaName))
                    continue
                }
                releases.append(Lease(key: key, holder: holder, token: token, acquiredAt: check.slotAt, expiresAt: check.slotAt))
            }
            // Only the replica serving the winner takes the lease (for a server-run check: the winner itself).
            guard let winner, winner == me || byHolder[winner] != nil else { continue }
            wanted.append((key, winner))
        }
        var memberRuns: [String: DueMemberRun] = [:]
        let agentsByID = Dictionary(agents.map { ($0.agentID, $0) }, uniquingKeysWith: { first, _ in first })
        for run in dueMembers {
            guard let agent = agentsByID[run.agentID], let placement = CheckPlacement(stored: run.check.runOn),
                  placement.admits(agentLabels: agent.labels) else { continue }
            checksByID[run.check.checkID] = run.check
            if let token = run.check.leaseToken, run.check.leaseHolder == agent.leaseHolder {
                assignments.append(SlotAssignment(tenantID: run.check.tenantID, checkID: run.check.checkID,
                                                  slotAt: run.check.slotAt, token: token, agentID: agent.agentID,
                                                  runner: agent.hostname, member: agent.agentID))
            } else {
                let key = CheckSlotStore.memberLeaseKey(checkID: run.check.checkID, agentID: agent.agentID)
                memberRuns[key] = run
                wanted.append((key, agent.leaseHolder))
            }
        }

        for lease in releases { _ = try await leases.release(lease) }
        let acquired = try await leases.acquireMany(wanted, ttl: configuration.leaseTTL)
        report.acquired = acquired.count
        for lease in acquired.values {
            if let run = memberRuns[lease.key], let agent = agentsByID[run.agentID] {
                assignments.append(SlotAssignment(tenantID: run.check.tenantID, checkID: run.check.checkID,
                                                  slotAt: run.check.slotAt, token: lease.token, agentID: agent.agentID,
                                                  runner: agent.hostname, member: agent.agentID))
                continue
            }
            guard let checkID = UUID(uuidString: String(lease.key.dropFirst("check:".count))),
                  let check = checksByID[checkID] else { continue }
            if lease.holder == me {
                assignments.append(SlotAssignment(tenantID: check.tenantID, checkID: checkID, slotAt: check.slotAt,
                                                  token: lease.token, agentID: nil, runner: configuration.replicaName))
            } else if let agent = byHolder[lease.holder] {
                assignments.append(SlotAssignment(tenantID: check.tenantID, checkID: checkID, slotAt: check.slotAt,
                                                  token: lease.token, agentID: agent.agentID, runner: agent.hostname))
            }
        }
        let recorded = try await CheckSlotStore.assignMany(assignments, on: client, logger: logger)
        report.assigned = recorded.count
        guard !recorded.isEmpty else { return report }

        var networks: [UUID: [IPNetwork]] = [:]
        for tenantID in Set(recorded.map(\.tenantID)) {
            networks[tenantID] = try await tenants.allowedNetworks(tenantID: tenantID)
        }
        var frames: [UUID: [Crowsnest_V1_Frame]] = [:]
        for slot in recorded {
            guard let check = checksByID[slot.checkID] else { continue }
            let allowed = networks[slot.tenantID] ?? []
            if let agentID = slot.agentID {
                frames[agentID, default: []].append(.with(.assign(Self.assign(check, slot: slot, allowedNetworks: allowed.map(\.description)))))
            } else {
                serverRuns.enqueue(ServerCheckRuns.Run(check: check, slot: slot, allowedNetworks: allowed))
                report.startedHere += 1
            }
        }
        report.sent = await send(frames, to: Dictionary(uniqueKeysWithValues: agents.map { ($0.agentID, $0) }))
        dispatched.increment(by: report.sent + report.startedHere)
        return report
    }

    /// The responsive sessions of this replica that hold their agent's `agent:{id}` term: renewed for sessions that
    /// hold it, claimed (taken over) for new sessions when they are their agent's newest. A session that holds no
    /// term is given no runs.
    private func holdAgentTerms() async throws -> [LiveAgent] {
        let responsive = sessions.responsive(within: configuration.responsiveWithin)
        guard !responsive.isEmpty else { return [] }
        func holder(_ agent: LiveAgent) -> String { "session:" + agent.sessionID.uuidString.lowercased() }
        let renewed = try await leases.renewAll(keyPrefix: "agent:", holders: responsive.map(holder), ttl: configuration.leaseTTL)
        var holding = Set(renewed.map(\.holder))
        let unclaimed = responsive.filter { !holding.contains(holder($0)) }
        let claimed = try await leases.claimAgentSessions(unclaimed.map { ($0.tenantID, $0.agentID, $0.sessionID) },
                                                          ttl: configuration.leaseTTL)
        holding.formUnion(claimed.values.map(\.holder))
        return responsive.filter { holding.contains(holder($0)) }
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
        assign.options = check.optionTexts
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
