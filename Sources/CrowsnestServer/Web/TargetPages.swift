import CrowsnestWire
import Foundation
import Logging
import PostgresNIO

/// The range a host or container page shows: 1 hour, 24 hours, 7 or 30 days (raw samples or rollups, chosen as
/// the dashboard API chooses them).
struct PageRange {
    static let choices: [(name: String, seconds: Double)] = [("1h", 3600), ("24h", 86_400), ("7d", 7 * 86_400), ("30d", 30 * 86_400)]

    let name: String
    let seconds: Double

    init(_ text: String?) throws {
        let wanted = text ?? "24h"
        guard let choice = Self.choices.first(where: { $0.name == wanted }) else {
            throw APIError.badRequest("range must be one of 1h, 24h, 7d, 30d (got \"\(wanted.prefix(20))\")")
        }
        (name, seconds) = (choice.name, choice.seconds)
    }

    /// Links to every range, the current one marked.
    func links(path: String) -> [RangeLink] {
        Self.choices.map { RangeLink(name: $0.name, href: "\(path)?range=\($0.name)", current: $0.name == name) }
    }
}

struct RangeLink {
    let name: String
    let href: String
    let current: Bool
}

/// Web paths of targets: ids percent-encoded into one path segment (a container's name may hold anything).
enum TargetPath {
    static func host(_ agentID: UUID) -> String { "/hosts/" + TargetID.host(agentID: agentID).description }

    static func container(_ agentID: UUID, _ name: String) -> String {
        "/containers/" + encode(TargetID.container(agentID: agentID, name: name).description)
    }

    /// The page of a host, container or check.
    static func href(_ target: TargetID) -> String {
        switch target {
        case .host(let agentID): host(agentID)
        case .container(let agentID, let name): container(agentID, name)
        case .check: "/checks/" + target.description
        }
    }

    static func encode(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics.intersection(CharacterSet(charactersIn: Unicode.Scalar(0)...Unicode.Scalar(127)))
        allowed.insert(charactersIn: "-_.~")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? ""
    }
}

/// Series of one host or container over a range, as `MetricsQueries.series` reads them.
struct TargetSeries {
    let from: Date
    let to: Date
    let step: Int
    let points: [MetricsSeriesPoint]

    static func load(tenantID: UUID, target: TargetID, intervalSeconds: Int, range: PageRange, now: Date,
                     metrics: MetricsQueries) async throws -> TargetSeries {
        let from = now.addingTimeInterval(-range.seconds)
        let choice = DashboardMetricsRoutes.resolution(rangeSeconds: range.seconds, intervalSeconds: intervalSeconds)
        let points = try await metrics.series(tenantID: tenantID, target: target, from: from, to: now, step: choice.step,
                                              rollupStep: choice.rollup)
        return TargetSeries(from: from, to: now, step: choice.step, points: points)
    }

    /// The average of figure `name` (one of `MetricsQueries.seriesFigures`) at every point.
    func line(_ name: String) -> [(Date, Double?)] {
        guard let index = MetricsQueries.seriesFigures.firstIndex(of: name) else { return [] }
        return points.map { ($0.ts, $0.figures[index].avg) }
    }

    func chart(_ title: String, _ lines: [(String, String)], yMax: Double? = nil, format: (Double) -> String) -> SVGChart {
        SVGChart.make(title: title, from: from, to: to, lines: lines.map { (name: $0.0, points: line($0.1)) }, yMax: yMax,
                      gap: Double(step) * 2.5, format: format)
    }
}

/// The host page: the host's charts and its containers with state, health, restarts, CPU and memory against
/// limit, each with a CPU sparkline of the last hour.
struct HostPage {
    struct ContainerRow {
        let name: String
        let href: String
        let state: String
        let stateClass: String
        let health: String
        let restarts: Int
        let cpu: String
        let memory: String
        let sparkline: SVGChart
    }

    let session: SessionView
    let hostname: String
    let state: String
    let lastSeen: String
    let agentVersion: String
    let rangeName: String
    let ranges: [RangeLink]
    let charts: [SVGChart]
    let containers: [ContainerRow]
    let hasContainers: Bool
    let uptime: StateBar

