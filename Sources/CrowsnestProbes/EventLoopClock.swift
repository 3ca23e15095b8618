import NIOCore
import NIOPosix

/// A clock whose sleeps are timers of NIO's event loops, used for every wait of the agent.
///
/// Swift concurrency's own sleeps (Dispatch) arm absolute CLOCK_MONOTONIC/CLOCK_BOOTTIME timers. When the
/// process's view of the clocks is shifted — libfaketime, which operators use to try an agent with a wrong clock —
/// those timers never fire and the agent would stop sampling for good. NIO's epoll loop arms relative timers, so a
/// wrong clock changes the agent's timestamps and nothing else. Instants are `ContinuousClock`'s.
public struct EventLoopClock: Clock {
    public typealias Duration = Swift.Duration
    public typealias Instant = ContinuousClock.Instant

    /// The loop whose timers wake the sleeps; nil: the current one, or the next of the process-wide loops.
    let loop: (any EventLoop)?

    /// The clock of the process-wide event loops.
    public init() { loop = nil }

    /// A clock whose sleeps are timers of `loop`, which is then the thread that wakes.
    public init(on loop: any EventLoop) { self.loop = loop }

    public var now: Instant { .now }
    public var minimumResolution: Duration { .microseconds(1) }

    /// Suspends until `deadline`; throws `CancellationError` when the task is cancelled first.
    public func sleep(until deadline: Instant, tolerance: Duration? = nil) async throws {
        try Task.checkCancellation()
        let remaining = Instant.now.duration(to: deadline)
        guard remaining > .zero else { return }
        let scheduled = (loop ?? MultiThreadedEventLoopGroup.singleton.any()).scheduleTask(in: Self.timeAmount(remaining)) {}
        do {
            try await withTaskCancellationHandler {
                try await scheduled.futureResult.get()
            } onCancel: {
                scheduled.cancel()
            }
        } catch {
            throw CancellationError()
        }
    }

    /// `duration` in nanoseconds, clamped to what `TimeAmount` holds (about 292 years).
    static func timeAmount(_ duration: Duration) -> TimeAmount {
        let (seconds, attoseconds) = duration.components
        let (nanos, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return .nanoseconds(seconds < 0 ? 0 : .max) }
        let (total, overflow2) = nanos.addingReportingOverflow(attoseconds / 1_000_000_000)
        return .nanoseconds(overflow2 ? .max : max(0, total))
    }
}
