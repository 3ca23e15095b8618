/// Reads a container's figures from its directories in the legacy (v1) controller hierarchies.
///
/// Files: `cpuacct.usage`, `cpu.stat`, `memory.usage_in_bytes`, `memory.limit_in_bytes`,
/// `memory.stat`, `blkio.throttle.io_service_bytes[_recursive]`, `blkio.throttle.io_serviced[_recursive]`,
/// `pids.current`. `cpuacct.usage` and `memory.usage_in_bytes` are required when their
/// controller's directory was found (their absence means the cgroup was removed meanwhile);
/// everything else reads as 0 when absent.
public enum CgroupV1Reader {
    /// A v1 memory limit at or above this is the kernel's "no limit" (PAGE_COUNTER_MAX pages, 0x7FFFFFFFFFFFF000 on x86-64).
    public static let unlimitedMemoryThreshold: UInt64 = 1 << 62

    /// Reads all figures from the given controller directories; network figures are left zero.
    public static func read(_ directories: CgroupV1Directories) throws -> ContainerStats {
        var stats = ContainerStats(source: .v1)

        if let dir = directories.cpuacct {
            let path = dir + "/cpuacct.usage"
            guard let usage = try CollectorFile.number(at: path) else { throw CollectorError.missingFile(path: path) }
            stats.cpuUsageNs = usage
        }
        if let dir = directories.cpu {
            _ = try CollectorFile.withContents(of: dir + "/cpu.stat") { bytes in
                CollectorParse.forEachKeyValue(bytes) { key, value in
                    if CollectorParse.equals(key, "nr_throttled") {
                        stats.cpuThrottledPeriods = value
                    } else if CollectorParse.equals(key, "throttled_time") {
                        stats.cpuThrottledNs = value
                    }
                }
            }
        }
        if let dir = directories.memory {
            let path = dir + "/memory.usage_in_bytes"
            guard let usage = try CollectorFile.number(at: path) else { throw CollectorError.missingFile(path: path) }
            stats.memoryUsageBytes = usage
            let limit = try CollectorFile.number(at: dir + "/memory.limit_in_bytes") ?? 0
            stats.memoryLimitBytes = limit >= unlimitedMemoryThreshold ? 0 : limit
            let inactiveFile = try CollectorFile.withContents(of: dir + "/memory.stat") { bytes -> UInt64 in
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
            stats.memoryWorkingSetBytes = usage > inactiveFile ? usage - inactiveFile : 0
        }
        if let dir = directories.blkio {
            if let (read, write) = try sumReadWrite(dir + "/blkio.throttle.io_service_bytes_recursive", orElse: dir + "/blkio.throttle.io_service_bytes") {
                stats.blockReadBytes = read
                stats.blockWriteBytes = write
            }
            if let (read, write) = try sumReadWrite(dir + "/blkio.throttle.io_serviced_recursive", orElse: dir + "/blkio.throttle.io_serviced") {
                stats.blockReadOps = read
                stats.blockWriteOps = write
            }
        }
        if let dir = directories.pids {
            stats.pids = try CollectorFile.number(at: dir + "/pids.current") ?? 0
        }
        return stats
    }

    /// Sums the `Read` and `Write` lines (`MAJ:MIN Read N`) over devices of the first blkio file that exists.
    static func sumReadWrite(_ path: String, orElse fallback: String) throws -> (read: UInt64, write: UInt64)? {
        let parse: (UnsafeBufferPointer<UInt8>) -> (read: UInt64, write: UInt64) = { bytes in
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
        if let sums = try CollectorFile.withContents(of: path, parse) { return sums }
        return try CollectorFile.withContents(of: fallback, parse)
    }
}
