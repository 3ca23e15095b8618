import CrowsnestWire

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

/// The host's CPU times and CPU count, from `/proc/stat` (required: without it the host sample fails).
public struct CPUTimesCollector: Collector {
    private let file: KeptFile
    /// Clock ticks per second of `/proc/stat` (USER_HZ).
    private let clockTicksPerSecond: UInt64

    /// A collector of `<procRoot>/stat`.
    public init(procRoot: String, clockTicksPerSecond: UInt64) {
        file = KeptFile(procRoot + "/stat")
        self.clockTicksPerSecond = clockTicksPerSecond
    }

    public func collect(into sample: inout Crowsnest_V1_HostSample) throws {
        guard let parsed = try file.withContents({ Self.parse(bytes: $0, clockTicksPerSecond: clockTicksPerSecond) }) else {
            throw CollectorError.missingFile(path: file.path)
        }
        guard let cpu = parsed else { throw CollectorError.malformed(path: file.path, detail: "no aggregate \"cpu\" line") }
        sample.cpuUserNs = cpu.userNs
        sample.cpuSystemNs = cpu.systemNs
        sample.cpuIdleNs = cpu.idleNs
        sample.cpuIowaitNs = cpu.iowaitNs
        sample.cpuTotalNs = cpu.totalNs
        sample.cpuCount = cpu.cpuCount
    }

    /// Parses a `/proc/stat` text: the aggregate `cpu` line into nanoseconds, and counts the `cpuN` lines.
    /// Returns nil when there is no aggregate line.
    public static func parse(_ text: String, clockTicksPerSecond: UInt64) -> HostCPUTimes? {
        CollectorParse.withBytes(of: text) { parse(bytes: $0, clockTicksPerSecond: clockTicksPerSecond) }
    }

    static func parse(bytes: UnsafeBufferPointer<UInt8>, clockTicksPerSecond: UInt64) -> HostCPUTimes? {
        let hz = max(clockTicksPerSecond, 1)
        // user nice system idle iowait irq softirq steal guest guest_nice
        var j: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)
        var sawAggregate = false
        var count: UInt32 = 0
        for line in CollectorLines(bytes[...]) {
            var fields = CollectorFields(line)
            guard let name = fields.next(), name.count >= 3,
                name[name.startIndex] == UInt8(ascii: "c"), name[name.startIndex + 1] == UInt8(ascii: "p"),
                name[name.startIndex + 2] == UInt8(ascii: "u")
            else { continue }
            if name.count == 3 {
                sawAggregate = true
                var index = 0
                while index < 8, let field = fields.next() {
                    let value = CollectorParse.uint64(field) ?? 0
                    switch index {
                    case 0: j.0 = value
                    case 1: j.1 = value
                    case 2: j.2 = value
                    case 3: j.3 = value
                    case 4: j.4 = value
                    case 5: j.5 = value
                    case 6: j.6 = value
                    default: j.7 = value
                    }
                    index += 1
                }
            } else if CollectorParse.uint64(name[(name.startIndex + 3)...]) != nil {
                count += 1
            }
        }
        guard sawAggregate else { return nil }
        func ns(_ ticks: UInt64) -> UInt64 {
            let product = ticks.multipliedFullWidth(by: 1_000_000_000)
            guard product.high < hz else { return .max }
            return hz.dividingFullWidth(product).quotient
        }
        let user = j.0 &+ j.1
        let system = j.2 &+ j.5 &+ j.6
        let total = user &+ system &+ j.3 &+ j.4 &+ j.7
        return HostCPUTimes(
            userNs: ns(user), systemNs: ns(system), idleNs: ns(j.3), iowaitNs: ns(j.4), totalNs: ns(total), cpuCount: count)
    }
}
