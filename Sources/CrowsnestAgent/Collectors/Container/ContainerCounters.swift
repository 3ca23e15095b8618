import CrowsnestWire

/// One container's raw counters and gauges at one instant: the one model that the cgroup collectors (v1, v2,
/// `/proc/<pid>/net/dev`) and the Docker-stats fallback fill, mapped to the wire in one place (`setCounters`).
///
/// Counters are cumulative since the container started; the server turns them into rates.
/// A figure whose file does not exist on this kernel or configuration is 0.
public struct ContainerCounters: Sendable, Equatable {
    /// Where the figures came from; the raw value is the `stats_source` sent on the wire.
    public enum Source: String, Sendable, Equatable {
        /// The legacy cgroup hierarchy's files.
        case cgroupV1 = "cgroup-v1"
        /// The unified cgroup hierarchy's files.
        case cgroupV2 = "cgroup-v2"
        /// Docker's one-shot stats API: the fallback when the cgroup files cannot be read.
        case dockerStats = "docker-stats"

        /// The source for a cgroup hierarchy.
        public init(_ version: CgroupVersion) {
            self = version == .v1 ? .cgroupV1 : .cgroupV2
        }
    }

    /// Where the figures came from.
    public var source: Source
    /// When Docker read the figures, in Unix nanoseconds (Docker stats only; nil from the cgroup collectors).
    public var readUnixNano: Int64?
    /// CPU time consumed, in nanoseconds.
    public var cpuUsageNs: UInt64 = 0
    /// CFS periods in which the container was throttled by its CPU quota.
    public var cpuThrottledPeriods: UInt64 = 0
    /// Total time the container was throttled, in nanoseconds.
    public var cpuThrottledNs: UInt64 = 0
    /// Memory charged to the cgroup (page cache included), in bytes.
    public var memoryUsageBytes: UInt64 = 0
    /// Inactive file cache (`total_inactive_file` on cgroup v1, `inactive_file` on v2): what the kernel reclaims first.
    public var memoryInactiveFileBytes: UInt64 = 0
    /// The cgroup's memory limit in bytes; 0 = unlimited or unknown.
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

    /// All figures zero, from the given source.
    public init(source: Source) {
        self.source = source
    }

    /// Usage minus inactive file cache: what the kernel would not reclaim first (what `docker stats`-style UIs and
    /// the OOM killer care about).
    public var memoryWorkingSetBytes: UInt64 {
        memoryUsageBytes > memoryInactiveFileBytes ? memoryUsageBytes - memoryInactiveFileBytes : 0
    }
}

extension Crowsnest_V1_ContainerSample {
    /// Copies `counters` into this sample and sets `has_stats` and `stats_source`: the one mapping from the
    /// counter model to the wire.
    ///
    /// The memory limit from the counters is used only when the sample has none yet: Docker's inspect data, set
    /// first by `setIdentityAndState`, wins because it is what the operator configured.
    public mutating func setCounters(_ counters: ContainerCounters) {
        hasStats_p = true
        statsSource = counters.source.rawValue
        cpuUsageNs = counters.cpuUsageNs
        cpuThrottledPeriods = counters.cpuThrottledPeriods
        cpuThrottledNs = counters.cpuThrottledNs
        memoryUsageBytes = counters.memoryUsageBytes
        memoryWorkingSetBytes = counters.memoryWorkingSetBytes
        if memoryLimitBytes == 0 { memoryLimitBytes = counters.memoryLimitBytes }
        netRxBytes = counters.network.rxBytes
        netTxBytes = counters.network.txBytes
        netRxPackets = counters.network.rxPackets
        netTxPackets = counters.network.txPackets
        netRxErrors = counters.network.rxErrors
        netTxErrors = counters.network.txErrors
        netRxDropped = counters.network.rxDropped
        netTxDropped = counters.network.txDropped
        blockReadBytes = counters.blockReadBytes
        blockWriteBytes = counters.blockWriteBytes
        blockReadOps = counters.blockReadOps
        blockWriteOps = counters.blockWriteOps
        pids = counters.pids
    }
}
