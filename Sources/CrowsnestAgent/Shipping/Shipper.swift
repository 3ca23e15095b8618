import CrowsnestWire
import Logging
import NIOCore
import NIOSSL
import ServiceLifecycle
import Synchronization
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Why a session with a server ended.
public struct ShipperError: Error, CustomStringConvertible, Sendable {
    public var message: String
    /// The server said retrying cannot help (revoked agent, unsupported protocol).
    public var permanent: Bool
    public init(_ message: String, permanent: Bool = false) {
        self.message = message
        self.permanent = permanent
    }
    public var description: String { message }
}

/// Sends spooled batches to the server and drops them from the spool once acknowledged.
///
/// Connects to the configured servers in turn with exponential backoff and jitter; after `Welcome` it drops
/// what the server already committed, then streams the spool oldest first with up to `window` batches in
/// flight. Nothing leaves the spool without an `Ack`, so a broken connection or a server crash only delays
/// delivery.
public final class Shipper: Service, Sendable {
    public struct Configuration: Sendable {
        public var servers: [ServerAddress]
        public var window: Int = 32
        public var heartbeatInterval: Duration = .seconds(15)
        /// The server must answer within this time (Welcome, heartbeat replies, acks).
        public var responseTimeout: Duration = .seconds(45)
        public init(servers: [ServerAddress]) { self.servers = servers }
    }

    private let configuration: Configuration
    private let credentials: AgentCredentials
    private let spool: Spool
    private let sequence: SequenceStore
    private let doorbell: Doorbell
    private let makeHello: @Sendable () -> Crowsnest_V1_Hello
    private let logger: Logger
    private let sslContext: NIOSSLContext
    private let connectedState = Mutex<Bool>(false)

    public init(configuration: Configuration, credentials: AgentCredentials, spool: Spool, sequence: SequenceStore,
                doorbell: Doorbell, makeHello: @escaping @Sendable () -> Crowsnest_V1_Hello, logger: Logger) throws {
        precondition(!configuration.servers.isEmpty, "at least one server address is required")
        self.configuration = configuration
        self.credentials = credentials
        self.spool = spool
        self.sequence = sequence
        self.doorbell = doorbell
        self.makeHello = makeHello
        self.logger = logger
        self.sslContext = try NIOSSLContext(configuration: try credentials.makeClientTLSConfiguration())
    }

    /// Whether a session is established right now.
    public var isConnected: Bool { connectedState.withLock { $0 } }

