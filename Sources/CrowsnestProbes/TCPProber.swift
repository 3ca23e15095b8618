import NIOCore

/// `tcp` checks: the target accepts a TCP connection (the latency is the connect time).
struct TCPProber: Sendable {
    let dialer: ProbeDialer
    let resolver: GuardedResolver

    func probe(_ target: String, deadline: ContinuousClock.Instant) async throws -> ProbeOutcome {
        let start = ContinuousClock.now
        let hostPort = try ProbeHostPort(target)
        let addresses = try await resolver.resolve(host: hostPort.host, port: hostPort.port)
        let address: SocketAddress
        #if os(Linux)
        if let sockets = dialer.sockets {
            (_, address) = try await dialer.exchange(with: addresses, sending: ByteBuffer(), through: sockets,
                                                     deadline: deadline, conversation: ConnectionOnly())
        } else {
            address = try await connectByChannel(addresses, deadline: deadline)
        }
        #else
        address = try await connectByChannel(addresses, deadline: deadline)
        #endif
        let latency = (ContinuousClock.now - start).milliseconds
        var outcome = ProbeOutcome(ok: true, latencyMs: latency)
        outcome.details["address"] = ProbeDialer.describe(address)
        return outcome
    }

    private func connectByChannel(_ addresses: [SocketAddress], deadline: ContinuousClock.Instant) async throws -> SocketAddress {
        let (channel, address) = try await dialer.connect(to: addresses, deadline: deadline) { channel in
            channel.eventLoop.makeSucceededFuture(channel)
        }
        try? await channel.close()
        return address
    }
}

#if os(Linux)
/// A TCP check's whole conversation: the connection coming up.
struct ConnectionOnly: SocketConversation {
    mutating func connected() -> Bool { true }
    mutating func received(_ bytes: UnsafeRawBufferPointer) throws -> Bool { true }
    mutating func peerClosed() throws {}
}
#endif
