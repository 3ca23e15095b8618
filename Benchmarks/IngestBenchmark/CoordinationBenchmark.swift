import CrowsnestProbes
import CrowsnestServer
import CrowsnestWire
import Foundation
import Logging
import PostgresNIO
import Synchronization

/// `crowsnest-bench --coordination`: what the lease keyspace and the check coordinator cost on this machine.
/// Two coordinators stand for two replicas on one database; their agents answer every `Assign` at once with an ok
/// result (a no-op probe), recorded through the same fenced statement as real results. Measured: lease
/// acquire/renew latency, and check runs recorded per second. With `probeTarget` the checks are http checks of that
/// URL and each agent runs them with the real prober, at most 16 at a time, as the agent's `CheckRunner` does.
struct CoordinationBenchmark {
    var checks: Int
    var duration: Double
    var warmup: Double
    var probeTarget: String?
    static let probesPerAgent = 16

    func measure(client: PostgresClient, logger: Logger) async throws {
        let leases = LeaseStore(client: client, logger: logger)
        // Lease latency: sequential round trips, distinct keys.
        var acquire: [Double] = [], renew: [Double] = []
        for index in 0..<2000 {
            let start = ContinuousClock.now
            let lease = try await leases.acquire(key: "bench:\(index)", holder: "bench", ttl: .seconds(60))
            acquire.append((ContinuousClock.now - start).benchMilliseconds)
            let renewing = ContinuousClock.now
            _ = try await leases.renew(lease!, ttl: .seconds(60))
            renew.append((ContinuousClock.now - renewing).benchMilliseconds)
        }
        print(String(format: "lease acquire p50 %.3f ms p99 %.3f ms; renew p50 %.3f ms p99 %.3f ms (2000 each, sequential)",
                     acquire.benchPercentile(0.5), acquire.benchPercentile(0.99), renew.benchPercentile(0.5), renew.benchPercentile(0.99)))

        let tenantID = try await TenantStore(client: client, logger: logger).create(name: "bench-\(UUID().uuidString.prefix(6))")
        try await client.query("""
            INSERT INTO checks (tenant_id, id, name, type, target, interval_seconds, timeout_ms)
            SELECT \(tenantID), gen_random_uuid(), 'check-' || n, \(probeTarget == nil ? "tcp" : "http"),
                   \(probeTarget ?? "127.0.0.1:9"), 5, 4000
            FROM generate_series(1, \(checks)) n
            """, logger: logger)
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        try await PartitionStore(client: client, logger: logger).ensurePartitions(forMillis: [now, now + 86_400_000])
        let pending = LockedBox<[UUID: [Crowsnest_V1_CheckResult]]>([:])
        var coordinators: [CheckCoordinator] = []
        // Real probes: each agent's runs go round-robin to its 16 workers (one stream each).
        var workerStreams: [AsyncStream<(UUID, Crowsnest_V1_Assign)>] = []
        var workerQueues: [AsyncStream<(UUID, Crowsnest_V1_Assign)>.Continuation] = []
        for replica in 0..<2 {
            let sessions = LiveSessions()
            for index in 0..<4 {
                let agentID = UUID(), sessionID = UUID()
                var queues: [AsyncStream<(UUID, Crowsnest_V1_Assign)>.Continuation] = []
                for _ in 0..<(probeTarget == nil ? 0 : Self.probesPerAgent) {
                    let (stream, queue) = AsyncStream<(UUID, Crowsnest_V1_Assign)>.makeStream()
                    workerStreams.append(stream)
                    queues.append(queue)
                }
                workerQueues += queues
                let agentQueues = queues
                let turn = LockedBox(0)
                try await client.query("""
                    INSERT INTO agents (tenant_id, id, hostname, session_id) VALUES (\(tenantID), \(agentID), \("bench-\(replica)-\(index)"), \(sessionID))
                    """, logger: logger)
                sessions.register(LiveAgent(tenantID: tenantID, agentID: agentID, sessionID: sessionID, hostname: "bench",
                                            labels: []) { frame in
                    guard case .assign(let assign)? = frame.message else { return }
                    if !agentQueues.isEmpty {
                        let index = turn.lock.withLock { next in defer { next += 1 }; return next % agentQueues.count }
                        agentQueues[index].yield((agentID, assign))
                        return
                    }
                    var result = Crowsnest_V1_CheckResult()
                    result.checkID = assign.checkID
                    result.fencingToken = assign.fencingToken
                    result.slotUnixMs = assign.slotUnixMs
                    result.tsUnixMs = Int64(Date().timeIntervalSince1970 * 1000)
                    result.ok = true
                    result.latencyMs = 0.1
                    pending.lock.withLock { $0[agentID, default: []].append(result) }
                })
            }
            var configuration = CheckCoordinator.Configuration()
            configuration.replicaName = "bench-\(replica)"
            coordinators.append(CheckCoordinator(configuration: configuration, client: client, sessions: sessions, logger: logger))
        }
        let stop = ContinuousClock.now + .milliseconds(Int64((warmup + duration) * 1000))
        let tickTimes = LockedBox<[Double]>([])
        try await withThrowingTaskGroup(of: Void.self) { group in
            let prober = Prober()
            for runs in workerStreams {
                group.addTask {
                    for await (agentID, assign) in runs {
                        let outcome = await prober.run(type: assign.type, target: assign.target, options: [:],
                                                       timeout: .milliseconds(Int64(assign.timeoutMs)),
                                                       addressGuard: AddressGuard(runner: .agent))
                        let result = outcome.checkResult(checkID: assign.checkID, token: assign.fencingToken,
                                                         slotUnixMs: assign.slotUnixMs)
                        pending.lock.withLock { $0[agentID, default: []].append(result) }
                    }
                }
            }
            for coordinator in coordinators {
                group.addTask {
                    while ContinuousClock.now < stop {
                        let start = ContinuousClock.now
                        _ = try await coordinator.tick()
                        let took = ContinuousClock.now - start
                        tickTimes.lock.withLock { $0.append(took.benchMilliseconds) }
                        if took < .seconds(1) { try await Task.sleep(for: .seconds(1) - took) }
                    }
                }
            }
            // The agents' side: results recorded every 200 ms, one statement per agent (as one ingest batch each).
            group.addTask {
                while ContinuousClock.now < stop + .seconds(1) {
                    try await Task.sleep(for: .milliseconds(200))
                    let taken = pending.lock.withLock { all in defer { all = [:] }; return all }
                    guard !taken.isEmpty else { continue }
                    try await client.withConnection { connection in
                        for (agentID, results) in taken {
                            _ = try await CheckStore.recordRunResults(results, tenantID: tenantID, agentID: agentID,
                                                                      on: connection, logger: logger)
                        }
                    }
                }
            }
            try await Task.sleep(for: .milliseconds(Int64(warmup * 1000)))
            let before = try await Self.count(client, tenantID, logger)
            let start = ContinuousClock.now
            try await Task.sleep(for: .milliseconds(Int64(duration * 1000)))
            let after = try await Self.count(client, tenantID, logger)
            let seconds = (ContinuousClock.now - start).benchMilliseconds / 1000
            let ticks = tickTimes.lock.withLock { $0 }
            print(String(format: "check runs recorded: %.0f /s with %d %@ checks every 5 s (%.0f /s due), 2 coordinators, 8 agents; tick p50 %.0f ms p99 %.0f ms",
                         Double(after - before) / seconds, checks, probeTarget == nil ? "no-op" : "real http", Double(checks) / 5,
                         ticks.benchPercentile(0.5), ticks.benchPercentile(0.99)))
            for queue in workerQueues { queue.finish() }
            try await group.waitForAll()
        }
        // Every slot handed out got its result (the fencing statement accepted each one once).
        let totals = try await client.query("""
            SELECT (SELECT count(*) FROM check_slots WHERE tenant_id = \(tenantID)),
                   (SELECT count(*) FROM check_results WHERE tenant_id = \(tenantID)),
                   (SELECT count(*) FROM check_results WHERE tenant_id = \(tenantID) AND NOT ok)
            """, logger: logger)
        for try await (slots, results, failed) in totals.decode((Int64, Int64, Int64).self) {
            print("slots assigned \(slots), results recorded \(results), of which failed \(failed)")
        }
    }

    static func count(_ client: PostgresClient, _ tenantID: UUID, _ logger: Logger) async throws -> Int64 {
        let rows = try await client.query("SELECT count(*) FROM check_results WHERE tenant_id = \(tenantID)", logger: logger)
        for try await count in rows.decode(Int64.self) { return count }
        return 0
    }
}

extension Duration {
    var benchMilliseconds: Double { Double(components.seconds) * 1000 + Double(components.attoseconds) / 1e15 }
}

extension Array where Element == Double {
    func benchPercentile(_ p: Double) -> Double {
        guard !isEmpty else { return 0 }
        let sorted = self.sorted()
        return sorted[Swift.min(sorted.count - 1, Int((Double(sorted.count - 1) * p).rounded()))]
    }
}

/// A lock shared by tasks (a `Mutex` cannot be captured by escaping closures).
final class LockedBox<Value: Sendable>: Sendable {
    let lock: Mutex<Value>
    init(_ value: Value) { lock = Mutex(value) }
}
