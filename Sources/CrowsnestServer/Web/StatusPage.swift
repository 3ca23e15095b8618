import CrowsnestWire
import Foundation
import Logging
import PostgresNIO

/// A tenant's public status page: the services and checks it marked public, each with its current state,
/// availability and a bar of the last 90 days, and their open and recent incidents. Nothing else of the tenant is
/// shown: no member target names, no causes (they may name hosts, URLs or addresses), only times and states; a
/// check's target only when the tenant marked it so (`public_target`).
struct StatusPage {
    struct DayBar {
        let x: String
        let state: String
        let label: String
    }

    /// A service or a check.
    struct ServiceRow {
        let name: String
        let target: String
        let hasTarget: Bool
        let state: String
        let stateText: String
        let availability: String
        let days: [DayBar]
    }

    struct IncidentRow {
        let service: String
        let started: String
        let ended: String
        let duration: String
    }

    static let days = 90
    static let recentDays = 14

    let title: String
    let generatedAt: String
    let services: [ServiceRow]
    let checks: [ServiceRow]
    let hasChecks: Bool
    let hasServiceRows: Bool
    /// Anything is published (services or checks).
    let hasServices: Bool
    let openIncidents: [IncidentRow]
    let hasOpenIncidents: Bool
    let recentIncidents: [IncidentRow]
    let hasRecentIncidents: Bool
    let allUp: Bool

    /// The page of the tenant publishing at `slug`, or nil when no tenant does.
    static func build(slug: String, database: PostgresClient, logger: Logger, now: Date) async throws -> StatusPage? {
        guard let tenant = try await TenantStore(client: database, logger: logger).tenant(statusSlug: slug) else { return nil }
        let services = try await PublicServices.load(tenantID: tenant.id, database: database, logger: logger)
        let publicChecks = try await CheckStore(client: database, logger: logger).publicChecks(tenantID: tenant.id)
        let reports = UptimeReports(client: database, logger: logger)
        let windows = try await reports.maintenanceWindows(tenantID: tenant.id)
        let end = now.unixMicros
        let day: Int64 = 86_400_000_000
        let firstDay = (end / day - Int64(days) + 1) * day
        var open: [IncidentRow] = [], recent: [IncidentRow] = []

        func row(name: String, target: String?, spans: [SpanInterval], degradedCountsAsDown: Bool) -> ServiceRow {
            let state = spans.last?.state ?? .unknown
            var bars: [DayBar] = []
            for index in 0..<days {
                let start = firstDay + Int64(index) * day, stop = min(start + day, end)
                let time = UptimeArithmetic.timeInStates(IntervalSet.intersect(spans, with: [(start, stop)]))
                let availability = time.availabilityPercent(degradedCountsAsDown: degradedCountsAsDown)
                let date = String(RFC3339.string(from: Date(unixMicros: start)).prefix(10))
                bars.append(DayBar(x: String(index * 4), state: dayState(availability),
                                   label: "\(date): " + (availability.map { String(format: "%.2f %% up", $0) } ?? "no data")))
            }
            for incident in UptimeArithmetic.incidents(spans) {
                let ongoing = (incident.endMicros ?? end) >= end
                let row = IncidentRow(service: name, started: WebFormat.timestamp(Date(unixMicros: incident.startMicros)),
                                      ended: ongoing ? "ongoing" : WebFormat.timestamp(Date(unixMicros: incident.endMicros ?? end)),
                                      duration: WebFormat.duration(seconds: Double((incident.endMicros ?? end) - incident.startMicros) / 1e6))
                if ongoing { open.append(row) } else if incident.startMicros >= end - Int64(recentDays) * day { recent.append(row) }
            }
            let total = UptimeArithmetic.timeInStates(spans)
            return ServiceRow(name: name, target: target ?? "", hasTarget: target != nil, state: state.rawValue,
                              stateText: stateText(state),
                              availability: WebFormat.availability(total.availabilityPercent(degradedCountsAsDown: degradedCountsAsDown)),
                              days: bars)
        }

        var serviceRows: [ServiceRow] = []
        for (id, service) in services {
            let spans = try await reports.serviceTimeline(tenantID: tenant.id, id: id, service: service, from: firstDay, to: end,
                                                          windows: windows, timeZone: tenant.timeZone)
            serviceRows.append(row(name: service.name, target: nil, spans: spans,
                                   degradedCountsAsDown: service.policy.degradedCountsAsDown))
        }
        let checkSpans = try await reports.targetTimelines(tenantID: tenant.id, targets: publicChecks.map { .check(checkID: $0.id) },
                                                           from: firstDay, to: end, windows: windows, timeZone: tenant.timeZone)
        let checkRows = publicChecks.map { check in
            row(name: check.name, target: check.target, spans: checkSpans[TargetID.check(checkID: check.id)] ?? [],
                degradedCountsAsDown: false)
        }
        recent.sort { $0.started > $1.started }
        let rows = serviceRows + checkRows
        return StatusPage(title: tenant.title.isEmpty ? tenant.name + " status" : tenant.title, generatedAt: WebFormat.timestamp(now),
                          services: serviceRows, checks: checkRows, hasChecks: !checkRows.isEmpty,
                          hasServiceRows: !serviceRows.isEmpty, hasServices: !rows.isEmpty,
                          openIncidents: open, hasOpenIncidents: !open.isEmpty,
                          recentIncidents: Array(recent.prefix(20)), hasRecentIncidents: !recent.isEmpty,
                          allUp: !rows.isEmpty && rows.allSatisfy { $0.state == "up" })
    }

