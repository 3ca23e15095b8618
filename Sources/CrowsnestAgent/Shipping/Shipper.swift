import CrowsnestProbes
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
        /// Where renewed credentials are saved (the agent's state directory); nil keeps them in memory only.
        public var stateDirectory: String?
        /// Whether `servers` came from enrollment and follow the list the servers send in `Welcome` (saved in the
        /// state directory); false when the operator named the servers in the configuration, which wins.
        public var adoptsServerList = false
        /// Most server addresses taken from a `Welcome`.
        public static let maximumServers = 16
        public init(servers: [ServerAddress], stateDirectory: String? = nil) {
            self.servers = servers
            self.stateDirectory = stateDirectory
        }
    }

    private let configuration: Configuration
    /// The credentials and the TLS context built from them; replaced when the certificate is renewed.
    private let identity: Mutex<(credentials: AgentCredentials, context: NIOSSLContext)>
    private let spool: Spool
    private let sequence: SequenceStore
    private let deadLetters: DeadLetterBox
    private let doorbell: Doorbell
    /// Whether the "server certificate not valid at this host's clock" warning was logged in this run.
    private let clockWarned = Mutex(false)
    /// Set when BoringSSL refused a server's certificate: swift-certificates checks the next attempts (SessionTLS)
    /// for as long as a server verifies only despite this host's clock.
    private let carefulTLS = Mutex(false)
    private let makeHello: @Sendable () -> Crowsnest_V1_Hello
    private let logger: Logger
    private let connectedState = Mutex<Bool>(false)
    /// The servers tried in turn; replaced by the list a `Welcome` carries when `adoptsServerList`.
    private let servers: Mutex<[ServerAddress]>

    /// The servers this shipper tries in turn, now.
    public var currentServers: [ServerAddress] { servers.withLock { $0 } }
    /// Where check runs the server assigns go (the check runner); nil drops them.
    private let assignments = CallbackSlot<Crowsnest_V1_Assign>()

    /// Sets where the check runs the server assigns go.
    public func onAssign(_ handler: @escaping @Sendable (Crowsnest_V1_Assign) -> Void) {
        assignments.set(handler)
    }

    public init(configuration: Configuration, credentials: AgentCredentials, spool: Spool, sequence: SequenceStore,
                deadLetters: DeadLetterBox, doorbell: Doorbell, makeHello: @escaping @Sendable () -> Crowsnest_V1_Hello,
                logger: Logger) throws {
        precondition(!configuration.servers.isEmpty, "at least one server address is required")
        self.configuration = configuration
        self.servers = Mutex(configuration.servers)
        self.spool = spool
        self.sequence = sequence
        self.deadLetters = deadLetters
        self.doorbell = doorbell
        self.makeHello = makeHello
        self.logger = logger
        self.identity = Mutex((credentials, try NIOSSLContext(configuration: try credentials.makeClientTLSConfiguration())))
    }

    /// Whether a session is established right now.
    public var isConnected: Bool { connectedState.withLock { $0 } }
    /// Whether the server of the last session said it stores event-only batches (false until a first Welcome).
    public var serverAcceptsEventBatches: Bool { eventBatchesState.withLock { $0 } }
    private let eventBatchesState = Mutex<Bool>(false)

    public func run() async throws {
        var policy = ReconnectPolicy()
        var index = 0
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            let server = servers.withLock { $0[index % $0.count] }
            index += 1
            let report = SessionReport()
            var end: SessionEnd
            let wasCareful = carefulTLS.withLock { $0 }
            do {
                end = try await cancelWhenGracefulShutdown {
                    try await self.session(with: server, report: report)
                }
            } catch is CancellationError {
                break
            } catch {
                end = .retry(reason: "\(error)")
            }
            connectedState.withLock { $0 = false }
            doorbell.attach(nil)
            if !wasCareful, carefulTLS.withLock({ $0 }), case .retry = end, !Task.isShuttingDownGracefully {
                // BoringSSL refused this server's certificate (the notice said so): the careful check looks at
                // the same server again at once, and says why or connects despite a wrong clock.
                index -= 1
                continue
            }
            let (receivedAck, length) = report.summary
            switch end {
            case .permanent(let reason):
                logger.critical("server refused this agent permanently; stopping the shipper",
                                metadata: ["server": "\(server)", "reason": "\(reason)"])
                throw ShipperError(reason, permanent: true)
            case .malformedBatch(let reason):
                logger.error("server could not decode the oldest unacknowledged batch",
                             metadata: ["server": "\(server)", "reason": "\(reason)"])
                setAsideOldestIfRefusedTooOften()
            case .takenOver(let reason):
                logger.warning("another session of this agent took over; waiting before reconnecting (is this host cloned?)",
                               metadata: ["server": "\(server)", "reason": "\(reason)"])
            case .serverShuttingDown(let reason):
                logger.info("server is shutting down; moving to the next server", metadata: [
                    "server": "\(server)", "reason": "\(reason)", "spool.pending": "\(spool.pendingCount)"])
            case .retry(let reason):
                if !Task.isCancelled && !Task.isShuttingDownGracefully {
                    logger.warning(length != nil ? "connection to server lost" : "cannot connect to server",
                                   metadata: ["server": "\(server)", "error": "\(reason)",
                                              "spool.pending": "\(spool.pendingCount)"])
                }
            }
            if Task.isCancelled || Task.isShuttingDownGracefully { break }
            let delay = policy.delay(after: end, receivedAck: receivedAck, sessionLength: length)
            // A graceful shutdown ends the pause at once, so the services behind the shipper can stop.
            do { try await cancelWhenGracefulShutdown { try await EventLoopClock().sleep(for: delay) } } catch { break }
        }
    }

    /// What the server committed decides what leaves the spool. Normally every record up to `committed_seq` was
    /// stored (only its ack was lost) and is dropped. When the batch the server committed under that number is not
    /// this agent's — its state directory is a restored copy, and the server holds other batches under those
    /// numbers — the records the server never stored are renumbered above it instead, never dropped.
    private func reconcile(with welcome: Crowsnest_V1_Welcome) throws {
        let committed = welcome.committedSeq
        if committed > spool.acknowledgedSeq {
            if welcome.committedBatchTsUnixMs != 0, !spoolHolds(seq: committed, tsMillis: welcome.committedBatchTsUnixMs) {
                // Batches made before the server's committed one were most likely delivered by the other copy of
                // this state directory; replaying them would rewrite history with stale states. Only later ones move.
                let committedTs = welcome.committedBatchTsUnixMs
                let moved = try spool.renumber(upTo: committed, sequence: sequence, keep: { record in
                    guard let frame = try? Crowsnest_V1_Frame(serializedBytes: record.payload),
                          case .batch(let batch) = frame.message else { return false }
                    return batch.tsUnixMs > committedTs
                }) { record, seq in
                    var frame = try Crowsnest_V1_Frame(serializedBytes: record.payload)
                    if case .batch(var batch) = frame.message {
                        batch.seq = seq
                        frame.message = .batch(batch)
                    }
                    return try frame.serializedBytes()
                }
                logger.warning("the server holds other batches under this agent's sequence numbers: the state directory is a restored copy; unsent batches renumbered, none dropped",
                               metadata: ["server.committed_seq": "\(committed)", "batches.renumbered": "\(moved)"])
            } else {
                try spool.acknowledge(upTo: committed)
            }
        }
        // Never reuse numbers the server has seen.
        try sequence.raise(above: committed)
    }

    /// Whether the spool holds the record `seq` and it is the batch made at `tsMillis`.
    private func spoolHolds(seq: UInt64, tsMillis: Int64) -> Bool {
        guard seq > 0, let record = try? spool.pending(after: seq - 1, limit: 1).first, record.seq == seq,
              let frame = try? Crowsnest_V1_Frame(serializedBytes: record.payload), case .batch(let batch) = frame.message
        else { return false }
        return batch.tsUnixMs == tsMillis
    }

    /// Takes the servers' list of agent addresses from `Welcome` for the next connections and saves it in the state
    /// directory, when the list came from enrollment. Malformed entries are left out with a warning; an empty or
    /// unusable list changes nothing.
    private func adoptServerList(_ addresses: [String]) {
        guard configuration.adoptsServerList, !addresses.isEmpty else { return }
        let offered = addresses.prefix(Configuration.maximumServers)
        let parsed = offered.compactMap(ServerAddress.init)
        if parsed.count != offered.count {
            logger.warning("the server sent agent addresses that are not HOST:PORT; leaving them out",
                           metadata: ["addresses": "\(offered.map(WireTextCleaner.excerpt).joined(separator: ","))"])
        }
        guard !parsed.isEmpty, parsed != servers.withLock({ $0 }) else { return }
        servers.withLock { $0 = parsed }
        let updated = identity.withLock { state -> AgentCredentials in
            state.credentials.serverAddresses = parsed.map(\.description)
            return state.credentials
        }
        if let directory = configuration.stateDirectory {
            do {
                try updated.saveServerAddresses(stateDirectory: directory)
            } catch {
                logger.error("cannot save the server list; it holds until the agent restarts", metadata: ["error": "\(error)"])
            }
        }
        logger.notice("server list updated from the server", metadata: ["servers": "\(parsed.map(\.description).joined(separator: ","))"])
    }

    /// Checks a renewed certificate (same identity, same CA, the key asked for), saves it and uses it for the
    /// next connections; a certificate that does not fit is refused with one log line and the old one kept.
    private func adoptRenewedCertificate(_ response: Crowsnest_V1_RenewResponse, key: String) {
        let current = identity.withLock { $0.credentials }
        do {
            let renewed = try AgentCredentials(
                privateKeyPEM: key, certificatePEM: response.certificatePem,
                caCertificatePEM: response.caCertificatePem.isEmpty ? current.caCertificatePEM : response.caCertificatePem,
                serverAddresses: current.serverAddresses)
            guard renewed.identity == current.identity, renewed.caPin == current.caPin else {
                logger.error("the renewed certificate names another agent or CA; keeping the current one")
                return
            }
            if let directory = configuration.stateDirectory { try renewed.saveRenewal(stateDirectory: directory) }
            let context = try NIOSSLContext(configuration: try renewed.makeClientTLSConfiguration())
            identity.withLock { $0 = (renewed, context) }
            logger.notice("certificate renewed", metadata: ["certificate.not_after": "\(renewed.certificateNotValidAfter)"])
        } catch {
            logger.error("cannot use the renewed certificate; keeping the current one", metadata: ["error": "\(error)"])
        }
    }

    /// After `Goodbye{MALFORMED_BATCH}`: counts a refusal against the oldest unacknowledged record and, after
    /// `DeadLetterBox.maxRefusals` in a row, moves it to the dead-letter directory so the stream moves on.
    private func setAsideOldestIfRefusedTooOften() {
        do {
            guard let record = try spool.pending(after: spool.acknowledgedSeq, limit: 1).first else { return }
            let refusals = try deadLetters.countRefusal(of: record.seq)
            guard refusals >= DeadLetterBox.maxRefusals else { return }
            try deadLetters.setAside(seq: record.seq, payload: record.payload)
            try spool.acknowledge(upTo: record.seq)
            logger.error("server refused the same batch three times; moved it to the dead-letter directory",
                         metadata: ["batch.seq": "\(record.seq)", "dead_letter.directory": "\(deadLetters.directory)"])
        } catch {
            logger.error("cannot set a refused batch aside", metadata: ["error": "\(error)"])
        }
    }

    private enum Event: Sendable {
        case frame(Crowsnest_V1_Frame)
        case closed(Error?)
        case wake
        case tick
    }

    /// What a session told the reconnect loop: whether anything was acknowledged and how long it was established.
    private final class SessionReport: Sendable {
        private let state = Mutex<(acked: Bool, establishedAt: ContinuousClock.Instant?)>((false, nil))
        func established() { state.withLock { $0.establishedAt = .now } }
        func acked() { state.withLock { $0.acked = true } }
        var summary: (receivedAck: Bool, length: Duration?) {
            state.withLock { ($0.acked, $0.establishedAt.map { ContinuousClock.now - $0 }) }
        }
    }

    /// Heartbeats are sent every `asked` seconds when the server's `Welcome` says so, kept between 5 s and 30 s (the
    /// server must hear from an idle agent well within its response deadline); 0 (an older server) keeps `otherwise`.
    static func heartbeatInterval(asked seconds: UInt32, otherwise: Duration) -> Duration {
        guard seconds > 0 else { return otherwise }
        return .seconds(Int64(min(max(seconds, 5), 30)))
    }

    private func session(with server: ServerAddress, report: SessionReport) async throws -> SessionEnd {
        let (sslContext, caPin) = identity.withLock { ($0.context, $0.credentials.caPin) }
        let logger = self.logger
        let careful = carefulTLS.withLock { $0 }
        return try await ServerConnection.connect(host: server.host, port: server.port, makeTLSHandlers: {
            guard careful else {
                return try SessionTLS.makeHandlers(context: sslContext, serverHost: server.host) { [self] in
                    guard !self.carefulTLS.withLock({ let was = $0; $0 = true; return was }) else { return }
                    logger.notice("the server's certificate did not pass the TLS library's check against the pinned CA; checking it again in detail",
                                  metadata: ["server": "\(server)"])
                }
            }
            return [try SessionTLS.makeCarefulHandler(context: sslContext, caPin: caPin, serverHost: server.host) { [self] outcome in
                // Careful only while it is needed: a server that verifies again, or one refused either way, goes back
                // to BoringSSL's check (which alone refuses a certificate outside its validity).
                switch outcome {
                case .verified:
                    self.carefulTLS.withLock { $0 = false }
                case .verifiedDespiteClock(let reason):
                    // Once per run: the clock stays wrong until someone fixes it, and every reconnect would repeat it.
                    guard !self.clockWarned.withLock({ let was = $0; $0 = true; return was }) else { return }
                    logger.warning("the server's certificate is signed by the pinned CA but not valid at this host's clock; connecting anyway: this host's clock is wrong (check NTP/chrony)",
                                   metadata: ["server": "\(server)", "tls.reason": "\(reason)"])
                case .refused(let reason):
                    self.carefulTLS.withLock { $0 = false }
                    logger.warning("refusing the server's certificate", metadata: ["server": "\(server)", "tls.reason": "\(reason)"])
                }
            }]
        }) { inbound, outbound in
            let (events, continuation) = AsyncStream.makeStream(of: Event.self, bufferingPolicy: .unbounded)
            return try await withThrowingTaskGroup(of: Void.self) { group in
                let limit = Mutex(FrameLimits.beforeSession)
                // The interval the server asks for in Welcome, within bounds; the configured one until then.
                let heartbeat = Mutex(self.configuration.heartbeatInterval)
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
                        try await EventLoopClock().sleep(for: heartbeat.withLock { $0 })
                        continuation.yield(.tick)
                    }
                }
                defer {
                    group.cancelAll()
                    continuation.finish()
                }
                return try await self.converse(events: events, outbound: outbound, server: server, report: report,
                                               onEstablished: { welcome in
                    limit.withLock { $0 = FrameLimits.established }
                    heartbeat.withLock { $0 = Self.heartbeatInterval(asked: welcome.settings.heartbeatIntervalSeconds,
                                                                      otherwise: self.configuration.heartbeatInterval) }
                    self.doorbell.attach { continuation.yield(.wake) }
                })
            }
        }
    }

    /// Drives a `ShipperSession` with the connection's events and performs its actions; returns how it ended.
    private func converse(events: AsyncStream<Event>, outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>,
                          server: ServerAddress, report: SessionReport,
                          onEstablished: (Crowsnest_V1_Welcome) -> Void) async throws -> SessionEnd {
        var machine = ShipperSession(settings: .init(window: configuration.window, responseTimeout: configuration.responseTimeout),
                                     now: .now)
        var pending = machine.start()
        var iterator = events.makeAsyncIterator()
        // The key a renewal request was sent for, until the new certificate arrives.
        var renewalKey: String?
        // Only a server that says it signs renewals gets asked (an older one would end the session on the frame).
        var serverRenews = false
        // How far this host's clock is ahead of the server's (from Welcome): renewal is judged by the server's time,
        // so a host whose clock is years ahead does not ask for a new certificate on every session.
        var clockOffsetMillis: Int64 = 0
        func requestRenewalIfDue() async throws {
            let credentials = identity.withLock { $0.credentials }
            let serverNow = Date().addingTimeInterval(-Double(clockOffsetMillis) / 1000)
            guard serverRenews, renewalKey == nil, credentials.renewalDue(now: serverNow) else { return }
            let (key, csr) = try AgentCredentials.generateKeyAndCSR(hostname: makeHello().host.hostname)
            var request = Crowsnest_V1_RenewRequest()
            request.csrPem = csr
            try await outbound.write(try FrameCodec.encode(.with(.renewRequest(request))))
            renewalKey = key
            logger.info("asking the server to renew this agent's certificate",
                        metadata: ["certificate.not_after": "\(credentials.certificateNotValidAfter)"])
        }
        while true {
            while !pending.isEmpty {
                let action = pending.removeFirst()
                switch action {
                case .sendHello:
                    var hello = makeHello()
                    hello.protocolVersion = FrameLimits.protocolVersion
                    hello.lastAckedSeq = spool.acknowledgedSeq
                    hello.agentTimeUnixMs = Int64(Date().timeIntervalSince1970 * 1000)
                    hello.sanitize()
                    try await outbound.write(try FrameCodec.encode(.with(.hello(hello))))
                case .establish(let welcome):
                    serverRenews = welcome.certificateRenewal
                    eventBatchesState.withLock { $0 = welcome.eventBatches }
                    adoptServerList(welcome.serverAddresses)
                    try reconcile(with: welcome)
                    connectedState.withLock { $0 = true }
                    report.established()
                    onEstablished(welcome)
                    let offset = Int64(Date().timeIntervalSince1970 * 1000).subtractingReportingOverflow(welcome.serverTimeUnixMs).partialValue
                    clockOffsetMillis = welcome.serverTimeUnixMs == 0 ? 0 : offset
                    logger.info("connected to server", metadata: [
                        "server": "\(server)", "agent.id": "\(welcome.agentID)",
                        "server.committed_seq": "\(welcome.committedSeq)", "spool.pending": "\(spool.pendingCount)",
                    ])
                    if welcome.serverTimeUnixMs != 0 && abs(offset) > 2_000 {
                        logger.warning("this host's clock differs from the server's by more than 2 s; sample times will be off (check NTP/chrony)",
                                       metadata: ["clock.offset_ms": "\(offset)"])
                    }
                    pending += machine.established(acknowledgedSeq: spool.acknowledgedSeq)
                    try await requestRenewalIfDue()
                case .sendRecords(let after, let limit):
                    guard limit > 0 else { continue }
                    var last = after
                    for record in try spool.pending(after: after, limit: limit) {
                        try await outbound.write(FrameCodec.frame(serialized: record.payload))
                        last = record.seq
                    }
                    machine.sent(upTo: last, now: .now)
                case .acknowledge(let seq):
                    try spool.acknowledge(upTo: seq)
                    report.acked()
                case .renewed(let response):
                    guard let key = renewalKey else { continue }
                    renewalKey = nil
                    adoptRenewedCertificate(response, key: key)
                case .sendHeartbeat:
                    var heartbeat = Crowsnest_V1_Heartbeat()
                    heartbeat.sentUnixMs = Int64(Date().timeIntervalSince1970 * 1000)
                    try await outbound.write(try FrameCodec.encode(.with(.heartbeat(heartbeat))))
                    try await requestRenewalIfDue()
                case .runCheck(let assign):
                    assignments.call(assign)
                case .end(let end):
                    return end
                }
            }
            guard let event = await iterator.next() else { throw CancellationError() }
            let now = ContinuousClock.now
            switch event {
            case .frame(let frame): pending = machine.handle(.frame(frame), now: now)
            case .wake: pending = machine.handle(.spoolGrew, now: now)
            case .tick: pending = machine.handle(.tick, now: now)
            case .closed(let error): pending = machine.handle(.closed(error: error.map { "\($0)" }), now: now)
            }
        }
    }
}
