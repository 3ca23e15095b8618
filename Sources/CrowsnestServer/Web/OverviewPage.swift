import CrowsnestWire
import Foundation
import Logging
import PostgresNIO

/// The overview page's content: every host of the tenant (down or unknown first) with its newest figures and
/// container counts, open incidents, and availability over 24 hours and 30 days. Values are plain strings and
/// numbers; the template escapes them.
struct OverviewPage {
    struct HostRow {
        let hostname: String
        let href: String
        let state: String
        let cpu: String
        let memory: String
        let disk: String
        let running: Int
        let stopped: Int
        let unhealthy: Int
        let lastSeen: String
    }

    struct StateCount {
        let state: String
        let css: String
        let count: Int
    }

    struct IncidentRow {
        let target: String
        let kind: String
        let since: String
        let duration: String
        let cause: String
    }

    let session: SessionView
    let generatedAt: String
    let refreshSeconds: Int
    let hostCount: Int
    let hostStates: [StateCount]
    let containerCount: Int
    let containerStates: [StateCount]
    let availability24h: String
    let availability30d: String
    let openIncidentCount: Int
    let incidents: [IncidentRow]
    let hosts: [HostRow]

    // Stored, not computed: templates see stored properties only (swift-mustache reads them through Mirror).
    let hasHosts: Bool
    let hasIncidents: Bool

    static func build(session: WebSession, database: PostgresClient, logger: Logger, now: Date) async throws -> OverviewPage {
        let tenantID = session.user.tenantID
        async let hostsQuery = InfrastructureQueries(database: database, logger: logger).hosts(tenantID: tenantID)
        async let figuresQuery = MetricsQueries(database: database, logger: logger).latestHostFigures(tenantID: tenantID)
        async let overviewQuery = UptimeReports(client: database, logger: logger).overview(tenantID: tenantID, now: now)
        let (hosts, figures, overview) = try await (hostsQuery, figuresQuery, overviewQuery)

        var containerStates: [String: Int] = [:]
        var rows: [(order: Int, row: HostRow)] = []
        for host in hosts {
            var running = 0, stopped = 0, unhealthy = 0
            for container in host.containers {
                containerStates[container.state, default: 0] += 1
                if container.state == "running" { running += 1 } else { stopped += 1 }
                if container.health == "unhealthy" { unhealthy += 1 }
            }
            let figure = figures[host.agentID]
            let state = host.state.rawValue
            rows.append((state == "up" ? 1 : 0, HostRow(
                hostname: host.hostname, href: TargetPath.host(host.agentID), state: state,
                cpu: figure?.cpuPercent.map { WebFormat.percent($0) } ?? "–",
                memory: WebFormat.share(used: figure?.memoryUsedBytes, total: figure?.memoryTotalBytes),
                disk: figure?.diskPercent.map { WebFormat.percent($0) } ?? "–",
                running: running, stopped: stopped, unhealthy: unhealthy,
                lastSeen: host.lastSeen.map { WebFormat.ago($0, now: now) } ?? "never")))
        }
        // Hosts that need a look first, then by name (the query's order).
        let sortedRows = rows.enumerated().sorted { ($0.element.order, $0.offset) < ($1.element.order, $1.offset) }.map(\.element.row)
        var hostStates: [String: Int] = [:]
        for row in sortedRows { hostStates[row.state, default: 0] += 1 }

        let open = overview.openIncidents
        let incidents = open.prefix(50).map { item in
            IncidentRow(target: item.target.name, kind: item.target.id.kind,
                        since: WebFormat.timestamp(Date(unixMicros: item.incident.startMicros)),
                        duration: WebFormat.duration(seconds: item.incident.durationSeconds(nowMicros: overview.nowMicros)),
                        cause: item.incident.cause)
        }
        return OverviewPage(
            session: SessionView(session), generatedAt: WebFormat.timestamp(now), refreshSeconds: 15,
            hostCount: hosts.count,
            hostStates: hostStates.sorted { $0.key < $1.key }.map { StateCount(state: $0.key, css: $0.key, count: $0.value) },
            containerCount: containerStates.values.reduce(0, +),
            containerStates: containerStates.sorted { $0.key < $1.key }.map {
                StateCount(state: $0.key, css: WebFormat.cssClass($0.key), count: $0.value)
            },
            availability24h: WebFormat.availability(overview.lastDay["all"]?.time.availabilityPercent()),
            availability30d: WebFormat.availability(overview.lastMonth["all"]?.time.availabilityPercent()),
            openIncidentCount: open.count, incidents: Array(incidents), hosts: sortedRows,
            hasHosts: !sortedRows.isEmpty, hasIncidents: !incidents.isEmpty)
    }
}

/// How numbers, times and sizes read on the pages.
enum WebFormat {
    static func percent(_ value: Double) -> String { String(format: "%.1f %%", value) }

    static func availability(_ value: Double?) -> String {
        guard let value else { return "no data" }
        return value >= 99.995 && value < 100 ? "99.99 %" : String(format: "%.2f %%", value)
    }

    /// An SLA objective: "99.9 %", "99.95 %", "100 %".
    static func objective(_ value: Double) -> String {
        var text = String(format: "%.3f", value)
        while text.hasSuffix("0") { text.removeLast() }
        if text.hasSuffix(".") { text.removeLast() }
        return text + " %"
    }

    static func bytes(_ value: Double) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var amount = value, unit = 0
        while amount >= 1024, unit < units.count - 1 { amount /= 1024; unit += 1 }
        return unit == 0 ? String(format: "%.0f B", amount) : String(format: "%.1f %@", amount, units[unit])
    }

    static func share(used: Double?, total: Double?) -> String {
        guard let used else { return "–" }
        guard let total, total > 0 else { return bytes(used) }
        return "\(bytes(used)) of \(bytes(total)) (\(percent(used * 100 / total)))"
    }

    static func ago(_ date: Date, now: Date) -> String {
        let seconds = max(0, now.timeIntervalSince(date))
        return duration(seconds: seconds) + " ago"
    }

    static func duration(seconds: Double) -> String {
        let whole = Int(seconds.rounded())
        if whole < 60 { return "\(whole) s" }
        if whole < 3600 { return "\(whole / 60) min \(whole % 60) s" }
        if whole < 86_400 { return "\(whole / 3600) h \(whole % 3600 / 60) min" }
        return "\(whole / 86_400) d \(whole % 86_400 / 3600) h"
    }

    static func timestamp(_ date: Date) -> String { RFC3339.string(from: date) }

    /// A CSS class for a state word: only letters kept (a container state is Docker's word, but a hostile engine
    /// could send anything).
    static func cssClass(_ state: String) -> String {
        String(state.lowercased().unicodeScalars.filter { $0.properties.isAlphabetic && $0.isASCII }.prefix(20).map(Character.init))
    }
}
