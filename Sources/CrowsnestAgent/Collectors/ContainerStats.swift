import CrowsnestWire

/// One container's raw counters and gauges at one instant, read from its cgroup and `/proc/<pid>/net/dev`.
///
/// Counters are cumulative since the container started; the server turns them into rates.
/// A figure whose file does not exist on this kernel or configuration is 0.
public struct ContainerStats: Sendable, Equatable {
    /// Which hierarchy the figures came from.
    public var source: CgroupVersion
    /// CPU time consumed, in nanoseconds.
    public var cpuUsageNs: UInt64 = 0
    /// CFS periods in which the container was throttled by its CPU quota.
    public var cpuThrottledPeriods: UInt64 = 0
    /// Total time the container was throttled, in nanoseconds.
    public var cpuThrottledNs: UInt64 = 0
    /// Memory charged to the cgroup (page cache included), in bytes.
    public var memoryUsageBytes: UInt64 = 0
    /// Usage minus inactive file cache: what the kernel would not reclaim first (what `docker stats`-style UIs and OOM care about).
    public var memoryWorkingSetBytes: UInt64 = 0
    /// The cgroup's memory limit in bytes; 0 = unlimited.
    public var memoryLimitBytes: UInt64 = 0
    /// Network counters summed over the container's interfaces except `lo`; zero when the init process is unknown.
    public var network = NetworkCounters()
    /// Bytes read from block devices.
    public var blockReadBytes: UInt64 = 0
    /// Bytes written to block devices.
    public var blockWriteBytes: UInt64 = 0
    /// Block read operations.
    public var blockReadOps: UInt64 = 0
    /// Block write operations.
    public var blockWriteOps: UInt64 = 0
    /// Processes and threads in the cgroup.
    public var pids: UInt64 = 0

    /// All figures zero, from the given hierarchy.
    public init(source: CgroupVersion) {
        self.source = source
    }
}

extension Crowsnest_V1_ContainerSample {
    /// Copies the counters of `stats` into this sample, sets `has_stats` and `stats_source`.
    ///
    /// The memory limit from the cgroup is used only when the sample has none yet (Docker's
    /// inspect data, set by the caller, wins because it reflects what the operator configured).
    public mutating func apply(_ stats: ContainerStats) {
        hasStats_p = true
        statsSource = stats.source.rawValue
        cpuUsageNs = stats.cpuUsageNs
        cpuThrottledPeriods = stats.cpuThrottledPeriods
        cpuThrottledNs = stats.cpuThrottledNs
        memoryUsageBytes = stats.memoryUsageBytes
        memoryWorkingSetBytes = stats.memoryWorkingSetBytes
        if memoryLimitBytes == 0 { memoryLimitBytes = stats.memoryLimitBytes }
        netRxBytes = stats.network.rxBytes
        netTxBytes = stats.network.txBytes
        netRxPackets = stats.network.rxPackets
        netTxPackets = stats.network.txPackets
        netRxErrors = stats.network.rxErrors
        netTxErrors = stats.network.txErrors
        netRxDropped = stats.network.rxDropped
        netTxDropped = stats.network.txDropped
        blockReadBytes = stats.blockReadBytes
        blockWriteBytes = stats.blockWriteBytes
        blockReadOps = stats.blockReadOps
        blockWriteOps = stats.blockWriteOps
        pids = stats.pids
    }
}

/// Reads a container's stats from cgroupfs and procfs: locate its cgroup, read the version's files, add network.
///
/// A value type with no state beyond its roots: share one across tasks. For 50+ containers per
/// sweep, keep each container's `CgroupLocation` and call `read(at:pid:)` to skip the lookup.
public struct ContainerStatsReader: Sendable {
    /// Finds cgroup directories; exposes the detected `version`.
    public let locator: CgroupLocator

    /// A reader over the given cgroup mount root and procfs root (defaults: the host's).
    public init(cgroupRoot: String = "/sys/fs/cgroup", procRoot: String = "/proc") {
        self.locator = CgroupLocator(cgroupRoot: cgroupRoot, procRoot: procRoot)
    }

    /// Locates the container's cgroup and reads every figure.
    ///
    /// - Parameters:
    ///   - pid: the container's init PID on the host (Docker's `State.Pid`); 0 when not running.
    ///   - dockerID: the full container id.
    /// - Throws: `CollectorError.cgroupNotFound` when the container has no cgroup, `.cannotRead` on unreadable files.
    public func read(pid: Int32, dockerID: String) throws -> ContainerStats {
        try read(at: locator.locate(pid: pid, dockerID: dockerID), pid: pid)
    }

    /// Reads every figure from an already located cgroup; network from `/proc/<pid>/net/dev` when pid > 0.
    ///
    /// Network figures of a container in the host's network namespace (`--network host`) are the
    /// host's own; callers that know the network mode should clear `network` for such containers.
    public func read(at location: CgroupLocation, pid: Int32) throws -> ContainerStats {
        var stats: ContainerStats
        switch location {
        case .v2(let directory):
            stats = try CgroupV2Reader.read(directory: directory)
        case .v1(let directories):
            stats = try CgroupV1Reader.read(directories)
        }
        if let network = try ProcNetDev.readContainerNetwork(procRoot: locator.procRoot, pid: pid) {
            stats.network = network
        }
        return stats
    }
}
