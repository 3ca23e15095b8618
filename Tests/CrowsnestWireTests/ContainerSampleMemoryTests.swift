@testable import CrowsnestWire
import Foundation
import NIOCore
import SwiftProtobuf
import XCTest

/// `ContainerSampleMemory` decodes every frame exactly as a plain decode does, and reuses the containers a sweep repeats.
final class ContainerSampleMemoryTests: XCTestCase {
    private func container(_ index: Int, labels: [String: String]? = nil) -> Crowsnest_V1_ContainerSample {
        var sample = Crowsnest_V1_ContainerSample()
        sample.dockerID = String(repeating: "\(index % 10)", count: 64)
        sample.name = "service-\(index)"
        sample.image = "registry.example/app:\(index)"
        sample.labels = labels ?? ["com.docker.compose.project": "shop", "com.docker.compose.service": "svc-\(index)",
                                   "tier": index % 2 == 0 ? "web" : "db"]
        sample.state = "running"
        sample.hasStats_p = true
        sample.cpuUsageNs = UInt64(1_000_000 * index)
        sample.memoryUsageBytes = UInt64(4096 * index)
        sample.statsSource = "cgroup-v2"  // after the counters in the encoding
        return sample
    }

    private func frame(_ containers: [Crowsnest_V1_ContainerSample], seq: UInt64 = 1) -> Crowsnest_V1_Frame {
        var batch = Crowsnest_V1_SampleBatch()
        batch.seq = seq
        batch.tsUnixMs = 1_700_000_000_000 + Int64(seq) * 1000
        batch.containers = containers
        return .with(.batch(batch))
    }

    private func payload(_ frame: Crowsnest_V1_Frame) throws -> ByteBuffer {
        ByteBuffer(bytes: try frame.serializedBytes() as [UInt8])
    }

    private func labels(_ frame: Crowsnest_V1_Frame) -> [[String: String]] {
        guard case .batch(let batch) = frame.message else { return [] }
        return batch.containers.map(\.labels)
    }

    func testASweepThatRepeatsItsContainersReusesThemAndDecodesAsAPlainDecode() throws {
        var memory = ContainerSampleMemory()
        let containers = (0..<50).map { container($0) }
        for seq in 1...3 {
            var sweep = containers
            for index in sweep.indices {  // the counters move, the names, images and labels do not
                sweep[index].cpuUsageNs += UInt64(seq) * 7
                sweep[index].netRxBytes = UInt64(seq * 1000 + index)
                sweep[index].pids = seq == 3 ? 0 : 12  // and one goes back to its default (absent from the bytes)
            }
            let bytes = try payload(frame(sweep, seq: UInt64(seq)))
            let decoded = try memory.decodeFrame(bytes)
            XCTAssertEqual(decoded, try FrameCodec.decodeFrame(bytes), "sweep \(seq)")
            XCTAssertEqual(decoded, frame(sweep, seq: UInt64(seq)))
        }
        XCTAssertEqual(memory.reusedSamples, 100, "the second and third sweeps reuse all 50 containers")
    }

