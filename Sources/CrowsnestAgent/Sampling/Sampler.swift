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

/// One sweep's worth of container figures, or why there are none.
public struct ContainerSweep: Sendable {
    public var containers: [Crowsnest_V1_ContainerSample]
    public var unavailableReason: String
    /// Containers Docker listed that have no sample in this sweep, with the reason.
    public var missing: [Crowsnest_V1_MissingContainer] = []
}

/// Samples the host and every container on wall-clock-aligned ticks and spools each sweep as a batch.
///
/// Which containers exist comes from the `ContainerInventory` (kept current in the background), so a steady
/// sweep makes no Docker call. Counters are read raw from cgroup files and `/proc/<pid>/net/dev` (the server
/// derives rates); where those cannot be read it falls back to Docker's one-shot stats, within the sweep's
/// deadline, and says once why. A Docker engine that was never reachable leaves host figures flowing, with the
/// reason in the batch.
public final class Sampler: Service, Sendable {
    public struct Configuration: Sendable {
        public var interval: Duration
        public var cgroupRoot: String = "/sys/fs/cgroup"
        public var procRoot: String = "/proc"
        /// Where the host's root filesystem is mounted (`/host` in a container); empty on the host.
        public var hostRoot: String = ""
        public init(interval: Duration) { self.interval = interval }
    }

    private let configuration: Configuration
    private let docker: DockerClient
    private let inventory: ContainerInventory
    private let events: DockerEventWatcher
    private let spool: Spool
    private let sequence: SequenceStore
    private let deadLetters: DeadLetterBox
    private let doorbell: Doorbell
    private let hostReader: HostReader
    private let counterReader: ContainerCounterReader
    private let logger: Logger
    private let warned = Mutex<Set<String>>([])
    /// The collectors of the containers the last sweep read, by Docker id: their files stay open until a sweep no
    /// longer finds the container running.
    private let containerCollectors = Mutex<[String: ContainerCollectors]>([:])

    public init(configuration: Configuration, docker: DockerClient, inventory: ContainerInventory, events: DockerEventWatcher, spool: Spool,
                sequence: SequenceStore, deadLetters: DeadLetterBox, doorbell: Doorbell, logger: Logger) {
        self.configuration = configuration
        self.docker = docker
        self.inventory = inventory
        self.events = events
        self.spool = spool
        self.sequence = sequence
        self.deadLetters = deadLetters
        self.doorbell = doorbell
        self.hostReader = HostReader(procRoot: configuration.procRoot, rootfsPrefix: configuration.hostRoot)
        self.counterReader = ContainerCounterReader(cgroupRoot: configuration.cgroupRoot, procRoot: configuration.procRoot)
        self.logger = logger
    }

    /// The next wall-clock multiple of `interval` strictly after `nowMillis`.
    public static func nextTick(afterMillis nowMillis: Int64, intervalMillis: Int64) -> Int64 {
        (nowMillis / intervalMillis + 1) * intervalMillis
    }

