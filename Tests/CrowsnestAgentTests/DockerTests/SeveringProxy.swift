import Foundation
import NIOCore
import NIOPosix
import Synchronization

/// A unix-socket proxy in front of the real Docker socket that a test can cut: `sever()` drops every proxied
/// connection (the event stream included) and turns new ones away until `restore()`, as a restarting or wedged
/// dockerd would.
final class SeveringProxy: Sendable {
    let socketPath: String
    private let target: String
    private let group: MultiThreadedEventLoopGroup
    private let listener: Mutex<(any Channel)?>
    private let state = Mutex<(severed: Bool, connections: [any Channel])>((false, []))

    private init(socketPath: String, target: String, group: MultiThreadedEventLoopGroup) {
        self.socketPath = socketPath
        self.target = target
        self.group = group
        self.listener = Mutex(nil)
    }

    static func start(target: String = "/var/run/docker.sock") async throws -> SeveringProxy {
        let path = "/tmp/crowsnest-proxy-\(UUID().uuidString.prefix(8).lowercased()).sock"
        let proxy = SeveringProxy(socketPath: path, target: target, group: MultiThreadedEventLoopGroup(numberOfThreads: 1))
        let listener = try await ServerBootstrap(group: proxy.group)
            .childChannelInitializer { inbound in proxy.accept(inbound) }
            .bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true)
            .get()
        proxy.listener.withLock { $0 = listener }
        return proxy
    }

    /// Closes every proxied connection now and refuses new ones until `restore()`.
    func sever() {
        let open = state.withLock { state -> [any Channel] in
            state.severed = true
            defer { state.connections = [] }
            return state.connections
        }
        for channel in open { channel.close(promise: nil) }
    }

    /// Accepts and proxies connections again.
    func restore() {
        state.withLock { $0.severed = false }
    }

    func stop() async {
        sever()
        if let listener = listener.withLock({ $0 }) { try? await listener.close() }
        try? await group.shutdownGracefully()
        try? FileManager.default.removeItem(atPath: socketPath)
    }

    private func accept(_ inbound: any Channel) -> EventLoopFuture<Void> {
        if state.withLock({ $0.severed }) {
            return inbound.close()
        }
        let outboundPromise = inbound.eventLoop.makePromise(of: (any Channel).self)
        let connect = ClientBootstrap(group: inbound.eventLoop)
            .channelInitializer { outbound in
                outbound.eventLoop.makeCompletedFuture {
                    try outbound.pipeline.syncOperations.addHandler(Relay(peer: inbound))
                }
            }
            .connect(unixDomainSocketPath: target)
        connect.cascade(to: outboundPromise)
        return outboundPromise.futureResult.flatMapThrowing { outbound in
            try inbound.pipeline.syncOperations.addHandler(Relay(peer: outbound))
            self.state.withLock { $0.connections += [inbound, outbound] }
        }
    }
}

/// Writes what one side reads to the other side; closes the other side when this one closes.
private final class Relay: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer

    private let peer: any Channel

    init(peer: any Channel) {
        self.peer = peer
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        peer.writeAndFlush(Self.unwrapInboundIn(data), promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        peer.close(promise: nil)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
