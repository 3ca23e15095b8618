import CrowsnestWire

/// The host's 1, 5 and 15 minute load averages, from `/proc/loadavg` (zero when missing).
public struct LoadAverageCollector: Collector {
    private let file: KeptFile

    /// A collector of `<procRoot>/loadavg`.
    public init(procRoot: String) {
        file = KeptFile(procRoot + "/loadavg")
    }

    public func collect(into sample: inout Crowsnest_V1_HostSample) throws {
        guard let load = try file.withContents({ Self.parse(bytes: $0) }) ?? nil else { return }
        sample.load1 = load.load1
        sample.load5 = load.load5
        sample.load15 = load.load15
    }

    /// Parses a `/proc/loadavg` text ("0.52 0.58 0.59 3/812 219876").
    public static func parse(_ text: String) -> (load1: Double, load5: Double, load15: Double)? {
        CollectorParse.withBytes(of: text) { parse(bytes: $0) }
    }

    static func parse(bytes: UnsafeBufferPointer<UInt8>) -> (load1: Double, load5: Double, load15: Double)? {
        var fields = CollectorFields(bytes[...])
        guard let l1 = fields.next().flatMap(CollectorParse.decimal), let l5 = fields.next().flatMap(CollectorParse.decimal),
            let l15 = fields.next().flatMap(CollectorParse.decimal)
        else { return nil }
        return (l1, l5, l15)
    }
}
