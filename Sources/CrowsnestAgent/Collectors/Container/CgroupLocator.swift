/// Which cgroup hierarchy the host runs; the raw value is the `stats_source` sent on the wire.
public enum CgroupVersion: String, Sendable, Equatable {
    /// The legacy hierarchy: one mount per controller (or co-mounted `cpu,cpuacct`).
    case v1 = "cgroup-v1"
    /// The unified hierarchy: one tree, all controllers' files in one directory.
    case v2 = "cgroup-v2"
}

/// A cgroup v1 container's directory in each controller hierarchy we read; nil where the
/// controller is not mounted or holds no directory for the container.
public struct CgroupV1Directories: Sendable, Equatable {
    /// Directory in the `cpu` hierarchy (cpu.stat: throttling).
    public var cpu: String?
    /// Directory in the `cpuacct` hierarchy (cpuacct.usage).
    public var cpuacct: String?
    /// Directory in the `memory` hierarchy.
    public var memory: String?
    /// Directory in the `blkio` hierarchy.
    public var blkio: String?
    /// Directory in the `pids` hierarchy.
    public var pids: String?

    /// Directories as given; nil for controllers that are absent.
    public init(cpu: String? = nil, cpuacct: String? = nil, memory: String? = nil, blkio: String? = nil, pids: String? = nil) {
        self.cpu = cpu
        self.cpuacct = cpuacct
        self.memory = memory
        self.blkio = blkio
        self.pids = pids
    }

    /// Whether no controller directory was found at all.
    public var isEmpty: Bool { cpu == nil && cpuacct == nil && memory == nil && blkio == nil && pids == nil }
}

/// Where a container's cgroup files are. Cheap to keep per container between sweeps.
public enum CgroupLocation: Sendable, Equatable {
    /// The container's single directory in the unified hierarchy.
    case v2(directory: String)
    /// The container's directory per v1 controller.
    case v1(CgroupV1Directories)

    /// The hierarchy this location belongs to.
    public var version: CgroupVersion {
        switch self {
        case .v1: return .v1
        case .v2: return .v2
        }
    }
}

/// Finds a container's cgroup directory from its init PID, falling back to Docker's well-known layouts.
///
/// The PID's `/proc/<pid>/cgroup` is the most robust source (it honours custom `--cgroup-parent`s);
/// it is only trusted when it names the container id, so a recycled PID or a path relative to a
/// private cgroup namespace never points the agent at someone else's counters. Otherwise the
/// cgroupfs-driver (`/docker/<id>`) and systemd-driver (`/system.slice/docker-<id>.scope`) layouts are tried.
public struct CgroupLocator: Sendable {
    /// The cgroup mount root, `/sys/fs/cgroup` on a host; tests point it at fixture trees.
    public let cgroupRoot: String
    /// The procfs root used to read `<pid>/cgroup`, `/proc` on a host (`/host/proc` when the agent runs in a container).
    public let procRoot: String
    /// v2 when `<cgroupRoot>/cgroup.controllers` exists, v1 otherwise; decided once at init.
    public let version: CgroupVersion

    /// v1: the hierarchy directory of each controller under the root (e.g. `<root>/cpu,cpuacct`).
    let v1Hierarchies: CgroupV1Directories

    /// Detects the cgroup version under `cgroupRoot` and, on v1, where each controller is mounted.
    public init(cgroupRoot: String = "/sys/fs/cgroup", procRoot: String = "/proc") {
        let root = Self.trimmingTrailingSlash(cgroupRoot)
        self.cgroupRoot = root
        self.procRoot = Self.trimmingTrailingSlash(procRoot)
        if CollectorFile.exists(root + "/cgroup.controllers") {
            self.version = .v2
            self.v1Hierarchies = CgroupV1Directories()
        } else {
            self.version = .v1
            func hierarchy(_ names: [String]) -> String? {
                for name in names where CollectorFile.isDirectory(root + "/" + name) { return root + "/" + name }
                return nil
            }
            self.v1Hierarchies = CgroupV1Directories(
                cpu: hierarchy(["cpu", "cpu,cpuacct", "cpuacct,cpu"]),
                cpuacct: hierarchy(["cpuacct", "cpu,cpuacct", "cpuacct,cpu"]),
                memory: hierarchy(["memory"]),
                blkio: hierarchy(["blkio"]),
                pids: hierarchy(["pids"]))
        }
    }

