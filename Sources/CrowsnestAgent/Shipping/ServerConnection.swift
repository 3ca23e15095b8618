import CrowsnestWire
import Logging
import NIOCore
import NIOPosix
import NIOSSL

/// One TLS connection to a server, speaking length-prefixed frames.
public struct ServerConnection: Sendable {
    /// How long a TCP connect may take before the next server is tried.
    public static let connectTimeout: TimeAmount = .seconds(10)

    /// Opens a TLS connection to `host:port`; `makeTLSHandler` builds the client handler on the channel's loop.
    public static func connect(host: String, port: Int,
                               makeTLSHandler: @escaping @Sendable () throws -> NIOSSLClientHandler,
                               body: (NIOAsyncChannelInboundStream<ByteBuffer>, NIOAsyncChannelOutboundWriter<ByteBuffer>) async throws -> Void) async throws {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(try makeTLSHandler())
                    return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        try await channel.executeThenClose { inbound, outbound in
            try await body(inbound, outbound)
        }
    }
}

/// Reads and writes whole frames over an async channel.
public struct FrameChannel {
    var inbound: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
    let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    var reader = FrameReader(maximumFrameLength: FrameLimits.beforeSession)

    public init(inbound: NIOAsyncChannelInboundStream<ByteBuffer>, outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>) {
        self.inbound = inbound.makeAsyncIterator()
        self.outbound = outbound
    }

    /// The largest frame accepted from the server.
    public var maximumFrameLength: Int {
        get { reader.maximumFrameLength }
        set { reader.maximumFrameLength = newValue }
    }

    /// The next frame, or nil when the server closed the connection cleanly.
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

    /// Sends one frame.
    public func send(_ frame: Crowsnest_V1_Frame) async throws {
        try await outbound.write(try FrameCodec.encode(frame))
    }

    /// Sends an already serialized `Frame` (as kept in the spool), adding the length prefix.
    public func send(serializedFrame bytes: [UInt8]) async throws {
        var buffer = ByteBuffer()
        buffer.reserveCapacity(4 + bytes.count)
        buffer.writeInteger(UInt32(bytes.count))
        buffer.writeBytes(bytes)
        try await outbound.write(buffer)
    }
}

/// A server address the agent dials.
public struct ServerAddress: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `host:port` or `[v6]:port`; nil when malformed.
    public init?(_ text: String) {
        guard let parsed = HostPort.parse(text, defaultHost: ""), !parsed.host.isEmpty, parsed.port > 0 else { return nil }
        self.host = parsed.host
        self.port = parsed.port
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}
