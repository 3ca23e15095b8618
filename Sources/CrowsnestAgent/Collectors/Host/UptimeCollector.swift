import CrowsnestWire

/// Whole seconds since the host booted, from `/proc/uptime` (zero when missing).
public struct UptimeCollector: Collector {
    private let file: KeptFile

    /// A collector of `<procRoot>/uptime`.
    public init(procRoot: String) {
        file = KeptFile(procRoot + "/uptime")
    }

    public func collect(into sample: inout Crowsnest_V1_HostSample) throws {
        let seconds = try file.withContents { Self.parse(bytes: $0) } ?? nil
        sample.uptimeSeconds = seconds ?? 0
    }

    /// Parses a `/proc/uptime` text ("1234567.89 4567890.12") into whole seconds since boot.
    public static func parse(_ text: String) -> UInt64? {
        CollectorParse.withBytes(of: text) { parse(bytes: $0) }
    }

    static func parse(bytes: UnsafeBufferPointer<UInt8>) -> UInt64? {
        var fields = CollectorFields(bytes[...])
        guard let first = fields.next() else { return nil }
        let whole = first.firstIndex(of: UInt8(ascii: ".")).map { first[..<$0] } ?? first
        return CollectorParse.uint64(whole)
    }
}
