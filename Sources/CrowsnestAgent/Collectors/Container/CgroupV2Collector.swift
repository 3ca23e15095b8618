/// A container's figures from its directory in the unified (v2) hierarchy, with its files kept open.
///
/// Files: `cpu.stat` (required: every v2 cgroup has it, so its absence means the cgroup is gone),
/// `memory.current`, `memory.max`, `memory.stat`, `io.stat`, `pids.current` (optional: 0 when absent,
/// e.g. when a controller is not enabled for the subtree). Network figures are another collector's.
public struct CgroupV2Collector: Collector {
    /// The container's cgroup directory.
    public let directory: String
    private let cpuStat: KeptFile
    private let memoryCurrent: KeptFile
    private let memoryMax: KeptFile
    private let memoryStat: KeptFile
    private let ioStat: KeptFile
    private let pidsCurrent: KeptFile

    /// A collector for the cgroup at `directory`; nothing is opened before the first `collect`.
    public init(directory: String) {
        self.directory = directory
        cpuStat = KeptFile(directory + "/cpu.stat")
        memoryCurrent = KeptFile(directory + "/memory.current")
        memoryMax = KeptFile(directory + "/memory.max")
        memoryStat = KeptFile(directory + "/memory.stat")
        ioStat = KeptFile(directory + "/io.stat")
        pidsCurrent = KeptFile(directory + "/pids.current")
    }

    public func collect(into counters: inout ContainerCounters) throws {
        counters.source = .cgroupV2
        let cpuRead: Void? = try cpuStat.withContents { bytes in
            CollectorParse.forEachKeyValue(bytes) { key, value in
                if CollectorParse.equals(key, "usage_usec") {
                    counters.cpuUsageNs = value &* 1000
                } else if CollectorParse.equals(key, "nr_throttled") {
                    counters.cpuThrottledPeriods = value
                } else if CollectorParse.equals(key, "throttled_usec") {
                    counters.cpuThrottledNs = value &* 1000
                }
            }
        }
        if cpuRead == nil {
            throw CollectorError.missingFile(path: cpuStat.path)
        }
        counters.memoryUsageBytes = try memoryCurrent.number() ?? 0
        // "max" parses as nil: unlimited, reported as 0.
        counters.memoryLimitBytes = try memoryMax.number() ?? 0
        counters.memoryInactiveFileBytes = try memoryStat.withContents { bytes -> UInt64 in
            var inactive: UInt64 = 0
            CollectorParse.forEachKeyValue(bytes) { key, value in
                if CollectorParse.equals(key, "inactive_file") { inactive = value }
            }
            return inactive
        } ?? 0
        _ = try ioStat.withContents { bytes in
            Self.sumIOStat(bytes, into: &counters)
        }
        counters.pids = try pidsCurrent.number() ?? 0
    }

    /// Sums `rbytes`, `wbytes`, `rios`, `wios` over the device lines of an `io.stat` file
    /// (`MAJ:MIN rbytes=N wbytes=N rios=N wios=N dbytes=N dios=N`).
    static func sumIOStat(_ bytes: UnsafeBufferPointer<UInt8>, into counters: inout ContainerCounters) {
        for line in CollectorLines(bytes[...]) {
            var fields = CollectorFields(line)
            _ = fields.next()  // device
            while let field = fields.next() {
                guard let eq = field.firstIndex(of: UInt8(ascii: "=")),
                    let value = CollectorParse.uint64(field[(eq + 1)...])
                else { continue }
                let key = field[..<eq]
                if CollectorParse.equals(key, "rbytes") {
                    counters.blockReadBytes &+= value
                } else if CollectorParse.equals(key, "wbytes") {
                    counters.blockWriteBytes &+= value
                } else if CollectorParse.equals(key, "rios") {
                    counters.blockReadOps &+= value
                } else if CollectorParse.equals(key, "wios") {
                    counters.blockWriteOps &+= value
                }
            }
        }
    }
}
