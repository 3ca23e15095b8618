import CrowsnestWire
import Foundation
import Hummingbird
import Logging
import PostgresNIO

/// `GET /api/v1/dashboard/overview` (the tenant at a glance: targets by state, availability over 24 hours and 30
/// days, open incidents), `GET /api/v1/uptime/summary` (availability per kind and per service over `from`/`to`,
/// SLA compliance, incidents) and `GET /api/v1/incidents` (incidents of every target over `from`/`to`).
struct DashboardRoutes: Sendable {
    let database: PostgresClient
    let logger: Logger

    func register(on group: RouterGroup<APIRequestContext>) {
        group.get("dashboard/overview") { _, context in
            let caller = try context.requireCaller()
            let now = Date()
            let overview = try await UptimeReports(client: self.database, logger: self.logger).overview(tenantID: caller.tenantID, now: now)
            return OverviewJSON(generatedAt: now, overview: overview)
        }
        group.get("uptime/summary") { request, context in
            let caller = try context.requireCaller()
            let query = request.uri.queryParameters
            let now = Date()
            let range = try QueryParameter.range(from: query.get("from"), to: query.get("to"), now: now,
                                                 defaultSeconds: 30 * 86_400, maximumDays: UptimeRoutes.maximumRangeDays)
            let from = range.from.unixMicros, end = min(range.to.unixMicros, now.unixMicros)
            let reports = UptimeReports(client: self.database, logger: self.logger)
            let tenant = try await reports.tenantTargets(tenantID: caller.tenantID, from: from, to: end)
            let stored = try await DefinitionStore(.services, client: self.database, logger: self.logger).list(tenantID: caller.tenantID)
                .compactMap { stored in (try? ServiceDefinition.parse(stored.definition)).map { (ServiceID(uuid: stored.id), $0) } }
            let services = try await UptimeReports.concurrently(stored, limit: UptimeReports.reportConcurrency) { (id, service) in
                let spans = try await reports.serviceTimeline(tenantID: caller.tenantID, id: id, service: service, from: from,
                                                              to: end, windows: tenant.windows, timeZone: tenant.timeZone)
                return ServiceSummaryJSON(id: id, service: service, spans: spans)
            }
            return SummaryJSON(from: range.from, to: range.to, totals: UptimeReports.totals(tenant.targets), services: services,
                               incidents: IncidentJSON.list(tenant.targets, from: from, to: end, openOnly: false), nowMicros: now.unixMicros)
        }
        group.get("incidents") { request, context in
            let caller = try context.requireCaller()
            let query = request.uri.queryParameters
            let now = Date()
            let range = try QueryParameter.range(from: query.get("from"), to: query.get("to"), now: now,
                                                 defaultSeconds: 7 * 86_400, maximumDays: UptimeRoutes.maximumRangeDays)
            let openOnly: Bool
            switch query.get("state") {
            case nil, "all": openOnly = false
            case "open": openOnly = true
            case let other?: throw APIError.badRequest("state must be open or all (got \"\(other)\")")
            }
            let from = range.from.unixMicros, end = min(range.to.unixMicros, now.unixMicros)
            let tenant = try await UptimeReports(client: self.database, logger: self.logger)
                .tenantTargets(tenantID: caller.tenantID, from: from, to: end)
            return IncidentListJSON(incidents: IncidentJSON.list(tenant.targets, from: from, to: end, openOnly: openOnly),
                                    nowMicros: now.unixMicros)
        }
    }
}

/// An incident with its target, as the lists show it.
struct IncidentJSON: Sendable {
    let target: NamedTarget
    let incident: Incident

    /// The incidents of `uptimes` overlapping `[from, to)`, newest first.
    static func list(_ uptimes: [TargetUptime], from: Int64, to: Int64, openOnly: Bool) -> [IncidentJSON] {
        var result: [IncidentJSON] = []
        for uptime in uptimes {
            for incident in uptime.incidents where incident.startMicros < to && (incident.endMicros ?? Int64.max) > from {
                if openOnly && incident.endMicros != nil { continue }
                result.append(IncidentJSON(target: uptime.target, incident: incident))
            }
        }
        return result.sorted { ($0.incident.startMicros, $0.target.id.description) > ($1.incident.startMicros, $1.target.id.description) }
    }