    func testChangedLabelsAndShiftedPositionsAreDecodedAgain() throws {
        var memory = ContainerSampleMemory()
        let first = (0..<30).map { container($0) }
        _ = try memory.decodeFrame(try payload(frame(first)))
        var second = first
        second[5].labels["version"] = "2"  // re-created with a new label
        second[7].state = "exited"  // stopped: its identity changed too
        second[7].hasStats_p = false
        second[7].cpuUsageNs = 0
        second[7].memoryUsageBytes = 0
        second[9].statsSource = ""  // its identity now a strict beginning of the remembered one
        second.insert(container(99), at: 20)  // a new container shifts the ones after it
        let bytes = try payload(frame(second, seq: 2))
        let decoded = try memory.decodeFrame(bytes)
        XCTAssertEqual(decoded, try FrameCodec.decodeFrame(bytes))
        XCTAssertEqual(labels(decoded)[5]["version"], "2")
        XCTAssertEqual(labels(decoded)[20], container(99).labels)
        guard case .batch(let batch) = decoded.message else { return XCTFail("not a batch") }
        XCTAssertEqual(batch.containers[7].state, "exited")
        XCTAssertEqual(batch.containers[7].cpuUsageNs, 0)
        XCTAssertEqual(batch.containers[9].statsSource, "")
        XCTAssertEqual(memory.reusedSamples, 17, "positions 0–19 except 5, 7 and 9 repeat; every one after 20 holds another container")
        // The next sweep repeats the second one: every position is known again.
        let third = try payload(frame(second, seq: 3))
        XCTAssertEqual(try memory.decodeFrame(third), try FrameCodec.decodeFrame(third))
        XCTAssertEqual(memory.reusedSamples, 17 + 31)
    }

    func testUnusualLayoutsDecodeAsAPlainDecodeWould() throws {
        var memory = ContainerSampleMemory()
        let containers = (0..<4).map { container($0) }
        let base = try frame(containers).serializedBytes() as [UInt8]
        _ = try memory.decodeFrame(ByteBuffer(bytes: base))

        // Label entries with another field between them (a valid encoding SwiftProtobuf never writes).
        var split = container(0)
        split.labels = ["a": "1"]
        var sampleBytes = try split.serializedBytes() as [UInt8]
        var extra = Crowsnest_V1_ContainerSample()
        extra.labels = ["b": "2"]
        sampleBytes += try extra.serializedBytes() as [UInt8]  // name, then label b again after other fields
        var batchBytes: [UInt8] = [0x2A]  // SampleBatch.containers (5, length-delimited)
        ProtobufFields.appendVarint(UInt64(sampleBytes.count), to: &batchBytes)
        batchBytes += sampleBytes
        var frameBytes: [UInt8] = [0x22]  // Frame.batch (4, length-delimited)
        ProtobufFields.appendVarint(UInt64(batchBytes.count), to: &frameBytes)
        frameBytes += batchBytes

        let layouts: [(String, [UInt8])] = [
            ("labels interleaved with other fields", frameBytes),
            ("the batch field twice (merged)", base + base),
            ("a batch followed by another message of the oneof", base + (try Crowsnest_V1_Frame.with(.heartbeat(.init())).serializedBytes() as [UInt8])),
            ("an unknown field in the frame", [0xF8, 0x01, 0x05] + base),
        ]
        for (name, bytes) in layouts {
            let buffer = ByteBuffer(bytes: bytes)
            XCTAssertEqual(try memory.decodeFrame(buffer), try FrameCodec.decodeFrame(buffer), name)
        }
        let merged = try FrameCodec.decodeFrame(ByteBuffer(bytes: base + base))
        XCTAssertEqual(labels(merged).count, 8, "the plain decode merges the two batches")
        let interleaved = try FrameCodec.decodeFrame(ByteBuffer(bytes: frameBytes))
        XCTAssertEqual(labels(interleaved), [["a": "1", "b": "2"]])
    }

    /// A frame of one batch whose containers are the given encoded samples, as raw bytes.
    private func frameBytes(containers: [[UInt8]], seq: UInt64 = 1) -> [UInt8] {
        var batchBytes: [UInt8] = [0x08]  // SampleBatch.seq (1, varint)
        ProtobufFields.appendVarint(seq, to: &batchBytes)
        for sample in containers {
            batchBytes.append(0x2A)  // SampleBatch.containers (5, length-delimited)
            ProtobufFields.appendVarint(UInt64(sample.count), to: &batchBytes)
            batchBytes += sample
        }
        var bytes: [UInt8] = [0x22]  // Frame.batch (4, length-delimited)
        ProtobufFields.appendVarint(UInt64(batchBytes.count), to: &bytes)
        return bytes + batchBytes
    }

