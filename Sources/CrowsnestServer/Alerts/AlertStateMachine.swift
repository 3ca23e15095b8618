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
    /// When this firing (or flapping) was announced; nil while a silence holds it back.
    public var announcedMicros: Int64?
    /// When someone acknowledged it (no reminders and no escalation after that). Set through the API only.
    public var acknowledgedMicros: Int64?
    /// When the escalation went out (once per firing).
    public var escalatedMicros: Int64?
    /// When an Alertmanager was last told it still fires.
    public var refreshedMicros: Int64?

    public init(status: Status, activeSinceMicros: Int64?, notifiedMicros: Int64, announcedMicros: Int64? = -1,
                acknowledgedMicros: Int64? = nil, escalatedMicros: Int64? = nil, refreshedMicros: Int64? = nil) {
        (self.status, self.activeSinceMicros, self.notifiedMicros) = (status, activeSinceMicros, notifiedMicros)
        self.announcedMicros = announcedMicros == -1 ? notifiedMicros : announcedMicros
        (self.acknowledgedMicros, self.escalatedMicros, self.refreshedMicros) = (acknowledgedMicros, escalatedMicros, refreshedMicros)
    }
}

/// What a notification announces.
public enum AlertNotificationKind: String, Sendable, CaseIterable {
    case firing, resolved, reminder, flapping
    case flappingStopped = "flapping_stopped"
    /// Not acknowledged in time: sent once, to the rule's escalation channels.
    case escalation
    /// Still firing, said again to an Alertmanager before it forgets the alert (to Alertmanager channels only).
    case refresh
}

/// One rule applied to one target's recent spans: the state to keep and what to announce. Pure, so every path
/// is tested with table tests. The condition holds while the target's current span is in one of the rule's
/// states; it fires once it has held `forSeconds`. A target whose state changed at least `flapChanges` times in
/// the last `flapMinutes` is flapping: one "flapping", then nothing until it has been calm (no change) for that
/// long, then one "flapping stopped" (carrying the state it settled in) — never a firing or recovery in between.
public enum AlertStateMachine {
    /// What the evaluation knows beyond the spans.
    public struct Circumstances: Sendable, Equatable {
        /// A silence covers the rule and target now: nothing is announced but recoveries of what was announced.
        public var silenced: Bool
        /// The rule goes to an Alertmanager, which must be told again this often while the alert fires.
        public var refreshSeconds: Int?

        public init(silenced: Bool = false, refreshSeconds: Int? = nil) {
            (self.silenced, self.refreshSeconds) = (silenced, refreshSeconds)
        }
    }

    public struct Outcome: Sendable, Equatable {
        /// The state to keep; nil when there is nothing to remember (quiet, or just recovered).
        public var state: AlertTargetState?
        /// What to announce now, in order: a change first, then an escalation or a refresh.
        public var notifications: [AlertNotificationKind]

        public init(state: AlertTargetState?, notifications: [AlertNotificationKind]) {
            (self.state, self.notifications) = (state, notifications)
        }

        /// The first of them.
        public var notification: AlertNotificationKind? { notifications.first }
    }