    func object(nowMicros: Int64) -> JSONValue {
        .object([
            "id": .string(incident.id(target: target.id)),
            "target": .object(["id": .string(target.id.description), "kind": .string(target.id.kind), "name": .string(target.name)]),
            "started_at": .string(RFC3339.string(from: Date(unixMicros: incident.startMicros))),
            "ended_at": incident.endMicros.map { .string(RFC3339.string(from: Date(unixMicros: $0))) } ?? .null,
            "duration_seconds": .number(incident.durationSeconds(nowMicros: nowMicros)),
            "cause": .string(incident.cause),
        ])
    }
}

/// `{"up","degraded","down","unknown","maintenance"}` seconds.
func secondsJSON(_ time: TimeInStates) -> JSONValue {
    .object(["up": .number(Double(time.up) / 1e6), "degraded": .number(Double(time.degraded) / 1e6),
             "down": .number(Double(time.down) / 1e6), "unknown": .number(Double(time.unknown) / 1e6),
             "maintenance": .number(Double(time.maintenance) / 1e6)])
}

/// `{"availability_percent","targets","seconds"}` of a sum of targets.
func totalJSON(_ total: UptimeTotal?) -> JSONValue {
    let total = total ?? UptimeTotal()
    return .object(["availability_percent": total.time.availabilityPercent().map(JSONValue.number) ?? .null,
                    "targets": .integer(Int64(total.targets)), "seconds": secondsJSON(total.time)])
}

struct OverviewJSON: ResponseEncodable, Sendable {
    let generatedAt: Date
    let overview: TenantOverview

    func encode(to encoder: any Encoder) throws {
        var counts: [String: [String: Int64]] = [
            "host": ["up": 0, "unknown": 0],
            "container": Dictionary(uniqueKeysWithValues: SpanState.allCases.map { ($0.rawValue, Int64(0)) }),
            "check": ["up": 0, "down": 0, "unknown": 0, "paused": 0, "maintenance": 0, "degraded": 0],
        ]
        for (target, current) in overview.states {
            var state = current.rawValue
            if overview.pausedChecks.contains(target.id) { state = "paused" }
            counts[target.id.kind, default: [:]][state, default: 0] += 1
        }
        let lastDay = overview.lastDay, lastMonth = overview.lastMonth, nowMicros = overview.nowMicros
        let open = overview.openIncidents
        func kind(_ name: String) -> JSONValue {
            let byState = counts[name] ?? [:]
            return .object(["total": .integer(byState.values.reduce(0, +)), "by_state": .object(byState.mapValues(JSONValue.integer))])
        }
        try JSONValue.object([
            "generated_at": .string(RFC3339.string(from: generatedAt)),
            "hosts": kind("host"), "containers": kind("container"), "checks": kind("check"),
            "availability": .object([
                "last_24h": .object(["hosts": totalJSON(lastDay["host"]), "containers": totalJSON(lastDay["container"]),
                                     "checks": totalJSON(lastDay["check"]), "all": totalJSON(lastDay["all"])]),
                "last_30d": .object(["hosts": totalJSON(lastMonth["host"]), "containers": totalJSON(lastMonth["container"]),
                                     "checks": totalJSON(lastMonth["check"]), "all": totalJSON(lastMonth["all"])]),
            ]),
            "open_incidents": .array(open.map { $0.object(nowMicros: nowMicros) }),
        ]).encode(to: encoder)
    }
}

struct ServiceSummaryJSON: Sendable {
    let id: ServiceID
    let service: ServiceDefinition
    let spans: [SpanInterval]

    var object: JSONValue {
        let time = UptimeArithmetic.timeInStates(spans)
        let availability = time.availabilityPercent(degradedCountsAsDown: service.policy.degradedCountsAsDown)
        let outages = UptimeArithmetic.incidents(spans)
        return .object([
            "id": .string(id.description), "name": .string(service.name),
            "objective_percent": .number(service.policy.objectivePercent),
            "availability_percent": availability.map(JSONValue.number) ?? .null,
            "met": availability.map { .bool($0 >= service.policy.objectivePercent) } ?? .null,
            "incident_count": .integer(Int64(outages.count)), "seconds": secondsJSON(time),
        ])
    }
}

struct SummaryJSON: ResponseEncodable, Sendable {
    let from: Date
    let to: Date
    let totals: [String: UptimeTotal]
    let services: [ServiceSummaryJSON]
    let incidents: [IncidentJSON]
    let nowMicros: Int64

