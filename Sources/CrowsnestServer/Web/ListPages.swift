import CrowsnestWire
import Foundation
import Logging
import PostgresNIO

/// The incidents page: every incident of the tenant's targets over the last 7 days, newest first, open ones marked.
struct IncidentsPage {
    struct Row {
        let target: String
        let href: String
        let kind: String
        let started: String
        let ended: String
        let duration: String
        let detailHref: String
        let cause: String
        let open: Bool
    }

    static let days: Int64 = 7

    let session: SessionView
    let rows: [Row]
    let hasRows: Bool

    static func build(session: WebSession, database: PostgresClient, logger: Logger, now: Date) async throws -> IncidentsPage {
        let end = now.unixMicros, from = end - days * 86_400_000_000
        let targets = try await UptimeReports(client: database, logger: logger).tenantTargets(tenantID: session.user.tenantID, from: from, to: end)
        let rows = IncidentJSON.list(targets.targets, from: from, to: end, openOnly: false).prefix(500).map { item in
            Row(target: item.target.name, href: TargetPath.href(item.target.id), kind: item.target.id.kind,
                started: WebFormat.timestamp(Date(unixMicros: item.incident.startMicros)),
                ended: item.incident.endMicros.map { WebFormat.timestamp(Date(unixMicros: $0)) } ?? "ongoing",
                duration: WebFormat.duration(seconds: item.incident.durationSeconds(nowMicros: end)),
                detailHref: IncidentPage.href(target: item.target.id, startMicros: item.incident.startMicros), cause: item.incident.cause,
                open: item.incident.endMicros == nil)
        }
        return IncidentsPage(session: SessionView(session), rows: Array(rows), hasRows: !rows.isEmpty)
    }
}

/// The checks page: every check of the tenant with its type, target, interval, state and last result.
struct ChecksPage {
    struct Row {
        let name: String
        let href: String
        let type: String
        let target: String
        let interval: String
        let state: String
        let lastResult: String
    }

    let session: SessionView
    let rows: [Row]
    let hasRows: Bool

    static func build(session: WebSession, database: PostgresClient, logger: Logger, now: Date) async throws -> ChecksPage {
        let checks = try await CheckStore(client: database, logger: logger).list(tenantID: session.user.tenantID)
        let rows = checks.map { check in
            Row(name: check.name, href: TargetPath.href(.check(checkID: check.id)), type: check.type.rawValue, target: check.target, interval: "\(check.intervalSeconds) s",
                state: check.state.rawValue, lastResult: check.lastResultAt.map { WebFormat.ago($0, now: now) } ?? "none yet")
        }
        return ChecksPage(session: SessionView(session), rows: rows, hasRows: !rows.isEmpty)
    }
}

/// The SLA page: every service's figures for one month, links to the CSV and the printable report, and the
/// months before it.
struct SLAPage {
    struct Row {
        let name: String
        let objective: String
        let availability: String
        let met: String
        let metClass: String
        let budgetUsed: String
        let incidents: Int
        let downtime: String
        let mttr: String
    }

    let session: SessionView
    let period: String
    let csvHref: String
    let htmlHref: String
    let months: [RangeLink]
    let rows: [Row]
    let hasRows: Bool

    static func build(session: WebSession, period: ReportPeriod, database: PostgresClient, logger: Logger, now: Date) async throws -> SLAPage {
        let (_, services) = try await UptimeReports(client: database, logger: logger).report(tenantID: session.user.tenantID, period: period, now: now)
        let rows = services.map { service in
            Row(name: service.name, objective: WebFormat.objective(service.objectivePercent),
                availability: WebFormat.availability(service.availabilityPercent),
                met: service.met.map { $0 ? "met" : "breached" } ?? "no data", metClass: service.met.map { $0 ? "up" : "down" } ?? "unknown",
                budgetUsed: String(format: "%.1f of %.1f min", service.errorBudgetUsedMinutes, service.errorBudgetMinutes),
                incidents: service.incidentCount, downtime: WebFormat.duration(seconds: service.downtimeSeconds),
                mttr: service.mttrSeconds.map { WebFormat.duration(seconds: $0) } ?? "–")
        }
        var months: [RangeLink] = []
        var cursor = SLAReportRoutes.currentPeriod(now: now)
        for _ in 0..<12 {
            months.append(RangeLink(name: cursor.description, href: "/sla?period=\(cursor)", current: cursor == period))
            cursor = cursor.month == 1 ? ReportPeriod(year: cursor.year - 1, month: 12) : ReportPeriod(year: cursor.year, month: cursor.month - 1)
        }
        return SLAPage(session: SessionView(session), period: period.description, csvHref: "/sla/report.csv?period=\(period)",
                       htmlHref: "/sla/report.html?period=\(period)", months: months, rows: rows, hasRows: !rows.isEmpty)
    }
}

/// A check's page: its definition and state, its uptime bar and incidents over a range, and its newest results
/// (errors and status codes are the probed service's answers: shown as text).
struct CheckPage {
    struct ResultRow {
        let ts: String
        let runner: String
        let ok: Bool
        let outcome: String
        let latency: String
        let status: String
        let error: String
    }

    let session: SessionView
    let name: String
    let type: String
    let target: String
    let interval: String
    let state: String
    let paused: Bool
    let rangeName: String
    let ranges: [RangeLink]
    let uptime: StateBar
    let availability: String
    let incidents: [ContainerPage.IncidentRow]
    let hasIncidents: Bool
    let results: [ResultRow]
    let hasResults: Bool

    static func build(session: WebSession, checkID: UUID, range: PageRange, database: PostgresClient, logger: Logger, now: Date) async throws -> CheckPage? {
        let tenantID = session.user.tenantID
        let store = CheckStore(client: database, logger: logger)
        guard let check = try await store.get(tenantID: tenantID, id: checkID),
              let results = try await store.results(tenantID: tenantID, checkID: checkID, limit: 50, from: nil, to: nil) else { return nil }
        let target = TargetID.check(checkID: checkID)
        let from = now.addingTimeInterval(-range.seconds)
        let timeline = try await UptimeReports(client: database, logger: logger)
            .targetTimeline(tenantID: tenantID, target: target, from: from.unixMicros, to: now.unixMicros)
        let incidents = try await ContainerPage.incidentRows(tenantID: tenantID, target: target, raw: timeline.raw, database: database,
                                                            logger: logger, now: now)
        let rows = results.map { result in
            ResultRow(ts: WebFormat.timestamp(result.ts), runner: result.agentID == nil ? "server" : result.runner, ok: result.ok,
                      outcome: result.ok ? "up" : "down", latency: result.latencyMs.map { String(format: "%.1f ms", $0) } ?? "–",
                      status: result.httpStatus.map(String.init) ?? "", error: result.error)
        }
        return CheckPage(session: SessionView(session), name: check.name, type: check.type.rawValue, target: check.target,
                         interval: "\(check.intervalSeconds) s", state: check.state.rawValue, paused: check.paused, rangeName: range.name,
                         ranges: range.links(path: TargetPath.href(target)),
                         uptime: StateBar.make(timeline.clipped, from: from.unixMicros, to: now.unixMicros),
                         availability: WebFormat.availability(UptimeArithmetic.timeInStates(timeline.clipped).availabilityPercent()),
                         incidents: incidents, hasIncidents: !incidents.isEmpty, results: rows, hasResults: !rows.isEmpty)
    }
}
