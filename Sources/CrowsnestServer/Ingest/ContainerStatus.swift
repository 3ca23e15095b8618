import CrowsnestWire

/// The uptime state of a target over a span of time (DESIGN.md "Uptime and SLA semantics").
public enum SpanState: String, Sendable, Equatable, CaseIterable {
    case up, degraded, down, unknown, maintenance
}

/// One change of a target's state at an exact time, with its cause.
public struct StateTransition: Sendable, Equatable {
    public var state: SpanState
    /// Unix microseconds.
    public var atMicros: Int64
    public var cause: String

    public init(state: SpanState, atMicros: Int64, cause: String) {
        self.state = state
        self.atMicros = atMicros
        self.cause = cause
    }
}

/// Maps Docker's container state and health onto span states, with exact times from Docker's events.
public enum ContainerStatus {
    /// The span state a container sample implies.
    public static func state(dockerState: String, health: String) -> SpanState {
        switch dockerState {
        case "running":
            return health == "unhealthy" ? .degraded : .up
        case "paused":
            return .degraded
        case "exited", "dead", "restarting", "removing":
            return .down
        default:
            return .unknown  // created: never ran yet
        }
    }

    /// A short human cause for a sample's state ("exited with code 137 (OOM killed)").
    public static func cause(of sample: Crowsnest_V1_ContainerSample) -> String {
        switch state(dockerState: sample.state, health: sample.health) {
        case .up:
            return sample.health == "healthy" ? "running, healthy" : "running"
        case .degraded:
            if sample.state == "paused" { return "paused" }
            let output = sample.healthOutput.trimmingWhitespace()
            return output.isEmpty ? "health check failing" : "health check failing: \(output.prefix(200))"
        case .down:
            var text = sample.state == "restarting" ? "restarting" : "exited with code \(sample.exitCode)"
            if sample.oomKilled { text += " (OOM killed)" }
            return text
        default:
            return sample.state
        }
    }

    /// The transitions one batch implies for one container, in time order.
    ///
    /// Docker events carry their own timestamps, so a stop is placed at the second Docker saw it, not at the
    /// next sampling tick. The sample's own state then has the last word: when it differs from what the events
    /// said, a transition is added at the container's start or finish time (or the tick when neither fits).
    public static func transitions(current: SpanState?, currentSince: Int64?, events: [Crowsnest_V1_ContainerEvent],
                                   sample: Crowsnest_V1_ContainerSample?, tickMicros: Int64) -> [StateTransition] {
        var result: [StateTransition] = []
        var state = current
        var floor = currentSince ?? Int64.min
        func move(_ next: SpanState, _ at: Int64, _ cause: String) {
            let at = max(at, floor)
            if next == state {
                return
            }
            result.append(StateTransition(state: next, atMicros: at, cause: cause))
            state = next
            floor = at
        }
        var lastExitCode: Int32?
        var oomSeen = false
        for event in events.sorted(by: { $0.timeUnixNano < $1.timeUnixNano }) {
            let at = event.timeUnixNano / 1000
            switch event.action {
            case "start", "restart", "unpause":
                move(.up, at, "started")
            case "die":
                lastExitCode = event.exitCode
                // Docker's die event normally carries exitCode; -1 means the agent saw none.
                var cause = event.exitCode >= 0 ? "exited with code \(event.exitCode)" : "exited (exit code not reported)"
                if oomSeen { cause += " (OOM killed)" }
                move(.down, at, cause)
            case "oom":
                oomSeen = true
            case "pause":
                move(.degraded, at, "paused")
            case "health_status":
                if event.detail == "unhealthy" {
                    move(.degraded, at, "health check failing")
                } else if event.detail == "healthy", state == .degraded {
                    move(.up, at, "health check passing")
                }
            default:
                break
            }
        }
        _ = lastExitCode
        // A sample from a tick before the open span began (a late or replayed batch) says nothing about now: it
        // must not rewrite the open span from its start.
        if let sample, tickMicros >= (currentSince ?? .min) {
            let implied = Self.state(dockerState: sample.state, health: sample.health)
            if implied != state, let last = result.last, Self.isStale(sample, implying: implied, against: last, tickMicros: tickMicros) {
                // The sample was read before this batch's events happened (a sweep's inventory lags Docker's events
                // by an inspect): it must not undo them. Left alone, a "running" sample taken just before a die
                // placed "up" at the die's own microsecond, which replaced the down span — no outage, no alert,
                // until the next sweep.
            } else if implied != state {
                var at = tickMicros
                if implied == .down, sample.finishedAtUnixMs > 0 { at = sample.finishedAtUnixMs * 1000 }
                if implied == .up, sample.health != "healthy", sample.startedAtUnixMs > 0 { at = sample.startedAtUnixMs * 1000 }
                move(implied, min(at, tickMicros), cause(of: sample))
            } else if let last = result.last, last.state == implied, implied != .up || sample.health == "healthy" {
                // Events placed the change; enrich the cause with the sample's detail (exit code, health output).
                result[result.count - 1].cause = cause(of: sample)
            }
        }
        return result
    }

    /// Whether `sample` predates `last`, a transition this batch's events made: a running (or unhealthy) sample
    /// that started before a die, an exited one that finished before a start, or any other taken before the event.
    static func isStale(_ sample: Crowsnest_V1_ContainerSample, implying implied: SpanState, against last: StateTransition,
                        tickMicros: Int64) -> Bool {
        switch (implied, last.state) {
        case (.up, .down), (.degraded, .down):
            return sample.startedAtUnixMs * 1000 <= last.atMicros
        case (.down, .up):
            return sample.finishedAtUnixMs * 1000 <= last.atMicros
        default:
            return tickMicros < last.atMicros
        }
    }
}

extension String {
    func trimmingWhitespace() -> String {
        var scalars = Substring(self)
        while let first = scalars.first, first.isWhitespace { scalars.removeFirst() }
        while let last = scalars.last, last.isWhitespace { scalars.removeLast() }
        return String(scalars)
    }
}
