import CrowsnestWire
/// The cumulative counters of one container at one tick, as needed to derive rates.
public struct CounterSnapshot: Sendable, Equatable {
    public var tsMillis: Int64
    public var dockerID: String
    /// When the container (its current incarnation) started, unix ms; 0 when unknown.
    public var startedAtMillis: Int64
    public var cpuUsageNanos: UInt64
    public var netRxBytes: UInt64
    public var netTxBytes: UInt64
    public var blockReadBytes: UInt64
    public var blockWriteBytes: UInt64

    public init(tsMillis: Int64, dockerID: String, startedAtMillis: Int64, cpuUsageNanos: UInt64, netRxBytes: UInt64,
                netTxBytes: UInt64, blockReadBytes: UInt64, blockWriteBytes: UInt64) {
        self.tsMillis = tsMillis
        self.dockerID = dockerID
        self.startedAtMillis = startedAtMillis
        self.cpuUsageNanos = cpuUsageNanos
        self.netRxBytes = netRxBytes
        self.netTxBytes = netTxBytes
        self.blockReadBytes = blockReadBytes
        self.blockWriteBytes = blockWriteBytes
    }
}

/// Per-second rates derived from two counter snapshots; nil where no honest figure exists.
public struct CounterRates: Sendable, Equatable {
    /// CPU as a percentage of one core (two busy cores = 200).
    public var cpuPercent: Double?
    public var netRxBytesPerSecond: Double?
    public var netTxBytesPerSecond: Double?
    public var blockReadBytesPerSecond: Double?
    public var blockWriteBytesPerSecond: Double?

    public static let unknown = CounterRates(cpuPercent: nil, netRxBytesPerSecond: nil, netTxBytesPerSecond: nil,
                                             blockReadBytesPerSecond: nil, blockWriteBytesPerSecond: nil)

    /// Derives rates between `previous` and `current`.
    ///
    /// - A restart (new Docker id, or a start time after the previous tick) means the counters began again at
    ///   zero when the container started: the rate is the current value over the time since that start.
    /// - A counter that went down without a visible restart was reset at an unknown time: its rate is nil.
    /// - No previous snapshot, or no time elapsed: every rate is nil.
    public static func between(_ previous: CounterSnapshot?, _ current: CounterSnapshot) -> CounterRates {
        let restarted: Bool
        let baselineMillis: Int64
        if let previous, previous.dockerID == current.dockerID, current.startedAtMillis <= previous.tsMillis {
            restarted = false
            baselineMillis = previous.tsMillis
        } else if current.startedAtMillis > 0, current.startedAtMillis < current.tsMillis,
                  previous != nil || current.tsMillis - current.startedAtMillis <= 10 * 60 * 1000 {
            // A fresh incarnation: counters count from its start.
            restarted = true
            baselineMillis = current.startedAtMillis
        } else {
            return .unknown
        }
        let seconds = Double(current.tsMillis - baselineMillis) / 1000
        guard seconds > 0 else { return .unknown }

        func rate(_ now: UInt64, _ before: UInt64?) -> Double? {
            if restarted { return Double(now) / seconds }
            guard let before, now >= before else { return nil }
            return Double(now - before) / seconds
        }
        let cpuNanosPerSecond = rate(current.cpuUsageNanos, previous?.cpuUsageNanos)
        return CounterRates(
            cpuPercent: cpuNanosPerSecond.map { $0 / 1_000_000_000 * 100 },
            netRxBytesPerSecond: rate(current.netRxBytes, previous?.netRxBytes),
            netTxBytesPerSecond: rate(current.netTxBytes, previous?.netTxBytes),
            blockReadBytesPerSecond: rate(current.blockReadBytes, previous?.blockReadBytes),
            blockWriteBytesPerSecond: rate(current.blockWriteBytes, previous?.blockWriteBytes)
        )
    }
}

extension CounterSnapshot {
    /// A host's counters in the same shape as a container's, so one rate engine serves both: busy CPU time
    /// (total − idle − iowait) as CPU usage, every interface summed, and the boot time (tick − uptime) as the
    /// start, so a reboot reads as a restart whose counters began at zero.
    public static func host(_ host: Crowsnest_V1_HostSample, tsMillis: Int64) -> CounterSnapshot {
        let idle = host.cpuIdleNs &+ host.cpuIowaitNs
        let busy = host.cpuTotalNs >= idle ? host.cpuTotalNs - idle : 0
        let uptimeMillis = Int64(clamping: host.uptimeSeconds).multipliedReportingOverflow(by: 1000)
        return CounterSnapshot(
            tsMillis: tsMillis, dockerID: "", startedAtMillis: uptimeMillis.overflow ? 0 : max(0, tsMillis - uptimeMillis.partialValue),
            cpuUsageNanos: busy,
            netRxBytes: host.interfaces.reduce(UInt64(0)) { $0 &+ $1.rxBytes },
            netTxBytes: host.interfaces.reduce(UInt64(0)) { $0 &+ $1.txBytes },
            blockReadBytes: 0, blockWriteBytes: 0)
    }
}
