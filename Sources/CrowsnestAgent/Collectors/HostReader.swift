import CrowsnestWire

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Host-wide CPU time from the first `cpu` line of `/proc/stat`, converted from clock ticks to nanoseconds.
public struct HostCPUTimes: Sendable, Equatable {
    /// user + nice (guest time is already inside both).
    public var userNs: UInt64
    /// system + irq + softirq.
    public var systemNs: UInt64
    /// idle.
    public var idleNs: UInt64
    /// iowait.
    public var iowaitNs: UInt64
    /// user + nice + system + idle + iowait + irq + softirq + steal.
    public var totalNs: UInt64
    /// Number of `cpuN` lines: the CPUs online.
    public var cpuCount: UInt32

    /// Figures as given.
    public init(userNs: UInt64, systemNs: UInt64, idleNs: UInt64, iowaitNs: UInt64, totalNs: UInt64, cpuCount: UInt32) {
        self.userNs = userNs
        self.systemNs = systemNs
        self.idleNs = idleNs
        self.iowaitNs = iowaitNs
        self.totalNs = totalNs
        self.cpuCount = cpuCount
    }
}

/// Host memory from `/proc/meminfo`, in bytes.
public struct HostMemoryInfo: Sendable, Equatable {
    /// MemTotal.
    public var totalBytes: UInt64 = 0
    /// MemAvailable: what can be given to new work without swapping.
    public var availableBytes: UInt64 = 0
    /// SwapTotal.
    public var swapTotalBytes: UInt64 = 0
    /// SwapFree.
    public var swapFreeBytes: UInt64 = 0

    /// Figures as given (all zero by default).
    public init(totalBytes: UInt64 = 0, availableBytes: UInt64 = 0, swapTotalBytes: UInt64 = 0, swapFreeBytes: UInt64 = 0) {
        self.totalBytes = totalBytes
        self.availableBytes = availableBytes
        self.swapTotalBytes = swapTotalBytes
        self.swapFreeBytes = swapFreeBytes
    }
}

/// One mount kept for disk-space reporting.
public struct HostMount: Sendable, Equatable {
    /// The source device (`/dev/sda1`, `tank/data`).
    public var device: String
    /// Where it is mounted, escapes such as `\040` decoded.
    public var mountpoint: String
    /// The filesystem type (`ext4`, `xfs`, `zfs`).
    public var fstype: String

    /// A mount as given.
    public init(device: String, mountpoint: String, fstype: String) {
        self.device = device
        self.mountpoint = mountpoint
        self.fstype = fstype
    }
}

/// Reads host figures (CPU, load, memory, swap, uptime, boot id, interfaces, filesystems) from procfs and statvfs.
///
/// Every `parse…` function takes the file's text so it can be tested on fixtures; `read()` ties them
/// to the files under `procRoot`. Run it off the event loop: `statvfs` is a blocking syscall.
public struct HostReader: Sendable {
    /// Filesystem types that never hold operator data: kernel pseudo filesystems, memory-backed
    /// mounts, container layers and read-only images.
    public static let ignoredFilesystemTypes: Set<String> = [
        "proc", "sysfs", "cgroup", "cgroup2", "tmpfs", "devtmpfs", "devpts", "overlay", "aufs", "squashfs",
        "nsfs", "mqueue", "securityfs", "debugfs", "tracefs", "pstore", "bpf", "configfs", "fusectl",
        "hugetlbfs", "autofs", "binfmt_misc", "rpc_pipefs", "efivarfs", "ramfs", "selinuxfs", "nfsd",
        "fuse.lxcfs", "fuse.gvfsd-fuse", "fuse.portal", "fuse.snapfuse", "iso9660", "shm", "none", "rootfs",
    ]

    /// Network filesystems: `statvfs` on an unreachable server can block for minutes, so they are
    /// left out unless `includeNetworkFilesystems` is set.
    public static let networkFilesystemTypes: Set<String> = [
        "nfs", "nfs4", "cifs", "smb3", "smbfs", "ceph", "glusterfs", "fuse.glusterfs", "fuse.sshfs", "9p", "afs", "fuse.s3fs",
    ]

