import Logging
import NIOCore
import NIOSSL
import NIOTLS
import Synchronization

/// Bounds what peers that have not proved who they are can hold: at most `maxUnauthenticated` connections in all
/// and `maxUnauthenticatedPerAddress` from one address, each with a deadline for its first frame, and at most
/// `enrollmentsPerMinutePerAddress` enrollment attempts per address. A connection stops counting once its session
/// is established. At the global cap the oldest unauthenticated connection is closed to make room, so a flood
/// from many addresses cannot keep a real agent from reconnecting (its handshake takes milliseconds).
public final class ConnectionAdmission: Sendable {
    public struct Limits: Sendable {
        public var maxUnauthenticated: Int
        public var maxUnauthenticatedPerAddress: Int
        /// After the TLS handshake, the first frame must arrive within this time.
        public var firstFrameTimeout: TimeAmount
        public var enrollmentsPerMinutePerAddress: Int

        public init(maxUnauthenticated: Int = 1_024, maxUnauthenticatedPerAddress: Int = 32,
                    firstFrameTimeout: TimeAmount = .seconds(10), enrollmentsPerMinutePerAddress: Int = 30) {
            self.maxUnauthenticated = maxUnauthenticated
            self.maxUnauthenticatedPerAddress = maxUnauthenticatedPerAddress
            self.firstFrameTimeout = firstFrameTimeout
            self.enrollmentsPerMinutePerAddress = enrollmentsPerMinutePerAddress
        }
    }

    /// Events the session handler fires into the pipeline so the admission handler can stop counting a connection.
    public enum Event: Sendable {
        /// A complete first frame arrived: the first-frame deadline no longer applies.
        case firstFrameReceived
        /// The session is established (or the enrollment answered): the connection no longer counts.
        case authenticated
    }

    private struct Entry {
        var address: String
        var channel: any Channel
        /// Sent a whole first frame (a Hello or an enrollment in progress): never evicted for a newcomer.
        var protected = false
    }

    private struct State {
        var addresses: [ObjectIdentifier: SocketAddress] = [:]
        var nextID: UInt64 = 0
        var open: [UInt64: Entry] = [:]
        var perAddress: [String: Int] = [:]
        var enrollments: [String: (windowStart: NIODeadline, count: Int)] = [:]
    }

    public let limits: Limits
    private let state = Mutex(State())
    private let logger: Logger

    public init(limits: Limits = Limits(), logger: Logger) {
        self.limits = limits
        self.logger = logger
    }

    /// Unauthenticated connections now (for tests and metrics).
    public var unauthenticatedCount: Int { state.withLock { $0.open.count } }

    /// Counts a new connection from `address`. Returns its id, or nil when the address is at its cap (close it);
    /// closes the oldest unauthenticated connection when the global cap is reached.
    func admit(address: String, channel: any Channel) -> UInt64? {
        let (id, evicted): (UInt64?, (any Channel)?) = state.withLock { state in
            guard state.perAddress[address, default: 0] < limits.maxUnauthenticatedPerAddress else { return (nil, nil) }
            var evicted: (any Channel)?
            if state.open.count >= limits.maxUnauthenticated,
               let oldest = state.open.filter({ !$0.value.protected }).keys.min(),
               let entry = state.open.removeValue(forKey: oldest) {
                state.perAddress[entry.address, default: 1] -= 1
                if state.perAddress[entry.address] == 0 { state.perAddress[entry.address] = nil }
                evicted = entry.channel
            }
            state.nextID += 1
            state.open[state.nextID] = Entry(address: address, channel: channel)
            state.perAddress[address, default: 0] += 1
            return (state.nextID, evicted)
        }
        evicted?.close(promise: nil)
        return id
    }

    /// The address a connection is from (the proxied client behind a trusted load balancer), once known.
    public func clientAddress(of channel: any Channel) -> SocketAddress? {
        state.withLock { $0.addresses[ObjectIdentifier(channel)] } ?? channel.remoteAddress
    }

    func remember(_ address: SocketAddress?, of channel: any Channel) {
        state.withLock { $0.addresses[ObjectIdentifier(channel)] = address }
    }

    func forget(_ channel: any Channel) {
        _ = state.withLock { $0.addresses.removeValue(forKey: ObjectIdentifier(channel)) }
    }

    /// Connection `id` sent its first frame: it is doing real work (a Hello, an enrollment), so it is not evicted.
    func protect(_ id: UInt64) {
        state.withLock { $0.open[id]?.protected = true }
    }

