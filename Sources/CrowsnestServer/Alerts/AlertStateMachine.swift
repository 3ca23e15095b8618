import Foundation

/// What the evaluator remembers of one rule and one target between rounds (`alert_states`).
public struct AlertTargetState: Sendable, Equatable {
    public enum Status: String, Sendable {
        /// Announced as firing; a recovery (or flapping) is announced next.
        case firing
        /// Changing state too often: one "flapping" was sent, nothing more until it has been calm for the window.
        case flapping
    }

    public var status: Status
    /// When the condition started holding (the firing incident's start); nil while flapping without it.
    public var activeSinceMicros: Int64?
    /// The last notification sent (reminders count from it).
    public var notifiedMicros: Int64

    public init(status: Status, activeSinceMicros: Int64?, notifiedMicros: Int64) {
        (self.status, self.activeSinceMicros, self.notifiedMicros) = (status, activeSinceMicros, notifiedMicros)
    }
}

/// What a notification announces.
public enum AlertNotificationKind: String, Sendable, CaseIterable {
    case firing, resolved, reminder, flapping
    case flappingStopped = "flapping_stopped"
}

/// One rule applied to one target's recent spans: the state to keep and what to announce. Pure, so every path
/// is tested with table tests. The condition holds while the target's current span is in one of the rule's
/// states; it fires once it has held `forSeconds`. A target whose state changed at least `flapChanges` times in
/// the last `flapMinutes` is flapping: one "flapping", then nothing until it has been calm (no change) for that
/// long, then one "flapping stopped" (carrying the state it settled in) — never a firing or recovery in between.
public enum AlertStateMachine {
    public struct Outcome: Sendable, Equatable {
        /// The state to keep; nil when there is nothing to remember (quiet, or just recovered).
        public var state: AlertTargetState?
        /// What to announce now, at most one.
        public var notification: AlertNotificationKind?
    }

    /// The start of the trailing run of spans whose state is in `states`, or nil when the newest span's is not.
    public static func activeSince(_ spans: [SpanInterval], states: [SpanState]) -> Int64? {
        guard let last = spans.last, states.contains(last.state) else { return nil }
        var start = last.startMicros
        for span in spans.reversed().dropFirst() {
            guard states.contains(span.state), span.endMicros.map({ $0 >= start }) ?? false else { break }
            start = span.startMicros
        }
        return start
    }

    /// How many times the state changed (a span starting in a different state from the one before it) at or after
    /// `since`. Spans are in order.
    public static func changes(_ spans: [SpanInterval], since: Int64) -> Int {
        var count = 0
        for index in spans.indices.dropFirst() where spans[index].startMicros >= since && spans[index].state != spans[index - 1].state {
            count += 1
        }
        return count
    }

    public static func evaluate(rule: AlertRuleDefinition, spans: [SpanInterval], previous: AlertTargetState?, nowMicros: Int64) -> Outcome {
        let since = activeSince(spans, states: rule.states)
        let held = since.map { nowMicros - $0 >= Int64(rule.forSeconds) * 1_000_000 } ?? false
        let flapWindow = Int64(rule.flapMinutes) * 60_000_000
        let changed = changes(spans, since: nowMicros - flapWindow)
        let flapping = changed >= rule.flapChanges

        switch previous?.status {
        case nil:
            if flapping {
                return Outcome(state: AlertTargetState(status: .flapping, activeSinceMicros: since, notifiedMicros: nowMicros),
                               notification: .flapping)
            }
            if held {
                return Outcome(state: AlertTargetState(status: .firing, activeSinceMicros: since, notifiedMicros: nowMicros),
                               notification: .firing)
            }
            return Outcome(state: nil, notification: nil)
        case .firing:
            let firing = previous!
            if flapping {
                return Outcome(state: AlertTargetState(status: .flapping, activeSinceMicros: since, notifiedMicros: nowMicros),
                               notification: .flapping)
            }
            guard since != nil else {
                return Outcome(state: nil, notification: rule.sendResolved ? .resolved : nil)
            }
            if let minutes = rule.reminderMinutes, nowMicros - firing.notifiedMicros >= Int64(minutes) * 60_000_000 {
                var reminded = firing
                reminded.notifiedMicros = nowMicros
                return Outcome(state: reminded, notification: .reminder)
            }
            return Outcome(state: firing, notification: nil)
        case .flapping:
            var kept = previous!
            kept.activeSinceMicros = since
            guard changed == 0, nowMicros - previous!.notifiedMicros >= flapWindow else { return Outcome(state: kept, notification: nil) }
            // Calm for a whole window: say so once, and go on from the state it settled in (a recovery of a
            // target that settled down is then announced as usual; one that settled in a state the rule watches
            // but not yet for long enough fires when it has).
            return Outcome(state: held ? AlertTargetState(status: .firing, activeSinceMicros: since, notifiedMicros: nowMicros) : nil,
                           notification: .flappingStopped)
        }
    }
}
