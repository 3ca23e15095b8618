import NIOCore
import NIOPosix

/// Dials the checked addresses of a target in turn until one answers, within the run's deadline: through a NIO
/// channel (`connect`), or for a plain exchange through the process's `SocketExchangePoller` (`exchange`).
struct ProbeDialer: Sendable {
    let group: any EventLoopGroup
    #if os(Linux)
    /// Where plain (not TLS) HTTP and TCP probes run; nil when it could not start (they use channels then).
    let sockets: SocketExchangePoller? = SocketExchangePoller.shared
    #endif

    /// Connects to the first address that accepts, setting up the channel with `initialize`; throws
    /// `ProbeFailure` naming every address that failed.
    func connect<Output: Sendable>(
        to addresses: [SocketAddress], deadline: ContinuousClock.Instant,
        initialize: @escaping @Sendable (any Channel) -> EventLoopFuture<Output>
    ) async throws -> (Output, SocketAddress) {
        try await Self.inTurn(addresses, deadline: deadline) { address, millisecondsLeft in
            do {
                return try await ClientBootstrap(group: group)
                    .connectTimeout(.milliseconds(millisecondsLeft))
                    .channelOption(.tcpOption(.tcp_nodelay), value: 1)
                    .connect(to: address) { channel in initialize(channel) }
            } catch {
                throw NotConnected(reason: Self.describe(error))
            }
        }
    }

    #if os(Linux)
    /// Sends `request` to the first address that accepts and feeds the answer to `conversation` (see
    /// `SocketExchangePoller.exchange`); throws `ProbeFailure` naming every address that refused.
    func exchange<Conversation: SocketConversation>(
        with addresses: [SocketAddress], sending request: ByteBuffer, through sockets: SocketExchangePoller,
        deadline: ContinuousClock.Instant, conversation: Conversation
    ) async throws -> (Conversation, SocketAddress) {
        try await Self.inTurn(addresses, deadline: deadline) { address, _ in
            do {
                return try await sockets.exchange(to: address, sending: request, conversation: conversation)
            } catch let error as SocketExchangeError where error.stage != .transfer {
                throw NotConnected(reason: error.description)
            }
        }
    }
    #endif

    /// An address that did not take the connection, and why; the next one is tried.
    private struct NotConnected: Error {
        let reason: String
    }

    /// `attempt` on each address in turn, with the milliseconds left, until one does not throw `NotConnected`.
    private static func inTurn<Output>(
        _ addresses: [SocketAddress], deadline: ContinuousClock.Instant,
        _ attempt: (SocketAddress, Int64) async throws -> Output
    ) async throws -> (Output, SocketAddress) {
        var failures: [String] = []
        for address in addresses {
            let remaining = deadline - .now
            guard remaining > .zero else { break }
            let millis = max(1, remaining.components.seconds * 1000 + remaining.components.attoseconds / 1_000_000_000_000_000)
            do {
                return (try await attempt(address, millis), address)
            } catch let error as NotConnected {
                failures.append("\(describe(address)): \(error.reason)")
            }
        }
        if failures.isEmpty { throw ProbeFailure("no time left to connect") }
        throw ProbeFailure("cannot connect to " + failures.joined(separator: "; "))
    }

    static func describe(_ address: SocketAddress) -> String {
        guard let ip = address.ipAddress, let port = address.port else { return "\(address)" }
        return ip.contains(":") ? "[\(ip)]:\(port)" : "\(ip):\(port)"
    }

    /// A connection error in a few words ("connection refused", "timed out").
    static func describe(_ error: any Error) -> String {
        if let error = error as? ChannelError, case .connectTimeout = error { return "timed out" }
        if let error = error as? IOError {
            switch error.errnoCode {
            case ECONNREFUSED: return "connection refused"
            case ENETUNREACH: return "network unreachable"
            case EHOSTUNREACH: return "host unreachable"
            case ETIMEDOUT: return "timed out"
            default: return "\(error)"
            }
        }
        if let error = error as? NIOConnectionError, let first = error.connectionErrors.first {
            return describe(first.error)
        }
        return "\(error)"
    }
}

extension Duration {
    /// Milliseconds as a Double, for latencies.
    var milliseconds: Double {
        Double(components.seconds) * 1000 + Double(components.attoseconds) / 1e15
    }
}

extension EventLoopFuture where Value: Sendable {
    /// The future's value; cancelling the waiting task (the run's deadline) closes `channel`, which completes the
    /// future — a channel's futures do not heed task cancellation by themselves.
    func get(closingOnCancel channel: any Channel) async throws -> Value {
        try await withTaskCancellationHandler {
            try await self.get()
        } onCancel: {
            channel.close(promise: nil)
        }
    }
}
