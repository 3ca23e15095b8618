import CrowsnestWire
import NIOCore
import NIOTestUtils
import XCTest

final class FrameDecoderTests: XCTestCase {
    private func framed(_ payload: [UInt8]) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt32(payload.count))
        buffer.writeBytes(payload)
        return buffer
    }

    func testDecoderYieldsFramesUnderSplitAndCoalescedReads() throws {
        let payloads: [[UInt8]] = [[1], Array(repeating: 7, count: 300), [9, 8, 7, 6], Array(0..<200).map { UInt8($0) }]
        let pairs = payloads.map { (framed($0), [ByteBuffer(bytes: $0)]) }
        // The verifier drip-feeds byte by byte, coalesces all inputs and shuffles split points.
        try ByteToMessageDecoderVerifier.verifyDecoder(inputOutputPairs: pairs) {
            FrameDecoder(maximumFrameLength: 1024)
        }
    }

    func testDecoderRejectsZeroLength() {
        var decoder = FrameDecoder()
        var buffer = ByteBuffer(bytes: [0, 0, 0, 0, 1, 2])
        XCTAssertThrowsError(try decoder.decode(buffer: &buffer)) { error in
            XCTAssertEqual(error as? FrameError, .emptyFrame)
        }
    }

    func testDecoderRejectsMaximalLengthBeforeBufferingPayload() {
        var decoder = FrameDecoder(maximumFrameLength: FrameLimits.established)
        // 2^32 - 1 announced, only the prefix present: must fail now, not wait for 4 GiB.
        var buffer = ByteBuffer(bytes: [0xFF, 0xFF, 0xFF, 0xFF])
        XCTAssertThrowsError(try decoder.decode(buffer: &buffer)) { error in
            XCTAssertEqual(error as? FrameError, .frameTooLarge(length: UInt32.max, limit: FrameLimits.established))
        }
    }

    func testDecoderAcceptsLengthExactlyAtLimitAndRejectsOneAbove() throws {
        var decoder = FrameDecoder(maximumFrameLength: 16)
        var atLimit = framed(Array(repeating: 1, count: 16))
        XCTAssertEqual(try decoder.decode(buffer: &atLimit)?.readableBytes, 16)
        var above = framed(Array(repeating: 1, count: 17))
        XCTAssertThrowsError(try decoder.decode(buffer: &above)) { error in
            XCTAssertEqual(error as? FrameError, .frameTooLarge(length: 17, limit: 16))
        }
    }

    func testDecoderWaitsOnPartialHeaderAndPartialBody() throws {
        var decoder = FrameDecoder()
        var buffer = ByteBuffer(bytes: [0, 0])
        XCTAssertNil(try decoder.decode(buffer: &buffer))
        buffer.writeBytes([0, 3, 1, 2])
        XCTAssertNil(try decoder.decode(buffer: &buffer))
        buffer.writeBytes([3])
        XCTAssertEqual(try decoder.decode(buffer: &buffer).map { Array($0.readableBytesView) }, [1, 2, 3])
    }

    func testDecodeLastReportsTruncatedFrame() {
        var decoder = FrameDecoder()
        var buffer = ByteBuffer(bytes: [0, 0, 0, 9, 1, 2])
        XCTAssertThrowsError(try decoder.decodeLast(buffer: &buffer, seenEOF: true)) { error in
            XCTAssertEqual(error as? FrameError, .truncated(bufferedBytes: 6))
        }
    }

    func testReaderRoundTripsFramesAndRaisesLimitAfterSession() throws {
        var hello = Crowsnest_V1_Hello()
        hello.protocolVersion = FrameLimits.protocolVersion
        hello.agentVersion = "test"
        var batch = Crowsnest_V1_SampleBatch()
        batch.seq = 42
        batch.containers = (0..<2000).map { index in
            var sample = Crowsnest_V1_ContainerSample()
            sample.name = "container-\(index)"
            sample.dockerID = String(repeating: "a", count: 64)
            return sample
        }
        var bytes = try FrameCodec.encode(.with(.hello(hello)))
        try FrameCodec.encode(.with(.batch(batch)), into: &bytes)

        var reader = FrameReader()
        reader.append(bytes)
        XCTAssertEqual(try reader.next()?.hello.agentVersion, "test")
        // The batch is larger than the pre-session limit.
        XCTAssertThrowsError(try reader.next())

        var established = FrameReader()
        established.append(bytes)
        XCTAssertNotNil(try established.next())
        established.maximumFrameLength = FrameLimits.established
        let decoded = try XCTUnwrap(try established.next())
        XCTAssertEqual(decoded.batch.seq, 42)
        XCTAssertEqual(decoded.batch.containers.count, 2000)
        XCTAssertNil(try established.next())
        XCTAssertNoThrow(try established.finish())
    }

    func testReaderRejectsGarbagePayload() {
        var reader = FrameReader()
        // A well-framed payload whose bytes are not a protobuf Frame (invalid wire type 7).
        reader.append(framed([0xFF, 0xFF, 0xFF, 0xFF, 0x0F]))
        XCTAssertThrowsError(try reader.next()) { error in
            guard case .malformedPayload = error as? FrameError else {
                return XCTFail("expected malformedPayload, got \(error)")
            }
        }
    }

    func testReaderRejectsFrameWithoutMessage() {
        var reader = FrameReader()
        reader.append(framed([0xA0, 0x06, 0x01]))  // only an unknown varint field, number 100
        XCTAssertThrowsError(try reader.next()) { error in
            XCTAssertEqual(error as? FrameError, .emptyMessage)
        }
    }

    func testRandomGarbageNeverCrashesAndNeverBuffersPastLimit() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            var reader = FrameReader(maximumFrameLength: 4096)
            let count = Int.random(in: 1...512, using: &generator)
            let bytes = (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
            reader.append(ByteBuffer(bytes: bytes))
            while true {
                do {
                    guard try reader.next() != nil else { break }
                } catch {
                    break
                }
            }
            XCTAssertLessThanOrEqual(reader.bufferedBytes, 4 + 4096)
        }
    }
}
