import CrowsnestProbes
import CrowsnestWire
import Logging
import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
/// glibc's `malloc_trim` (declared in malloc.h, which the Glibc module does not include).
@_silgen_name("malloc_trim")
private func glibcMallocTrim(_ pad: Int) -> Int32
#endif

/// What the agent knows about the host's containers, kept apart from the sweeps so a sweep never waits for
/// Docker: every known container is sampled from its cgroup files even while the engine does not answer.
///
/// One listing (with an inspect of each container) at start, after every event-stream reconnect or error, and
/// every `reconcileInterval`; in between, each Docker event marks its container for a fresh inspect (a new pid
/// after a restart, a new name after a rename, health output after a health change) and `destroy` removes it.
/// All Docker calls happen here, in the background.
public final class ContainerInventory: Service, Sendable {
    /// A container as the last successful inspect saw it, or one listed but never inspected successfully.
    public struct Entry: Sendable, Equatable {
        public var details: DockerContainerDetails?
        /// The listing's name, for a container that could not be inspected yet.
        public var listedName: String
        /// Why its details are missing or may be out of date (the last inspect failed).
        public var failure: String?
    }

    /// One sweep's view: every known container, and why there are none when Docker was never reachable.
    public struct Snapshot: Sendable {
        public var entries: [Entry]
        public var unavailableReason: String
    }

    private struct State {
        var entries: [String: Entry] = [:]
        var dirty: Set<String> = []
        var listingDue = true
        var listedOnce = false
        var unavailableReason = "Docker engine not listed yet"
        /// Labels and health outputs shortened or dropped since the last report.
        var truncatedValues: UInt64 = 0
    }

    /// Values (labels, health output) the inventory shortened or dropped since the last call; each is counted
    /// once, when its container was inspected, not on every sweep.
    public func takeTruncatedSinceLastReport() -> UInt64 {
        state.withLock { state in
            defer { state.truncatedValues = 0 }
            return state.truncatedValues
        }
    }

    public let reconcileInterval: Duration
    /// Inspects run at most this many at a time.
    public let concurrentInspects: Int
    private let docker: DockerClient
    private let logger: Logger
    private let state = Mutex(State())

    public init(docker: DockerClient, reconcileInterval: Duration = .seconds(300), concurrentInspects: Int = 4, logger: Logger) {
        self.docker = docker
        self.reconcileInterval = reconcileInterval
        self.concurrentInspects = max(1, concurrentInspects)
        self.logger = logger
    }

    // MARK: What sweeps and the event watcher call

    /// The known containers now; never waits for Docker.
    public func snapshot() -> Snapshot {
        state.withLock { state in
            Snapshot(entries: state.entries.values.sorted { ($0.details?.name ?? $0.listedName) < ($1.details?.name ?? $1.listedName) },
                     unavailableReason: state.listedOnce ? "" : state.unavailableReason)
        }
    }

    /// The known containers as `docker` checks judge them: inspected ones only (a container never inspected has
    /// no state yet), or why none are known.
    public func probedContainers() -> ContainerView {
        let snapshot = snapshot()
        let containers = snapshot.entries.compactMap { entry -> ProbedContainer? in
            guard let details = entry.details else { return nil }
            return ProbedContainer(name: details.name, labels: details.labels, state: details.state,
                                   health: details.health?.status,
                                   healthOutput: details.health?.status == "healthy" ? nil : details.health?.lastOutput,
                                   exitCode: details.exitCode, restartCount: details.restartCount)
        }
        return ContainerView(containers: containers, unavailableReason: snapshot.unavailableReason)
    }

    /// Waits (at most `timeout`) until the first listing finished, so the first sweep after start is complete.
    public func waitUntilListed(timeout: Duration) async {
        let deadline = ContinuousClock.now + timeout
        while !state.withLock({ $0.listedOnce }) && ContinuousClock.now < deadline {
            do { try await EventLoopClock().sleep(for: .milliseconds(50)) } catch { return }
        }
    }

    /// A Docker event: `destroy` forgets the container, anything else marks it for a fresh inspect.
    public func note(_ event: DockerEvent) {
        guard !event.id.isEmpty else { return }
        state.withLock { state in
            if event.action == "destroy" {
                state.entries[event.id] = nil
                state.dirty.remove(event.id)
            } else {
                if state.entries[event.id] == nil {
                    state.entries[event.id] = Entry(details: nil, listedName: event.name, failure: nil)
                }
                state.dirty.insert(event.id)
            }
        }
    }

    /// The name the inventory knows for a container id (for events that arrived without their attributes).
    public func name(of id: String) -> String? {
        state.withLock { state in state.entries[id].map { $0.details?.name ?? $0.listedName } }
    }

    /// The event stream broke or reconnected: events may have been missed, so list everything again.
    public func noteEventStreamInterrupted() {
        state.withLock { $0.listingDue = true }
    }

    // MARK: The background work

