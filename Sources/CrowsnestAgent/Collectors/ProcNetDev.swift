/// Cumulative network counters of one interface or a sum of interfaces, as `/proc/<pid>/net/dev` reports them.
public struct NetworkCounters: Sendable, Equatable {
    /// Bytes received.
    public var rxBytes: UInt64 = 0
    /// Bytes sent.
    public var txBytes: UInt64 = 0
    /// Packets received.
    public var rxPackets: UInt64 = 0
    /// Packets sent.
    public var txPackets: UInt64 = 0
    /// Receive errors.
    public var rxErrors: UInt64 = 0
    /// Transmit errors.
    public var txErrors: UInt64 = 0
    /// Received packets dropped.
    public var rxDropped: UInt64 = 0
    /// Packets dropped on transmit.
    public var txDropped: UInt64 = 0

    /// All counters zero.
    public init() {}

    /// Counters with every figure given (tests and fixtures).
    public init(
        rxBytes: UInt64, txBytes: UInt64, rxPackets: UInt64, txPackets: UInt64,
        rxErrors: UInt64, txErrors: UInt64, rxDropped: UInt64, txDropped: UInt64
    ) {
        self.rxBytes = rxBytes
        self.txBytes = txBytes
        self.rxPackets = rxPackets
        self.txPackets = txPackets
        self.rxErrors = rxErrors
        self.txErrors = txErrors
        self.rxDropped = rxDropped
        self.txDropped = txDropped
    }

    /// Adds another interface's counters (wrapping rather than trapping on absurd input).
    public mutating func add(_ other: NetworkCounters) {
        rxBytes &+= other.rxBytes
        txBytes &+= other.txBytes
        rxPackets &+= other.rxPackets
        txPackets &+= other.txPackets
        rxErrors &+= other.rxErrors
        txErrors &+= other.txErrors
        rxDropped &+= other.rxDropped
        txDropped &+= other.txDropped
    }
}

/// Parser for the `net/dev` table of procfs.
///
/// Each data line is `name: rx_bytes rx_packets rx_errs rx_drop fifo frame compressed multicast
/// tx_bytes tx_packets tx_errs tx_drop fifo colls carrier compressed`; old kernels glue the first
/// number to the colon, so the name is split at the colon, not at whitespace.
public enum ProcNetDev {
    /// Calls `body(name, counters)` for every interface line of a `net/dev` table.
    static func forEachInterface(_ bytes: UnsafeBufferPointer<UInt8>, _ body: (CollectorBytes, NetworkCounters) -> Void) {
        for line in CollectorLines(bytes[...]) {
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { continue }  // header lines have no colon
            var nameStart = line.startIndex
            while nameStart < colon && CollectorFields.isSpace(line[nameStart]) { nameStart += 1 }
            let name = line[nameStart..<colon]
            if name.contains(UInt8(ascii: "|")) { continue }  // a header, should a kernel ever put a colon in one
            var values: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) =
                (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
            var index = 0
            var valid = true
            for field in CollectorFields(line[(colon + 1)...]) {
                guard index < 12 else { break }
                guard let value = CollectorParse.uint64(field) else { valid = false; break }
                switch index {
                case 0: values.0 = value
                case 1: values.1 = value
                case 2: values.2 = value
                case 3: values.3 = value
                case 8: values.8 = value
                case 9: values.9 = value
                case 10: values.10 = value
                case 11: values.11 = value
                default: break
                }
                index += 1
            }
            guard valid, index >= 12 else { continue }
            body(
                name,
                NetworkCounters(
                    rxBytes: values.0, txBytes: values.8, rxPackets: values.1, txPackets: values.9,
                    rxErrors: values.2, txErrors: values.10, rxDropped: values.3, txDropped: values.11))
        }
    }

    /// Sums every interface except the loopback `lo`: a container's traffic as seen from its network namespace.
    public static func sumExceptLoopback(_ text: String) -> NetworkCounters {
        CollectorParse.withBytes(of: text) { sumExceptLoopback(bytes: $0) }
    }

    static func sumExceptLoopback(bytes: UnsafeBufferPointer<UInt8>) -> NetworkCounters {
        var total = NetworkCounters()
        forEachInterface(bytes) { name, counters in
            if !CollectorParse.equals(name, "lo") { total.add(counters) }
        }
        return total
    }

    /// Every interface with its counters, in file order (the loopback included; callers filter).
    public static func interfaces(_ text: String) -> [(name: String, counters: NetworkCounters)] {
        CollectorParse.withBytes(of: text) { bytes in
            var result: [(name: String, counters: NetworkCounters)] = []
            forEachInterface(bytes) { name, counters in
                result.append((String(decoding: name, as: UTF8.self), counters))
            }
            return result
        }
    }
}