    /// Finds the container's cgroup directory (or directories, on v1).
    ///
    /// - Parameters:
    ///   - pid: the container's init PID as the host sees it; 0 or less when unknown (then only the layouts are tried).
    ///   - dockerID: the full container id; empty to trust `/proc/<pid>/cgroup` as it is (the agent's own process, tests).
    /// - Throws: `CollectorError.cgroupNotFound` listing every directory tried.
    public func locate(pid: Int32, dockerID: String) throws -> CgroupLocation {
        let procLines = try readProcCgroup(pid: pid)
        var searched: [String] = []
        switch version {
        case .v2:
            let fromProc = procLines.flatMap { Self.path(inProcCgroup: $0, controller: nil) }
            if let dir = resolve(hierarchy: cgroupRoot, procPath: fromProc, dockerID: dockerID, searched: &searched) {
                return .v2(directory: dir)
            }
        case .v1:
            var dirs = CgroupV1Directories()
            func find(_ hierarchy: String?, _ controller: String) -> String? {
                guard let hierarchy else { return nil }
                let fromProc = procLines.flatMap { Self.path(inProcCgroup: $0, controller: controller) }
                return resolve(hierarchy: hierarchy, procPath: fromProc, dockerID: dockerID, searched: &searched)
            }
            dirs.cpu = find(v1Hierarchies.cpu, "cpu")
            dirs.cpuacct = find(v1Hierarchies.cpuacct, "cpuacct")
            dirs.memory = find(v1Hierarchies.memory, "memory")
            dirs.blkio = find(v1Hierarchies.blkio, "blkio")
            dirs.pids = find(v1Hierarchies.pids, "pids")
            if !dirs.isEmpty { return .v1(dirs) }
        }
        throw CollectorError.cgroupNotFound(dockerID: dockerID, pid: pid, root: cgroupRoot, searched: searched)
    }

    /// The first existing directory among: the path from `/proc/<pid>/cgroup` (when it names the
    /// container), then Docker's cgroupfs and systemd layouts.
    private func resolve(hierarchy: String, procPath: String?, dockerID: String, searched: inout [String]) -> String? {
        if let procPath, Self.isSafe(procPath), dockerID.isEmpty || procPath.contains(dockerID) {
            let dir = procPath == "/" ? hierarchy : hierarchy + procPath
            if CollectorFile.isDirectory(dir) { return dir }
            searched.append(dir)
        }
        guard !dockerID.isEmpty else { return nil }
        for layout in ["/docker/" + dockerID, "/system.slice/docker-" + dockerID + ".scope"] {
            let dir = hierarchy + layout
            if CollectorFile.isDirectory(dir) { return dir }
            searched.append(dir)
        }
        return nil
    }

    /// The content of `<procRoot>/<pid>/cgroup`, or nil when the PID is unknown or gone.
    private func readProcCgroup(pid: Int32) throws -> String? {
        guard pid > 0 else { return nil }
        do {
            return try CollectorFile.string(at: "\(procRoot)/\(pid)/cgroup")
        } catch CollectorError.cannotRead {
            return nil  // e.g. another user's process without CAP_SYS_PTRACE: fall back to the layouts
        }
    }

    /// The cgroup path of a `/proc/<pid>/cgroup` table: the `0::` line for v2 (`controller` nil),
    /// or the line listing `controller` among its comma-separated controllers for v1.
    public static func path(inProcCgroup text: String, controller: String?) -> String? {
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            // hierarchy-id:controller-list:path (the path itself may contain colons)
            let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3 else { continue }
            if let controller {
                if parts[1].split(separator: ",").contains(where: { $0 == controller }) { return String(parts[2]) }
            } else if parts[0] == "0" && parts[1].isEmpty {
                return String(parts[2])
            }
        }
        return nil
    }

    /// Rejects paths that would climb out of the hierarchy (cgroup-namespace-relative paths such as `/../..`).
    private static func isSafe(_ path: String) -> Bool {
        path.hasPrefix("/") && !path.split(separator: "/").contains("..")
    }

    private static func trimmingTrailingSlash(_ path: String) -> String {
        var path = path
        while path.count > 1 && path.hasSuffix("/") { path.removeLast() }
        return path
    }
}