    /// Stops counting connection `id` (authenticated or closed).
    func release(_ id: UInt64) {
        state.withLock { state in
            guard let entry = state.open.removeValue(forKey: id) else { return }
            state.perAddress[entry.address, default: 1] -= 1
            if state.perAddress[entry.address] == 0 { state.perAddress[entry.address] = nil }
        }
    }

    /// Whether `address` may try one more enrollment now (a sliding one-minute window).
    public func allowEnrollment(from address: String, now: NIODeadline = .now()) -> Bool {
        state.withLock { state in
            var window = state.enrollments[address] ?? (now, 0)
            if now - window.windowStart >= .minutes(1) { window = (now, 0) }
            guard window.count < limits.enrollmentsPerMinutePerAddress else { return false }
            window.count += 1
            state.enrollments[address] = window
            if state.enrollments.count > 10_000 {
                state.enrollments = state.enrollments.filter { now - $0.value.windowStart < .minutes(1) }
            }
            return true
        }
    }

    /// The address a peer is counted under: its IPv4 address, or the /64 of its IPv6 address (one host usually
    /// holds a whole /64, so counting single IPv6 addresses would not bound anything).
    static func addressKey(_ address: SocketAddress?) -> String {
        if case .v6(let v6)? = address {
            let bytes = withUnsafeBytes(of: v6.address.sin6_addr) { Array($0) }
            // An IPv4-mapped address (::ffff:a.b.c.d) is an IPv4 client.
            if bytes.prefix(10).allSatisfy({ $0 == 0 }) && bytes[10] == 0xFF && bytes[11] == 0xFF {
                return bytes.suffix(4).map(String.init).joined(separator: ".")
            }
            let groups = stride(from: 0, to: 8, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }
            return groups.joined(separator: ":") + "::/64"
        }
        return address?.ipAddress ?? "unknown"
    }
}

/// First in the gateway's pipeline (after the PROXY protocol reader, when load balancers are trusted): admits
/// or refuses the connection by its client address and releases its slot once the session is established or the
/// connection closes.
final class AdmissionHandler: ChannelInboundHandler {
    typealias InboundIn = NIOAny

    private let admission: ConnectionAdmission
    /// Whether the client address comes from a `ProxyProtocolHandler` event rather than the socket.
    private let waitsForClientAddress: Bool
    private var id: UInt64?

    init(admission: ConnectionAdmission, waitsForClientAddress: Bool = false) {
        self.admission = admission
        self.waitsForClientAddress = waitsForClientAddress
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive && !waitsForClientAddress { admit(context.remoteAddress, context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        if !waitsForClientAddress { admit(context.remoteAddress, context: context) }
        if context.channel.isActive { context.fireChannelActive() }
    }

    private func admit(_ address: SocketAddress?, context: ChannelHandlerContext) {
        guard id == nil else { return }
        admission.remember(address, of: context.channel)
        guard let id = admission.admit(address: ConnectionAdmission.addressKey(address), channel: context.channel) else {
            context.close(promise: nil)
            return
        }
        self.id = id
    }

    func channelInactive(context: ChannelHandlerContext) {
        release()
        admission.forget(context.channel)
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let client = event as? ProxyProtocolHandler.ClientAddress {
            if waitsForClientAddress { admit(client.address, context: context) }
            return
        }
        switch event as? ConnectionAdmission.Event {
        case .authenticated?: release()
        case .firstFrameReceived?: if let id { admission.protect(id) }
        case nil: break
        }
        context.fireUserInboundEventTriggered(event)
    }

    private func release() {
        if let id {
            admission.release(id)
            self.id = nil
        }
    }
}

/// After the TLS handler: once the handshake is done, the first frame must arrive within `timeout`, or the
/// connection is closed (a peer that completes TLS and then says nothing holds a socket for free otherwise).
final class FirstFrameTimeoutHandler: ChannelInboundHandler {
    typealias InboundIn = NIOAny

    private let timeout: TimeAmount
    private var scheduled: Scheduled<Void>?

    init(timeout: TimeAmount) {
        self.timeout = timeout
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        scheduled?.cancel()
    }

    func channelInactive(context: ChannelHandlerContext) {
        scheduled?.cancel()
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let tlsEvent = event as? TLSUserEvent, case .handshakeCompleted = tlsEvent, scheduled == nil {
            let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
            scheduled = context.eventLoop.scheduleTask(in: timeout) {
                loopBound.value.close(promise: nil)
            }
        } else if event is ConnectionAdmission.Event {
            scheduled?.cancel()
            return
        }
        context.fireUserInboundEventTriggered(event)
    }
}
