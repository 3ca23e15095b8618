import NIOCore
import SwiftProtobuf

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Remembers each container of an agent's sweep as it last arrived on one session, so a batch that repeats a
/// container's identity (everything but its counters: nearly every sweep, as names, images, labels and states change
/// only when a container does) reuses the sample decoded before and reads only its counters anew, instead of decoding,
/// validating and allocating every string and label again.
///
/// Decoding container samples with SwiftProtobuf was the largest single part of the server's own ingest work (about
/// 11 % of the whole machine in the ingest benchmark's profile, labels included). Reuse rests on the bytes alone: a
/// container is reused when its fields other than the counters are, byte for byte and in order, those of the
/// container at the same position of a batch decoded earlier on the same session; the counters (fields 16–33, plain
/// varints) are then read by hand as SwiftProtobuf reads them, so the result always equals a plain decode of the
/// frame. Anything unusual (a frame other than a lone batch, bytes that do not parse, positions or sizes beyond the
/// bounds below) is decoded plainly.
public struct ContainerSampleMemory: Sendable {
    /// Positions in a sweep remembered; containers beyond are decoded plainly.
    public static let maximumPositions = 4096
    /// A container whose identity (its encoded fields other than the counters) takes more than this is not
    /// remembered: hostile or unusual.
    public static let maximumEntryBytes = 16 * 1024
    /// All remembered identity bytes of one session together stay under this. The samples decoded from them come on
    /// top (their strings and labels take about as much again, more for many tiny labels); they are the ones the
    /// session's batches hold anyway.
    public static let maximumTotalBytes = 1 << 20

    /// `ContainerSample` fields 16 (`cpu_usage_ns`) to 33 (`pids`): the counters and gauges, all `uint64`.
    static let counterFields: ClosedRange<UInt64> = 16...33

    private struct Entry: Sendable {
        var identity: [UInt8]
        var sample: Crowsnest_V1_ContainerSample
    }

    private var entries: [Entry?] = []
    /// Identity bytes remembered now, across all positions (at most `maximumTotalBytes`).
    private(set) var rememberedBytes = 0
    /// How many containers were taken from memory rather than decoded (for tests and figures).
    public private(set) var reusedSamples = 0

    public init() {}

    /// Decodes one frame payload as `FrameCodec.decodeFrame` does, reusing remembered containers where they repeat.
    public mutating func decodeFrame(_ payload: ByteBuffer) throws -> Crowsnest_V1_Frame {
        let fast = payload.withUnsafeReadableBytes { bytes in decodeBatch(bytes) }
        guard let fast else { return try FrameCodec.decodeFrame(payload) }  // the plain decode, with its own error
        return fast
    }

