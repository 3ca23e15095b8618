import CrowsnestWire
import Logging
import NIOCore
import NIOPosix
import NIOSSL

/// One TLS connection to a server, speaking length-prefixed frames.
public struct ServerConnection: Sendable {
    /// How long a TCP connect may take before the next server is tried.
    public static let connectTimeout: TimeAmount = .seconds(10)

    /// Opens a TLS connection to `host:port`; `makeTLSHandlers` builds the client handler (and any handler that
    /// watches it) on the channel's loop.
    public static func connect<Result: Sendable>(host: String, port: Int,
                               makeTLSHandlers: @escaping @Sendable () throws -> [any ChannelHandler],
                               body: (NIOAsyncChannelInboundStream<ByteBuffer>, NIOAsyncChannelOutboundWriter<ByteBuffer>) async throws -> Result) async throws -> Result {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(connectTimeout)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers(try makeTLSHandlers())
                    return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        return try await channel.executeThenClose { inbound, outbound in
            try await body(inbound, outbound)
        }
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
