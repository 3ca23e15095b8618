import NIOCore

/// Splits a byte stream into frame payloads: a 4-byte big-endian length, then that many bytes.
///
/// The length is checked against `maximumFrameLength` as soon as the prefix has arrived, so an
/// oversized or zero length fails before any of the announced payload is buffered or allocated.
public struct FrameDecoder: NIOSingleStepByteToMessageDecoder, Sendable {
    public typealias InboundOut = ByteBuffer

    /// Largest payload accepted; raise it once the session is established.
    public var maximumFrameLength: Int

    public init(maximumFrameLength: Int = FrameLimits.beforeSession) {
        self.maximumFrameLength = maximumFrameLength
    }

    public mutating func decode(buffer: inout ByteBuffer) throws -> ByteBuffer? {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else {
            return nil
        }
        if length == 0 { throw FrameError.emptyFrame }
        if UInt64(length) > UInt64(maximumFrameLength) {
            throw FrameError.frameTooLarge(length: length, limit: maximumFrameLength)
        }
        guard buffer.readableBytes >= 4 + Int(length) else { return nil }
        buffer.moveReaderIndex(forwardBy: 4)
        return buffer.readSlice(length: Int(length))
    }

    public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> ByteBuffer? {
        if let frame = try decode(buffer: &buffer) { return frame }
        if buffer.readableBytes > 0 { throw FrameError.truncated(bufferedBytes: buffer.readableBytes) }
        return nil
    }
}

/// Accumulates bytes read from a connection and yields decoded `Frame` messages one at a time.
///
/// Used from async connection loops: feed each read with `append`, then call `next()` until nil.
/// Memory stays bounded by the current limit plus one read.
public struct FrameReader: Sendable {
    private var buffer: ByteBuffer
    private var decoder: FrameDecoder

    public init(maximumFrameLength: Int = FrameLimits.beforeSession) {
        self.buffer = ByteBuffer()
        self.decoder = FrameDecoder(maximumFrameLength: maximumFrameLength)
    }

    /// The largest payload currently accepted.
    public var maximumFrameLength: Int {
        get { decoder.maximumFrameLength }
        set { decoder.maximumFrameLength = newValue }
    }

    /// Bytes received but not yet returned as frames.
    public var bufferedBytes: Int { buffer.readableBytes }

    /// Adds bytes just read from the peer.
    public mutating func append(_ bytes: ByteBuffer) {
        var bytes = bytes
        buffer.writeBuffer(&bytes)
    }

    /// Returns the next complete frame's raw payload, or nil when more bytes are needed.
    public mutating func nextPayload() throws -> ByteBuffer? {
        let payload = try decoder.decode(buffer: &buffer)
        if buffer.readableBytes == 0 {
            buffer.clear()
        } else if buffer.readerIndex > 64 * 1024 {
            buffer.discardReadBytes()
        }
        return payload
    }

    /// The payload size of the frame `next()` returned last (what a queued batch costs in memory).
    public private(set) var lastFrameBytes = 0

    /// Returns the next complete decoded frame, or nil when more bytes are needed.
    public mutating func next() throws -> Crowsnest_V1_Frame? {
        guard let payload = try nextPayload() else { return nil }
        lastFrameBytes = payload.readableBytes
        if sampleMemory != nil { return try sampleMemory!.decodeFrame(payload) }
        return try FrameCodec.decodeFrame(payload)
    }

    /// When set, batches are decoded reusing the containers they repeat (all but their counters) from earlier batches
    /// read here (the server's agent sessions, where every sweep repeats them).
    public var sampleMemory: ContainerSampleMemory?

    /// Call when the peer closed: throws if a partial frame is left over.
    public func finish() throws {
        if buffer.readableBytes > 0 { throw FrameError.truncated(bufferedBytes: buffer.readableBytes) }
    }
}
