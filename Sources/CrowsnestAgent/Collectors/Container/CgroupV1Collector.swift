/// A container's figures from its directories in the legacy (v1) controller hierarchies, with its files kept open.
///
/// Files: `cpuacct.usage`, `cpu.stat`, `memory.usage_in_bytes`, `memory.limit_in_bytes`,
/// `memory.stat`, `blkio.throttle.io_service_bytes[_recursive]`, `blkio.throttle.io_serviced[_recursive]`,
/// `pids.current`. `cpuacct.usage` and `memory.usage_in_bytes` are required when their
/// controller's directory was found (their absence means the cgroup was removed meanwhile);
/// everything else reads as 0 when absent. Network figures are another collector's.
public struct CgroupV1Collector: Collector {
    /// A v1 memory limit at or above this is the kernel's "no limit" (PAGE_COUNTER_MAX pages, 0x7FFFFFFFFFFFF000 on x86-64).
    public static let unlimitedMemoryThreshold: UInt64 = 1 << 62

    /// The container's directory per controller.
    public let directories: CgroupV1Directories
    private let cpuacctUsage: KeptFile?
    private let cpuStat: KeptFile?
    private let memoryUsage: KeptFile?
    private let memoryLimit: KeptFile?
    private let memoryStat: KeptFile?
    /// The recursive blkio files first, the plain ones when a kernel has no recursive ones.
    private let blockBytes: [KeptFile]
    private let blockOps: [KeptFile]
    private let pidsCurrent: KeptFile?

    /// A collector for the given controller directories; nothing is opened before the first `collect`.
    public init(_ directories: CgroupV1Directories) {
        self.directories = directories
        cpuacctUsage = directories.cpuacct.map { KeptFile($0 + "/cpuacct.usage") }
        cpuStat = directories.cpu.map { KeptFile($0 + "/cpu.stat") }
        memoryUsage = directories.memory.map { KeptFile($0 + "/memory.usage_in_bytes") }
        memoryLimit = directories.memory.map { KeptFile($0 + "/memory.limit_in_bytes") }
        memoryStat = directories.memory.map { KeptFile($0 + "/memory.stat") }
        blockBytes = directories.blkio.map {
            [KeptFile($0 + "/blkio.throttle.io_service_bytes_recursive"), KeptFile($0 + "/blkio.throttle.io_service_bytes")]
        } ?? []
        blockOps = directories.blkio.map {
            [KeptFile($0 + "/blkio.throttle.io_serviced_recursive"), KeptFile($0 + "/blkio.throttle.io_serviced")]
        } ?? []
        pidsCurrent = directories.pids.map { KeptFile($0 + "/pids.current") }
    }

    public func collect(into counters: inout ContainerCounters) throws {
        counters.source = .cgroupV1
        if let cpuacctUsage {
            guard let usage = try cpuacctUsage.number() else { throw CollectorError.missingFile(path: cpuacctUsage.path) }
            counters.cpuUsageNs = usage
        }
        _ = try cpuStat?.withContents { bytes in
            CollectorParse.forEachKeyValue(bytes) { key, value in
                if CollectorParse.equals(key, "nr_throttled") {
                    counters.cpuThrottledPeriods = value
                } else if CollectorParse.equals(key, "throttled_time") {
                    counters.cpuThrottledNs = value
                }
            }
        }
        if let memoryUsage {
            guard let usage = try memoryUsage.number() else { throw CollectorError.missingFile(path: memoryUsage.path) }
            counters.memoryUsageBytes = usage
            let limit = try memoryLimit?.number() ?? 0
            counters.memoryLimitBytes = limit >= Self.unlimitedMemoryThreshold ? 0 : limit
            counters.memoryInactiveFileBytes = try memoryStat?.withContents { bytes -> UInt64 in
                var total: UInt64?
                var local: UInt64 = 0
                CollectorParse.forEachKeyValue(bytes) { key, value in
                    if CollectorParse.equals(key, "total_inactive_file") {
                        total = value
                    } else if CollectorParse.equals(key, "inactive_file") {
                        local = value
                    }
                }
                return total ?? local
            } ?? 0
        }
        if let (read, write) = try Self.sumReadWrite(blockBytes) {
            counters.blockReadBytes = read
            counters.blockWriteBytes = write
        }
        if let (read, write) = try Self.sumReadWrite(blockOps) {
            counters.blockReadOps = read
            counters.blockWriteOps = write
        }
        counters.pids = try pidsCurrent?.number() ?? 0
    }

    /// Sums the `Read` and `Write` lines (`MAJ:MIN Read N`) over devices of the first blkio file that exists.
    static func sumReadWrite(_ files: [KeptFile]) throws -> (read: UInt64, write: UInt64)? {
        for file in files {
            let sums = try file.withContents { bytes -> (read: UInt64, write: UInt64) in
                var read: UInt64 = 0
                var write: UInt64 = 0
                for line in CollectorLines(bytes[...]) {
                    var fields = CollectorFields(line)
                    guard fields.next() != nil, let op = fields.next(), let valueField = fields.next(),
                        let value = CollectorParse.uint64(valueField)
                    else { continue }
                    if CollectorParse.equals(op, "Read") {
                        read &+= value
                    } else if CollectorParse.equals(op, "Write") {
                        write &+= value
                    }
                }
                return (read, write)
            }
            if let sums { return sums }
        }
        return nil
    }
}
