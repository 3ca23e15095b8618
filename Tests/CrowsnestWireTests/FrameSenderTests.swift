import CrowsnestWire
import NIOCore
import NIOEmbedded
import XCTest

/// `FrameSender`: frames reach the connection whole, and a group of them in one write.
final class FrameSenderTests: XCTestCase {
    private func ack(_ seq: UInt64) -> Crowsnest_V1_Frame {
        var ack = Crowsnest_V1_Ack()
        ack.seq = seq
        return .with(.ack(ack))
    }

    /// The sequences of the acks in `buffer`, which must hold whole frames and nothing else.
    private func ackSeqs(in buffer: ByteBuffer) throws -> [UInt64] {
        var reader = FrameReader(maximumFrameLength: FrameLimits.beforeSession)
        reader.append(buffer)
        var seqs: [UInt64] = []
        while let frame = try reader.next() {
            guard case .ack(let ack) = frame.message else { XCTFail("not an ack: \(frame)"); break }
            seqs.append(ack.seq)
        }
        XCTAssertEqual(reader.bufferedBytes, 0, "a partial frame was written")
        return seqs
    }

    func testSeveralFramesGoOutInOneWriteInOrder() async throws {
        let channel = NIOAsyncTestingChannel()
        let wrapped = try await channel.eventLoop.submit {
            try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
        }.get()
        try await wrapped.executeThenClose { inbound, outbound in
            let sender = FrameChannel(inbound: inbound, outbound: outbound).sender
            try await sender.send((1...16).map { ack(UInt64($0)) })
            let written = try await channel.waitForOutboundWrite(as: ByteBuffer.self)
            XCTAssertEqual(try ackSeqs(in: written), Array(1...16), "all 16 acks in the first write, in order")

            try await sender.send([ack(17)])
            let single = try await channel.waitForOutboundWrite(as: ByteBuffer.self)
            XCTAssertEqual(try ackSeqs(in: single), [17])
            try await sender.send([])
            try await sender.send([ack(18)])
            let next = try await channel.waitForOutboundWrite(as: ByteBuffer.self)
            XCTAssertEqual(try ackSeqs(in: next), [18], "an empty group writes nothing")
        }
    }
}