    static func dayState(_ availability: Double?) -> String {
        guard let availability else { return "unknown" }
        if availability >= 100 { return "up" }
        return availability >= 99 ? "degraded" : "down"
    }

    static func stateText(_ state: SpanState) -> String {
        switch state {
        case .up: "Operational"
        case .degraded: "Degraded"
        case .down: "Outage"
        case .maintenance: "Maintenance"
        case .unknown: "No data"
        }
    }
}

/// The services a tenant marked public, by name.
enum PublicServices {
    static func load(tenantID: UUID, database: PostgresClient, logger: Logger) async throws -> [(ServiceID, ServiceDefinition)] {
        try await DefinitionStore(.services, client: database, logger: logger).list(tenantID: tenantID).compactMap { stored in
            guard let service = try? ServiceDefinition.parse(stored.definition), service.isPublic else { return nil }
            return (ServiceID(uuid: stored.id), service)
        }
    }
}

/// SVG badges of a public service or check: its state now, or its availability over 30 days. Only fixed words and numbers
/// are drawn.
enum Badge {
    /// The badges a public service has.
    static let files: Set<String> = ["status.svg", "uptime-30d.svg"]

    static func svg(label: String, value: String, color: String) -> String {
        let left = 7 * label.count + 12, right = 7 * value.count + 12
        return """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(left + right)" height="20" role="img" aria-label="\(label): \(value)">\
            <rect width="\(left)" height="20" fill="#555"/><rect x="\(left)" width="\(right)" height="20" fill="\(color)"/>\
            <g fill="#fff" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11">\
            <text x="6" y="14">\(label)</text><text x="\(left + 6)" y="14">\(value)</text></g></svg>
            """
    }

    static func color(_ state: SpanState) -> String {
        switch state {
        case .up: "#1d7a3a"
        case .degraded: "#b45309"
        case .down: "#b42318"
        case .maintenance: "#3b5bdb"
        case .unknown: "#6b7280"
        }
    }

    /// What a badge address names: a service (`s-<uuid>`) or a check (`k-<uuid>`).
    enum Subject: Sendable, CustomStringConvertible {
        case service(ServiceID)
        case check(UUID)

        init?(_ text: String) {
            if let id = ServiceID(text) {
                self = .service(id)
            } else if case .check(let id)? = TargetID(text) {
                self = .check(id)
            } else {
                return nil
            }
        }

        var description: String {
            switch self {
            case .service(let id): id.description
            case .check(let id): TargetID.check(checkID: id).description
            }
        }
    }

    /// `status.svg` or `uptime-30d.svg` of a service or check, or nil when it is not public.
    static func make(_ subject: Subject, file: String, database: PostgresClient, logger: Logger, now: Date) async throws -> String? {
        guard files.contains(file) else { return nil }
        let reports = UptimeReports(client: database, logger: logger)
        let end = now.unixMicros, from = end - 30 * 86_400_000_000
        let spans: [SpanInterval], degradedCountsAsDown: Bool, objective: Double
        switch subject {
        case .service(let serviceID):
            guard let found = try await DefinitionStore(.services, client: database, logger: logger).find(id: serviceID.uuid),
                  let service = try? ServiceDefinition.parse(found.stored.definition), service.isPublic else { return nil }
            let zone = try await UptimeQueries(client: database, logger: logger).tenant(found.tenantID).timeZone
            spans = try await reports.serviceTimeline(tenantID: found.tenantID, id: serviceID, service: service, from: from, to: end,
                                                      windows: try await reports.maintenanceWindows(tenantID: found.tenantID),
                                                      timeZone: zone)
            (degradedCountsAsDown, objective) = (service.policy.degradedCountsAsDown, service.policy.objectivePercent)
        case .check(let checkID):
            guard let found = try await CheckStore(client: database, logger: logger).publicCheck(id: checkID) else { return nil }
            spans = try await reports.targetTimeline(tenantID: found.tenantID, target: .check(checkID: checkID), from: from, to: end).clipped
            (degradedCountsAsDown, objective) = (false, checkObjectivePercent)
        }
        if file == "status.svg" {
            let state = spans.last?.state ?? .unknown
            return svg(label: "status", value: StatusPage.stateText(state).lowercased(), color: color(state))
        }
        let availability = UptimeArithmetic.timeInStates(spans).availabilityPercent(degradedCountsAsDown: degradedCountsAsDown)
        let state: SpanState = availability.map { $0 >= objective ? .up : .down } ?? .unknown
        return svg(label: "uptime 30d", value: WebFormat.availability(availability), color: color(state))
    }

    /// A check has no SLA policy: its 30-day badge is green from this availability up.
    static let checkObjectivePercent = 99.9
}

/// Public pages and badges kept for a short while per address, so anyone requesting them often costs one
/// computation per `lifetime`, not one per request.
actor PublicPageCache {
    static let lifetime: Duration = .seconds(30)
    static let maximumEntries = 10_000

    private var entries: [String: (expires: ContinuousClock.Instant, value: String)] = [:]

    /// The cached value for `key`, or `make`'s. "Not found" (nil) is not kept, so addresses that lead nowhere
    /// cannot fill the cache and push out the pages that exist.
    func value(_ key: String, make: @Sendable () async throws -> String?) async throws -> String? {
        let now = ContinuousClock.now
        if let entry = entries[key], entry.expires > now { return entry.value }
        guard let value = try await make() else { return nil }
        if entries.count >= Self.maximumEntries { entries = entries.filter { $0.value.expires > now } }
        if entries.count >= Self.maximumEntries { entries.removeAll() }
        entries[key] = (now + Self.lifetime, value)
        return value
    }
}
