import CrowsnestWire

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Reads the host's figures (CPU, load, memory, swap, uptime, boot id, interfaces, filesystems): one collector per
/// file, run in turn into one `HostSample`, their files kept open from one sweep to the next.
///
/// `/proc/stat` and `/proc/meminfo` are required; the rest reads as zero or empty when missing. Run it off the
/// event loop: `statvfs` is a blocking syscall.
public struct HostReader: Sendable {
    /// The procfs root: `/proc` on a host, `/host/proc` when the agent runs in a container with the host's proc mounted.
    public let procRoot: String
    /// Clock ticks per second of `/proc/stat` (USER_HZ from `sysconf(_SC_CLK_TCK)`).
    public let clockTicksPerSecond: UInt64
    private let collectors: [any Collector<Crowsnest_V1_HostSample>]

    /// A reader over the given procfs root.
    /// - Parameters:
    ///   - rootfsPrefix: put before every mountpoint for `statvfs` (`/host` when the host's `/` is mounted there).
    ///   - skippedInterfacePrefixes: interfaces left out besides `lo` (default: Docker's `veth` pairs).
    ///   - includeNetworkFilesystems: whether NFS/CIFS/… mounts are measured too (`statvfs` on them can hang).
    public init(
        procRoot: String = "/proc",
        rootfsPrefix: String = "",
        skippedInterfacePrefixes: [String] = ["veth"],
        includeNetworkFilesystems: Bool = false
    ) {
        var root = procRoot
        while root.count > 1 && root.hasSuffix("/") { root.removeLast() }
        self.procRoot = root
        var prefix = rootfsPrefix
        while prefix.hasSuffix("/") { prefix.removeLast() }
        let ticks = sysconf(Int32(_SC_CLK_TCK))
        clockTicksPerSecond = ticks > 0 ? UInt64(ticks) : 100
        collectors = [
            CPUTimesCollector(procRoot: root, clockTicksPerSecond: clockTicksPerSecond),
            MemoryInfoCollector(procRoot: root),
            LoadAverageCollector(procRoot: root),
            UptimeCollector(procRoot: root),
            BootIDCollector(procRoot: root),
            NetworkInterfacesCollector(procRoot: root, skippingPrefixes: skippedInterfacePrefixes),
            FilesystemCollector(procRoot: root, rootfsPrefix: prefix, includeNetworkFilesystems: includeNetworkFilesystems),
        ]
    }

    /// Reads every host figure.
    /// - Throws: `CollectorError` naming the file that could not be read or parsed.
    public func read() throws -> Crowsnest_V1_HostSample {
        var sample = Crowsnest_V1_HostSample()
        for collector in collectors {
            try collector.collect(into: &sample)
        }
        return sample
    }
}
