import CrowsnestWire

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

/// The host's memory and swap, from `/proc/meminfo` (required: without it the host sample fails).
public struct MemoryInfoCollector: Collector {
    private let file: KeptFile

    /// A collector of `<procRoot>/meminfo`.
    public init(procRoot: String) {
        file = KeptFile(procRoot + "/meminfo")
    }

    public func collect(into sample: inout Crowsnest_V1_HostSample) throws {
        guard let memory = try file.withContents({ Self.parse(bytes: $0) }) else { throw CollectorError.missingFile(path: file.path) }
        sample.memoryTotalBytes = memory.totalBytes
        sample.memoryAvailableBytes = memory.availableBytes
        sample.swapTotalBytes = memory.swapTotalBytes
        sample.swapFreeBytes = memory.swapFreeBytes
    }

    /// Parses a `/proc/meminfo` text (MemTotal, MemAvailable, SwapTotal, SwapFree; kB converted to bytes).
    public static func parse(_ text: String) -> HostMemoryInfo {
        CollectorParse.withBytes(of: text) { parse(bytes: $0) }
    }

    static func parse(bytes: UnsafeBufferPointer<UInt8>) -> HostMemoryInfo {
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