    /// The frame when it is one batch that decodes on the fast path; nil to decode it plainly (any other frame, bytes
    /// that do not parse, a container that does not decode).
    private mutating func decodeBatch(_ bytes: UnsafeRawBufferPointer) -> Crowsnest_V1_Frame? {
        // The frame must be exactly one field: `batch` (4, length-delimited). Heartbeats, hellos and the rest (and
        // any frame with more than one field, which a plain decode merges or replaces) are decoded plainly.
        var batchField: ProtobufFields.Field?
        var fields = 0
        guard ProtobufFields.forEach(in: bytes, 0..<bytes.count, { field in
            fields += 1
            batchField = field
            return fields == 1 && field.number == 4 && field.wireType == 2
        }), fields == 1, let batchField else { return nil }

        // The batch without its containers (decoded by SwiftProtobuf), and where each container lies.
        var rest: [UInt8] = [0x22]  // Frame.batch, length-delimited; its length and content follow
        var restContent: [UInt8] = []
        restContent.reserveCapacity(256)
        var containers: [Range<Int>] = []
        guard ProtobufFields.forEach(in: bytes, batchField.contentStart..<batchField.end, { field in
            if field.number == 5 {  // SampleBatch.containers
                guard field.wireType == 2 else { return false }
                containers.append(field.contentStart..<field.end)
            } else {
                restContent.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[field.start..<field.end]))
            }
            return true
        }) else { return nil }
        guard !containers.isEmpty else { return nil }  // nothing to reuse
        ProtobufFields.appendVarint(UInt64(restContent.count), to: &rest)
        rest += restContent

        var samples: [Crowsnest_V1_ContainerSample] = []
        samples.reserveCapacity(containers.count)
        var reused = 0
        var remember: [(Int, [UInt8], Crowsnest_V1_ContainerSample)] = []
        for (position, range) in containers.enumerated() {
            let entry = position < Self.maximumPositions && position < entries.count ? entries[position] : nil
            guard let split = Self.split(bytes, range, against: entry?.identity) else { return nil }
            if split.matches, let entry {
                var sample = entry.sample
                split.counters.apply(to: &sample)
                samples.append(sample)
                reused += 1
                continue
            }
            guard let sample = try? Crowsnest_V1_ContainerSample(serializedBytes: Array(UnsafeRawBufferPointer(rebasing: bytes[range])))
            else { return nil }
            samples.append(sample)
            if position < Self.maximumPositions, let identity = Self.identity(bytes, range) {
                remember.append((position, identity, sample))
            }
        }
        guard var frame = try? Crowsnest_V1_Frame(serializedBytes: rest),
              case .batch(var batch) = frame.message, batch.containers.isEmpty else { return nil }
        frame.message = nil  // the batch's storage referenced once, so the change below is made in place
        batch.containers = samples
        frame.message = .batch(batch)
        for (position, identity, sample) in remember { self.remember(identity, sample: sample, at: position) }
        reusedSamples += reused
        return frame
    }

    private mutating func remember(_ identity: [UInt8], sample: Crowsnest_V1_ContainerSample, at position: Int) {
        if entries.count <= position { entries += Array(repeating: nil, count: position + 1 - entries.count) }
        let replaced = entries[position]?.identity.count ?? 0
        guard rememberedBytes - replaced + identity.count <= Self.maximumTotalBytes else { return }
        rememberedBytes += identity.count - replaced
        entries[position] = Entry(identity: identity, sample: sample)
    }

    /// A container's counters as its bytes give them: the last value of each field, 0 when absent (proto3). Kept
    /// inline (no allocation per container).
    struct Counters {
        var values = InlineArray<18, UInt64>(repeating: 0)

        func apply(to sample: inout Crowsnest_V1_ContainerSample) {
            sample.cpuUsageNs = values[0]
            sample.cpuThrottledPeriods = values[1]
            sample.cpuThrottledNs = values[2]
            sample.memoryUsageBytes = values[3]
            sample.memoryWorkingSetBytes = values[4]
            sample.netRxBytes = values[5]
            sample.netTxBytes = values[6]
            sample.netRxPackets = values[7]
            sample.netTxPackets = values[8]
            sample.netRxErrors = values[9]
            sample.netTxErrors = values[10]
            sample.netRxDropped = values[11]
            sample.netTxDropped = values[12]
            sample.blockReadBytes = values[13]
            sample.blockWriteBytes = values[14]
            sample.blockReadOps = values[15]
            sample.blockWriteOps = values[16]
            sample.pids = values[17]
        }
    }

    /// Whether a field of a `ContainerSample` is one of its counters: fields 16–33 given as varints.
    private static func isCounter(_ field: ProtobufFields.Field) -> Bool {
        field.wireType == 0 && counterFields.contains(field.number)
    }

    /// Reads one container's counters (as SwiftProtobuf reads a `uint64`) and compares every other field, in order,
    /// with `remembered`, the identity of the container last seen at its position. Nil when the bytes do not parse.
    static func split(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>,
                      against remembered: [UInt8]?) -> (counters: Counters, matches: Bool)? {
        var counters = Counters()
        // Without a remembered identity nothing can match; the counters are read all the same (one walk either way).
        var matches = remembered != nil
        var offset = 0
        let stored = remembered ?? []
        let parsed = stored.withUnsafeBytes { stored in
            ProtobufFields.forEach(in: bytes, range) { field in
                if isCounter(field) {
                    var index = field.valueStart
                    guard let value = ProtobufFields.varint(bytes, &index, field.end) else { return false }
                    counters.values[Int(field.number - counterFields.lowerBound)] = value
                } else if matches {
                    // A field is at least its one-byte tag, so an empty identity never reaches memcmp.
                    let count = field.end - field.start
                    if stored.count - offset >= count,
                       memcmp(stored.baseAddress! + offset, bytes.baseAddress! + field.start, count) == 0 {
                        offset += count
                    } else {
                        matches = false
                    }
                }
                return true
            }
        }
        guard parsed else { return nil }
        return (counters, matches && offset == stored.count)
    }

    /// A container's fields other than its counters, their bytes in order; nil when they take more than
    /// `maximumEntryBytes` (or do not parse).
    static func identity(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> [UInt8]? {
        var identity: [UInt8] = []
        let parsed = ProtobufFields.forEach(in: bytes, range) { field in
            guard !isCounter(field) else { return true }
            guard identity.count + (field.end - field.start) <= maximumEntryBytes else { return false }
            identity.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[field.start..<field.end]))
            return true
        }
        return parsed ? identity : nil
    }
}

/// Walks the top-level fields of protobuf-encoded bytes without decoding them (`ContainerSampleMemory`).
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
    /// field number 0, a tag longer than 5 bytes, a length past the end, a varint longer than 10 bytes) or `body`
    /// returned false.
    static func forEach(in bytes: UnsafeRawBufferPointer, _ range: Range<Int>, _ body: (Field) -> Bool) -> Bool {
        var index = range.lowerBound
        let end = range.upperBound
        while index < end {
            let start = index
            // A tag of at most 5 bytes, as SwiftProtobuf reads them (a longer one, padded with continuation bytes, is
            // malformed there and must not be accepted here).
            guard let tag = varint(bytes, &index, end), index - start <= 5, tag >> 3 != 0, tag >> 3 <= 536_870_911
            else { return false }
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