    public func run() async throws {
        let intervalMillis = Int64(configuration.interval.components.seconds * 1000)
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            let tick = Self.nextTick(afterMillis: now, intervalMillis: intervalMillis)
            do {
                try await cancelWhenGracefulShutdown { try await EventLoopClock().sleep(for: .milliseconds(tick - now)) }
            } catch { return }
            do {
                try await sweep(tickMillis: tick)
            } catch {
                logger.error("sweep failed; its batch was not spooled", metadata: ["tick": "\(tick)", "error": "\(error)"])
            }
        }
    }

    /// Largest encoded batch the sampler spools: a sweep above it goes out in parts (`SweepParts`).
    public static let maxBatchBytes = FrameLimits.established - 64 * 1024

    /// Samples once and spools the sweep as one batch or, when it is larger than a frame may be, as several
    /// parts with consecutive sequences; returns the parts.
    @discardableResult
    public func sweep(tickMillis: Int64) async throws -> [Crowsnest_V1_SampleBatch] {
        var batch = Crowsnest_V1_SampleBatch()
        batch.tsUnixMs = tickMillis
        batch.intervalSeconds = UInt32(configuration.interval.components.seconds)
        // The first sweep after start waits (briefly) for the first listing, so it is complete.
        await inventory.waitUntilListed(timeout: .seconds(5))
        let host = Result { try hostReader.read() }
        let containers = await sampleContainers(deadline: .now + configuration.interval / 2)
        switch host {
        case .success(let sample): batch.host = sample
        case .failure(let error): warnOnce("host", "cannot read host figures", error: "\(error)")
        }
        batch.containers = containers.containers
        batch.containersUnavailableReason = containers.unavailableReason
        batch.missing = containers.missing
        batch.events = events.drain()
        // Strings from containers are attacker-controlled: NUL removed and bounded before anything is encoded.
        batch.truncatedValues = batch.sanitize() &+ inventory.takeTruncatedSinceLastReport()
        batch.spoolDroppedBatches = try spool.takeDroppedSinceLastReport()
        batch.deadLetteredBatches = try deadLetters.takeUnreported()
        var parts = SweepParts.split(batch, maxBytes: Self.maxBatchBytes)
        if parts.count > 1 {
            logger.info("sweep larger than one frame; sending it in parts",
                        metadata: ["parts": "\(parts.count)", "containers": "\(batch.containers.count)"])
        }
        for index in parts.indices {
            parts[index].seq = try spool.appendBatch(parts[index], sequence: sequence)
        }
        events.markSpooled(batch.events)
        doorbell.ring()
        return parts
    }

    /// Every container the inventory knows, with counters read from its cgroup files: no Docker call unless
    /// the cgroup files cannot be read (then Docker's one-shot stats, while the sweep's deadline allows).
    public func sampleContainers(deadline: ContinuousClock.Instant = .now + .seconds(5)) async -> ContainerSweep {
        let snapshot = inventory.snapshot()
        if snapshot.entries.isEmpty && !snapshot.unavailableReason.isEmpty {
            warnOnce("docker", "container figures missing: the Docker engine cannot be reached; host figures keep flowing",
                     error: snapshot.unavailableReason)
            return ContainerSweep(containers: [], unavailableReason: snapshot.unavailableReason)
        }
        clearWarning("docker", message: "Docker engine reachable again; container figures resume")
        var samples: [Crowsnest_V1_ContainerSample] = []
        var missingContainers: [Crowsnest_V1_MissingContainer] = []
        samples.reserveCapacity(snapshot.entries.count)
        let previous = containerCollectors.withLock { $0 }
        var kept: [String: ContainerCollectors] = [:]
        kept.reserveCapacity(previous.count)
        for entry in snapshot.entries {
            guard let details = entry.details else {
                // Listed (or announced by an event) but never inspected: say so, so the server keeps it.
                var missing = Crowsnest_V1_MissingContainer()
                missing.name = entry.listedName
                missing.reason = entry.failure ?? "not inspected yet"
                missingContainers.append(missing)
                continue
            }
            var sample = Crowsnest_V1_ContainerSample()
            sample.setIdentityAndState(from: details)
            if details.state == "running" || details.state == "paused", details.pid > 0 {
                do {
                    sample.setCounters(try counters(of: details, previous: previous, kept: &kept))
                } catch {
                    warnOnce("cgroup", "cannot read container cgroup files; using Docker's stats API instead (slower)",
                             error: "\(error)")
                    if ContinuousClock.now < deadline, let counters = try? await docker.oneShotStats(details.id) {
                        sample.setCounters(counters)
                    }
                }
            }
            samples.append(sample)
        }
        // Collectors of containers that stopped or went away are dropped here, and their files closed.
        containerCollectors.withLock { $0 = kept }
        return ContainerSweep(containers: samples, unavailableReason: "", missing: missingContainers)
    }

    /// A running container's counters through its kept collectors: last sweep's while its init process is the same
    /// and its files can be read, else located anew (a restart: new pid, new cgroup directory).
    private func counters(of details: DockerContainerDetails, previous: [String: ContainerCollectors],
                          kept: inout [String: ContainerCollectors]) throws -> ContainerCounters {
        let pid = Int32(clamping: details.pid)
        if let collectors = previous[details.id], collectors.pid == pid, let counters = try? collectors.collect() {
            kept[details.id] = collectors
            return counters
        }
        let collectors = try counterReader.collectors(pid: pid, dockerID: details.id)
        let counters = try collectors.collect()
        kept[details.id] = collectors
        return counters
    }

    /// How many containers have collectors kept (their files open) after the last sweep.
    public var keptContainerCount: Int { containerCollectors.withLock { $0.count } }

    /// The collectors kept for a container after the last sweep (tests look at which process they follow).
    func keptCollectors(of dockerID: String) -> ContainerCollectors? {
        containerCollectors.withLock { $0[dockerID] }
    }

    private func warnOnce(_ key: String, _ message: Logger.Message, error: String) {
        let first = warned.withLock { $0.insert(key).inserted }
        if first { logger.warning(message, metadata: ["error": "\(error)"]) }
    }

    private func clearWarning(_ key: String, message: Logger.Message) {
        let was = warned.withLock { $0.remove(key) != nil }
        if was { logger.info(message) }
    }
}