    func testOddlyEncodedCountersDecodeAsAPlainDecodeWould() throws {
        let plain = try container(3).serializedBytes() as [UInt8]
        let cpuTag: [UInt8] = [0x80, 0x01]  // field 16 (cpu_usage_ns), varint
        let oddities: [(String, [UInt8], UInt64?)] = [
            ("a counter given twice: the last one counts", plain + cpuTag + [0x2A], 42),
            ("a counter as a 10-byte varint", plain + cpuTag + [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01], UInt64.max),
            ("a 10-byte varint whose last byte overflows 64 bits", plain + cpuTag + [0x81, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x7F],
             1 | (1 << 63)),
            ("a counter with the wrong wire type (kept as an unknown field)", plain + [0x81, 0x01, 1, 2, 3, 4, 5, 6, 7, 8], nil),
            ("an unknown field inside the container", plain + [0xC0, 0x02, 0x05], nil),
            ("counters before the identity fields", cpuTag + [0x07] + plain, nil),
        ]
        for (name, sample, cpu) in oddities {
            var memory = ContainerSampleMemory()
            // Remembered in its ordinary form, then the odd one at the same position, twice (the second time its own
            // identity is the one remembered).
            _ = try memory.decodeFrame(ByteBuffer(bytes: frameBytes(containers: [plain, plain])))
            for seq in 2...3 {
                let buffer = ByteBuffer(bytes: frameBytes(containers: [sample, plain], seq: UInt64(seq)))
                let decoded = try memory.decodeFrame(buffer)
                XCTAssertEqual(decoded, try FrameCodec.decodeFrame(buffer), "\(name), sweep \(seq)")
                if let cpu, case .batch(let batch) = decoded.message { XCTAssertEqual(batch.containers[0].cpuUsageNs, cpu, name) }
            }
            XCTAssertGreaterThanOrEqual(memory.reusedSamples, 2, "\(name): the ordinary container at position 1 is reused")
        }
        // An 11-byte varint fails both decodes alike.
        var memory = ContainerSampleMemory()
        _ = try memory.decodeFrame(ByteBuffer(bytes: frameBytes(containers: [plain])))
        let tooLong = ByteBuffer(bytes: frameBytes(containers: [plain + cpuTag + Array(repeating: 0xFF, count: 10) + [0x01]]))
        XCTAssertThrowsError(try FrameCodec.decodeFrame(tooLong))
        XCTAssertThrowsError(try memory.decodeFrame(tooLong))
    }

    func testTagsPaddedBeyondFiveBytesFailAsInAPlainDecode() throws {
        // SwiftProtobuf reads a tag in at most 5 bytes; the fast path drops or rewrites the frame's, the containers'
        // and a reused container's counter tags, so it must refuse such padding itself.
        let padded: [(String, [UInt8])] = [
            ("the frame's batch tag", [0xA2, 0x80, 0x80, 0x80, 0x80, 0x00, 0x02, 0x2A, 0x00]),
            ("a container's tag", [0x22, 0x07, 0xAA, 0x80, 0x80, 0x80, 0x80, 0x00, 0x00]),
            ("a counter's tag in a reused container", [0x22, 0x09, 0x2A, 0x07, 0x80, 0x81, 0x80, 0x80, 0x80, 0x00, 0x05]),
        ]
        for (name, bytes) in padded {
            var memory = ContainerSampleMemory()
            _ = try memory.decodeFrame(ByteBuffer(bytes: [0x22, 0x02, 0x2A, 0x00]))  // an empty container at position 0
            let buffer = ByteBuffer(bytes: bytes)
            XCTAssertThrowsError(try FrameCodec.decodeFrame(buffer), name)
            XCTAssertThrowsError(try memory.decodeFrame(buffer), name)
        }
        // Padded to exactly 5 bytes is still a tag to both.
        let five: [UInt8] = [0xA2, 0x80, 0x80, 0x80, 0x00, 0x02, 0x2A, 0x00]
        var memory = ContainerSampleMemory()
        XCTAssertEqual(try memory.decodeFrame(ByteBuffer(bytes: five)), try FrameCodec.decodeFrame(ByteBuffer(bytes: five)))
    }

