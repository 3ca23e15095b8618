import CrowsnestProbes
import CrowsnestWire
import Logging
import ServiceLifecycle
import Synchronization
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Runs the check slots the server assigns (`Assign` frames) and ships their results.
///
/// At most `concurrency` runs at once, each within its assignment's deadline; an assignment whose slot is over
/// before it could start is skipped (a later slot is coming). Results gathered within `coalescing` of each other go
/// out in one event-only batch: spooled like samples (so a result survives a server outage and an agent restart),
/// then sent at once. The same slot and token assigned twice (a resent frame) runs once.
public final class CheckRunner: Service, Sendable {
    public struct Configuration: Sendable {
        /// Runs in flight at most; more assignments wait for a free one.
        public var concurrency = 16
        /// How long results wait for others before their batch is spooled.
        public var coalescing: Duration = .milliseconds(200)
        /// Assignments queued at most; beyond that new ones are refused (logged) until runs finish.
        public var queueLimit = 10_000
        public init() {}
    }

    private let configuration: Configuration
    private let prober: Prober
    private let spool: Spool
    private let sequence: SequenceStore
    private let doorbell: Doorbell
    private let interval: Duration
    private let logger: Logger
    private let queue: AsyncStream<Crowsnest_V1_Assign>
    private let queueInput: AsyncStream<Crowsnest_V1_Assign>.Continuation
    private let state = Mutex(State())

    private struct State {
        var queued = 0
        /// Assignments whose slot has not ended, in arrival order with the end of their slot, so a resent frame
        /// runs once. Only these are kept: an assignment arriving after its slot ended is skipped anyway, and
        /// remembering every assignment (a string each) grew the agent's heap by megabytes over its first half hour
        /// with 100 checks.
        var seen: [(key: AssignmentKey, slotEndMs: Int64)] = []
        var seenSet = Set<AssignmentKey>()
        var results: [Crowsnest_V1_CheckResult] = []

        /// Forgets the assignments at the front whose slot ended before `nowMs`.
        mutating func forgetEnded(before nowMs: Int64) {
            let ended = seen.prefix { $0.slotEndMs < nowMs }.count
            guard ended > 0 else { return }
            for entry in seen[..<ended] { seenSet.remove(entry.key) }
            seen.removeFirst(ended)
        }
    }

    /// What makes an assignment the same one again: its check, slot and fencing token.
    struct AssignmentKey: Hashable {
        let checkID: String
        let slotUnixMs: Int64
        let fencingToken: UInt64
    }

    /// How many assignments are remembered to run each once (those of slots not yet ended); for tests.
    var rememberedAssignments: Int { state.withLock { $0.seen.count } }

    /// `interval` is the agent's sampling interval (every batch carries it).
    public init(configuration: Configuration = .init(), prober: Prober = Prober(), spool: Spool, sequence: SequenceStore,
                doorbell: Doorbell, interval: Duration, logger: Logger) {
        self.configuration = configuration
        self.prober = prober
        self.spool = spool
        self.sequence = sequence
        self.doorbell = doorbell
        self.interval = interval
        self.logger = logger
        (queue, queueInput) = AsyncStream.makeStream(of: Crowsnest_V1_Assign.self)
    }

    /// Takes an assignment from the server (called from the shipper's session; returns at once).
    public func accept(_ assign: Crowsnest_V1_Assign, nowMs: Int64 = Int64(Date().timeIntervalSince1970 * 1000)) {
        let key = AssignmentKey(checkID: assign.checkID, slotUnixMs: assign.slotUnixMs, fencingToken: assign.fencingToken)
        let slotEnd = assign.slotUnixMs + Int64(assign.intervalSeconds) * 1000
        let admitted: Bool = state.withLock { state in
            state.forgetEnded(before: nowMs)
            guard state.seenSet.insert(key).inserted else { return false }
            state.seen.append((key, slotEnd))
            if state.seen.count > 4 * configuration.queueLimit {
                // Slots far longer than the rest kept entries behind them: the oldest go regardless.
                for entry in state.seen.prefix(configuration.queueLimit) { state.seenSet.remove(entry.key) }
                state.seen.removeFirst(configuration.queueLimit)
            }
            guard state.queued < configuration.queueLimit else { return false }
            state.queued += 1
            return true
        }
        guard admitted else {
            logger.debug("check assignment not queued (a repeat, or the queue is full)", metadata: ["check.id": "\(assign.checkID)"])
            return
        }
        queueInput.yield(assign)
    }

