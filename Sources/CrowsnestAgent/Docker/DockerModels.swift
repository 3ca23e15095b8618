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
