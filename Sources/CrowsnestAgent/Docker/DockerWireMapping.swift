import CrowsnestWire

extension Crowsnest_V1_ContainerSample {
    /// Fills identity, state, health and limits from `docker inspect` details.
    ///
    /// health is "none" without a health check; times are Unix milliseconds, 0 when unknown;
    /// limits are 0 when unlimited.
    public mutating func setIdentityAndState(from details: DockerContainerDetails) {
        dockerID = details.id
        name = details.name
        image = details.image
        labels = details.labels
        state = details.state
        health = details.health?.status ?? "none"
        healthOutput = (details.health?.lastOutput ?? "").trimmingWhitespace()
        restartCount = UInt32(clamping: details.restartCount)
        exitCode = details.exitCode
        oomKilled = details.oomKilled
        startedAtUnixMs = (details.startedAtUnixNano ?? 0) / 1_000_000
        finishedAtUnixMs = (details.finishedAtUnixNano ?? 0) / 1_000_000
        cpuLimitCores = details.cpuLimitCores
        memoryLimitBytes = details.memoryLimitBytes
    }

    /// Fills the counters and gauges from a one-shot `docker stats` answer and marks the source
    /// "docker-stats". Leaves `hasStats` false when Docker had no figures (container not running).
    public mutating func setCounters(from stats: DockerStats) {
        guard stats.hasFigures else {
            hasStats_p = false
            return
        }
        hasStats_p = true
        statsSource = "docker-stats"
        cpuUsageNs = stats.cpuUsageNs
        cpuThrottledPeriods = stats.cpuThrottledPeriods
        cpuThrottledNs = stats.cpuThrottledNs
        memoryUsageBytes = stats.memoryUsageBytes
        memoryWorkingSetBytes = stats.memoryWorkingSetBytes
        netRxBytes = stats.netRxBytes
        netTxBytes = stats.netTxBytes
        netRxPackets = stats.netRxPackets
        netTxPackets = stats.netTxPackets
        netRxErrors = stats.netRxErrors
        netTxErrors = stats.netTxErrors
        netRxDropped = stats.netRxDropped
        netTxDropped = stats.netTxDropped
        blockReadBytes = stats.blockReadBytes
        blockWriteBytes = stats.blockWriteBytes
        blockReadOps = stats.blockReadOps
        blockWriteOps = stats.blockWriteOps
        pids = stats.pids
    }
}

extension Crowsnest_V1_ContainerEvent {
    /// Builds the wire event from a Docker event: action without its detail ("health_status"),
    /// exit code -1 when Docker gave none, detail = health status or kill signal.
    public init(_ event: DockerEvent) {
        self.init()
        dockerID = event.id
        name = event.name
        action = event.action
        timeUnixNano = event.timeUnixNano
        exitCode = event.exitCode ?? -1
        detail = event.healthStatus ?? event.signal ?? ""
    }
}