    public func run() async throws {
        await withDiscardingTaskGroup { group in
            group.addTask { await self.flushLoop() }
            var running = 0
            await withTaskGroup(of: Void.self) { runs in
                // A graceful shutdown ends the queue; what is still queued then is not started. (Not
                // `cancelOnGracefulShutdown()` on the queue, which merges two sequences for every assignment and
                // keeps that code resident.)
                await withGracefulShutdownHandler {
                    for await assign in queue {
                        if Task.isShuttingDownGracefully { break }
                        if running >= configuration.concurrency {
                            await runs.next()
                            running -= 1
                        }
                        state.withLock { $0.queued -= 1 }
                        running += 1
                        // Each run on the thread it waits on, from start to result (see Prober.makeExecutor).
                        if #available(macOS 15.0, *) {
                            runs.addTask(executorPreference: prober.makeExecutor(type: assign.type, target: assign.target)) {
                                await self.execute(assign)
                            }
                        } else {
                            runs.addTask { await self.execute(assign) }
                        }
                    }
                } onGracefulShutdown: {
                    self.queueInput.finish()
                }
            }
            queueInput.finish()
            // Results of runs that finished during shutdown are spooled before leaving.
            group.cancelAll()
        }
        flush()
    }

    /// Runs one assignment and keeps its result for the next batch.
    func execute(_ assign: Crowsnest_V1_Assign) async {
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let slotEnd = assign.slotUnixMs + Int64(assign.intervalSeconds) * 1000
        guard now < slotEnd else {
            logger.warning("check slot over before its run could start; skipped", metadata: [
                "check.id": "\(assign.checkID)", "slot_unix_ms": "\(assign.slotUnixMs)",
            ])
            return
        }
        let allowed = assign.allowedNetworks.compactMap(IPNetwork.init)
        let timeout = Duration.milliseconds(Int64(max(100, min(assign.timeoutMs, 3_600_000))))
        let outcome = await prober.run(type: assign.type, target: assign.target, options: assign.options, timeout: timeout,
                                       addressGuard: AddressGuard(runner: .agent, allowedNetworks: allowed))
        let result = outcome.checkResult(checkID: assign.checkID, token: assign.fencingToken, slotUnixMs: assign.slotUnixMs)
        state.withLock { $0.results.append(result) }
    }

    /// Spools gathered results every `coalescing`.
    private func flushLoop() async {
        while !Task.isCancelled {
            do { try await EventLoopClock().sleep(for: configuration.coalescing) } catch { return }
            flush()
        }
    }

    /// Spools the results gathered so far as one event-only batch; returns it (nil: none gathered).
    @discardableResult
    func flush() -> Crowsnest_V1_SampleBatch? {
        let results = state.withLock { state in
            defer { state.results = [] }
            return state.results
        }
        guard !results.isEmpty else { return nil }
        var batch = Crowsnest_V1_SampleBatch.eventsOnly(interval: interval) { $0.checkResults = results }
        do {
            batch.seq = try spool.appendBatch(batch, sequence: sequence)
            doorbell.ring()
            return batch
        } catch {
            // Kept for the next flush: a spool that refuses writes fails the sweeps too, and says why there.
            state.withLock { $0.results.insert(contentsOf: results, at: 0) }
            logger.error("cannot spool check results; retrying", metadata: ["error": "\(error)", "results": "\(results.count)"])
            return nil
        }
    }
}