    func encode(to encoder: any Encoder) throws {
        try JSONValue.object([
            "from": .string(RFC3339.string(from: from)), "to": .string(RFC3339.string(from: to)),
            "kinds": .object(["host": totalJSON(totals["host"]), "container": totalJSON(totals["container"]),
                              "check": totalJSON(totals["check"])]),
            "all": totalJSON(totals["all"]),
            "services": .array(services.map(\.object)),
            "incidents": .array(incidents.map { $0.object(nowMicros: nowMicros) }),
        ]).encode(to: encoder)
    }
}

struct IncidentListJSON: ResponseEncodable, Sendable {
    let incidents: [IncidentJSON]
    let nowMicros: Int64

    func encode(to encoder: any Encoder) throws {
        try JSONValue.object(["incidents": .array(incidents.map { $0.object(nowMicros: nowMicros) })]).encode(to: encoder)
    }
}

/// `GET /api/v1/dashboard/metrics/{target}?from&to`: a host's or container's chart series — CPU, memory, network,
/// block I/O, processes and (hosts) disk — each bucket with its average, minimum and maximum. The resolution
/// follows the range: raw samples up to a day, 5-minute rollups up to 14 days, 1-hour rollups beyond.
struct DashboardMetricsRoutes: Sendable {
    let infrastructure: InfrastructureQueries
    let metrics: MetricsQueries

    /// Most buckets a series has.
    static let maximumPoints = 400

    /// The resolution and bucket for a range: (`raw` | `5m` | `1h`, rollup step or nil, bucket seconds).
    static func resolution(rangeSeconds: Double, intervalSeconds: Int) -> (name: String, rollup: Int?, step: Int) {
        func step(multipleOf unit: Int) -> Int {
            let needed = Int((rangeSeconds / Double(maximumPoints)).rounded(.up))
            let candidates = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400]
            return candidates.first { $0 >= max(needed, unit) && $0 % unit == 0 } ?? 86_400
        }
        if rangeSeconds <= 86_400 { return ("raw", nil, step(multipleOf: max(1, min(intervalSeconds, 300)))) }
        if rangeSeconds <= 14 * 86_400 { return ("5m", 300, step(multipleOf: 300)) }
        return ("1h", 3600, step(multipleOf: 3600))
    }

    func register(on group: RouterGroup<APIRequestContext>) {
        group.get("dashboard/metrics/:target") { request, context in
            let caller = try context.requireCaller()
            let query = request.uri.queryParameters
            let range = try QueryParameter.range(from: query.get("from"), to: query.get("to"), now: Date(),
                                                 defaultSeconds: 86_400, maximumDays: UptimeRoutes.maximumRangeDays)
            let target = try await resolveSampledTarget(context: context, caller: caller, infrastructure: self.infrastructure)
            let choice = Self.resolution(rangeSeconds: range.to.timeIntervalSince(range.from), intervalSeconds: target.intervalSeconds)
            let points = try await self.metrics.series(tenantID: caller.tenantID, target: target.id, from: range.from, to: range.to,
                                                       step: choice.step, rollupStep: choice.rollup)
            return SeriesJSON(target: target, from: range.from, to: range.to, resolution: choice.name, step: choice.step, points: points)
        }
    }
}

struct SeriesJSON: ResponseEncodable, Sendable {
    let target: TargetDescriptor
    let from: Date
    let to: Date
    let resolution: String
    let step: Int
    let points: [MetricsSeriesPoint]

    func encode(to encoder: any Encoder) throws {
        let names = MetricsQueries.seriesFigures
        let list: [JSONValue] = points.map { point in
            var object: [String: JSONValue] = ["ts": .string(RFC3339.string(from: point.ts)), "samples": .integer(Int64(point.samples))]
            for (name, figure) in zip(names, point.figures) {
                object[name] = .object(["avg": figure.avg.map(JSONValue.number) ?? .null, "min": figure.min.map(JSONValue.number) ?? .null,
                                        "max": figure.max.map(JSONValue.number) ?? .null])
            }
            return .object(object)
        }
        try JSONValue.object([
            "target": .object(["id": .string(target.id.description), "kind": .string(target.id.kind), "name": .string(target.name)]),
            "from": .string(RFC3339.string(from: from)), "to": .string(RFC3339.string(from: to)),
            "resolution": .string(resolution), "step_seconds": .integer(Int64(step)), "points": .array(list),
        ]).encode(to: encoder)
    }
}
