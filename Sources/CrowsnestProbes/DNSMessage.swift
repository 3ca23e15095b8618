import CrowsnestWire
import NIOCore

/// A DNS query and the parts of an answer a `dns` check judges (RFC 1035), written and read by hand: no package
/// here speaks DNS on SwiftNIO without Foundation. Reading is bounded — name pointers may only point backwards, a
/// name is at most 255 bytes, at most 200 records are read — so a hostile resolver cannot make it loop.
struct DNSMessage {
    enum RecordType: UInt16, CaseIterable, Sendable {
        case a = 1, ns = 2, cname = 5, mx = 15, txt = 16, aaaa = 28

        init?(name: String) {
            guard let found = Self.allCases.first(where: { $0.name == name.uppercased() }) else { return nil }
            self = found
        }

        var name: String {
            switch self {
            case .a: return "A"
            case .ns: return "NS"
            case .cname: return "CNAME"
            case .mx: return "MX"
            case .txt: return "TXT"
            case .aaaa: return "AAAA"
            }
        }
    }

    struct Record: Equatable {
        var name: String
        var type: UInt16
        var ttl: UInt32
        /// The record's data as text: an address, a name, `preference name` for MX, the joined strings for TXT;
        /// nil for types the check does not read.
        var text: String?
    }

    static let maximumRecords = 200
    static let rcodeNames = [0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"]

    var id: UInt16
    var truncated: Bool
    var rcode: Int
    var answers: [Record]

    /// A recursive query for `name` of `type`, with an EDNS0 record offering 1,232-byte UDP answers.
    static func query(id: UInt16, name: String, type: RecordType) throws -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeInteger(id)
        buffer.writeInteger(UInt16(0x0100))  // RD
        buffer.writeInteger(UInt16(1))  // QDCOUNT
        buffer.writeInteger(UInt16(0))
        buffer.writeInteger(UInt16(0))
        buffer.writeInteger(UInt16(1))  // ARCOUNT: OPT
        try writeName(name, into: &buffer)
        buffer.writeInteger(type.rawValue)
        buffer.writeInteger(UInt16(1))  // IN
        buffer.writeInteger(UInt8(0))  // OPT: root name
        buffer.writeInteger(UInt16(41))
        buffer.writeInteger(UInt16(1232))
        buffer.writeInteger(UInt32(0))
        buffer.writeInteger(UInt16(0))
        return buffer
    }

    static func writeName(_ name: String, into buffer: inout ByteBuffer) throws {
        let trimmed = name.hasSuffix(".") ? String(name.dropLast()) : name
        guard !trimmed.isEmpty, trimmed.utf8.count <= 253 else { throw ProbeFailure("\(name) is not a DNS name") }
        for label in trimmed.split(separator: ".", omittingEmptySubsequences: false) {
            guard (1...63).contains(label.utf8.count) else { throw ProbeFailure("\(name) is not a DNS name") }
            buffer.writeInteger(UInt8(label.utf8.count))
            buffer.writeString(String(label))
        }
        buffer.writeInteger(UInt8(0))
    }

    /// Parses an answer; throws `ProbeFailure` when it is malformed.
    init(parsing bytes: ByteBuffer) throws {
        let data = Array(bytes.readableBytesView)
        var reader = Reader(data: data)
        id = try reader.u16()
        let flags = try reader.u16()
        guard flags & 0x8000 != 0 else { throw ProbeFailure("the resolver sent a query, not an answer") }
        truncated = flags & 0x0200 != 0
        rcode = Int(flags & 0x000F)
        let questions = try reader.u16()
        let answerCount = Int(try reader.u16())
        _ = try reader.u16()
        _ = try reader.u16()
        for _ in 0..<questions {
            _ = try reader.name()
            _ = try reader.u16()
            _ = try reader.u16()
        }
        answers = []
        for _ in 0..<min(answerCount, Self.maximumRecords) {
            let name = try reader.name()
            let type = try reader.u16()
            _ = try reader.u16()
            let ttl = try reader.u32()
            let length = Int(try reader.u16())
            let end = reader.offset + length
            guard end <= data.count else { throw ProbeFailure("the resolver's answer is cut short") }
            var text: String?
            switch RecordType(rawValue: type) {
            case .a? where length == 4, .aaaa? where length == 16:
                text = IPAddress(bytes: Array(data[reader.offset..<end]))?.text
            case .cname?, .ns?:
                text = try reader.name()
            case .mx?:
                let preference = try reader.u16()
                text = "\(preference) \(try reader.name())"
            case .txt?:
                var strings: [String] = []
                var at = reader.offset
                while at < end {
                    let count = Int(data[at])
                    guard at + 1 + count <= end else { throw ProbeFailure("the resolver's TXT record is malformed") }
                    strings.append(String(decoding: data[(at + 1)..<(at + 1 + count)], as: UTF8.self))
                    at += 1 + count
                }
                text = strings.joined()
            default:
                break
            }
            reader.offset = end
            answers.append(Record(name: name, type: type, ttl: ttl, text: text))
        }
    }

    struct Reader {
        let data: [UInt8]
        var offset = 0

        mutating func u16() throws -> UInt16 {
            guard offset + 2 <= data.count else { throw ProbeFailure("the resolver's answer is cut short") }
            defer { offset += 2 }
            return UInt16(data[offset]) << 8 | UInt16(data[offset + 1])
        }

        mutating func u32() throws -> UInt32 {
            UInt32(try u16()) << 16 | UInt32(try u16())
        }

        /// A possibly compressed name, lowercased, without the trailing dot ("" for the root).
        mutating func name() throws -> String {
            var labels: [String] = []
            var at = offset
            var jumped = false
            var length = 0
            while true {
                guard at < data.count else { throw ProbeFailure("the resolver's answer is cut short") }
                let count = Int(data[at])
                if count == 0 {
                    if !jumped { offset = at + 1 }
                    break
                }
                if count & 0xC0 == 0xC0 {
                    guard at + 1 < data.count else { throw ProbeFailure("the resolver's answer is cut short") }
                    let target = (count & 0x3F) << 8 | Int(data[at + 1])
                    // Only backwards: a pointer loop cannot form.
                    guard target < at else { throw ProbeFailure("the resolver's answer has a bad name pointer") }
                    if !jumped { offset = at + 2 }
                    jumped = true
                    at = target
                    continue
                }
                guard count <= 63, at + 1 + count <= data.count else { throw ProbeFailure("the resolver's answer has a bad name") }
                length += count + 1
                guard length <= 255 else { throw ProbeFailure("the resolver's answer has a name over 255 bytes") }
                labels.append(String(decoding: data[(at + 1)..<(at + 1 + count)], as: UTF8.self).lowercased())
                at += 1 + count
            }
            return labels.joined(separator: ".")
        }
    }
}