    public func run() async throws {
        var backoff = Backoff()
        var index = 0
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            let server = configuration.servers[index % configuration.servers.count]
            index += 1
            let establishedFlag = Mutex(false)
            defer { if establishedFlag.withLock({ $0 }) { backoff.reset() } }
            do {
                try await cancelWhenGracefulShutdown {
                    try await self.session(with: server) { establishedFlag.withLock { $0 = true } }
                }
            } catch is CancellationError {
                break
            } catch let error as ShipperError where error.permanent {
                logger.critical("server refused this agent permanently; stopping the shipper",
                                metadata: ["server": "\(server)", "reason": "\(error.message)"])
                throw error
            } catch {
                let established = establishedFlag.withLock { $0 }
                logger.warning(established ? "connection to server lost" : "cannot connect to server",
                               metadata: ["server": "\(server)", "error": "\(error)",
                                          "spool.pending": "\(spool.pendingCount)"])
            }
            connectedState.withLock { $0 = false }
            doorbell.attach(nil)
            if Task.isCancelled || Task.isShuttingDownGracefully { break }
            let delay = backoff.nextDelay()
            do { try await Task.sleep(for: delay) } catch { break }
        }
    }

    private enum Event: Sendable {
        case frame(Crowsnest_V1_Frame)
        case closed(Error?)
        case wake
        case tick
    }

    private func session(with server: ServerAddress, onEstablished: () -> Void) async throws {
        let sslContext = self.sslContext
        let sni = AgentCredentials.serverNameIndication(for: server.host)
        try await ServerConnection.connect(host: server.host, port: server.port, makeTLSHandler: {
            try NIOSSLClientHandler(context: sslContext, serverHostname: sni)
        }) { inbound, outbound in
            let (events, continuation) = AsyncStream.makeStream(of: Event.self, bufferingPolicy: .unbounded)
            try await withThrowingTaskGroup(of: Void.self) { group in
                let limit = Mutex(FrameLimits.beforeSession)
                group.addTask {
                    var reader = FrameReader(maximumFrameLength: FrameLimits.beforeSession)
                    do {
                        for try await bytes in inbound {
                            reader.maximumFrameLength = limit.withLock { $0 }
                            reader.append(bytes)
                            while let frame = try reader.next() { continuation.yield(.frame(frame)) }
                        }
                        try reader.finish()
                        continuation.yield(.closed(nil))
                    } catch {
                        continuation.yield(.closed(error))
                    }
                }
                group.addTask {
                    while !Task.isCancelled {
                        try await Task.sleep(for: self.configuration.heartbeatInterval)
                        continuation.yield(.tick)
                    }
                }
                defer {
                    group.cancelAll()
                    continuation.finish()
                }
                try await self.converse(events: events, outbound: outbound, server: server, onEstablished: {
                    limit.withLock { $0 = FrameLimits.established }
                    self.doorbell.attach { continuation.yield(.wake) }
                    onEstablished()
                })
            }
        }
    }

    private func converse(events: AsyncStream<Event>, outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>,
                          server: ServerAddress, onEstablished: () -> Void) async throws {
        var hello = makeHello()
        hello.protocolVersion = FrameLimits.protocolVersion
        hello.lastAckedSeq = spool.acknowledgedSeq
        try await outbound.write(try FrameCodec.encode(.with(.hello(hello))))

        var lastHeard = ContinuousClock.now
        var iterator = events.makeAsyncIterator()
        // Wait for Welcome.
        let welcome: Crowsnest_V1_Welcome
        while true {
            guard let event = await iterator.next() else { throw CancellationError() }
            switch event {
            case .frame(let frame):
                switch frame.message {
                case .welcome(let message):
                    welcome = message
                case .reject(let reject):
                    throw ShipperError("server rejected the session: \(reject.reason)", permanent: reject.permanent)
                case .goodbye(let goodbye):
                    throw ShipperError("server closed the session: \(goodbye.reason)")
                default:
                    throw ShipperError("server sent \(frame.messageName) before welcome")
                }
            case .closed(let error):
                throw ShipperError("server closed the connection before welcome\(error.map { ": \($0)" } ?? "")")
            case .tick:
                if ContinuousClock.now - lastHeard > configuration.responseTimeout {
                    throw ShipperError("server did not answer hello within \(configuration.responseTimeout)")
                }
                continue
            case .wake:
                continue
            }
            break
        }
        // The server has everything up to committed_seq: drop it here, and never reuse those numbers.
        try spool.acknowledge(upTo: welcome.committedSeq)
        try sequence.raise(above: welcome.committedSeq)
        connectedState.withLock { $0 = true }
        onEstablished()
        logger.info("connected to server", metadata: [
            "server": "\(server)", "agent.id": "\(welcome.agentID)", "server.committed_seq": "\(welcome.committedSeq)",
            "spool.pending": "\(spool.pendingCount)",
        ])
        let window = max(1, min(configuration.window, Int(welcome.settings.ackWindow == 0 ? 32 : welcome.settings.ackWindow)))
        var lastSent = spool.acknowledgedSeq
        lastHeard = ContinuousClock.now
        var awaitingSince: ContinuousClock.Instant?

        func sendPending() async throws {
            let acked = spool.acknowledgedSeq
            if lastSent < acked { lastSent = acked }
            let inFlightRoom = window
            let records = try spool.pending(after: acked, limit: inFlightRoom)
            for record in records where record.seq > lastSent {
                try await outbound.write(FrameCodec.frame(serialized: record.payload))
                lastSent = record.seq
                if awaitingSince == nil { awaitingSince = ContinuousClock.now }
            }
        }

        try await sendPending()
        while let event = await iterator.next() {
            switch event {
            case .frame(let frame):
                lastHeard = ContinuousClock.now
                switch frame.message {
                case .ack(let ack):
                    try spool.acknowledge(upTo: ack.seq)
                    awaitingSince = spool.pendingCount > 0 && lastSent > ack.seq ? ContinuousClock.now : nil
                    try await sendPending()
                case .heartbeat:
                    continue
                case .goodbye(let goodbye):
                    throw ShipperError("server closed the session: \(goodbye.reason)")
                case .reject(let reject):
                    throw ShipperError("server rejected the session: \(reject.reason)", permanent: reject.permanent)
                case .assign:
                    continue  // checks arrive in a later protocol step
                default:
                    throw ShipperError("server sent an unexpected \(frame.messageName) frame")
                }
            case .wake:
                try await sendPending()
            case .tick:
                let now = ContinuousClock.now
                if let since = awaitingSince, now - since > configuration.responseTimeout {
                    throw ShipperError("no acknowledgement from the server for \(configuration.responseTimeout); reconnecting")
                }
                if now - lastHeard > configuration.responseTimeout * 2 {
                    throw ShipperError("server silent for \(configuration.responseTimeout * 2); reconnecting")
                }
                var heartbeat = Crowsnest_V1_Heartbeat()
                heartbeat.sentUnixMs = Int64(Date().timeIntervalSince1970 * 1000)
                try await outbound.write(try FrameCodec.encode(.with(.heartbeat(heartbeat))))
                try await sendPending()
            case .closed(let error):
                throw ShipperError("server closed the connection\(error.map { ": \($0)" } ?? "")")
            }
        }
        throw CancellationError()
    }
}