    func testMangledFramesDecodeOrFailExactlyAsAPlainDecode() throws {
        let containers = (0..<6).map { container($0) }
        let original = try frame(containers).serializedBytes() as [UInt8]
        // A failing frame is printed whole; the seed repeats the run, memory kept across rounds included
        // (CROWSNEST_FUZZ_SEED=N to replay one).
        let seed = ProcessInfo.processInfo.environment["CROWSNEST_FUZZ_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: 0...UInt64.max)
        var random = SplitMix64(seed: seed)
        var agreed = 0, decodedBoth = 0
        // One memory kept across every round too: what a failed or odd frame leaves behind must not change later results.
        var kept = ContainerSampleMemory()
        for round in 0..<3000 {
            var memory = ContainerSampleMemory()
            _ = try memory.decodeFrame(ByteBuffer(bytes: original))  // remembered, so mangled containers are compared with it
            var bytes = original
            switch round % 5 {
            case 4:
                // One letter changed in place (within a label, a name or an image): the frame still decodes, and a
                // container changed this way must not be taken for the remembered one.
                let letters = bytes.indices.filter { bytes[$0] == UInt8(ascii: "s") }
                bytes[letters[Int(random.next() % UInt64(letters.count))]] = UInt8(ascii: "t")
            case 0:
                for _ in 0...(random.next() % 3) { bytes[Int(random.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: random.next()) }
            case 1:
                bytes.removeLast(Int(random.next() % UInt64(bytes.count - 1)) + 1)
            case 2:
                let at = Int(random.next() % UInt64(bytes.count))
                bytes.insert(contentsOf: (0..<(1 + random.next() % 4)).map { _ in UInt8(truncatingIfNeeded: random.next()) }, at: at)
            default:
                let at = Int(random.next() % UInt64(bytes.count))
                bytes.removeSubrange(at..<min(bytes.count, at + 1 + Int(random.next() % 8)))
            }
            let buffer = ByteBuffer(bytes: bytes)
            let plain = try? FrameCodec.decodeFrame(buffer)
            let remembered = try? memory.decodeFrame(buffer)
            XCTAssertEqual(plain, remembered, "seed \(seed) round \(round): \(bytes)")
            XCTAssertEqual(plain, try? kept.decodeFrame(buffer), "seed \(seed) round \(round), memory kept across rounds: \(bytes)")
            XCTAssertEqual(try kept.decodeFrame(ByteBuffer(bytes: original)), try FrameCodec.decodeFrame(ByteBuffer(bytes: original)),
                           "seed \(seed) round \(round): the original frame after a mangled one")
            if plain == remembered { agreed += 1 }
            if plain != nil { decodedBoth += 1 }
        }
        XCTAssertEqual(agreed, 3000)
        XCTAssertGreaterThan(decodedBoth, 600, "enough mangled frames still decode to compare their contents")
    }

    func testContainersBeyondTheBoundsAreDecodedEveryTime() throws {
        var memory = ContainerSampleMemory()
        let huge = container(0, labels: ["big": String(repeating: "x", count: ContainerSampleMemory.maximumEntryBytes)])
        let containers = [huge, container(1)]
        for seq in 1...2 {
            let bytes = try payload(frame(containers, seq: UInt64(seq)))
            XCTAssertEqual(try memory.decodeFrame(bytes), try FrameCodec.decodeFrame(bytes))
        }
        XCTAssertEqual(memory.reusedSamples, 1, "only the ordinary container is remembered")

        // Many containers: no more identity bytes remembered than the session's bound.
        var many = ContainerSampleMemory()
        let value = String(repeating: "v", count: 8000)
        let crowd = (0..<300).map { container($0, labels: ["note": value]) }
        for seq in 1...2 {
            let bytes = try payload(frame(crowd, seq: UInt64(seq)))
            XCTAssertEqual(try many.decodeFrame(bytes), try FrameCodec.decodeFrame(bytes))
        }
        XCTAssertGreaterThan(many.reusedSamples, 0)
        XCTAssertLessThanOrEqual(many.reusedSamples * 8000, ContainerSampleMemory.maximumTotalBytes)
    }

    func testRememberedBytesFollowEntriesThatShrinkOrGrowAndNeverPassTheSessionsBound() throws {
        // A container's identity is its encoding without the counters: with the counters at zero (absent in proto3)
        // that is its whole encoding.
        func identityBytes(_ sample: Crowsnest_V1_ContainerSample) throws -> Int {
            var bare = sample
            bare.cpuUsageNs = 0
            bare.memoryUsageBytes = 0
            return (try bare.serializedBytes() as [UInt8]).count
        }
        var memory = ContainerSampleMemory()
        var sweep = (0..<100).map { container($0, labels: ["note": String(repeating: "v", count: 8000)]) }
        var seq: UInt64 = 0
        func ship() throws {
            seq += 1
            let bytes = try payload(frame(sweep, seq: seq))
            XCTAssertEqual(try memory.decodeFrame(bytes), try FrameCodec.decodeFrame(bytes), "sweep \(seq)")
        }
        try ship()
        XCTAssertEqual(memory.rememberedBytes, try sweep.map(identityBytes).reduce(0, +), "all 100 remembered")

        // One position shrinks, another grows: the total follows both.
        sweep[0].labels = ["note": "small"]
        sweep[1].labels = ["note": String(repeating: "w", count: 15_000)]
        try ship()
        XCTAssertEqual(memory.rememberedBytes, try sweep.map(identityBytes).reduce(0, +), "after a shrink and a growth")

        // Half the positions grow to 15 KB: together past the bound. Taken in position order while they fit; the
        // others keep their old entry (which no longer matches, so they are decoded every time).
        var remembered = try sweep.map(identityBytes)
        for index in stride(from: 2, to: 100, by: 2) { sweep[index].labels = ["note": String(repeating: "g", count: 15_000)] }
        var expected = remembered.reduce(0, +), refused = 0
        for index in stride(from: 2, to: 100, by: 2) {
            let grown = try identityBytes(sweep[index])
            if expected - remembered[index] + grown <= ContainerSampleMemory.maximumTotalBytes {
                expected += grown - remembered[index]
                remembered[index] = grown
            } else {
                refused += 1
            }
        }
        XCTAssertGreaterThan(refused, 0, "the test must reach the bound")
        XCTAssertLessThan(refused, 49, "and take some growth before it")
        try ship()
        XCTAssertEqual(memory.rememberedBytes, expected)
        XCTAssertLessThanOrEqual(memory.rememberedBytes, ContainerSampleMemory.maximumTotalBytes)
        let reusedBefore = memory.reusedSamples
        try ship()
        XCTAssertEqual(memory.reusedSamples - reusedBefore, 100 - refused, "every remembered position reused, the refused ones decoded")
        XCTAssertEqual(memory.rememberedBytes, expected, "refused again, nothing counted twice")

        // Shrinking them all back makes room: every position is remembered again.
        for index in stride(from: 2, to: 100, by: 2) { sweep[index].labels = ["note": "back"] }
        try ship()
        XCTAssertEqual(memory.rememberedBytes, try sweep.map(identityBytes).reduce(0, +))
        let reusedAfterShrink = memory.reusedSamples
        try ship()
        XCTAssertEqual(memory.reusedSamples - reusedAfterShrink, 100)
    }
}

/// SplitMix64: a seeded generator, so a fuzz run that fails can be repeated from its seed.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