    static func build(session: WebSession, agentID: UUID, range: PageRange, database: PostgresClient, logger: Logger,
                      now: Date) async throws -> HostPage? {
        let tenantID = session.user.tenantID
        let infrastructure = InfrastructureQueries(database: database, logger: logger)
        guard let host = try await infrastructure.host(tenantID: tenantID, agentID: agentID) else { return nil }
        let metrics = MetricsQueries(database: database, logger: logger)
        let target = TargetID.host(agentID: agentID)
        async let containersQuery = infrastructure.containers(tenantID: tenantID, agentID: agentID)
        async let latestQuery = metrics.latestContainerFigures(tenantID: tenantID, agentID: agentID)
        async let sparklinesQuery = metrics.containerCPUSparklines(tenantID: tenantID, agentID: agentID,
                                                                   from: now.addingTimeInterval(-3600), stepSeconds: 60)
        async let seriesQuery = TargetSeries.load(tenantID: tenantID, target: target, intervalSeconds: host.intervalSeconds,
                                                  range: range, now: now, metrics: metrics)
        async let timelineQuery = UptimeReports(client: database, logger: logger)
            .targetTimeline(tenantID: tenantID, target: target, from: now.addingTimeInterval(-range.seconds).unixMicros, to: now.unixMicros)
        let loadStep = DashboardMetricsRoutes.resolution(rangeSeconds: range.seconds, intervalSeconds: host.intervalSeconds).step
        async let loadQuery = metrics.hostLoadAndSwap(tenantID: tenantID, agentID: agentID, from: now.addingTimeInterval(-range.seconds),
                                                      to: now, stepSeconds: loadStep)
        let (containers, latest, sparklines, series, timeline) = try await (containersQuery, latestQuery, sparklinesQuery, seriesQuery, timelineQuery)
        let load = try await loadQuery

        let rows = containers.map { container in
            let figure = latest[container.name]
            return ContainerRow(
                name: container.name, href: TargetPath.container(agentID, container.name), state: container.state,
                stateClass: WebFormat.cssClass(container.state), health: container.health, restarts: container.restartCount,
                cpu: figure?.cpuPercent.map(WebFormat.percent) ?? "–",
                memory: WebFormat.share(used: figure?.memoryBytes, total: figure?.memoryLimitBytes),
                sparkline: SVGChart.make(title: "CPU, last hour", from: now.addingTimeInterval(-3600), to: now,
                                         lines: [(name: "cpu", points: sparklines[container.name] ?? [])], gap: 150,
                                         format: WebFormat.percent))
        }
        let charts = [
            series.chart("CPU (percent of one core)", [("cpu", "cpu_percent")], format: WebFormat.percent),
            series.chart("Memory", [("used", "memory_bytes"), ("total", "memory_limit_bytes")], format: WebFormat.bytes),
            SVGChart.make(title: "Load (1-minute average)", from: series.from, to: series.to, lines: [(name: "load", points: load.map { ($0.ts, $0.load1) })],
                          gap: Double(loadStep) * 2.5, format: { String(format: "%.2f", $0) }),
            SVGChart.make(title: "Swap in use", from: series.from, to: series.to, lines: [(name: "swap", points: load.map { ($0.ts, $0.swapUsedBytes) })],
                          gap: Double(loadStep) * 2.5, format: WebFormat.bytes),
            series.chart("Disk (fullest filesystem)", [("used", "disk_used_percent")], yMax: 100, format: WebFormat.percent),
            series.chart("Network", [("received", "net_rx_bytes_per_second"), ("sent", "net_tx_bytes_per_second")],
                         format: { WebFormat.bytes($0) + "/s" }),
        ]
        return HostPage(session: SessionView(session), hostname: host.hostname, state: host.state.rawValue,
                        lastSeen: host.lastSeen.map { WebFormat.ago($0, now: now) } ?? "never", agentVersion: host.agentVersion,
                        rangeName: range.name, ranges: range.links(path: TargetPath.host(agentID)), charts: charts,
                        containers: rows, hasContainers: !rows.isEmpty,
                        uptime: StateBar.make(timeline.clipped, from: now.addingTimeInterval(-range.seconds).unixMicros, to: now.unixMicros))
    }
}

/// The container page: charts of CPU, memory against its limit, network and block I/O; lifecycle events and
/// health changes; its uptime bar and incidents with what the system knew around them.
struct ContainerPage {
    struct EventRow {
        let ts: String
        let action: String
        let detail: String
    }

    struct IncidentRow {
        let started: String
        let ended: String
        let duration: String
        let cause: String
        let context: [ContextItem]
    }

    struct ContextItem {
        let name: String
        let value: String
    }

    struct Label {
        let key: String
        let value: String
    }

    let session: SessionView
    let name: String
    let hostname: String
    let hostHref: String
    let image: String
    let labels: [Label]
    let hasLabels: Bool
    let state: String
    let stateClass: String
    let health: String
    let healthOutput: String
    let hasHealthOutput: Bool
    let restarts: Int
    let exitCode: Int
    let oomKilled: Bool
    let rangeName: String
    let ranges: [RangeLink]
    let charts: [SVGChart]
    let uptime: StateBar
    let availability: String
    let incidents: [IncidentRow]
    let hasIncidents: Bool
    let events: [EventRow]
    let hasEvents: Bool

