/// Reconnect delay: exponential backoff with full jitter ("AWS full jitter"), so a fleet
/// of agents that lost the server at the same moment does not reconnect in lockstep.
///
/// The delay before attempt `n` (counting failures since the last success, from 0) is
/// uniform in `[0, min(cap, base * 2^n)]`. With the defaults (base 0.5 s, cap 30 s):
///
/// | failures so far | ceiling | mean delay |
/// |-----------------|---------|------------|
/// | 0               | 0.5 s   | 0.25 s     |
/// | 1               | 1 s     | 0.5 s      |
/// | 2               | 2 s     | 1 s        |
/// | 3               | 4 s     | 2 s        |
/// | 4               | 8 s     | 4 s        |
/// | 5               | 16 s    | 8 s        |
/// | 6 and more      | 30 s    | 15 s       |
///
/// Call `reset()` after a successful connection (e.g. once `Welcome` arrives).
/// Pure value type: the random source is a parameter, so tests are deterministic.
public struct Backoff: Sendable, Equatable {
    /// Ceiling of the first delay.
    public let base: Duration
    /// Largest delay ever returned.
    public let cap: Duration
    /// Failures since the last `reset()`.
    public private(set) var attempt: Int = 0

    /// Creates a backoff; defaults are base 0.5 s and cap 30 s.
    public init(base: Duration = .milliseconds(500), cap: Duration = .seconds(30)) {
        precondition(base > .zero && cap >= base, "backoff needs 0 < base <= cap")
        self.base = base
        self.cap = cap
    }

    /// Upper bound of the delay after `failures` failures: `min(cap, base * 2^failures)`.
    public func ceiling(afterFailures failures: Int) -> Duration {
        let baseNanos = Self.nanoseconds(base)
        let capNanos = Self.nanoseconds(cap)
        guard failures < 63 else { return cap }
        let (scaled, overflow) = baseNanos.multipliedReportingOverflow(by: 1 << UInt64(failures))
        return .nanoseconds(Int64(overflow ? capNanos : min(scaled, capNanos)))
    }

    /// The delay to wait before the next attempt; counts one more failure.
    public mutating func nextDelay<Random: RandomNumberGenerator>(using random: inout Random) -> Duration {
        let ceiling = Self.nanoseconds(ceiling(afterFailures: attempt))
        if attempt < 63 { attempt += 1 }
        return .nanoseconds(Int64(UInt64.random(in: 0...ceiling, using: &random)))
    }

    /// The delay to wait before the next attempt, using the system random source.
    public mutating func nextDelay() -> Duration {
        var random = SystemRandomNumberGenerator()
        return nextDelay(using: &random)
    }

    /// Back to the shortest delays after a success.
    public mutating func reset() {
        attempt = 0
    }

    static func nanoseconds(_ duration: Duration) -> UInt64 {
        let (seconds, attoseconds) = duration.components
        return UInt64(max(seconds, 0)) * 1_000_000_000 + UInt64(max(attoseconds, 0) / 1_000_000_000)
    }
}
