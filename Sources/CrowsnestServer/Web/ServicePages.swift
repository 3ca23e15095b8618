import CrowsnestWire
import Foundation
import Logging
import PostgresNIO

/// The services page: every service of the tenant with its state now, its availability over 24 hours and 30
/// days against its objective, how many targets it has and whether it is on the public status page.
struct ServicesPage {
    struct Row {
        let name: String
        let href: String
        let state: String
        let members: Int
        let day: String
        let month: String
        let objective: String
        let belowObjective: Bool
        let isPublic: Bool
    }

    let session: SessionView
    let rows: [Row]
    let hasRows: Bool

    static func build(session: WebSession, database: PostgresClient, logger: Logger, now: Date) async throws -> ServicesPage {
        let tenantID = session.user.tenantID
        let reports = UptimeReports(client: database, logger: logger)
        let queries = UptimeQueries(client: database, logger: logger)
        let zone = try await queries.tenant(tenantID).timeZone
        let windows = try await reports.maintenanceWindows(tenantID: tenantID)
        let stored = try await DefinitionStore(.services, client: database, logger: logger).list(tenantID: tenantID)
        let services = stored.compactMap { item in (try? ServiceDefinition.parse(item.definition)).map { (ServiceID(uuid: item.id), $0) } }
        let end = now.unixMicros, monthStart = end - 30 * 86_400_000_000, dayStart = end - 86_400_000_000
        let rows = try await UptimeReports.concurrently(services, limit: 4) { id, service -> Row in
            let spans = try await reports.serviceTimeline(tenantID: tenantID, id: id, service: service, from: monthStart, to: end,
                                                          windows: windows, timeZone: zone)
            let members = try await queries.members(tenantID: tenantID, service: service).count
            let degraded = service.policy.degradedCountsAsDown
            let month = UptimeArithmetic.timeInStates(spans).availabilityPercent(degradedCountsAsDown: degraded)
            let day = UptimeArithmetic.timeInStates(IntervalSet.intersect(spans, with: [(dayStart, end)]))
                .availabilityPercent(degradedCountsAsDown: degraded)
            return Row(name: service.name, href: "/services/" + id.description, state: (spans.last?.state ?? .unknown).rawValue,
                       members: members, day: WebFormat.availability(day), month: WebFormat.availability(month),
                       objective: WebFormat.objective(service.policy.objectivePercent),
                       belowObjective: month.map { $0 < service.policy.objectivePercent } ?? false, isPublic: service.isPublic)
        }
        return ServicesPage(session: SessionView(session), rows: rows, hasRows: !rows.isEmpty)
    }
}

/// A service's page: its rule and SLA policy, its uptime bar and incidents over a range, and its targets with
/// their states now.
struct ServicePage {
    struct MemberRow {
        let name: String
        let href: String
        let kind: String
        let state: String
    }

    struct IncidentRow {
        let started: String
        let ended: String
        let duration: String
        let cause: String
    }

    let session: SessionView
    let name: String
    let rule: String
    let objective: String
    let degradedCountsAsDown: Bool
    let hasBusinessHours: Bool
    let isPublic: Bool
    let state: String
    let rangeName: String
    let ranges: [RangeLink]
    let uptime: StateBar
    let availability: String
    let incidents: [IncidentRow]
    let hasIncidents: Bool
    let members: [MemberRow]
    let hasMembers: Bool

    /// The page of service `id` of the session's tenant, or nil when it has none by that id.
    static func build(session: WebSession, id: ServiceID, range: PageRange, database: PostgresClient, logger: Logger,
                      now: Date) async throws -> ServicePage? {
        let tenantID = session.user.tenantID
        guard let stored = try await DefinitionStore(.services, client: database, logger: logger).get(tenantID: tenantID, id: id.uuid),
              let service = try? ServiceDefinition.parse(stored.definition) else { return nil }
        let reports = UptimeReports(client: database, logger: logger)
        let queries = UptimeQueries(client: database, logger: logger)
        let zone = try await queries.tenant(tenantID).timeZone
        let windows = try await reports.maintenanceWindows(tenantID: tenantID)
        let end = now.unixMicros, from = now.addingTimeInterval(-range.seconds).unixMicros
        let spans = try await reports.serviceTimeline(tenantID: tenantID, id: id, service: service, from: from, to: end,
                                                      windows: windows, timeZone: zone)
        let members = try await queries.members(tenantID: tenantID, service: service)
        let open = try await reports.targetTimelines(tenantID: tenantID, targets: members.map(\.id), from: max(from, end - 60_000_000),
                                                     to: end, windows: windows, timeZone: zone)
        let incidents = UptimeArithmetic.incidents(spans).reversed().prefix(50).map { incident in
            IncidentRow(started: WebFormat.timestamp(Date(unixMicros: incident.startMicros)),
                        ended: incident.endMicros.map { WebFormat.timestamp(Date(unixMicros: $0)) } ?? "ongoing",
                        duration: WebFormat.duration(seconds: incident.durationSeconds(nowMicros: end)), cause: incident.cause)
        }
        let rule: String
        switch service.downRule {
        case .any: rule = "down while any of its targets is down"
        case .all: rule = "down while all of its targets are down"
        case .atLeast(let k): rule = "down while at least \(k) of its targets are down"
        }
        let degraded = service.policy.degradedCountsAsDown
        return ServicePage(
            session: SessionView(session), name: service.name, rule: rule, objective: WebFormat.objective(service.policy.objectivePercent),
            degradedCountsAsDown: degraded, hasBusinessHours: service.policy.businessHours != nil, isPublic: service.isPublic,
            state: (spans.last?.state ?? .unknown).rawValue, rangeName: range.name, ranges: range.links(path: "/services/" + id.description),
            uptime: StateBar.make(spans, from: from, to: end),
            availability: WebFormat.availability(UptimeArithmetic.timeInStates(spans).availabilityPercent(degradedCountsAsDown: degraded)),
            incidents: Array(incidents), hasIncidents: !incidents.isEmpty,
            members: members.map { member in
                MemberRow(name: member.name, href: TargetPath.href(member.id), kind: member.id.kind,
                          state: (open[member.id]?.last?.state ?? .unknown).rawValue)
            },
            hasMembers: !members.isEmpty)
    }
}

