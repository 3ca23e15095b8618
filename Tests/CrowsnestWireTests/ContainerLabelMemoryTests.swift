@testable import CrowsnestWire
import NIOCore
import SwiftProtobuf
import XCTest

/// `ContainerLabelMemory` decodes every frame exactly as a plain decode does, and reuses the labels a sweep repeats.
final class ContainerLabelMemoryTests: XCTestCase {
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

    func testASweepThatRepeatsItsLabelsReusesThemAndDecodesAsAPlainDecode() throws {
        var memory = ContainerLabelMemory()
        let containers = (0..<50).map { container($0) }
        for seq in 1...3 {
            var sweep = containers
            for index in sweep.indices { sweep[index].cpuUsageNs += UInt64(seq) * 7 }  // the counters move, the labels do not
            let bytes = try payload(frame(sweep, seq: UInt64(seq)))
            let decoded = try memory.decodeFrame(bytes)
            XCTAssertEqual(decoded, try FrameCodec.decodeFrame(bytes), "sweep \(seq)")
            XCTAssertEqual(decoded, frame(sweep, seq: UInt64(seq)))
        }
        XCTAssertEqual(memory.reusedLabelSets, 100, "the second and third sweeps reuse all 50 containers' labels")
    }

    func testChangedLabelsAndShiftedPositionsAreDecodedAgain() throws {
        var memory = ContainerLabelMemory()
        let first = (0..<30).map { container($0) }
        _ = try memory.decodeFrame(try payload(frame(first)))
        var second = first
        second[5].labels["version"] = "2"  // re-created with a new label
        second.insert(container(99), at: 20)  // a new container shifts the ones after it
        let bytes = try payload(frame(second, seq: 2))
        let decoded = try memory.decodeFrame(bytes)
        XCTAssertEqual(decoded, try FrameCodec.decodeFrame(bytes))
        XCTAssertEqual(labels(decoded)[5]["version"], "2")
        XCTAssertEqual(labels(decoded)[20], container(99).labels)
        XCTAssertEqual(memory.reusedLabelSets, 19, "positions 0–19 except 5 repeat; every one after 20 holds another container")
        // The next sweep repeats the second one: every position is known again.
        let third = try payload(frame(second, seq: 3))
        XCTAssertEqual(try memory.decodeFrame(third), try FrameCodec.decodeFrame(third))
        XCTAssertEqual(memory.reusedLabelSets, 19 + 31)
    }

    func testUnusualLayoutsDecodeAsAPlainDecodeWould() throws {
        var memory = ContainerLabelMemory()
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

    func testMangledFramesDecodeOrFailExactlyAsAPlainDecode() throws {
        let containers = (0..<6).map { container($0) }
        let original = try frame(containers).serializedBytes() as [UInt8]
        var random = SystemRandomNumberGenerator()  // a failing frame is printed whole in the message
        var agreed = 0, decodedBoth = 0
        for round in 0..<3000 {
            var memory = ContainerLabelMemory()
            _ = try memory.decodeFrame(ByteBuffer(bytes: original))  // remembered, so mangled label bytes are compared
            var bytes = original
            switch round % 5 {
            case 4:
                // One letter changed in place (within a label, a name or an image): the frame still decodes, and a
                // label changed this way must not be taken for the remembered one.
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
            XCTAssertEqual(plain, remembered, "round \(round): \(bytes)")
            if plain == remembered { agreed += 1 }
            if plain != nil { decodedBoth += 1 }
        }
        XCTAssertEqual(agreed, 3000)
        XCTAssertGreaterThan(decodedBoth, 600, "enough mangled frames still decode to compare their contents")
    }

    func testLabelsBeyondTheBoundsAreDecodedEveryTime() throws {
        var memory = ContainerLabelMemory()
        let huge = container(0, labels: ["big": String(repeating: "x", count: ContainerLabelMemory.maximumEntryBytes)])
        let containers = [huge, container(1)]
        for seq in 1...2 {
            let bytes = try payload(frame(containers, seq: UInt64(seq)))
            XCTAssertEqual(try memory.decodeFrame(bytes), try FrameCodec.decodeFrame(bytes))
        }
        XCTAssertEqual(memory.reusedLabelSets, 1, "only the ordinary container's labels are remembered")

        // Many containers: no more label bytes remembered than the session's bound.
        var many = ContainerLabelMemory()
        let value = String(repeating: "v", count: 8000)
        let crowd = (0..<300).map { container($0, labels: ["note": value]) }
        for seq in 1...2 {
            let bytes = try payload(frame(crowd, seq: UInt64(seq)))
            XCTAssertEqual(try many.decodeFrame(bytes), try FrameCodec.decodeFrame(bytes))
        }
        XCTAssertGreaterThan(many.reusedLabelSets, 0)
        XCTAssertLessThanOrEqual(many.reusedLabelSets * 8000, ContainerLabelMemory.maximumTotalBytes)
    }
}
