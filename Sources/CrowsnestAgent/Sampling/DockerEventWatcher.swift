import CrowsnestProbes
import CrowsnestWire
import Logging
import NIOConcurrencyHelpers
import ServiceLifecycle
import Synchronization

/// Follows Docker's event stream and keeps the events until the next sweep takes them into its batch.
///
/// Events carry Docker's own timestamps, which is what makes downtime exact to the second. The stream is
/// re-opened with backoff when Docker restarts, resuming from the last event seen so none are missed.
public final class DockerEventWatcher: Service, Sendable {
    /// At most this many events wait for a sweep; older ones are dropped (and counted) beyond it.
    public static let bufferLimit = 10_000

    private let docker: DockerClient
    private let inventory: ContainerInventory?
    private let logger: Logger
    private let cursor: EventCursor?
    private let state: Mutex<(events: [Crowsnest_V1_ContainerEvent], dropped: Int, lastNano: Int64?, savedNano: Int64?)>

    /// With a `cursor`, the stream starts after the newest event a previous run spooled, and `markSpooled`
    /// moves the cursor on.
    public init(docker: DockerClient, inventory: ContainerInventory? = nil, cursor: EventCursor? = nil, logger: Logger) {
        self.docker = docker
        self.inventory = inventory
        self.cursor = cursor
        self.logger = logger
        let saved = cursor?.load()
        self.state = Mutex(([], 0, saved, saved))
        if let saved {
            logger.info("resuming docker events after the last spooled one", metadata: ["docker.since_unix_nano": "\(saved)"])
        }
    }

    /// Records that `events` are in the spool: the cursor moves past the newest of them, so a restart resumes
    /// the stream there. Failing to save only costs a replay (logged once per failure).
    public func markSpooled(_ events: [Crowsnest_V1_ContainerEvent]) {
        guard let cursor, let newest = events.map(\.timeUnixNano).max() else { return }
        let advanced: Bool = state.withLock { value in
            guard newest > (value.savedNano ?? 0) else { return false }
            value.savedNano = newest
            return true
        }
        guard advanced else { return }
        do {
            try cursor.save(newest)
        } catch {
            logger.warning("cannot save the docker event cursor; after a restart events may be replayed",
                           metadata: ["error": "\(error)"])
        }
    }

    /// Removes and returns the events gathered since the last call, oldest first.
    public func drain() -> [Crowsnest_V1_ContainerEvent] {
        state.withLock { value in
            defer { value.events.removeAll(keepingCapacity: true) }
            return value.events
        }
    }

    public func run() async throws {
        var backoff = Backoff(base: .seconds(1), cap: .seconds(30))
        var reportedFailure = false
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            let since = state.withLock { $0.lastNano.map { $0 + 1 } }
            // Whether this attempt received an event: the stream is back, so the backoff starts over.
            let receivedAny = NIOLockedValueBox(false)
            do {
                // Cancelled when a graceful shutdown begins (the stream then ends). Not the stream's own
                // `cancelOnGracefulShutdown()`: that merges two sequences for every event, and its code would stay
                // resident in every agent for nothing.
                try await cancelWhenGracefulShutdown { [self, reportedFailure] in
                    for try await received in docker.events(since: since) {
                        var event = received
                        // An event too long to keep (huge labels) arrives without attributes: name it from the inventory.
                        if event.name.isEmpty, let name = inventory?.name(of: event.id) { event.name = name }
                        let first = receivedAny.withLockedValue { value in
                            defer { value = true }
                            return !value
                        }
                        if first && reportedFailure { logger.info("docker event stream restored") }
                        inventory?.note(event)
                        record(Crowsnest_V1_ContainerEvent(event))
                    }
                }
                if receivedAny.withLockedValue({ $0 }) {
                    backoff.reset()
                    reportedFailure = false
                }
                if Task.isShuttingDownGracefully { return }
                // The stream ended: events may be missed until it is back, so the inventory lists again.
                inventory?.noteEventStreamInterrupted()
            } catch is CancellationError {
                return
            } catch {
                if receivedAny.withLockedValue({ $0 }) {
                    backoff.reset()
                    reportedFailure = false
                }
                inventory?.noteEventStreamInterrupted()
                if !reportedFailure {
                    logger.warning("docker event stream unavailable; exact stop times fall back to inspect data until it returns",
                                   metadata: ["error": "\(error)"])
                    reportedFailure = true
                }
            }
            let delay = backoff.nextDelay()
            do { try await cancelWhenGracefulShutdown { try await EventLoopClock().sleep(for: delay) } } catch { return }
            if Task.isShuttingDownGracefully { return }
        }
    }

    private func record(_ event: Crowsnest_V1_ContainerEvent) {
        let dropped: Bool = state.withLock { value in
            value.lastNano = max(value.lastNano ?? 0, event.timeUnixNano)
            value.events.append(event)
            if value.events.count > Self.bufferLimit {
                value.events.removeFirst(value.events.count - Self.bufferLimit)
                value.dropped += 1
                return value.dropped == 1
            }
            return false
        }
        if dropped {
            logger.warning("docker event buffer full; dropping the oldest events", metadata: ["limit": "\(Self.bufferLimit)"])
        }
        if Self.urgentActions.contains(event.action) { urgent.ring() }
    }

    /// Actions that should reach the server within a second, not at the next sweep (alerts act on them).
    public static let urgentActions: Set<String> = ["start", "die", "oom", "kill", "health_status"]

    /// Rung whenever an urgent event was recorded; `EventBatchSender` listens.
    public let urgent = Doorbell()
}
