import CrowsnestWire
import Foundation
import Logging
import NIOCore
import NIOPosix
import PostgresNIO
import Synchronization
import XCTest

@testable import CrowsnestServer

/// The check coordinator against a real PostgreSQL: two replicas (two coordinators, each with its own sessions)
/// on one database. The agents' connections are stood in for by recorders of the frames the coordinator sends;
/// everything else (leases, slots, fencing, result ingest) is the real thing.
final class CheckCoordinatorTests: XCTestCase {
    private static let logger: Logger = {
        var logger = Logger(label: "crowsnest.tests.coordinator")
        logger.logLevel = .critical
        return logger
    }()

    /// Frames pushed to one agent.
    final class Inbox: Sendable {
        let frames = Mutex<[Crowsnest_V1_Assign]>([])
        var assigns: [Crowsnest_V1_Assign] { frames.withLock { $0 } }
        func take() -> [Crowsnest_V1_Assign] { frames.withLock { all in defer { all = [] }; return all } }
    }

    /// A registered agent whose live session (as its Hello recorded it) is the one returned.
    private static func agent(_ client: PostgresClient, _ tenantID: UUID, _ name: String,
                              labels: Set<String> = []) async throws -> (LiveAgent, Inbox) {
        let inbox = Inbox()
        let agent = LiveAgent(tenantID: tenantID, agentID: UUID(), sessionID: UUID(), hostname: name, labels: labels) { frame in
            guard case .assign(let assign)? = frame.message else { return }
            inbox.frames.withLock { $0.append(assign) }
        }
        try await client.query("""
            INSERT INTO agents (tenant_id, id, hostname, session_id, labels)
            VALUES (\(tenantID), \(agent.agentID), \(name), \(agent.sessionID), \(labels.sorted()))
            """, logger: logger)
        return (agent, inbox)
    }

    /// A new session of the agent (a reconnect): recorded as its live one, with its labels.
    private static func reconnect(_ client: PostgresClient, _ agent: inout LiveAgent, labels: Set<String>) async throws {
        agent.sessionID = UUID()
        agent.labels = labels
        try await client.query("""
            UPDATE agents SET session_id = \(agent.sessionID), labels = \(labels.sorted()) WHERE id = \(agent.agentID)
            """, logger: logger)
    }

    /// Ticks every coordinator each `every` for `duration`, as running replicas do.
    private static func run(_ coordinators: [CheckCoordinator], for duration: Duration,
                            every step: Duration = .milliseconds(300)) async throws -> [CheckCoordinator.TickReport] {
        var reports: [CheckCoordinator.TickReport] = []
        let end = ContinuousClock.now + duration
        while ContinuousClock.now < end {
            for coordinator in coordinators { reports.append(try await coordinator.tick()) }
            try await Task.sleep(for: step)
        }
        return reports
    }

    /// Returns once the wall clock is at least `margin` seconds before the next multiple of `period`: a test that
    /// follows one slot for a few seconds would otherwise see the next slot dispatched and count it against the
    /// first (waits at most `margin` seconds, and only when started that close to the boundary).
    private static func startClearOfSlotBoundary(period: Double, margin: Double) async throws {
        let intoSlot = Date().timeIntervalSince1970.truncatingRemainder(dividingBy: period)
        if intoSlot > period - margin { try await Task.sleep(for: .milliseconds(Int((period - intoSlot + 0.5) * 1000))) }
    }

    private static func coordinator(_ client: PostgresClient, _ sessions: LiveSessions, ttl: Duration = .seconds(10),
                                    name: String = "replica") -> CheckCoordinator {
        var configuration = CheckCoordinator.Configuration()
        configuration.leaseTTL = ttl
        configuration.replicaName = name
        return CheckCoordinator(configuration: configuration, client: client, sessions: sessions, logger: logger)
    }

    @discardableResult
    private static func insertCheck(_ client: PostgresClient, tenantID: UUID, name: String, type: String = "http",
                                    runOn: String = #"{"mode":"any"}"#, interval: Int = 60, paused: Bool = false) async throws -> UUID {
        let id = UUID()
        let token: String? = type == "push" ? "cnp_" + UUID().uuidString : nil
        try await client.query("""
            INSERT INTO checks (tenant_id, id, name, type, target, interval_seconds, timeout_ms, run_on, options, paused, push_token)
            VALUES (\(tenantID), \(id), \(name), \(type), 'http://127.0.0.1:9/', \(interval), 1000, \(runOn)::jsonb,
                    '{"method":"GET","follow_redirects":true}'::jsonb, \(paused), \(token))
            """, logger: logger)
        return id
    }

