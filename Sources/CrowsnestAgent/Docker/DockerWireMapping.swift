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