    /// One rule and one target, one round: the change the spans make (`transition`), then what silences,
    /// acknowledgement, escalation and Alertmanager refreshes make of it.
    /// - A silenced firing (or flapping) is kept but not announced, and announced when the silence ends if it
    ///   still holds; a recovery is announced exactly when its firing was, silence or not, so no receiver keeps an
    ///   incident open for ever.
    /// - Reminders stop while silenced or acknowledged; the escalation goes once, `escalation.afterMinutes` after
    ///   the announcement, unless acknowledged by then.
    /// - An announced alert is refreshed every `refreshSeconds` (a notification of any kind counts).
    public static func evaluate(rule: AlertRuleDefinition, spans: [SpanInterval], previous: AlertTargetState?, nowMicros: Int64,
                                circumstances: Circumstances = .init()) -> Outcome {
        let step = transition(rule: rule, spans: spans, previous: previous, nowMicros: nowMicros)
        let wasAnnounced = previous?.announcedMicros != nil
        guard var state = step.state else {
            // Recovered, stopped flapping into a calm state, or quiet.
            return Outcome(state: nil, notifications: step.notification.map { wasAnnounced ? [$0] : [] } ?? [])
        }
        if let previous {
            state.acknowledgedMicros = previous.acknowledgedMicros
            state.escalatedMicros = previous.escalatedMicros
            state.refreshedMicros = previous.refreshedMicros
        }
        var notifications: [AlertNotificationKind] = []
        switch step.notification {
        case .firing?, .flapping?:
            if !circumstances.silenced {
                state.announcedMicros = nowMicros
                notifications.append(step.notification!)
            } else {
                // Held back; a firing announced before it started flapping stays announced (its end is owed).
                state.announcedMicros = previous?.status == .firing ? previous?.announcedMicros : nil
                state.notifiedMicros = previous?.notifiedMicros ?? nowMicros
            }
        case .reminder?:
            if !wasAnnounced && !circumstances.silenced {
                // Held back by a silence that has ended: the first word is the firing, not a reminder.
                state.announcedMicros = nowMicros
                notifications.append(.firing)
            } else if circumstances.silenced || state.acknowledgedMicros != nil || !wasAnnounced {
                state.notifiedMicros = previous!.notifiedMicros
            } else {
                notifications.append(.reminder)
            }
        case .flappingStopped?:
            if wasAnnounced {
                state.announcedMicros = nowMicros
                notifications.append(.flappingStopped)
            } else {
                state.announcedMicros = nil
                state.notifiedMicros = previous?.notifiedMicros ?? nowMicros
            }
        case .resolved?, .escalation?, .refresh?, nil:
            state.announcedMicros = previous?.announcedMicros ?? state.announcedMicros
            if state.announcedMicros == nil, !circumstances.silenced {
                // The silence ended and it still holds: announce it now.
                state.announcedMicros = nowMicros
                state.notifiedMicros = nowMicros
                notifications.append(state.status == .firing ? .firing : .flapping)
            }
        }
        if let escalation = rule.escalation, state.status == .firing, let announced = state.announcedMicros,
           state.acknowledgedMicros == nil, state.escalatedMicros == nil, !circumstances.silenced,
           nowMicros - announced >= Int64(escalation.afterMinutes) * 60_000_000 {
            state.escalatedMicros = nowMicros
            notifications.append(.escalation)
        }
        if let refresh = circumstances.refreshSeconds, let announced = state.announcedMicros {
            if !notifications.isEmpty {
                state.refreshedMicros = nowMicros
            } else if nowMicros - (state.refreshedMicros ?? announced) >= Int64(refresh) * 1_000_000 {
                state.refreshedMicros = nowMicros
                notifications.append(.refresh)
            }
        }
        return Outcome(state: state, notifications: notifications)
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

    /// The change the spans alone make: the state to keep and at most one of firing, resolved, reminder, flapping
    /// and flapping stopped.
    static func transition(rule: AlertRuleDefinition, spans: [SpanInterval], previous: AlertTargetState?,
                           nowMicros: Int64) -> (state: AlertTargetState?, notification: AlertNotificationKind?) {
        let since = activeSince(spans, states: rule.states)
        let held = since.map { nowMicros - $0 >= Int64(rule.forSeconds) * 1_000_000 } ?? false
        let flapWindow = Int64(rule.flapMinutes) * 60_000_000
        let changed = changes(spans, since: nowMicros - flapWindow)
        let flapping = changed >= rule.flapChanges

        switch previous?.status {
        case nil:
            if flapping {
                return (AlertTargetState(status: .flapping, activeSinceMicros: since, notifiedMicros: nowMicros), .flapping)
            }
            if held {
                return (AlertTargetState(status: .firing, activeSinceMicros: since, notifiedMicros: nowMicros), .firing)
            }
            return (nil, nil)
        case .firing:
            let firing = previous!
            if flapping {
                return (AlertTargetState(status: .flapping, activeSinceMicros: since, notifiedMicros: nowMicros), .flapping)
            }
            guard since != nil else {
                return (nil, rule.sendResolved ? .resolved : nil)
            }
            if let minutes = rule.reminderMinutes, nowMicros - firing.notifiedMicros >= Int64(minutes) * 60_000_000 {
                var reminded = firing
                reminded.notifiedMicros = nowMicros
                return (reminded, .reminder)
            }
            return (firing, nil)
        case .flapping:
            var kept = previous!
            kept.activeSinceMicros = since
            guard changed == 0, nowMicros - previous!.notifiedMicros >= flapWindow else { return (kept, nil) }
            // Calm for a whole window: say so once, and go on from the state it settled in (a recovery of a
            // target that settled down is then announced as usual; one that settled in a state the rule watches
            // but not yet for long enough fires when it has).
            return (held ? AlertTargetState(status: .firing, activeSinceMicros: since, notifiedMicros: nowMicros) : nil, .flappingStopped)
        }
    }
}
