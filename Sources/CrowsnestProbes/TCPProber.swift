import NIOCore

/// `tcp` checks: the target accepts a TCP connection (the latency is the connect time).
struct TCPProber: Sendable {
    let dialer: ProbeDialer
    let resolver: GuardedResolver

    func probe(_ target: String, deadline: ContinuousClock.Instant) async throws -> ProbeOutcome {
        let start = ContinuousClock.now
        let hostPort = try ProbeHostPort(target)
        let addresses = try await resolver.resolve(host: hostPort.host, port: hostPort.port)
        let (channel, address) = try await dialer.connect(to: addresses, deadline: deadline) { channel in
            channel.eventLoop.makeSucceededFuture(channel)
        }
        let latency = (ContinuousClock.now - start).milliseconds
        try? await channel.close()
        var outcome = ProbeOutcome(ok: true, latencyMs: latency)
        outcome.details["address"] = ProbeDialer.describe(address)
        return outcome
    }
}
