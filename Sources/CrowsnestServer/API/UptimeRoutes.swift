import CrowsnestWire
import Foundation
import Hummingbird
import Logging
import PostgresNIO

/// `GET /api/v1/uptime/{target}/timeline`: a host's, container's or check's state spans over `from`/`to` (default
/// the last 24 hours, at most 400 days), its availability over them and its incidents, exact to the microsecond;
/// maintenance windows that cover the target turn their time into `maintenance`.
struct UptimeRoutes: Sendable {
    let infrastructure: InfrastructureQueries
    let database: PostgresClient
    let logger: Logger

    /// Range when `from` is not given.
    static let defaultRangeSeconds: TimeInterval = 86_400
    /// Most incidents of one timeline given their context (the newest).
    static let contextLimit = 20
    /// Longest range one request may ask for (the rollups' retention).
    static let maximumRangeDays = 400

    func register(on group: RouterGroup<APIRequestContext>) {
        group.get("uptime/:target/timeline") { request, context in
            let caller = try context.requireCaller()
            let query = request.uri.queryParameters
            let now = Date()
            let range = try QueryParameter.range(from: query.get("from"), to: query.get("to"), now: now,
                                                 defaultSeconds: Self.defaultRangeSeconds, maximumDays: Self.maximumRangeDays)
            let target = try await resolveTarget(context: context, caller: caller, infrastructure: self.infrastructure)
            let nowMicros = now.unixMicros
            let from = range.from.unixMicros
            // Time after now is not known yet: the window ends now at the latest.
            let end = min(range.to.unixMicros, nowMicros)
            let (clipped, spans) = try await UptimeReports(client: self.database, logger: self.logger)
                .targetTimeline(tenantID: caller.tenantID, target: target.id, from: from, to: end)
            let incidents = UptimeArithmetic.incidents(spans)
            // What is known around each incident's start (the newest `contextLimit` of them).
            let contextQueries = IncidentContextQueries(client: self.database, logger: self.logger)
            var contexts: [JSONValue] = []
            for (index, incident) in incidents.enumerated() {
                contexts.append(index >= incidents.count - Self.contextLimit
                    ? try await contextQueries.context(tenantID: caller.tenantID, target: target.id, startMicros: incident.startMicros)
                    : .null)
            }
            return TimelineResponse(target: target, from: range.from, to: range.to, clipped: clipped,
                                    reachesNow: range.to.unixMicros >= nowMicros,
                                    incidents: incidents, contexts: contexts, nowMicros: nowMicros)
        }
    }
}

/// The timeline of one target: `{"target","from","to","availability_percent","seconds":{…},"spans":[…],"incidents":[…]}`.
struct TimelineResponse: ResponseEncodable, Sendable {
    let target: TargetDescriptor
    let from: Date
    let to: Date
    /// Spans cut to the window (up to now), gaps filled as unknown.
    let clipped: [SpanInterval]
    /// The window reaches the present: the last span is still going on (`ended_at` null).
    let reachesNow: Bool
    let incidents: [Incident]
    /// Per incident: what was known around its start, or null.
    let contexts: [JSONValue]
    let nowMicros: Int64

    enum CodingKeys: String, CodingKey {
        case target, from, to, seconds, spans, incidents
        case availabilityPercent = "availability_percent"
    }
    enum SpanKeys: String, CodingKey {
        case state, cause
        case startedAt = "started_at"
        case endedAt = "ended_at"
    }
    enum IncidentKeys: String, CodingKey {
        case id, cause, context
        case startedAt = "started_at"
        case endedAt = "ended_at"
        case durationSeconds = "duration_seconds"
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(TargetJSON(descriptor: target), forKey: .target)
        try c.encode(RFC3339.string(from: from), forKey: .from)
        try c.encode(RFC3339.string(from: to), forKey: .to)
        let time = UptimeArithmetic.timeInStates(clipped)
        try c.encode(time.availabilityPercent(), forKey: .availabilityPercent)
        try c.encode(secondsJSON(time), forKey: .seconds)
        var list = c.nestedUnkeyedContainer(forKey: .spans)
        for (index, span) in clipped.enumerated() {
            var item = list.nestedContainer(keyedBy: SpanKeys.self)
            try item.encode(span.state.rawValue, forKey: .state)
            try item.encode(RFC3339.string(from: Date(unixMicros: span.startMicros)), forKey: .startedAt)
            let ongoing = reachesNow && index == clipped.count - 1
            try item.encode(ongoing ? nil : span.endMicros.map { RFC3339.string(from: Date(unixMicros: $0)) }, forKey: .endedAt)
            try item.encode(span.cause, forKey: .cause)
        }
        var incidentList = c.nestedUnkeyedContainer(forKey: .incidents)
        for (incident, context) in zip(incidents, contexts) {
            var item = incidentList.nestedContainer(keyedBy: IncidentKeys.self)
            try item.encode(context, forKey: .context)
            try item.encode(incident.id(target: target.id), forKey: .id)
            try item.encode(RFC3339.string(from: Date(unixMicros: incident.startMicros)), forKey: .startedAt)
            try item.encode(incident.endMicros.map { RFC3339.string(from: Date(unixMicros: $0)) }, forKey: .endedAt)
            try item.encode(incident.durationSeconds(nowMicros: nowMicros), forKey: .durationSeconds)
            try item.encode(incident.cause, forKey: .cause)
        }
    }
}

extension Date {
    /// Unix microseconds, the unit spans are kept in.
    var unixMicros: Int64 { Int64((timeIntervalSince1970 * 1_000_000).rounded()) }

    init(unixMicros: Int64) {
        self.init(timeIntervalSince1970: Double(unixMicros) / 1_000_000)
    }
}