    /// The procfs root: `/proc` on a host, `/host/proc` when the agent runs in a container with the host's proc mounted.
    public let procRoot: String
    /// Prefix put before every mountpoint for `statvfs` (`/host` when the host's `/` is mounted there); empty on a host.
    public let rootfsPrefix: String
    /// Interface name prefixes left out of `interfaces` besides `lo` (default: Docker's `veth` pairs, one per container).
    public let skippedInterfacePrefixes: [String]
    /// Whether NFS/CIFS/… mounts are measured too.
    public let includeNetworkFilesystems: Bool
    /// Clock ticks per second of `/proc/stat` (USER_HZ from `sysconf(_SC_CLK_TCK)`).
    public let clockTicksPerSecond: UInt64

    /// A reader over the given procfs root; see the properties for each option.
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
        self.rootfsPrefix = prefix
        self.skippedInterfacePrefixes = skippedInterfacePrefixes
        self.includeNetworkFilesystems = includeNetworkFilesystems
        let ticks = sysconf(Int32(_SC_CLK_TCK))
        self.clockTicksPerSecond = ticks > 0 ? UInt64(ticks) : 100
    }

    /// Reads every host figure. `/proc/stat` and `/proc/meminfo` are required; the rest reads as
    /// zero or empty when missing.
    /// - Throws: `CollectorError` naming the file that could not be read or parsed.
    public func read() throws -> Crowsnest_V1_HostSample {
        var sample = Crowsnest_V1_HostSample()

        let statPath = procRoot + "/stat"
        guard let statText = try CollectorFile.string(at: statPath) else { throw CollectorError.missingFile(path: statPath) }
        guard let cpu = Self.parseCPUTimes(statText, clockTicksPerSecond: clockTicksPerSecond) else {
            throw CollectorError.malformed(path: statPath, detail: "no aggregate \"cpu\" line")
        }
        sample.cpuUserNs = cpu.userNs
        sample.cpuSystemNs = cpu.systemNs
        sample.cpuIdleNs = cpu.idleNs
        sample.cpuIowaitNs = cpu.iowaitNs
        sample.cpuTotalNs = cpu.totalNs
        sample.cpuCount = cpu.cpuCount

        let meminfoPath = procRoot + "/meminfo"
        guard let meminfoText = try CollectorFile.string(at: meminfoPath) else { throw CollectorError.missingFile(path: meminfoPath) }
        let memory = Self.parseMeminfo(meminfoText)
        sample.memoryTotalBytes = memory.totalBytes
        sample.memoryAvailableBytes = memory.availableBytes
        sample.swapTotalBytes = memory.swapTotalBytes
        sample.swapFreeBytes = memory.swapFreeBytes

        if let text = try CollectorFile.string(at: procRoot + "/loadavg"), let load = Self.parseLoadAverage(text) {
            sample.load1 = load.load1
            sample.load5 = load.load5
            sample.load15 = load.load15
        }
        if let text = try CollectorFile.string(at: procRoot + "/uptime") {
            sample.uptimeSeconds = Self.parseUptime(text) ?? 0
        }
        if let text = try CollectorFile.string(at: procRoot + "/sys/kernel/random/boot_id") {
            sample.bootID = Self.parseBootID(text)
        }
        if let text = try CollectorFile.string(at: procRoot + "/net/dev") {
            sample.interfaces = Self.parseInterfaces(text, skippingPrefixes: skippedInterfacePrefixes)
        }
        if let text = try readMounts() {
            sample.filesystems = Self.parseMounts(text, includeNetworkFilesystems: includeNetworkFilesystems)
                .compactMap { measure($0) }
        }
        return sample
    }

    /// The mount table of the host's init (`<procRoot>/1/mounts`), else of this process.
    private func readMounts() throws -> String? {
        if let text = try? CollectorFile.string(at: procRoot + "/1/mounts") { return text }
        return try CollectorFile.string(at: procRoot + "/self/mounts")
    }

    /// `statvfs` figures of a mount; nil when it cannot be measured or has no blocks.
    public func measure(_ mount: HostMount) -> Crowsnest_V1_Filesystem? {
        var info = statvfs()
        let rc = (rootfsPrefix + mount.mountpoint).withCString { statvfs($0, &info) }
        guard rc == 0, info.f_blocks > 0 else { return nil }
        let unit = UInt64(info.f_frsize > 0 ? info.f_frsize : info.f_bsize)
        var fs = Crowsnest_V1_Filesystem()
        fs.mountpoint = mount.mountpoint
        fs.device = mount.device
        fs.fstype = mount.fstype
        fs.sizeBytes = UInt64(info.f_blocks) &* unit
        fs.freeBytes = UInt64(info.f_bfree) &* unit
        fs.availableBytes = UInt64(info.f_bavail) &* unit
        return fs
    }

    // MARK: - Parsers

    /// Parses `/proc/stat`: the aggregate `cpu` line into nanoseconds, and counts the `cpuN` lines.
    /// Returns nil when there is no aggregate line.
    public static func parseCPUTimes(_ text: String, clockTicksPerSecond: UInt64) -> HostCPUTimes? {
        let hz = max(clockTicksPerSecond, 1)
        return CollectorParse.withBytes(of: text) { bytes -> HostCPUTimes? in
            var jiffies: [UInt64]?
            var count: UInt32 = 0
            for line in CollectorLines(bytes[...]) {
                var fields = CollectorFields(line)
                guard let name = fields.next(), name.count >= 3,
                    name[name.startIndex] == UInt8(ascii: "c"), name[name.startIndex + 1] == UInt8(ascii: "p"),
                    name[name.startIndex + 2] == UInt8(ascii: "u")
                else { continue }
                if name.count == 3 {
                    var values: [UInt64] = []
                    values.reserveCapacity(10)
                    while let field = fields.next(), values.count < 10 { values.append(CollectorParse.uint64(field) ?? 0) }
                    while values.count < 10 { values.append(0) }
                    jiffies = values
                } else if CollectorParse.uint64(name[(name.startIndex + 3)...]) != nil {
                    count += 1
                }
            }
            guard let j = jiffies else { return nil }
            func ns(_ ticks: UInt64) -> UInt64 {
                let product = ticks.multipliedFullWidth(by: 1_000_000_000)
                guard product.high < hz else { return .max }
                return hz.dividingFullWidth(product).quotient
            }
            // user nice system idle iowait irq softirq steal guest guest_nice
            let user = j[0] &+ j[1]
            let system = j[2] &+ j[5] &+ j[6]
            let total = user &+ system &+ j[3] &+ j[4] &+ j[7]
            return HostCPUTimes(
                userNs: ns(user), systemNs: ns(system), idleNs: ns(j[3]), iowaitNs: ns(j[4]), totalNs: ns(total),
                cpuCount: count)
        }
    }

    /// Parses `/proc/loadavg` ("0.52 0.58 0.59 3/812 219876").
    public static func parseLoadAverage(_ text: String) -> (load1: Double, load5: Double, load15: Double)? {
        let fields = text.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" })
        guard fields.count >= 3, let l1 = Double(fields[0]), let l5 = Double(fields[1]), let l15 = Double(fields[2]) else {
            return nil
        }
        return (l1, l5, l15)
    }

    /// Parses `/proc/meminfo` (MemTotal, MemAvailable, SwapTotal, SwapFree; kB converted to bytes).
    public static func parseMeminfo(_ text: String) -> HostMemoryInfo {
        CollectorParse.withBytes(of: text) { bytes in
            var info = HostMemoryInfo()
            for line in CollectorLines(bytes[...]) {
                var fields = CollectorFields(line)
                guard let key = fields.next(), let valueField = fields.next(), let value = CollectorParse.uint64(valueField)
                else { continue }
                let unit: UInt64 = fields.next().map { CollectorParse.equals($0, "kB") } == true ? 1024 : 1
                if CollectorParse.equals(key, "MemTotal:") {
                    info.totalBytes = value &* unit
                } else if CollectorParse.equals(key, "MemAvailable:") {
                    info.availableBytes = value &* unit
                } else if CollectorParse.equals(key, "SwapTotal:") {
                    info.swapTotalBytes = value &* unit
                } else if CollectorParse.equals(key, "SwapFree:") {
                    info.swapFreeBytes = value &* unit
                }
            }
            return info
        }
    }

    /// Parses `/proc/uptime` ("1234567.89 4567890.12") into whole seconds since boot.
    public static func parseUptime(_ text: String) -> UInt64? {
        guard let first = text.split(whereSeparator: { $0 == " " || $0 == "\n" }).first else { return nil }
        let whole = first.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)[0]
        return UInt64(whole)
    }

    /// The boot id without its trailing newline.
    public static func parseBootID(_ text: String) -> String {
        String(text.filter { !$0.isWhitespace })
    }

    /// Parses `/proc/net/dev` into one entry per interface, leaving out `lo` and names starting with any of `skippingPrefixes`.
    public static func parseInterfaces(_ text: String, skippingPrefixes: [String] = ["veth"]) -> [Crowsnest_V1_NetInterface] {
        var result: [Crowsnest_V1_NetInterface] = []
        for (name, counters) in ProcNetDev.interfaces(text) {
            if name == "lo" || skippingPrefixes.contains(where: { !$0.isEmpty && name.hasPrefix($0) }) { continue }
            var interface = Crowsnest_V1_NetInterface()
            interface.name = name
            interface.rxBytes = counters.rxBytes
            interface.txBytes = counters.txBytes
            interface.rxPackets = counters.rxPackets
            interface.txPackets = counters.txPackets
            interface.rxErrors = counters.rxErrors
            interface.txErrors = counters.txErrors
            interface.rxDropped = counters.rxDropped
            interface.txDropped = counters.txDropped
            result.append(interface)
        }
        return result
    }

    /// Parses a mounts table (`/proc/<pid>/mounts`) into the real filesystems worth measuring:
    /// pseudo and container filesystems dropped (see `ignoredFilesystemTypes`), network ones unless
    /// asked for, one entry per device (the shortest mountpoint wins, so `/` beats a bind mount of `/var/lib/docker`).
    public static func parseMounts(_ text: String, includeNetworkFilesystems: Bool = false) -> [HostMount] {
        var mounts: [HostMount] = []
        var indexByDevice: [String: Int] = [:]
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 3 else { continue }
            let fstype = String(fields[2])
            if ignoredFilesystemTypes.contains(fstype) { continue }
            if !includeNetworkFilesystems && networkFilesystemTypes.contains(fstype) { continue }
            let mount = HostMount(
                device: unescapeMountField(fields[0]), mountpoint: unescapeMountField(fields[1]), fstype: fstype)
            if let index = indexByDevice[mount.device] {
                if mount.mountpoint.utf8.count < mounts[index].mountpoint.utf8.count { mounts[index] = mount }
            } else {
                indexByDevice[mount.device] = mounts.count
                mounts.append(mount)
            }
        }
        return mounts
    }

    /// Decodes the octal escapes the kernel writes in mount tables (`\040` space, `\011` tab, `\012` newline, `\134` backslash).
    static func unescapeMountField(_ field: Substring) -> String {
        guard field.contains("\\") else { return String(field) }
        var bytes: [UInt8] = []
        let utf8 = Array(field.utf8)
        var i = 0
        while i < utf8.count {
            if utf8[i] == UInt8(ascii: "\\"), i + 3 < utf8.count {
                let digits = utf8[(i + 1)...(i + 3)]
                if digits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "7") }) {
                    let value = digits.reduce(0) { $0 * 8 + Int($1 - UInt8(ascii: "0")) }
                    if value < 256 {
                        bytes.append(UInt8(value))
                        i += 4
                        continue
                    }
                }
            }
            bytes.append(utf8[i])
            i += 1
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
