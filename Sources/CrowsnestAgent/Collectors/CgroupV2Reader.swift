/// Reads a container's figures from its directory in the unified (v2) hierarchy.
///
/// Files: `cpu.stat` (required: every v2 cgroup has it, so its absence means the cgroup is gone),
/// `memory.current`, `memory.max`, `memory.stat`, `io.stat`, `pids.current` (optional: 0 when absent,
/// e.g. when a controller is not enabled for the subtree).
public enum CgroupV2Reader {
    /// Reads all figures of the cgroup at `directory`; network figures are left zero.
    public static func read(directory: String) throws -> ContainerStats {
        var stats = ContainerStats(source: .v2)

        let cpuPath = directory + "/cpu.stat"
        let cpuRead: Void? = try CollectorFile.withContents(of: cpuPath) { bytes in
            CollectorParse.forEachKeyValue(bytes) { key, value in
                if CollectorParse.equals(key, "usage_usec") {
                    stats.cpuUsageNs = value &* 1000
                } else if CollectorParse.equals(key, "nr_throttled") {
                    stats.cpuThrottledPeriods = value
                } else if CollectorParse.equals(key, "throttled_usec") {
                    stats.cpuThrottledNs = value &* 1000
                }
            }
        }
        if cpuRead == nil {
            throw CollectorError.missingFile(path: cpuPath)
        }

        stats.memoryUsageBytes = try CollectorFile.number(at: directory + "/memory.current") ?? 0
        // "max" parses as nil: unlimited, reported as 0.
        stats.memoryLimitBytes = try CollectorFile.number(at: directory + "/memory.max") ?? 0
        let inactiveFile = try CollectorFile.withContents(of: directory + "/memory.stat") { bytes -> UInt64 in
            var inactive: UInt64 = 0
            CollectorParse.forEachKeyValue(bytes) { key, value in
                if CollectorParse.equals(key, "inactive_file") { inactive = value }
            }
            return inactive
        } ?? 0
        stats.memoryWorkingSetBytes = stats.memoryUsageBytes > inactiveFile ? stats.memoryUsageBytes - inactiveFile : 0

        _ = try CollectorFile.withContents(of: directory + "/io.stat") { bytes in
            sumIOStat(bytes, into: &stats)
        }
        stats.pids = try CollectorFile.number(at: directory + "/pids.current") ?? 0
        return stats
    }

    /// Sums `rbytes`, `wbytes`, `rios`, `wios` over the device lines of an `io.stat` file
    /// (`MAJ:MIN rbytes=N wbytes=N rios=N wios=N dbytes=N dios=N`).
    static func sumIOStat(_ bytes: UnsafeBufferPointer<UInt8>, into stats: inout ContainerStats) {
        for line in CollectorLines(bytes[...]) {
            var fields = CollectorFields(line)
            _ = fields.next()  // device
            while let field = fields.next() {
                guard let eq = field.firstIndex(of: UInt8(ascii: "=")),
                    let value = CollectorParse.uint64(field[(eq + 1)...])
                else { continue }
                let key = field[..<eq]
                if CollectorParse.equals(key, "rbytes") {
                    stats.blockReadBytes &+= value
                } else if CollectorParse.equals(key, "wbytes") {
                    stats.blockWriteBytes &+= value
                } else if CollectorParse.equals(key, "rios") {
                    stats.blockReadOps &+= value
                } else if CollectorParse.equals(key, "wios") {
                    stats.blockWriteOps &+= value
                }
            }
        }
    }
}
