import CrowsnestWire

/// The host's network interfaces and their counters, from `/proc/net/dev`, without `lo` and without interfaces
/// whose names start with a skipped prefix (default: Docker's `veth` pairs, one per container).
public struct NetworkInterfacesCollector: Collector {
    private let file: KeptFile
    private let skippedPrefixes: [String]

    /// A collector of `<procRoot>/net/dev`.
    public init(procRoot: String, skippingPrefixes: [String] = ["veth"]) {
        file = KeptFile(procRoot + "/net/dev")
        skippedPrefixes = skippingPrefixes.filter { !$0.isEmpty }
    }

    public func collect(into sample: inout Crowsnest_V1_HostSample) throws {
        if let interfaces = try file.withContents({ Self.parse(bytes: $0, skippingPrefixes: skippedPrefixes) }) {
            sample.interfaces = interfaces
        }
    }

    /// Parses a `/proc/net/dev` text into one entry per interface, leaving out `lo` and names starting with any of
    /// `skippingPrefixes`.
    public static func parse(_ text: String, skippingPrefixes: [String] = ["veth"]) -> [Crowsnest_V1_NetInterface] {
        CollectorParse.withBytes(of: text) { parse(bytes: $0, skippingPrefixes: skippingPrefixes.filter { !$0.isEmpty }) }
    }

    /// Names are checked on the bytes, so a skipped interface (50 `veth`s on a busy host) costs no `String`.
    static func parse(bytes: UnsafeBufferPointer<UInt8>, skippingPrefixes: [String]) -> [Crowsnest_V1_NetInterface] {
        var result: [Crowsnest_V1_NetInterface] = []
        ProcNetDev.forEachInterface(bytes) { name, counters in
            if CollectorParse.equals(name, "lo") || skippingPrefixes.contains(where: { CollectorParse.hasPrefix(name, $0) }) {
                return
            }
            var interface = Crowsnest_V1_NetInterface()
            interface.name = String(decoding: name, as: UTF8.self)
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
}
