import CrowsnestWire
import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import ServiceLifecycle
import Synchronization

/// Where and how the agent gateway listens.
public struct GatewayConfiguration: Sendable {
    public var host: String
    public var port: Int
    /// A TLS handshake must finish within this time.
    public var handshakeTimeout: TimeAmount
    /// A connection that sends nothing (not even heartbeats) for this long is closed.
    public var idleTimeout: TimeAmount
    /// Load balancers whose PROXY protocol v2 header is believed (the agent's address is then the one it names).
    public var trustedProxies: [IPNetwork] = []

    public init(host: String = "0.0.0.0", port: Int = 7443, handshakeTimeout: TimeAmount = .seconds(10),
                idleTimeout: TimeAmount = .seconds(90)) {
        self.host = host
        self.port = port
        self.handshakeTimeout = handshakeTimeout
        self.idleTimeout = idleTimeout
    }
}

/// The TLS listener agents connect to: mutual TLS, one `AgentSession` per connection.
///
/// Each connection runs in its own child task and its errors stay there, so one misbehaving agent never
/// disturbs the others. On graceful shutdown the listener stops accepting; each established session stores and
/// acknowledges what already arrived and tells its agent `Goodbye{SHUTTING_DOWN}`, so it moves to another
/// replica at once; whatever the agent had not yet sent stays in its spool.
public final class AgentGateway: Service, Sendable {
    private let configuration: GatewayConfiguration
    /// Replaced when the serving certificate is renewed; each new connection takes the current one.
    private let sslContext: LockedValue<NIOSSLContext>
    private let sessions: AgentSessionHandler
    private let admission: ConnectionAdmission
    private let logger: Logger
    private let onBound: @Sendable (SocketAddress) -> Void

    public init(configuration: GatewayConfiguration, tlsConfiguration: TLSConfiguration, sessions: AgentSessionHandler,
                logger: Logger, onBound: @escaping @Sendable (SocketAddress) -> Void = { _ in }) throws {
        self.configuration = configuration
        self.sslContext = LockedValue(try NIOSSLContext(configuration: tlsConfiguration))
        self.sessions = sessions
        self.admission = sessions.admission ?? ConnectionAdmission(logger: logger)
        self.logger = logger
        self.onBound = onBound
    }

    /// Serves new connections with `configuration` (a renewed serving certificate); open sessions keep theirs.
    public func updateTLS(_ configuration: TLSConfiguration) throws {
        sslContext.value = try NIOSSLContext(configuration: configuration)
    }

    /// How long an established session may take to store what arrived and say Goodbye at shutdown.
    static let sessionShutdownGrace: TimeAmount = .seconds(10)

    public func run() async throws {
        let contexts = self.sslContext
        let configuration = self.configuration
        let admission = self.admission
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.backlog, value: 256)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .bind(host: configuration.host, port: configuration.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    if !configuration.trustedProxies.isEmpty {
                        try sync.addHandler(ProxyProtocolHandler(trusted: configuration.trustedProxies))
                    }
                    try sync.addHandler(AdmissionHandler(admission: admission,
                                                         waitsForClientAddress: !configuration.trustedProxies.isEmpty))
                    try sync.addHandler(NIOSSLServerHandler(context: contexts.value))
                    try sync.addHandler(HandshakeTimeoutHandler(timeout: configuration.handshakeTimeout))
                    try sync.addHandler(FirstFrameTimeoutHandler(timeout: admission.limits.firstFrameTimeout))
                    try sync.addHandler(IdleStateHandler(readTimeout: configuration.idleTimeout))
                    try sync.addHandler(IdleCloseHandler())
                    return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        if let address = server.channel.localAddress {
            logger.info("agent gateway listening", metadata: ["gateway.address": "\(address)"])
            onBound(address)
        }
        let sessions = self.sessions
        let logger = self.logger
        try await withGracefulShutdownHandler {
            try await withThrowingDiscardingTaskGroup { group in
                try await server.executeThenClose { inbound in
                    for try await connection in inbound {
                        group.addTask {
                            let shutdown = SessionShutdown()
                            await withGracefulShutdownHandler {
                                await sessions.handle(connection, shutdown: shutdown)
                            } onGracefulShutdown: {
                                // An established session stores and acks what arrived, then says Goodbye; one that
                                // does not finish within the grace (storage stuck) or is not established is closed.
                                let channel = connection.channel
                                if shutdown.trigger() {
                                    channel.eventLoop.scheduleTask(in: Self.sessionShutdownGrace) { channel.close(promise: nil) }
                                } else {
                                    channel.close(promise: nil)
                                }
                            }
                        }
                    }
                }
            }
        } onGracefulShutdown: {
            logger.info("agent gateway stopping: no new connections")
            server.channel.close(promise: nil)
        }
    }
}

/// A value shared between tasks and swapped now and then (the gateway's TLS context, the served certificate).
final class LockedValue<Value: Sendable>: Sendable {
    private let storage: Mutex<Value>
    init(_ value: Value) { storage = Mutex(value) }
    var value: Value {
        get { storage.withLock { $0 } }
        set { storage.withLock { $0 = newValue } }
    }
}
