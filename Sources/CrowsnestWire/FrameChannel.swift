import NIOCore

/// Reads and writes whole frames over one connection (used by the gateway's sessions and the agent's enroller).
public struct FrameChannel {
    private var inbound: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
    private let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    private var reader = FrameReader(maximumFrameLength: FrameLimits.beforeSession)

    public init(inbound: NIOAsyncChannelInboundStream<ByteBuffer>, outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>) {
        self.inbound = inbound.makeAsyncIterator()
        self.outbound = outbound
    }

    /// The largest frame accepted from the peer; raise it once the session is established.
    public var maximumFrameLength: Int {
        get { reader.maximumFrameLength }
        set { reader.maximumFrameLength = newValue }
    }

    /// Whether batches reuse the containers they repeat (all but their counters) from earlier batches of this
    /// connection instead of decoding them again (`ContainerSampleMemory`; the server turns it on for agent sessions).
    public var reusesRepeatedContainerSamples: Bool {
        get { reader.sampleMemory != nil }
        set { reader.sampleMemory = newValue ? (reader.sampleMemory ?? ContainerSampleMemory()) : nil }
    }

    /// The payload size of the frame `next()` returned last.
    public var lastFrameBytes: Int { reader.lastFrameBytes }

    /// The next frame, or nil when the peer closed the connection cleanly.
    public mutating func next() async throws -> Crowsnest_V1_Frame? {
        while true {
            if let frame = try reader.next() { return frame }
            guard let bytes = try await inbound.next() else {
                try reader.finish()
                return nil
            }
            reader.append(bytes)
        }
    }

    /// The sending half, for a task that writes while another one reads.
    public var sender: FrameSender { FrameSender(outbound: outbound) }

    /// Sends one frame.
    public func send(_ frame: Crowsnest_V1_Frame) async throws {
        try await sender.send(frame)
    }

    /// Sends an already serialized `Frame` (as kept in the spool), adding the length prefix.
    public func send(serializedFrame bytes: [UInt8]) async throws {
        try await sender.send(serializedFrame: bytes)
    }
}

/// Writes whole frames to one connection; several tasks may send through it at once.
public struct FrameSender: Sendable {
    let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>

    /// Sends one frame.
    public func send(_ frame: Crowsnest_V1_Frame) async throws {
        try await outbound.write(try FrameCodec.encode(frame))
    }

    /// Sends several frames in one write: one TLS record and one system call instead of one each (the
    /// acknowledgements of a group of batches stored in one transaction).
    public func send(_ frames: [Crowsnest_V1_Frame]) async throws {
        guard frames.count > 1 else {
            if let frame = frames.first { try await send(frame) }
            return
        }
        var buffer = ByteBuffer()
        for frame in frames { try FrameCodec.encode(frame, into: &buffer) }
        try await outbound.write(buffer)
    }

    /// Sends an already serialized `Frame` (as kept in the spool), adding the length prefix.
    public func send(serializedFrame bytes: [UInt8]) async throws {
        try await outbound.write(FrameCodec.frame(serialized: bytes))
    }
}
