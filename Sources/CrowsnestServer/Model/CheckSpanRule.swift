/// One slot of a check as its spans are derived from it: failed or not (a quorum slot by its quorum), when it
/// ran, and the error that failed it.
public struct CheckSlotOutcome: Sendable, Equatable {
    public var ok: Bool
    /// Unix µs of the run (the earliest member's, for a quorum slot).
    public var atMicros: Int64
    /// The run's error ('' when ok).
    public var error: String

    public init(ok: Bool, atMicros: Int64, error: String = "") {
        self.ok = ok
        self.atMicros = atMicros
        self.error = error
    }
}

/// Turns a check's newest results into its status spans, with the same rule as its current state
/// (`CheckState.derive`): `down` once `retries + 1` slots in a row failed — from the first of them, so downtime
/// counts from the run that first saw the outage, not from the retry that confirmed it — and `up` again from the
/// first successful run after. A paused check's time is `unknown`; a check that never succeeded has no span.
public enum CheckSpanRule {
    /// Cause of the span a paused check is in.
    public static let pausedCause = "check paused"

    /// The transition the newest slots call for, or nil when the open span already says it.
    /// - Parameters:
    ///   - open: the check's open span (state and start, µs), if any.
    ///   - newestFirst: the newest `retries + 1` slots, newest first.
    ///   - nowMicros: the time a pause takes effect.
    public static func transition(open: (state: SpanState, sinceMicros: Int64)?, paused: Bool, retries: Int,
                                  newestFirst: [CheckSlotOutcome], nowMicros: Int64) -> StateTransition? {
        let floor = open?.sinceMicros ?? Int64.min
        if paused {
            guard let open, open.state != .unknown else { return nil }
            return StateTransition(state: .unknown, atMicros: max(nowMicros, floor), cause: pausedCause)
        }
        let window = Array(newestFirst.prefix(max(0, retries) + 1))
        switch CheckState.derive(paused: false, retries: retries, newestFirst: window.map(\.ok)) {
        case .up:
            guard open?.state != .up else { return nil }
            // The first success after the span that is ending (not one from before it).
            let successes = window.filter { $0.ok }.map(\.atMicros)
            let at = successes.filter { $0 >= floor }.min() ?? max(successes.max() ?? floor, floor)
            return StateTransition(state: .up, atMicros: at, cause: "")
        case .down:
            guard open?.state != .down, let first = window.last else { return nil }
            let cause = first.error.isEmpty ? "failed" : first.error
            return StateTransition(state: .down, atMicros: max(first.atMicros, floor), cause: ProbeCause.bounded(cause))
        case .unknown, .paused:
            return nil
        }
    }
}

/// Span causes taken from probe errors, bounded so a long error does not bloat every span row.
enum ProbeCause {
    static let maximumCharacters = 512

    static func bounded(_ text: String) -> String {
        text.count <= maximumCharacters ? text : String(text.prefix(maximumCharacters - 1)) + "…"
    }
}
