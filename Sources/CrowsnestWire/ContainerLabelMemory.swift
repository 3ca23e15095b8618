import NIOCore
import SwiftProtobuf

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Remembers the labels each container of an agent's sweep last arrived with on one session, so a batch that
/// repeats them (nearly every sweep: labels change only when a container is re-created) reuses the dictionary
/// decoded before instead of decoding, hashing and allocating every label again.
///
/// Decoding the labels map was the largest single part of the server's own ingest work (about 6 % of the whole
/// machine in the ingest benchmark's profile). Reuse rests on the bytes alone: a container's label entries are
/// reused when they are, byte for byte, the entries at the same position of a batch decoded earlier on the same
/// session, so the result always equals a plain decode of the frame. Anything unusual (a frame that does not
/// parse, labels interleaved with other fields, positions or sizes beyond the bounds below) is decoded plainly.
public struct ContainerLabelMemory: Sendable {
    /// Positions in a sweep remembered; containers beyond are decoded plainly.
    public static let maximumPositions = 4096
    /// A container whose label entries together take more than this (encoded) is not remembered: hostile or unusual.
    public static let maximumEntryBytes = 16 * 1024
    /// All remembered label bytes of one session together stay under this. The dictionaries decoded from them come
    /// on top (for many tiny labels a few times the bytes); they are the ones the session's batches hold anyway.
    public static let maximumTotalBytes = 1 << 20

    private struct Entry: Sendable {
        var bytes: [UInt8]
        var labels: [String: String]
    }

    private var entries: [Entry?] = []
    private var totalBytes = 0
    /// How many containers' labels were taken from memory rather than decoded (for tests and figures).
    public private(set) var reusedLabelSets = 0

    public init() {}

    /// Decodes one frame payload as `FrameCodec.decodeFrame` does, reusing remembered labels where the bytes repeat.
    public mutating func decodeFrame(_ payload: ByteBuffer) throws -> Crowsnest_V1_Frame {
        // Heartbeats, hellos and the rest carry no labels: decoded plainly, without copying the frame first.
        guard payload.withUnsafeReadableBytes(Self.holdsBatch) else { return try FrameCodec.decodeFrame(payload) }
        let scan = payload.withUnsafeReadableBytes { bytes in rewrite(bytes) }
        guard let scan, !(scan.reused.isEmpty && scan.remember.isEmpty) else { return try FrameCodec.decodeFrame(payload) }
        var frame: Crowsnest_V1_Frame
        do {
            frame = try Crowsnest_V1_Frame(serializedBytes: scan.bytes)
        } catch {
            return try FrameCodec.decodeFrame(payload)  // the plain decode's own error
        }
        guard case .batch(var batch) = frame.message, batch.containers.count == scan.containers else {
            return try FrameCodec.decodeFrame(payload)
        }
        frame.message = nil  // the batch's storage referenced once, so the changes below are made in place
        for (position, labels) in scan.reused { batch.containers[position].labels = labels }
        for (position, bytes) in scan.remember { remember(bytes, labels: batch.containers[position].labels, at: position) }
        reusedLabelSets += scan.reused.count
        frame.message = .batch(batch)
        return frame
    }

    private mutating func remember(_ bytes: [UInt8], labels: [String: String], at position: Int) {
        if entries.count <= position { entries += Array(repeating: nil, count: position + 1 - entries.count) }
        let replaced = entries[position]?.bytes.count ?? 0
        guard totalBytes - replaced + bytes.count <= Self.maximumTotalBytes else { return }
        totalBytes += bytes.count - replaced
        entries[position] = Entry(bytes: bytes, labels: labels)
    }

    /// What one pass over a frame found: the frame without the label entries that repeat, the labels to put back
    /// (by container position), and the label entries to remember once the frame has decoded.
    private struct Scan {
        var bytes: [UInt8] = []
        var containers = 0
        var reused: [(Int, [String: String])] = []
        var remember: [(Int, [UInt8])] = []
    }

    /// Whether the frame's top level has a `batch` (field 4, length-delimited); false too when it does not parse.
    private static func holdsBatch(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var found = false
        _ = ProtobufFields.forEach(in: bytes, 0..<bytes.count) { field in
            found = field.number == 4 && field.wireType == 2
            return !found
        }
        return found
    }