    static func build(session: WebSession, agentID: UUID, name: String, range: PageRange, database: PostgresClient, logger: Logger,
                      now: Date) async throws -> ContainerPage? {
        let tenantID = session.user.tenantID
        let infrastructure = InfrastructureQueries(database: database, logger: logger)
        guard let container = try await infrastructure.container(tenantID: tenantID, agentID: agentID, name: name),
              let host = try await infrastructure.host(tenantID: tenantID, agentID: agentID) else { return nil }
        let target = TargetID.container(agentID: agentID, name: name)
        let from = now.addingTimeInterval(-range.seconds)
        async let seriesQuery = TargetSeries.load(tenantID: tenantID, target: target, intervalSeconds: host.intervalSeconds, range: range,
                                                  now: now, metrics: MetricsQueries(database: database, logger: logger))
        async let eventsQuery = HealthQueries(database: database, logger: logger).containerChanges(tenantID: tenantID, agentID: agentID,
                                                                                                     name: name, limit: 50)
        async let timelineQuery = UptimeReports(client: database, logger: logger)
            .targetTimeline(tenantID: tenantID, target: target, from: from.unixMicros, to: now.unixMicros)
        async let labelsQuery = infrastructure.containerLabels(tenantID: tenantID, agentID: agentID, name: name)
        let (series, events, timeline, labels) = try await (seriesQuery, eventsQuery, timelineQuery, labelsQuery)

        let incidents = try await incidentRows(tenantID: tenantID, target: target, raw: timeline.raw, database: database, logger: logger, now: now)
        let charts = [
            series.chart("CPU (percent of one core)", [("cpu", "cpu_percent")], format: WebFormat.percent),
            series.chart("Memory against its limit", [("used", "memory_bytes"), ("limit", "memory_limit_bytes")], format: WebFormat.bytes),
            series.chart("Network", [("received", "net_rx_bytes_per_second"), ("sent", "net_tx_bytes_per_second")],
                         format: { WebFormat.bytes($0) + "/s" }),
            series.chart("Block I/O", [("read", "block_read_bytes_per_second"), ("written", "block_write_bytes_per_second")],
                         format: { WebFormat.bytes($0) + "/s" }),
        ]
        let time = UptimeArithmetic.timeInStates(timeline.clipped)
        return ContainerPage(
            session: SessionView(session), name: container.name, hostname: host.hostname, hostHref: TargetPath.host(agentID),
            image: container.image, labels: labels.map { Label(key: $0.key, value: $0.value) }, hasLabels: !labels.isEmpty,
            state: container.state, stateClass: WebFormat.cssClass(container.state), health: container.health,
            healthOutput: container.healthOutput, hasHealthOutput: !container.healthOutput.isEmpty, restarts: container.restartCount, exitCode: container.exitCode,
            oomKilled: container.oomKilled, rangeName: range.name, ranges: range.links(path: TargetPath.container(agentID, name)),
            charts: charts, uptime: StateBar.make(timeline.clipped, from: from.unixMicros, to: now.unixMicros),
            availability: WebFormat.availability(time.availabilityPercent()), incidents: incidents, hasIncidents: !incidents.isEmpty,
            events: events.map { EventRow(ts: WebFormat.timestamp($0.ts), action: $0.action,
                                          detail: $0.exitCode.map { "exit code \($0)" } ?? $0.detail) },
            hasEvents: !events.isEmpty)
    }

    /// The newest 20 incidents of `raw` (a target's spans), newest first, each with what the system knew around it.
    static func incidentRows(tenantID: UUID, target: TargetID, raw: [SpanInterval], database: PostgresClient, logger: Logger,
                             now: Date) async throws -> [IncidentRow] {
        let context = IncidentContextQueries(client: database, logger: logger)
        var rows: [IncidentRow] = []
        for incident in UptimeArithmetic.incidents(raw).reversed().prefix(20) {
            let details = try await context.context(tenantID: tenantID, target: target, startMicros: incident.startMicros)
            rows.append(IncidentRow(
                started: WebFormat.timestamp(Date(unixMicros: incident.startMicros)),
                ended: incident.endMicros.map { WebFormat.timestamp(Date(unixMicros: $0)) } ?? "ongoing",
                duration: WebFormat.duration(seconds: incident.durationSeconds(nowMicros: now.unixMicros)),
                cause: incident.cause, context: items(details)))
        }
        return rows
    }

    /// An incident's context object as name/value lines.
    static func items(_ value: JSONValue) -> [ContextItem] {
        guard case .object(let fields) = value else { return [] }
        return fields.sorted { $0.key < $1.key }.map { key, value in
            let text: String
            switch value {
            case .string(let string): text = string
            case .number(let number): text = String(format: "%g", number)
            case .integer(let integer): text = "\(integer)"
            case .bool(let bool): text = bool ? "yes" : "no"
            case .null: text = "–"
            default: text = value.jsonText
            }
            return ContextItem(name: key.replacingOccurrences(of: "_", with: " "), value: text)
        }
    }
}