    /// (check, slot ms, token, agent) of every recorded slot.
    private static func slots(_ client: PostgresClient) async throws -> [(UUID, Int64, Int64, UUID?)] {
        let rows = try await client.query(
            "SELECT check_id, (extract(epoch FROM slot_at) * 1000)::int8, token, agent_id FROM check_slots ORDER BY 1, 2",
            logger: logger)
        var all: [(UUID, Int64, Int64, UUID?)] = []
        for try await row in rows.decode((UUID, Int64, Int64, UUID?).self) { all.append(row) }
        return all
    }

    func testTwoReplicasGiveEverySlotOneRunnerOnceWithinThePlacement() async throws {
        // Three rounds must stay within one slot of the 60 s checks.
        try await Self.startClearOfSlotBoundary(period: 60, margin: 10)
        try await TestPostgres.withTestDatabase { client in
            let tenants = TenantStore(client: client, logger: Self.logger)
            let tenantID = try await tenants.create(name: "acme")
            let otherTenant = try await tenants.create(name: "globex")
            try await tenants.allowNetwork(tenantID: tenantID, network: IPNetwork("10.20.0.0/16")!)
            // Replica 1 serves agent a; replica 2 serves b (env=prod) and c; d belongs to another tenant.
            let (a, inboxA) = try await Self.agent(client, tenantID, "host-a")
            let (b, inboxB) = try await Self.agent(client, tenantID, "host-b", labels: ["env=prod", "zone=1"])
            let (c, inboxC) = try await Self.agent(client, tenantID, "host-c")
            let (d, inboxD) = try await Self.agent(client, otherTenant, "host-d")
            let replica1 = LiveSessions(), replica2 = LiveSessions()
            replica1.register(a)
            replica2.register(b)
            replica2.register(c)
            replica2.register(d)
            let coordinator1 = Self.coordinator(client, replica1), coordinator2 = Self.coordinator(client, replica2)
            // A first round claims the agents' and the replicas' terms; then the checks arrive.
            _ = try await (coordinator1.tick(), coordinator2.tick())
            var anyChecks: [UUID] = []
            // 48 of them: the chance that rendezvous hashing leaves one of three agents without any is (2/3)^48 ≈ 4e-9
            // per agent (with 12 it was 0.8 %, and CI once saw it).
            for index in 0..<48 { anyChecks.append(try await Self.insertCheck(client, tenantID: tenantID, name: "any-\(index)")) }
            let prodCheck = try await Self.insertCheck(client, tenantID: tenantID, name: "prod",
                                                       runOn: #"{"mode":"labels","labels":["env=prod"]}"#)
            let nowhere = try await Self.insertCheck(client, tenantID: tenantID, name: "nowhere",
                                                     runOn: #"{"mode":"labels","labels":["env=mars"]}"#)
            try await Self.insertCheck(client, tenantID: tenantID, name: "paused", paused: true)
            try await Self.insertCheck(client, tenantID: tenantID, name: "push", type: "push", runOn: #"{"mode":"server"}"#)
            let serverCheck = try await Self.insertCheck(client, tenantID: tenantID, name: "server", runOn: #"{"mode":"server"}"#)

            // Both replicas at once, three rounds: later rounds find nothing new within the same slot.
            for _ in 0..<3 {
                async let first = coordinator1.tick()
                async let second = coordinator2.tick()
                _ = try await (first, second)
            }
            let sent = inboxA.assigns + inboxB.assigns + inboxC.assigns
            XCTAssertTrue(inboxD.assigns.isEmpty, "another tenant's agent is never given this tenant's checks")
            let all = try await Self.slots(client)
            let recorded = all.filter { $0.3 != nil }
            let serverRun = all.filter { $0.3 == nil }
            XCTAssertEqual(serverRun.map(\.0), [serverCheck], "the server-run check is run by one replica, not sent to agents")
            // Every slot was recorded once and sent once, to the agent recorded for it, under the recorded token.
            var sentBySlot: [String: [Crowsnest_V1_Assign]] = [:]
            for assign in sent { sentBySlot["\(assign.checkID)@\(assign.slotUnixMs)", default: []].append(assign) }
            XCTAssertEqual(sent.count, recorded.count)
            for (check, slot, token, agentID) in recorded {
                let copies = sentBySlot["\(check.uuidString.lowercased())@\(slot)"] ?? []
                XCTAssertEqual(copies.count, 1, "slot \(slot) of \(check) was sent \(copies.count) times")
                XCTAssertEqual(copies.first?.fencingToken, UInt64(token))
                let inbox = [a.agentID: inboxA, b.agentID: inboxB, c.agentID: inboxC][agentID!]
                XCTAssertTrue(inbox?.assigns.contains { $0.checkID == check.uuidString.lowercased() } == true)
            }
            let checksRun = Set(recorded.map(\.0))
            XCTAssertEqual(checksRun, Set(anyChecks + [prodCheck]), "paused, push, server-run and unplaceable checks are not given to agents")
            XCTAssertFalse(checksRun.contains(nowhere))
            XCTAssertTrue(inboxB.assigns.contains { $0.checkID == prodCheck.uuidString.lowercased() },
                          "the labelled check runs on the only agent carrying its label")
            // Rendezvous hashing spreads the 48 unlabelled checks over the three agents of both replicas, whichever
            // replica looked first.
            XCTAssertGreaterThan(inboxA.assigns.count, 0)
            XCTAssertGreaterThan(inboxB.assigns.count, 1)
            XCTAssertGreaterThan(inboxC.assigns.count, 0)
            // The frame says what to run, until when, and which networks the tenant opened.
            let assign = try XCTUnwrap(sent.first)
            XCTAssertEqual(assign.type, "http")
            XCTAssertEqual(assign.target, "http://127.0.0.1:9/")
            XCTAssertEqual(assign.intervalSeconds, 60)
            XCTAssertEqual(assign.timeoutMs, 1000)
            XCTAssertEqual(assign.slotUnixMs % 60_000, 0, "a slot starts on a multiple of the interval")
            XCTAssertEqual(assign.options["method"], #""GET""#)
            XCTAssertEqual(assign.allowedNetworks, ["10.20.0.0/16"])
        }
    }

    func testADeadRunnersChecksMoveAfterOneTTLAndItsLateResultIsRefused() async throws {
        // The test follows one 300 s slot for about 8 s.
        try await Self.startClearOfSlotBoundary(period: 300, margin: 15)
        try await TestPostgres.withTestDatabase { client in
            let tenants = TenantStore(client: client, logger: Self.logger)
            let tenantID = try await tenants.create(name: "acme")
            var checks: [UUID] = []
            let (a, inboxA) = try await Self.agent(client, tenantID, "host-a")
            let (b, inboxB) = try await Self.agent(client, tenantID, "host-b")
            let replica1 = LiveSessions(), replica2 = LiveSessions()
            replica1.register(a)
            replica2.register(b)
            let ttl: Duration = .seconds(2)
            let coordinators = [Self.coordinator(client, replica1, ttl: ttl), Self.coordinator(client, replica2, ttl: ttl)]
            // A first round claims both agents' terms; then the checks arrive and are split between the agents.
            _ = try await Self.run(coordinators, for: .milliseconds(100))
            for index in 0..<12 { checks.append(try await Self.insertCheck(client, tenantID: tenantID, name: "c\(index)", interval: 300)) }
            _ = try await Self.run(coordinators, for: .milliseconds(500))
            let first = inboxA.take(), firstB = inboxB.take()
            XCTAssertEqual(first.count + firstB.count, checks.count)
            XCTAssertGreaterThan(first.count, 0)
            XCTAssertGreaterThan(firstB.count, 0)

            // While the agents are responsive their terms are renewed past the ttl: nothing moves.
            let steady = try await Self.run(coordinators, for: ttl + .milliseconds(700))
            XCTAssertEqual(steady.map(\.assigned).reduce(0, +), 0, "held terms are renewed, so no check moves: \(steady)")
            XCTAssertTrue(inboxA.assigns.isEmpty && inboxB.assigns.isEmpty)

            // Agent a dies (its session ends): after one ttl its checks, whose slot has no result, go to b.
            replica1.unregister(agentID: a.agentID, sessionID: a.sessionID)
            // Its last renewal was at most one step (300 ms) before it died: 600 ms of ticks stay well inside the ttl
            // (2 s) even with slow ticks; then ticks past its end.
            let early = try await Self.run(coordinators, for: .milliseconds(600))
            XCTAssertEqual(early.map(\.assigned).reduce(0, +), 0, "nothing moves before the ttl ran out")
            _ = try await Self.run(coordinators, for: .milliseconds(2500))
            let reassigned = inboxB.take()
            XCTAssertEqual(Set(reassigned.map(\.checkID)), Set(first.map(\.checkID)), "a's checks, and only those, moved to b")
            XCTAssertEqual(reassigned.count, first.count, "each moved once")
            for old in first {
                let new = try XCTUnwrap(reassigned.first { $0.checkID == old.checkID })
                XCTAssertEqual(new.slotUnixMs, old.slotUnixMs, "the same slot, rerun elsewhere")
                XCTAssertGreaterThan(new.fencingToken, old.fencingToken)
            }

            // Agent a wakes up and delivers its result for the old term: refused. b's results count, once each.
            try await PartitionStore(client: client, logger: Self.logger).ensurePartitions(forMillis: first.map(\.slotUnixMs))
            let stale = first.map { Self.result(for: $0, ok: false) }
            let fresh = (reassigned + firstB).map { Self.result(for: $0, ok: true) }
            let storedStale = try await client.withConnection { connection in
                try await CheckStore.recordRunResults(stale, tenantID: tenantID, agentID: a.agentID, on: connection, logger: Self.logger)
            }
            XCTAssertEqual(storedStale, 0)
            let storedFresh = try await client.withConnection { connection in
                try await CheckStore.recordRunResults(fresh + fresh, tenantID: tenantID, agentID: b.agentID, on: connection, logger: Self.logger)
            }
            XCTAssertEqual(storedFresh, checks.count)
            // With results recorded, the slots are done: no replica dispatches them again, a back or not.
            replica1.register(a)
            let after = try await Self.run(coordinators, for: .milliseconds(600))
            XCTAssertEqual(after.map(\.assigned).reduce(0, +), 0)
        }
    }

    func testAQuorumCheckRunsOnEveryMatchingAgentOnceEachAndIsDownOnlyWhenTheQuorumReportsDown() async throws {
        // The test follows one 300 s slot for a few seconds.
        try await Self.startClearOfSlotBoundary(period: 300, margin: 15)
        try await TestPostgres.withTestDatabase { client in
            let tenantID = try await TenantStore(client: client, logger: Self.logger).create(name: "acme")
            let (a, inboxA) = try await Self.agent(client, tenantID, "host-a", labels: ["env=prod"])
            let (b, inboxB) = try await Self.agent(client, tenantID, "host-b", labels: ["env=prod"])
            let (c, inboxC) = try await Self.agent(client, tenantID, "host-c", labels: ["env=prod"])
            let (d, inboxD) = try await Self.agent(client, tenantID, "host-d", labels: ["env=test"])
            let replica1 = LiveSessions(), replica2 = LiveSessions()
            replica1.register(a)
            replica2.register(b)
            replica2.register(c)
            replica2.register(d)
            let coordinators = [Self.coordinator(client, replica1), Self.coordinator(client, replica2)]
            _ = try await Self.run(coordinators, for: .milliseconds(100))
            let check = try await Self.insertCheck(client, tenantID: tenantID, name: "cut-off",
                                                   runOn: #"{"mode":"all","labels":["env=prod"],"quorum":2}"#, interval: 300)
            _ = try await Self.run(coordinators, for: .milliseconds(1200))
            let runs = [a.agentID: inboxA.take(), b.agentID: inboxB.take(), c.agentID: inboxC.take()]
            XCTAssertTrue(inboxD.take().isEmpty, "d does not carry env=prod")
            for (agentID, assigns) in runs {
                XCTAssertEqual(assigns.map(\.checkID), [check.uuidString.lowercased()], "every matching agent runs the slot once: \(agentID)")
            }
            let assigns = runs.values.compactMap(\.first)
            XCTAssertEqual(Set(assigns.map(\.slotUnixMs)).count, 1, "the same slot")
            XCTAssertEqual(Set(assigns.map(\.fencingToken)).count, 3, "each member under its own term")
            let memberKeys = try await LeaseStore(client: client, logger: Self.logger).live(keyPrefix: "check:").map(\.key)
            XCTAssertEqual(Set(memberKeys), Set([a, b, c].map { CheckSlotStore.memberLeaseKey(checkID: check, agentID: $0.agentID) }))

            // One agent reports down: under the quorum of two, the check stays up. A result under another member's
            // token is refused; each member's result counts once.
            try await PartitionStore(client: client, logger: Self.logger).ensurePartitions(forMillis: assigns.map(\.slotUnixMs))
            func record(_ agent: LiveAgent, _ assign: Crowsnest_V1_Assign, ok: Bool) async throws -> Int {
                try await client.withConnection { connection in
                    try await CheckStore.recordRunResults([Self.result(for: assign, ok: ok)], tenantID: tenantID,
                                                          agentID: agent.agentID, on: connection, logger: Self.logger)
                }
            }
            let assignA = try XCTUnwrap(runs[a.agentID]?.first), assignB = try XCTUnwrap(runs[b.agentID]?.first)
            let assignC = try XCTUnwrap(runs[c.agentID]?.first)
            let storedA = try await record(a, assignA, ok: false)
            XCTAssertEqual(storedA, 1)
            let stolen = try await record(a, assignB, ok: false)
            XCTAssertEqual(stolen, 0, "b's token is not a's to use")
            let storedB = try await record(b, assignB, ok: true)
            XCTAssertEqual(storedB, 1)
            let again = try await record(b, assignB, ok: false)
            XCTAssertEqual(again, 0, "a member's result counts once")
            let store = CheckStore(client: client, logger: Self.logger)
            let afterOne = try await store.get(tenantID: tenantID, id: check)
            XCTAssertEqual(afterOne?.state, .up, "one of three down is below the quorum")
            func openSpan() async throws -> String? {
                let rows = try await client.query("""
                    SELECT state FROM status_spans
                    WHERE tenant_id = \(tenantID) AND target_id = \(TargetID.check(checkID: check).description) AND ended_at IS NULL
                    """, logger: Self.logger)
                for try await state in rows.decode(String.self) { return state }
                return nil
            }
            let spanAfterOne = try await openSpan()
            XCTAssertEqual(spanAfterOne, "up", "the span follows the quorum too")
            let results = try await store.results(tenantID: tenantID, checkID: check, limit: 10, from: nil, to: nil) ?? []
            XCTAssertEqual(Set(results.compactMap(\.agentID)), [a.agentID, b.agentID], "the history shows each member's run")

            // A second agent reports down: the quorum is reached.
            let storedC = try await record(c, assignC, ok: false)
            XCTAssertEqual(storedC, 1)
            let afterTwo = try await store.get(tenantID: tenantID, id: check)
            XCTAssertEqual(afterTwo?.state, .down, "two of three down reach the quorum of two")
            let spanAfterTwo = try await openSpan()
            XCTAssertEqual(spanAfterTwo, "down")

            // Members with results are done: nothing is dispatched again for the slot.
            let after = try await Self.run(coordinators, for: .milliseconds(600))
            XCTAssertEqual(after.map(\.assigned).reduce(0, +), 0)
        }
    }

    func testARunnerThatNoLongerCarriesTheLabelsLosesItsChecksFromTheNextSlot() async throws {
        try await TestPostgres.withTestDatabase { client in
            let tenantID = try await TenantStore(client: client, logger: Self.logger).create(name: "acme")
            let check = try await Self.insertCheck(client, tenantID: tenantID, name: "prod",
                                                   runOn: #"{"mode":"labels","labels":["env=prod"]}"#, interval: 5)
            let sessions = LiveSessions()
            var (a, inboxA) = try await Self.agent(client, tenantID, "host-a", labels: ["env=prod"])
            sessions.register(a)
            let coordinator = Self.coordinator(client, sessions)
            _ = try await coordinator.tick()
            let first = inboxA.take()
            XCTAssertEqual(first.map(\.checkID), [check.uuidString.lowercased()])
            // a reconnects without the label; b carries it. The slot a is running stays a's; the next one is b's.
            try await Self.reconnect(client, &a, labels: [])
            sessions.register(a)
            let (b, inboxB) = try await Self.agent(client, tenantID, "host-b", labels: ["env=prod"])
            sessions.register(b)
            // Until one second into the next slot (and not into the one after).
            let untilNextSlot = first[0].slotUnixMs + 6_000 - Int64(Date().timeIntervalSince1970 * 1000)
            _ = try await Self.run([coordinator], for: .milliseconds(untilNextSlot), every: .milliseconds(400))
            let moved = inboxB.take()
            XCTAssertEqual(moved.map(\.checkID), [check.uuidString.lowercased()])
            XCTAssertEqual(moved.first?.slotUnixMs, first[0].slotUnixMs + 5_000)
            XCTAssertGreaterThan(moved.first?.fencingToken ?? 0, first[0].fencingToken, "a new term for the new runner")
            XCTAssertTrue(inboxA.take().isEmpty)
        }
    }

    func testASilentSessionGetsNoRuns() async throws {
        try await TestPostgres.withTestDatabase { client in
            let tenantID = try await TenantStore(client: client, logger: Self.logger).create(name: "acme")
            try await Self.insertCheck(client, tenantID: tenantID, name: "one", interval: 300)
            let sessions = LiveSessions()
            var (a, inboxA) = try await Self.agent(client, tenantID, "host-a")
            a.heardAt = .now - .seconds(120)
            sessions.register(a)
            let coordinator = Self.coordinator(client, sessions)
            let quiet = try await coordinator.tick()
            XCTAssertEqual(quiet, .init(), "an agent not heard from for two minutes is not given runs")
            sessions.heard(agentID: a.agentID, sessionID: a.sessionID)
            let heard = try await coordinator.tick()
            XCTAssertEqual(heard.sent, 1)
            XCTAssertEqual(inboxA.assigns.count, 1)
        }
    }

    func testServerRunChecksRunOnceOnOneReplicaThroughTheServersGuard() async throws {
        // Each check must start once, in one 300 s slot.
        try await Self.startClearOfSlotBoundary(period: 300, margin: 15)
        try await TestPostgres.withTestDatabase { client in
            let tenants = TenantStore(client: client, logger: Self.logger)
            let opened = try await tenants.create(name: "opened")
            let closed = try await tenants.create(name: "closed")
            try await tenants.allowNetwork(tenantID: opened, network: IPNetwork("127.0.0.0/8")!)
            let listener = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).get()
            defer { listener.close(promise: nil) }
            let port = listener.localAddress!.port!
            func serverCheck(_ tenantID: UUID, _ name: String, id: UUID = UUID()) async throws -> UUID {
                try await client.query("""
                    INSERT INTO checks (tenant_id, id, name, type, target, interval_seconds, timeout_ms, run_on)
                    VALUES (\(tenantID), \(id), \(name), 'tcp', \("127.0.0.1:\(port)"), 300, 2000, '{"mode":"server"}')
                    """, logger: Self.logger)
                return id
            }
            let replicas = [Self.coordinator(client, LiveSessions(), name: "replica-1"),
                            Self.coordinator(client, LiveSessions(), name: "replica-2")]
            let runners = replicas.map { coordinator in Task { await coordinator.serverRuns.run() } }
            // A first round registers both replicas; then the checks arrive and are shared between them, once each.
            _ = try await Self.run(replicas, for: .milliseconds(100))
            // Rendezvous hashing places each check: ids drawn so that both replicas get some (seven random ones all
            // land on one replica once in 64 runs).
            let replicaNames = Dictionary(uniqueKeysWithValues: replicas.map { ($0.configuration.replicaID, $0.configuration.replicaName) })
            func placement(_ id: UUID) -> String? {
                RunnerChoice.pick(checkID: id, among: Array(replicaNames.keys)).flatMap { replicaNames[$0] }
            }
            var ids = (0..<6).map { _ in UUID() }
            while Set(ids.map(placement)).count < 2 { ids = (0..<6).map { _ in UUID() } }
            var allowedChecks: [UUID] = []
            for (index, id) in ids.enumerated() { allowedChecks.append(try await serverCheck(opened, "allowed-\(index)", id: id)) }
            let refused = try await serverCheck(closed, "refused")
            let reports = try await Self.run(replicas, for: .milliseconds(1500))
            XCTAssertEqual(reports.map(\.startedHere).reduce(0, +), 7, "\(reports)")
            var results: [UUID: (runner: String, serverRun: Bool, ok: Bool, error: String, copies: Int64)] = [:]
            for _ in 0..<30 where results.count < 7 {
                try await Task.sleep(for: .milliseconds(200))
                let rows = try await client.query(
                    "SELECT check_id, runner, agent_id IS NULL, ok, error, count(*) OVER (PARTITION BY check_id) FROM check_results",
                    logger: Self.logger)
                for try await (id, runner, serverRun, ok, error, copies) in rows.decode((UUID, String, Bool, Bool, String, Int64).self) {
                    results[id] = (runner, serverRun, ok, error, copies)
                }
            }
            for replica in replicas { replica.serverRuns.finish() }
            for runner in runners { await runner.value }
            XCTAssertEqual(Set(results.keys), Set(allowedChecks + [refused]))
            XCTAssertTrue(results.values.allSatisfy { $0.serverRun && $0.copies == 1 })
            XCTAssertEqual(Set(results.values.map(\.runner)), ["replica-1", "replica-2"], "both replicas take a share")
            for (id, result) in results { XCTAssertEqual(result.runner, placement(id), "check \(id) ran where rendezvous hashing places it") }
            for id in allowedChecks { XCTAssertEqual(results[id]?.ok, true, results[id]?.error ?? "missing") }
            XCTAssertEqual(results[refused]?.ok, false)
            XCTAssertTrue(results[refused]?.error.contains("127.0.0.1 is loopback, refused for checks the server runs") == true,
                          results[refused]?.error ?? "")
        }
    }

    private static func result(for assign: Crowsnest_V1_Assign, ok: Bool) -> Crowsnest_V1_CheckResult {
        var result = Crowsnest_V1_CheckResult()
        result.checkID = assign.checkID
        result.fencingToken = assign.fencingToken
        result.slotUnixMs = assign.slotUnixMs
        result.tsUnixMs = assign.slotUnixMs + 500
        result.ok = ok
        result.latencyMs = 3
        return result
    }
}

/// Placement and runner choice: pure logic.
final class RunnerChoiceTests: XCTestCase {
    func testStoredPlacementsParseAndAdmitAgentsByTheirLabels() {
        XCTAssertEqual(CheckPlacement(stored: .object(["mode": .string("any")])), .any)
        XCTAssertEqual(CheckPlacement(stored: .object(["mode": .string("server")])), .server)
        let labels = CheckPlacement(stored: .object(["mode": .string("labels"), "labels": .array([.string("env=prod"), .string("zone=1")])]))
        XCTAssertEqual(labels, .labels(["env=prod", "zone=1"]))
        XCTAssertEqual(CheckPlacement(stored: .object(["mode": .string("all"), "labels": .array([]), "quorum": .integer(2)])),
                       .all(labels: [], quorum: 2))
        XCTAssertNil(CheckPlacement(stored: .object(["mode": .string("everywhere")])))
        XCTAssertNil(CheckPlacement(stored: .object(["mode": .string("labels"), "labels": .array([.integer(1)])])))
        XCTAssertNil(CheckPlacement(stored: .string("any")))
        XCTAssertTrue(labels!.admits(agentLabels: ["env=prod", "zone=1", "extra=x"]))
        XCTAssertFalse(labels!.admits(agentLabels: ["env=prod"]), "every label must be carried")
        XCTAssertFalse(labels!.admits(agentLabels: ["env=prod ", "zone=1"]), "labels match exactly")
        XCTAssertTrue(CheckPlacement.any.admits(agentLabels: []))
        XCTAssertFalse(CheckPlacement.server.admits(agentLabels: ["env=prod"]), "server-run checks never go to agents")
    }

    func testRendezvousChoiceIsStableAndSpreadsChecksEvenly() {
        let runners = (0..<4).map { _ in UUID() }
        var counts: [UUID: Int] = [:]
        var choices: [UUID: UUID] = [:]
        for _ in 0..<4000 {
            let check = UUID()
            let chosen = RunnerChoice.pick(checkID: check, among: runners)!
            XCTAssertEqual(RunnerChoice.pick(checkID: check, among: runners.reversed()), chosen, "order does not matter")
            counts[chosen, default: 0] += 1
            choices[check] = chosen
        }
        for runner in runners { XCTAssertEqual(Double(counts[runner] ?? 0), 1000, accuracy: 150) }
        // A runner leaving moves only its own checks.
        let remaining = Array(runners.dropFirst())
        for (check, chosen) in choices where chosen != runners[0] {
            XCTAssertEqual(RunnerChoice.pick(checkID: check, among: remaining), chosen)
        }
        XCTAssertNil(RunnerChoice.pick(checkID: UUID(), among: []))
    }
}
