/// When a service (a named group of targets) is down: while any of its targets is, all of them, or at least k.
public enum ServiceDownRule: Sendable, Equatable {
    case any
    case all
    case atLeast(Int)

    /// The rule as the API writes it: `any`, `all` or `k_of_n` (with `k`).
    public var name: String {
        switch self {
        case .any: "any"
        case .all: "all"
        case .atLeast: "k_of_n"
        }
    }
}

/// Combines the timelines of a service's targets into the service's own: at every instant the service is
/// `down` when its rule says so (counting only targets that are neither in maintenance nor unknown), else
/// `degraded` when a target is, else `up` when a target is, else `maintenance` when every target is, else `unknown`.
public enum ServiceTimeline {
    /// One target's spans, clipped to the window (see `UptimeArithmetic.clip`), with a name for causes.
    public struct Member: Sendable {
        public var name: String
        public var spans: [SpanInterval]

        public init(name: String, spans: [SpanInterval]) {
            self.name = name
            self.spans = spans
        }
    }

    /// The service's spans over `[from, to)`, covering it exactly. One sweep over every member's span boundaries,
    /// keeping counts per state, so a service of many targets with many spans costs O(spans log spans).
    public static func combine(_ members: [Member], rule: ServiceDownRule, from: Int64, to: Int64) -> [SpanInterval] {
        guard from < to else { return [] }
        guard !members.isEmpty else {
            return [SpanInterval(state: .unknown, startMicros: from, endMicros: to, cause: "the service has no targets")]
        }
        // Every member starts unknown; each of its spans sets its state from the span's start.
        var changes: [(at: Int64, member: Int, span: Int)] = []
        for (index, member) in members.enumerated() {
            for (spanIndex, span) in member.spans.enumerated() where span.startMicros < to {
                changes.append((max(span.startMicros, from), index, spanIndex))
                if let end = span.endMicros, end < to { changes.append((end, index, -1)) }
            }
        }
        // At one instant an end and the next start of the same member come together: ends first, then starts.
        changes.sort { ($0.at, $0.span < 0 ? 0 : 1) < ($1.at, $1.span < 0 ? 0 : 1) }
        var current = Array(repeating: SpanState.unknown, count: members.count)
        var currentSpan = Array(repeating: -1, count: members.count)
        var counts: [SpanState: Int] = [.unknown: members.count]
        var down = Set<Int>()
        var result: [SpanInterval] = []
        var cursor = from
        var index = 0
        func emit(until end: Int64) {
            guard end > cursor else { return }
            let (state, cause) = judge(members: members, current: current, currentSpan: currentSpan, counts: counts, down: down, rule: rule)
            if let last = result.last, last.state == state, last.cause == cause, last.endMicros == cursor {
                result[result.count - 1].endMicros = end
            } else {
                result.append(SpanInterval(state: state, startMicros: cursor, endMicros: end, cause: cause))
            }
            cursor = end
        }
        while index < changes.count {
            let at = changes[index].at
            emit(until: at)
            while index < changes.count, changes[index].at == at {
                let change = changes[index]
                let state = change.span < 0 ? SpanState.unknown : members[change.member].spans[change.span].state
                counts[current[change.member], default: 0] -= 1
                counts[state, default: 0] += 1
                if current[change.member] == .down { down.remove(change.member) }
                if state == .down { down.insert(change.member) }
                current[change.member] = state
                currentSpan[change.member] = change.span
                index += 1
            }
        }
        emit(until: to)
        return result
    }

    private static func judge(members: [Member], current: [SpanState], currentSpan: [Int], counts: [SpanState: Int],
                              down: Set<Int>, rule: ServiceDownRule) -> (SpanState, String) {
        func cause(_ member: Int) -> String {
            let span = currentSpan[member]
            let text = span >= 0 ? members[member].spans[span].cause : ""
            return text.isEmpty ? members[member].name : "\(members[member].name): \(text)"
        }
        let downCount = counts[.down] ?? 0
        let counted = members.count - (counts[.maintenance] ?? 0) - (counts[.unknown] ?? 0)
        let isDown: Bool
        switch rule {
        case .any: isDown = downCount > 0
        case .all: isDown = counted > 0 && downCount == counted
        case .atLeast(let k): isDown = downCount >= k
        }
        if isDown {
            let first = down.sorted().prefix(3).map(cause)
            let more = downCount > 3 ? "; and \(downCount - 3) more" : ""
            return (.down, "\(downCount) of \(members.count) targets down (\(first.joined(separator: "; "))\(more))")
        }
        if (counts[.degraded] ?? 0) > 0, let member = current.firstIndex(of: .degraded) {
            return (.degraded, cause(member))
        }
        if (counts[.up] ?? 0) > 0 { return (.up, "") }
        if (counts[.maintenance] ?? 0) == members.count { return (.maintenance, "maintenance window") }
        return (.unknown, UptimeArithmetic.noDataCause)
    }
}
