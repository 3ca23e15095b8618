/// One row of `GET /containers/json`: enough to know which containers exist and their state.
public struct DockerContainerSummary: Sendable, Equatable {
    /// Full 64-hex-digit container id.
    public var id: String
    /// Container names without Docker's leading "/".
    public var names: [String]
    /// The image as the container was created from it ("nginx:1.27", or an image id).
    public var image: String
    /// Docker's state: created, running, paused, restarting, removing, exited, dead.
    public var state: String
    /// Docker's human status line ("Up 5 minutes (healthy)", "Exited (3) 2 hours ago").
    public var status: String
    /// The container's labels.
    public var labels: [String: String]

    /// Creates a summary.
    public init(id: String, names: [String], image: String, state: String, status: String, labels: [String: String]) {
        self.id = id
        self.names = names
        self.image = image
        self.state = state
        self.status = status
        self.labels = labels
    }

    /// The first name, or the short id when the container has none.
    public var primaryName: String { names.first ?? String(id.prefix(12)) }
}

/// Health check state of a container that has a HEALTHCHECK.
public struct DockerHealth: Sendable, Equatable {
    /// starting, healthy or unhealthy.
    public var status: String
    /// Consecutive failed probes.
    public var failingStreak: Int
    /// Output of the newest probe run, as Docker keeps it (up to 4 KiB), or nil before the first run.
    public var lastOutput: String?
    /// Exit code of the newest probe run, or nil before the first run.
    public var lastExitCode: Int?

    /// Creates a health state.
    public init(status: String, failingStreak: Int, lastOutput: String?, lastExitCode: Int?) {
        self.status = status
        self.failingStreak = failingStreak
        self.lastOutput = lastOutput
        self.lastExitCode = lastExitCode
    }
}

/// What `GET /containers/{id}/json` tells about one container, reduced to what Crowsnest reports.
public struct DockerContainerDetails: Sendable, Equatable {
    /// Full container id.
    public var id: String
    /// Container name without the leading "/".
    public var name: String
    /// The image as configured (Config.Image).
    public var image: String
    /// The container's labels (Config.Labels).
    public var labels: [String: String]
    /// Docker's state (State.Status): created, running, paused, restarting, removing, exited, dead.
    public var state: String
    /// Host pid of the container's main process; 0 when it is not running.
    public var pid: Int
    /// Exit code of the last run (State.ExitCode).
    public var exitCode: Int32
    /// Whether the kernel's OOM killer ended the last run.
    public var oomKilled: Bool
    /// When the current or last run started, in Unix nanoseconds; nil when it never started.
    public var startedAtUnixNano: Int64?
    /// When the last run ended, in Unix nanoseconds; nil when it has not ended.
    public var finishedAtUnixNano: Int64?
    /// Health check state; nil when the container has no health check.
    public var health: DockerHealth?
    /// How many times Docker restarted the container under its restart policy.
    public var restartCount: Int
    /// CPU limit in cores (NanoCpus, or CpuQuota / CpuPeriod); 0 = unlimited.
    public var cpuLimitCores: Double
    /// Memory limit in bytes (HostConfig.Memory); 0 = unlimited.
    public var memoryLimitBytes: UInt64

    /// Creates container details.
    public init(
        id: String, name: String, image: String, labels: [String: String], state: String, pid: Int,
        exitCode: Int32, oomKilled: Bool, startedAtUnixNano: Int64?, finishedAtUnixNano: Int64?,
        health: DockerHealth?, restartCount: Int, cpuLimitCores: Double, memoryLimitBytes: UInt64
    ) {
        self.id = id
        self.name = name
        self.image = image
        self.labels = labels
        self.state = state
        self.pid = pid
        self.exitCode = exitCode
        self.oomKilled = oomKilled
        self.startedAtUnixNano = startedAtUnixNano
        self.finishedAtUnixNano = finishedAtUnixNano
        self.health = health
        self.restartCount = restartCount
        self.cpuLimitCores = cpuLimitCores
        self.memoryLimitBytes = memoryLimitBytes
    }
}

/// One container event from `GET /events`, with Docker's own timestamp.
public struct DockerEvent: Sendable, Equatable {
    /// The action as Docker sends it, e.g. "die" or "health_status: healthy".
    public var rawAction: String
    /// The action without its detail: "die", "health_status", "exec_start".
    public var action: String
    /// Container id (Actor.ID).
    public var id: String
    /// Container name (Actor.Attributes.name), empty when Docker did not send one.
    public var name: String
    /// Exit code for "die" events (the exitCode attribute); nil when absent.
    public var exitCode: Int32?
    /// Signal number for "kill" events (the signal attribute, e.g. "15"); nil when absent.
    public var signal: String?
    /// "healthy" / "unhealthy" for "health_status" events; nil otherwise.
    public var healthStatus: String?
    /// Docker's event time in Unix nanoseconds (timeNano, else time × 10⁹).
    public var timeUnixNano: Int64
    /// All actor attributes (labels, image, name, exitCode, ...).
    public var attributes: [String: String]