    public func run() async throws {
        var lastListing: ContinuousClock.Instant?
        var lastFailedListing: ContinuousClock.Instant?
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            let due = state.withLock { state -> Bool in
                if let lastListing, ContinuousClock.now - lastListing >= reconcileInterval { state.listingDue = true }
                return state.listingDue
            }
            if due {
                if await list() {
                    lastListing = .now
                    lastFailedListing = nil
                } else {
                    lastFailedListing = .now
                }
            }
            await inspectDirty()
            // Wait, looking four times a second, until an event marked a container (events reach the inventory
            // within a quarter of a second), a listing is due (the event stream broke; a failed listing is retried
            // after 5 s), or the next reconciliation.
            let until = ContinuousClock.now + reconcileInterval
            while ContinuousClock.now < until && !Task.isShuttingDownGracefully {
                let (dirty, listingDue) = state.withLock { (!$0.dirty.isEmpty, $0.listingDue) }
                if dirty { break }
                if listingDue && lastFailedListing.map({ ContinuousClock.now - $0 >= .seconds(5) }) ?? true { break }
                do { try await EventLoopClock().sleep(for: .milliseconds(250)) } catch { return }
            }
        }
    }

    /// Lists every container; new ones and ones whose state changed are inspected. Returns false when Docker
    /// could not be reached (the inventory keeps what it knew).
    @discardableResult
    public func list() async -> Bool {
        let summaries: [DockerContainerSummary]
        do {
            summaries = try await docker.listContainers(all: true)
        } catch {
            state.withLock { state in
                state.unavailableReason = "Docker engine unavailable: \(error)"
            }
            return false
        }
        state.withLock { state in
            let listed = Set(summaries.map(\.id))
            for id in state.entries.keys where !listed.contains(id) { state.entries[id] = nil }
            state.dirty = state.dirty.filter(listed.contains)
            for summary in summaries {
                if let known = state.entries[summary.id], let details = known.details, details.state == summary.state,
                   details.name == summary.primaryName {
                    continue
                }
                if state.entries[summary.id] == nil {
                    state.entries[summary.id] = Entry(details: nil, listedName: summary.primaryName, failure: nil)
                }
                state.dirty.insert(summary.id)
            }
            state.listingDue = false
            state.unavailableReason = ""
        }
        await inspectDirty()
        state.withLock { $0.listedOnce = true }
        // A listing decodes every label of every container in full (megabytes on a host with hostile labels);
        // what was freed goes back to the system instead of staying in the process as free heap.
        #if canImport(Glibc)
        _ = glibcMallocTrim(0)
        #endif
        return true
    }

    /// Inspects every container marked dirty, a few at a time.
    func inspectDirty() async {
        let ids: [String] = state.withLock { state in
            defer { state.dirty = [] }
            return Array(state.dirty)
        }
        guard !ids.isEmpty else { return }
        let docker = self.docker
        // One child task per inspect, at most `concurrentInspects` at a time; each answers with a plain value
        // (no existential error in the child's result: the release build crashed copying such tuples out of the
        // group).
        await withTaskGroup(of: InspectOutcome.self) { group in
            var pending = ids.makeIterator()
            for _ in 0..<concurrentInspects {
                guard let id = pending.next() else { break }
                group.addTask { await InspectOutcome.inspect(id, with: docker) }
            }
            while let outcome = await group.next() {
                record(outcome)
                if let id = pending.next() {
                    group.addTask { await InspectOutcome.inspect(id, with: docker) }
                }
            }
        }
    }

    /// What one inspect gave.
    private enum InspectOutcome: Sendable {
        case details(DockerContainerDetails)
        case notFound(id: String)
        case failed(id: String, reason: String)

        static func inspect(_ id: String, with docker: DockerClient) async -> InspectOutcome {
            do {
                return .details(try await docker.inspect(id))
            } catch let error as DockerClientError where error.code == .notFound {
                return .notFound(id: id)
            } catch {
                return .failed(id: id, reason: "\(error)")
            }
        }
    }

    /// Keeps what an inspect found (bounded once, here) or why it failed.
    private func record(_ outcome: InspectOutcome) {
        state.withLock { state in
            switch outcome {
            case .details(let details):
                // Destroyed while the inspect ran: a late answer must not bring it back.
                guard state.entries[details.id] != nil else { return }
                // Bounded once, here: a container with megabytes of labels costs the agent 16 KiB of
                // memory and no work per sweep; what was cut is counted once, in the next batch.
                var bounded = details
                var cleaner = WireTextCleaner()
                bounded.labels = cleaner.labels(details.labels)
                if let output = details.health?.lastOutput {
                    bounded.health?.lastOutput = cleaner.text(output, maxBytes: WireTextBounds.healthOutputBytes)
                }
                state.truncatedValues &+= cleaner.truncated
                state.entries[details.id] = Entry(details: bounded, listedName: details.name, failure: nil)
            case .notFound(let id):
                state.entries[id] = nil  // removed between the event (or listing) and the inspect
            case .failed(let id, let reason):
                if var entry = state.entries[id] {
                    entry.failure = "inspect failed: \(reason)"
                    state.entries[id] = entry
                }
            }
        }
    }
}