    /// Copies the frame, leaving out the label entries of each container that repeat the remembered ones; nil when
    /// the frame does not parse as protobuf (the plain decode then reports it).
    private func rewrite(_ bytes: UnsafeRawBufferPointer) -> Scan? {
        var scan = Scan()
        scan.bytes.reserveCapacity(bytes.count)
        let parsed = ProtobufFields.forEach(in: bytes, 0..<bytes.count) { field in
            // Frame field 4 is the `batch` of the oneof.
            guard field.number == 4, field.wireType == 2 else {
                scan.bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[field.start..<field.end]))
                return true
            }
            var batch: [UInt8] = []
            batch.reserveCapacity(field.end - field.contentStart)
            let batchParsed = ProtobufFields.forEach(in: bytes, field.contentStart..<field.end) { inner in
                // SampleBatch field 5 is `containers`.
                guard inner.number == 5, inner.wireType == 2 else {
                    batch.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[inner.start..<inner.end]))
                    return true
                }
                let position = scan.containers
                scan.containers += 1
                guard let labels = Self.labelRange(in: bytes, inner.contentStart..<inner.end) else { return false }
                if !labels.isEmpty, position < Self.maximumPositions, let entry = entries.count > position ? entries[position] : nil,
                   entry.bytes.count == labels.count,
                   entry.bytes.withUnsafeBytes({ memcmp($0.baseAddress!, bytes.baseAddress! + labels.lowerBound, labels.count) == 0 }) {
                    scan.reused.append((position, entry.labels))
                    batch.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[inner.start..<inner.valueStart]))  // the tag
                    ProtobufFields.appendVarint(UInt64(inner.end - inner.contentStart - labels.count), to: &batch)
                    batch.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[inner.contentStart..<labels.lowerBound]))
                    batch.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[labels.upperBound..<inner.end]))
                    return true
                }
                if !labels.isEmpty, position < Self.maximumPositions, labels.count <= Self.maximumEntryBytes {
                    scan.remember.append((position, Array(UnsafeRawBufferPointer(rebasing: bytes[labels]))))
                }
                batch.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[inner.start..<inner.end]))
                return true
            }
            guard batchParsed else { return false }
            scan.bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[field.start..<field.valueStart]))
            ProtobufFields.appendVarint(UInt64(batch.count), to: &scan.bytes)
            scan.bytes += batch
            return true
        }
        return parsed ? scan : nil
    }

    /// The bytes of a `ContainerSample`'s label entries (field 4), when they lie together; an empty range when the
    /// sample has none or they are interleaved with other fields (then they are decoded plainly); nil when the
    /// sample does not parse.
    private static func labelRange(in bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Range<Int>? {
        var first: Int?
        var end = 0
        var together = true
        let parsed = ProtobufFields.forEach(in: bytes, range) { field in
            guard field.number == 4 else { return true }
            if field.wireType != 2 { together = false }
            if let _ = first {
                if field.start != end { together = false }
            } else {
                first = field.start
            }
            end = field.end
            return true
        }
        guard parsed else { return nil }
        guard let first, together else { return range.lowerBound..<range.lowerBound }
        return first..<end
    }
}

/// Walks the top-level fields of protobuf-encoded bytes without decoding them (`ContainerLabelMemory`).
enum ProtobufFields {
    /// One field: its number and wire type, where its tag starts, where its value starts (after the tag), where a
    /// length-delimited value's content starts (after its length), and where it ends.
    struct Field {
        var number: UInt64
        var wireType: UInt8
        var start: Int
        var valueStart: Int
        var contentStart: Int
        var end: Int
    }

    /// Calls `body` for each field in `range`; false when the bytes are not well-formed protobuf fields (groups,
    /// field number 0, a length past the end, a varint longer than 10 bytes) or `body` returned false.
    static func forEach(in bytes: UnsafeRawBufferPointer, _ range: Range<Int>, _ body: (Field) -> Bool) -> Bool {
        var index = range.lowerBound
        let end = range.upperBound
        while index < end {
            let start = index
            guard let tag = varint(bytes, &index, end), tag >> 3 != 0, tag >> 3 <= 536_870_911 else { return false }
            let wireType = UInt8(tag & 7)
            let valueStart = index
            var contentStart = index
            switch wireType {
            case 0:
                guard varint(bytes, &index, end) != nil else { return false }
            case 1:
                guard end - index >= 8 else { return false }
                index += 8
            case 5:
                guard end - index >= 4 else { return false }
                index += 4
            case 2:
                guard let length = varint(bytes, &index, end), length <= UInt64(end - index) else { return false }
                contentStart = index
                index += Int(length)
            default:
                return false
            }
            guard body(Field(number: tag >> 3, wireType: wireType, start: start, valueStart: valueStart,
                             contentStart: contentStart, end: index)) else { return false }
        }
        return true
    }

    static func varint(_ bytes: UnsafeRawBufferPointer, _ index: inout Int, _ end: Int) -> UInt64? {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while index < end, shift < 70 {
            let byte = bytes[index]
            index += 1
            result |= UInt64(byte & 0x7f) << shift
            if byte & 0x80 == 0 { return result }
            shift += 7
        }
        return nil
    }

    static func appendVarint(_ value: UInt64, to bytes: inout [UInt8]) {
        var value = value
        while value >= 0x80 {
            bytes.append(UInt8(value & 0x7f) | 0x80)
            value >>= 7
        }
        bytes.append(UInt8(value))
    }
}
