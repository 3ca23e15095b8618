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

    /// The service's spans over `[from, to)`, covering it exactly.
    public static func combine(_ members: [Member], rule: ServiceDownRule, from: Int64, to: Int64) -> [SpanInterval] {
        guard from < to else { return [] }
        guard !members.isEmpty else {
            return [SpanInterval(state: .unknown, startMicros: from, endMicros: to, cause: "the service has no targets")]
        }
        var boundaries = Set([from, to])
        for member in members {
            for span in member.spans {
                boundaries.insert(span.startMicros)
                if let end = span.endMicros { boundaries.insert(end) }
            }
        }
        let cuts = boundaries.filter { $0 >= from && $0 <= to }.sorted()
        var cursors = Array(repeating: 0, count: members.count)
        var result: [SpanInterval] = []
        for (start, end) in zip(cuts, cuts.dropFirst()) {
            var states: [(name: String, span: SpanInterval?)] = []
            for (index, member) in members.enumerated() {
                while cursors[index] < member.spans.count, (member.spans[cursors[index]].endMicros ?? to) <= start {
                    cursors[index] += 1
                }
                let span = cursors[index] < member.spans.count && member.spans[cursors[index]].startMicros <= start
                    ? member.spans[cursors[index]] : nil
                states.append((member.name, span))
            }
            let (state, cause) = judge(states, rule: rule)
            result.append(SpanInterval(state: state, startMicros: start, endMicros: end, cause: cause))
        }
        return IntervalSet.merged(result)
    }

    private static func judge(_ members: [(name: String, span: SpanInterval?)], rule: ServiceDownRule) -> (SpanState, String) {
        let state = { (member: (name: String, span: SpanInterval?)) in member.span?.state ?? .unknown }
        let down = members.filter { state($0) == .down }
        let counted = members.filter { state($0) != .maintenance && state($0) != .unknown }
        let isDown: Bool
        switch rule {
        case .any: isDown = !down.isEmpty
        case .all: isDown = !counted.isEmpty && down.count == counted.count
        case .atLeast(let k): isDown = down.count >= k
        }
        if isDown {
            let causes = down.prefix(3).map { member in
                let cause = member.span?.cause ?? ""
                return cause.isEmpty ? member.name : "\(member.name): \(cause)"
            }
            let more = down.count > 3 ? "; and \(down.count - 3) more" : ""
            return (.down, "\(down.count) of \(members.count) targets down (\(causes.joined(separator: "; "))\(more))")
        }
        if let degraded = members.first(where: { state($0) == .degraded }) {
            let cause = degraded.span?.cause ?? ""
            return (.degraded, cause.isEmpty ? degraded.name : "\(degraded.name): \(cause)")
        }
        if members.contains(where: { state($0) == .up }) { return (.up, "") }
        if members.allSatisfy({ state($0) == .maintenance }) { return (.maintenance, "maintenance window") }
        return (.unknown, UptimeArithmetic.noDataCause)
    }
}
