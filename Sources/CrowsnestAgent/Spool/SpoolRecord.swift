/// One unacknowledged batch read back from the spool: the batch's sequence number
/// and its serialized protobuf bytes, exactly as they were appended.
public struct SpoolRecord: Sendable, Equatable {
    /// The agent's batch sequence number the record was appended with.
    public var seq: UInt64
    /// The opaque payload (the serialized `Batch` message).
    public var payload: [UInt8]

    /// Creates a record value (used by the spool when reading records back).
    public init(seq: UInt64, payload: [UInt8]) {
        self.seq = seq
        self.payload = payload
    }
}

/// On-disk layout of one spool record, all integers big-endian:
///
/// ```
/// offset size field
///      0    4 magic  0x434E5331 ("CNS1")
///      4    4 payload length in bytes
///      8    8 sequence number
///     16    4 CRC-32C of the 8 sequence bytes followed by the payload bytes
///     20    n payload
/// ```
enum SpoolRecordFormat {
    /// Marks the start of a record; also lets recovery tell garbage from a record header.
    static let magic: UInt32 = 0x434E_5331
    /// Bytes before the payload.
    static let headerSize = 20
    /// Largest payload the spool accepts: matches the wire frame limit order of magnitude
    /// and bounds what recovery will believe from a length field.
    static let maxPayloadBytes = 16 * 1024 * 1024

    /// A decoded header; `checksum` still has to be compared with the payload.
    struct Header: Equatable {
        var magic: UInt32
        var payloadLength: Int
        var seq: UInt64
        var checksum: UInt32

        /// Header plus payload bytes.
        var recordSize: Int { SpoolRecordFormat.headerSize + payloadLength }
    }

    /// Checksum over the sequence number and the payload, so a record with a
    /// flipped sequence byte is as detectable as one with a flipped payload byte.
    static func checksum(seq: UInt64, payload: some Sequence<UInt8>) -> UInt32 {
        var seqBytes: [UInt8] = []
        seqBytes.reserveCapacity(8)
        appendBigEndian(seq, to: &seqBytes)
        return SpoolChecksum.update(SpoolChecksum.crc32c(seqBytes), payload)
    }

    /// Serializes header and payload into one buffer so it is written with one `write`.
    static func encode(seq: UInt64, payload: [UInt8]) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(headerSize + payload.count)
        appendBigEndian(magic, to: &bytes)
        appendBigEndian(UInt32(payload.count), to: &bytes)
        appendBigEndian(seq, to: &bytes)
        appendBigEndian(checksum(seq: seq, payload: payload), to: &bytes)
        bytes.append(contentsOf: payload)
        return bytes
    }

    /// Decodes the 20 header bytes; validation of magic and length is the caller's job.
    static func decodeHeader(_ bytes: ArraySlice<UInt8>) -> Header {
        precondition(bytes.count >= headerSize)
        let base = bytes.startIndex
        return Header(
            magic: UInt32(readBigEndian(bytes, at: base, width: 4)),
            payloadLength: Int(readBigEndian(bytes, at: base + 4, width: 4)),
            seq: readBigEndian(bytes, at: base + 8, width: 8),
            checksum: UInt32(readBigEndian(bytes, at: base + 16, width: 4))
        )
    }

    static func appendBigEndian<T: FixedWidthInteger>(_ value: T, to bytes: inout [UInt8]) {
        var bigEndian = value.bigEndian
        withUnsafeBytes(of: &bigEndian) { bytes.append(contentsOf: $0) }
    }

    static func readBigEndian(_ bytes: ArraySlice<UInt8>, at index: Int, width: Int) -> UInt64 {
        var value: UInt64 = 0
        for offset in 0..<width {
            value = (value << 8) | UInt64(bytes[index + offset])
        }
        return value
    }
}
