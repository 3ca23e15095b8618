import CrowsnestProbes
import CrowsnestWire
import Logging
import ServiceLifecycle
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Sends the container events that matter (`DockerEventWatcher.urgentActions`) within a second of Docker's event,
/// in an event-only batch, instead of letting them wait for the next sweep (up to a whole interval).
///
/// It waits `coalescing` after the first urgent event so a burst (a compose stack restarting) goes out as one
/// batch, then spools every event gathered so far: each event travels in exactly one batch, this one or a sweep.
public final class EventBatchSender: Service, Sendable {
    private let events: DockerEventWatcher
    private let spool: Spool
    private let sequence: SequenceStore
    private let doorbell: Doorbell
    private let interval: Duration
    private let coalescing: Duration
    private let serverAccepts: @Sendable () -> Bool
    private let logger: Logger

    /// `interval` is the agent's sampling interval (every batch carries it). `serverAccepts` says whether the
    /// server stores event-only batches (`Welcome.event_batches`); while it does not, events wait for the sweep.
    public init(events: DockerEventWatcher, spool: Spool, sequence: SequenceStore, doorbell: Doorbell, interval: Duration,
                coalescing: Duration = .milliseconds(200), serverAccepts: @escaping @Sendable () -> Bool, logger: Logger) {
        self.events = events
        self.spool = spool
        self.sequence = sequence
        self.doorbell = doorbell
        self.interval = interval
        self.coalescing = coalescing
        self.serverAccepts = serverAccepts
        self.logger = logger
    }

    public func run() async throws {
        let (rings, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        events.urgent.attach { continuation.yield() }
        defer {
            events.urgent.attach(nil)
            continuation.finish()
        }
        // A graceful shutdown ends the stream (not `cancelOnGracefulShutdown()` on it, which merges two sequences
        // for every ring and keeps that code resident).
        await withGracefulShutdownHandler {
            for await _ in rings {
                if Task.isShuttingDownGracefully { return }
                do { try await EventLoopClock().sleep(for: coalescing) } catch { return }
                guard serverAccepts() else { continue }
                do {
                    try send()
                } catch {
                    // The events stay lost to this path only: a spool that refuses writes fails the sweeps too.
                    logger.error("cannot spool an event-only batch", metadata: ["error": "\(error)"])
                }
            }
        } onGracefulShutdown: {
            continuation.finish()
        }
    }

    /// Spools the events gathered so far as one event-only batch (none: nothing); returns it.
    @discardableResult
    public func send() throws -> Crowsnest_V1_SampleBatch? {
        let pending = events.drain()
        guard !pending.isEmpty else { return nil }
        var batch = Crowsnest_V1_SampleBatch.eventsOnly(interval: interval) { $0.events = pending }
        batch.seq = try spool.appendBatch(batch, sequence: sequence)
        events.markSpooled(pending)
        doorbell.ring()
        return batch
    }
}

extension Crowsnest_V1_SampleBatch {
    /// An event-only batch stamped now with the agent's `interval`, filled by `fill` and then cleaned (its
    /// truncation count set): what goes out between sweeps (urgent events, check results).
    static func eventsOnly(interval: Duration, _ fill: (inout Crowsnest_V1_SampleBatch) -> Void) -> Crowsnest_V1_SampleBatch {
        var batch = Crowsnest_V1_SampleBatch()
        batch.eventsOnly = true
        batch.tsUnixMs = Int64(Date().timeIntervalSince1970 * 1000)
        batch.intervalSeconds = UInt32(clamping: interval.components.seconds)
        fill(&batch)
        batch.truncatedValues = batch.sanitize()
        return batch
    }
}
