/// Everything the agent reads for one running container: its cgroup collector (v1 or v2) and its network
/// collector, located once when the container is first sampled and kept, files open, until it stops.
///
/// The sampler keeps one per running container, keyed by Docker id, and makes a new one when the container's init
/// process changes (a restart: new pid, and a cgroup directory created anew).
public struct ContainerCollectors: Sendable {
    /// The container's full Docker id.
    public let dockerID: String
    /// The container's init process on the host; 0 when unknown (then no network figures).
    public let pid: Int32
    /// Where its cgroup files are.
    public let location: CgroupLocation
    private let cgroup: any Collector<ContainerCounters>
    private let network: ContainerNetworkCollector?

    /// Collectors for a located container; nothing is opened before the first `collect`.
    public init(dockerID: String, pid: Int32, location: CgroupLocation, procRoot: String) {
        self.dockerID = dockerID
        self.pid = pid
        self.location = location
        switch location {
        case .v2(let directory): cgroup = CgroupV2Collector(directory: directory)
        case .v1(let directories): cgroup = CgroupV1Collector(directories)
        }
        network = pid > 0 ? ContainerNetworkCollector(procRoot: procRoot, pid: pid) : nil
    }

    /// Reads every figure.
    /// - Throws: `CollectorError` when the cgroup is gone (a required file missing) or a file cannot be read.
    public func collect() throws -> ContainerCounters {
        var counters = ContainerCounters(source: .init(location.version))
        try cgroup.collect(into: &counters)
        try network?.collect(into: &counters)
        return counters
    }
}

/// Finds containers' cgroups and makes their collectors.
///
/// A value type with no state beyond its roots: share one across tasks.
public struct ContainerCounterReader: Sendable {
    /// Finds cgroup directories; exposes the detected `version`.
    public let locator: CgroupLocator

    /// A reader over the given cgroup mount root and procfs root (defaults: the host's).
    public init(cgroupRoot: String = "/sys/fs/cgroup", procRoot: String = "/proc") {
        self.locator = CgroupLocator(cgroupRoot: cgroupRoot, procRoot: procRoot)
    }

    /// Locates the container's cgroup and makes its collectors (what the sampler keeps from sweep to sweep).
    ///
    /// - Parameters:
    ///   - pid: the container's init PID on the host (Docker's `State.Pid`); 0 when not running.
    ///   - dockerID: the full container id.
    /// - Throws: `CollectorError.cgroupNotFound` when the container has no cgroup.
    public func collectors(pid: Int32, dockerID: String) throws -> ContainerCollectors {
        ContainerCollectors(dockerID: dockerID, pid: pid, location: try locator.locate(pid: pid, dockerID: dockerID),
                            procRoot: locator.procRoot)
    }

    /// Locates, reads every figure once and closes the files again (tools and tests; sweeps keep `collectors`).
    /// - Throws: `CollectorError.cgroupNotFound` when the container has no cgroup, `.cannotRead` on unreadable files.
    public func read(pid: Int32, dockerID: String) throws -> ContainerCounters {
        try collectors(pid: pid, dockerID: dockerID).collect()
    }
}