    /// Creates an event.
    public init(
        rawAction: String, action: String, id: String, name: String, exitCode: Int32?, signal: String?,
        healthStatus: String?, timeUnixNano: Int64, attributes: [String: String]
    ) {
        self.rawAction = rawAction
        self.action = action
        self.id = id
        self.name = name
        self.exitCode = exitCode
        self.signal = signal
        self.healthStatus = healthStatus
        self.timeUnixNano = timeUnixNano
        self.attributes = attributes
    }
}

/// Cumulative counters and gauges of one container from a one-shot `GET /containers/{id}/stats`.
///
/// The agent's fallback when it cannot read the container's cgroup files itself.
public struct DockerStats: Sendable, Equatable {
    /// When Docker read the figures, in Unix nanoseconds; nil when the container is not running
    /// (Docker then answers with zero time and empty sections).
    public var readUnixNano: Int64?
    /// Total CPU time used, nanoseconds (cpu_stats.cpu_usage.total_usage).
    public var cpuUsageNs: UInt64
    /// CFS periods in which the container was throttled.
    public var cpuThrottledPeriods: UInt64
    /// Total time the container was throttled, nanoseconds.
    public var cpuThrottledNs: UInt64
    /// Memory usage as the kernel counts it (includes page cache).
    public var memoryUsageBytes: UInt64
    /// Inactive file cache (total_inactive_file on cgroup v1, inactive_file on v2).
    public var memoryInactiveFileBytes: UInt64
    /// Memory limit Docker reports (the host's memory when unlimited).
    public var memoryLimitBytes: UInt64
    /// Bytes received over all interfaces.
    public var netRxBytes: UInt64
    /// Bytes sent over all interfaces.
    public var netTxBytes: UInt64
    /// Packets received over all interfaces.
    public var netRxPackets: UInt64
    /// Packets sent over all interfaces.
    public var netTxPackets: UInt64
    /// Receive errors over all interfaces.
    public var netRxErrors: UInt64
    /// Transmit errors over all interfaces.
    public var netTxErrors: UInt64
    /// Received packets dropped over all interfaces.
    public var netRxDropped: UInt64
    /// Sent packets dropped over all interfaces.
    public var netTxDropped: UInt64
    /// Bytes read from block devices, all devices.
    public var blockReadBytes: UInt64
    /// Bytes written to block devices, all devices.
    public var blockWriteBytes: UInt64
    /// Read operations on block devices, all devices.
    public var blockReadOps: UInt64
    /// Write operations on block devices, all devices.
    public var blockWriteOps: UInt64
    /// Number of processes and threads in the container.
    public var pids: UInt64

    /// Creates stats; every counter defaults to 0.
    public init(
        readUnixNano: Int64? = nil, cpuUsageNs: UInt64 = 0, cpuThrottledPeriods: UInt64 = 0,
        cpuThrottledNs: UInt64 = 0, memoryUsageBytes: UInt64 = 0, memoryInactiveFileBytes: UInt64 = 0,
        memoryLimitBytes: UInt64 = 0, netRxBytes: UInt64 = 0, netTxBytes: UInt64 = 0, netRxPackets: UInt64 = 0,
        netTxPackets: UInt64 = 0, netRxErrors: UInt64 = 0, netTxErrors: UInt64 = 0, netRxDropped: UInt64 = 0,
        netTxDropped: UInt64 = 0, blockReadBytes: UInt64 = 0, blockWriteBytes: UInt64 = 0,
        blockReadOps: UInt64 = 0, blockWriteOps: UInt64 = 0, pids: UInt64 = 0
    ) {
        self.readUnixNano = readUnixNano
        self.cpuUsageNs = cpuUsageNs
        self.cpuThrottledPeriods = cpuThrottledPeriods
        self.cpuThrottledNs = cpuThrottledNs
        self.memoryUsageBytes = memoryUsageBytes
        self.memoryInactiveFileBytes = memoryInactiveFileBytes
        self.memoryLimitBytes = memoryLimitBytes
        self.netRxBytes = netRxBytes
        self.netTxBytes = netTxBytes
        self.netRxPackets = netRxPackets
        self.netTxPackets = netTxPackets
        self.netRxErrors = netRxErrors
        self.netTxErrors = netTxErrors
        self.netRxDropped = netRxDropped
        self.netTxDropped = netTxDropped
        self.blockReadBytes = blockReadBytes
        self.blockWriteBytes = blockWriteBytes
        self.blockReadOps = blockReadOps
        self.blockWriteOps = blockWriteOps
        self.pids = pids
    }

    /// Whether Docker had figures at all (false for a container that is not running).
    public var hasFigures: Bool { readUnixNano != nil }

    /// Memory that cannot be reclaimed easily: usage minus inactive file cache (as `docker stats` shows).
    public var memoryWorkingSetBytes: UInt64 {
        memoryUsageBytes > memoryInactiveFileBytes ? memoryUsageBytes - memoryInactiveFileBytes : 0
    }
}