/// One incident of a target: when, how long, its cause, what the system knew around its start, and the target's
/// states from an hour before it to an hour after.
struct IncidentPage {
    struct SpanRow {
        let state: String
        let started: String
        let ended: String
        let duration: String
        let cause: String
    }

    static let margin: Int64 = 3_600_000_000

    let session: SessionView
    let target: String
    let targetHref: String
    let kind: String
    let started: String
    let ended: String
    let isOpen: Bool
    let duration: String
    let cause: String
    let context: [ContainerPage.ContextItem]
    let hasContext: Bool
    let windowText: String
    let uptime: StateBar
    let spans: [SpanRow]

    /// The incident of `target` that started at `startMicros`, or nil when the tenant has no such target or it had
    /// no incident starting then.
    static func build(session: WebSession, target: TargetID, startMicros: Int64, database: PostgresClient, logger: Logger,
                      now: Date) async throws -> IncidentPage? {
        let tenantID = session.user.tenantID
        let end = now.unixMicros
        guard startMicros < end,
              let name = try await UptimeQueries(client: database, logger: logger).existing(tenantID: tenantID, ids: [target])[target]
        else { return nil }
        // From just before the start to now: an incident starting at `startMicros` is the first down run there, and
        // a down span just before it would make the run (and so the incident) start earlier.
        let raw = try await StatusSpanStore.spans(tenantID: tenantID, targetID: target.description, fromMicros: startMicros - 1,
                                                  toMicros: end, on: database, logger: logger)
        guard let incident = UptimeArithmetic.incidents(raw).first, incident.startMicros == startMicros else { return nil }
        let windowStart = startMicros - margin, windowEnd = min((incident.endMicros ?? end) + margin, end)
        let timeline = try await UptimeReports(client: database, logger: logger)
            .targetTimeline(tenantID: tenantID, target: target, from: windowStart, to: windowEnd)
        let context = try await IncidentContextQueries(client: database, logger: logger)
            .context(tenantID: tenantID, target: target, startMicros: startMicros)
        let items = ContainerPage.items(context)
        return IncidentPage(
            session: SessionView(session), target: name, targetHref: TargetPath.href(target), kind: target.kind,
            started: WebFormat.timestamp(Date(unixMicros: startMicros)),
            ended: incident.endMicros.map { WebFormat.timestamp(Date(unixMicros: $0)) } ?? "ongoing", isOpen: incident.endMicros == nil,
            duration: WebFormat.duration(seconds: incident.durationSeconds(nowMicros: end)), cause: incident.cause,
            context: items, hasContext: !items.isEmpty,
            windowText: "from \(WebFormat.timestamp(Date(unixMicros: windowStart))) to \(WebFormat.timestamp(Date(unixMicros: windowEnd)))",
            uptime: StateBar.make(timeline.clipped, from: windowStart, to: windowEnd),
            spans: timeline.clipped.map { span in
                SpanRow(state: span.state.rawValue, started: WebFormat.timestamp(Date(unixMicros: span.startMicros)),
                        ended: span.endMicros.map { WebFormat.timestamp(Date(unixMicros: $0)) } ?? "now",
                        duration: WebFormat.duration(seconds: Double((span.endMicros ?? windowEnd) - span.startMicros) / 1e6),
                        cause: span.cause)
            })
    }

    /// The address of an incident's page.
    static func href(target: TargetID, startMicros: Int64) -> String {
        "/incidents/" + TargetPath.encode(target.description) + "/\(startMicros)"
    }
}
