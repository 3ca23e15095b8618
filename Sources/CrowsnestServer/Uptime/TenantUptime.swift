import CrowsnestWire
import Foundation

/// One target's time over a window: its spans cut to the window with maintenance applied, and the raw spans
/// (for incidents, which are reported whole).
public struct TargetUptime: Sendable {
    public var target: NamedTarget
    public var clipped: [SpanInterval]
    public var raw: [SpanInterval]

    public var time: TimeInStates { UptimeArithmetic.timeInStates(clipped) }

    /// The state at the window's end (its last span's), `unknown` for an empty window.
    public var currentState: SpanState { clipped.last?.state ?? .unknown }

    /// Incidents that overlap the window.
    public var incidents: [Incident] { UptimeArithmetic.incidents(raw) }
}

/// Up and down time of several targets, summed: the availability of a kind of target or of a whole tenant.
public struct UptimeTotal: Sendable, Equatable {
    public var time = TimeInStates()
    public var targets = 0

    public init() {}

    public mutating func add(_ time: TimeInStates) {
        self.time.up += time.up
        self.time.degraded += time.degraded
        self.time.down += time.down
        self.time.unknown += time.unknown
        self.time.maintenance += time.maintenance
        targets += 1
    }

    /// Adds another sum of targets (its time and its count).
    public mutating func add(_ other: UptimeTotal) {
        add(other.time)
        targets += other.targets - 1
    }
}

extension UptimeReports {
    /// Every current target of the tenant over `[from, to)`, each with its maintenance applied.
    public func tenantTargets(tenantID: UUID, from: Int64, to: Int64) async throws
        -> (targets: [TargetUptime], pausedChecks: Set<TargetID>, windows: [MaintenanceWindowDefinition], timeZone: TimeZone) {
        let queries = UptimeQueries(client: client, logger: logger)
        let zone = try await queries.tenant(tenantID).timeZone
        let windows = try await maintenanceWindows(tenantID: tenantID)
        let (targets, paused) = try await queries.allTargets(tenantID: tenantID)
        let spans = from < to
            ? try await StatusSpanStore.spans(tenantID: tenantID, targetIDs: targets.map(\.id.description), fromMicros: from,
                                              toMicros: to, on: client, logger: logger)
            : [:]
        let coverage = MaintenanceCoverage(windows: windows, from: from, to: to, timeZone: zone)
        let uptimes = targets.map { target in
            let raw = spans[target.id.description] ?? []
            let clipped = IntervalSet.overlay(UptimeArithmetic.clip(raw, from: from, to: to),
                                              maintenance: coverage.intervals(for: target.id))
            return TargetUptime(target: target, clipped: clipped, raw: raw)
        }
        return (uptimes, paused, windows, zone)
    }

    /// The times of `uptimes` summed per kind (`host`, `container`, `check`) and over all of them (`all`).
    public static func totals(_ uptimes: [TargetUptime]) -> [String: UptimeTotal] {
        var totals: [String: UptimeTotal] = ["host": UptimeTotal(), "container": UptimeTotal(), "check": UptimeTotal(), "all": UptimeTotal()]
        for uptime in uptimes {
            let time = uptime.time
            totals[uptime.target.id.kind, default: UptimeTotal()].add(time)
            totals["all", default: UptimeTotal()].add(time)
        }
        return totals
    }
}

/// The tenant at a glance over the last 30 days and the last 24 hours, as the dashboard overview (API and page)
/// shows it.
struct TenantOverview: Sendable {
    /// Every current target and its state now (maintenance applied; `unknown` without a current span).
    var states: [(target: NamedTarget, state: SpanState)]
    var pausedChecks: Set<TargetID>
    /// Time per state summed per kind (`host`, `container`, `check`, `all`) over the last 24 hours and 30 days.
    var lastDay: [String: UptimeTotal]
    var lastMonth: [String: UptimeTotal]
    /// Incidents still open, newest first.
    var openIncidents: [IncidentJSON]
    var nowMicros: Int64

    static let day: Int64 = 86_400_000_000
    static let kinds = ["host", "container", "check"]
}

extension UptimeReports {
    /// `overview`, for the benchmark's breakdown (the type is internal).
    public func overviewForBenchmark(tenantID: UUID, now: Date) async throws {
        _ = try await overview(tenantID: tenantID, now: now)
    }

    /// The tenant's overview as of `now`. Time per state is summed by PostgreSQL (`UptimeQueries.stateTotals`) for
    /// every target under only the tenant-wide maintenance, so thousands of targets cost a few result rows; targets
    /// with windows of their own, and targets down now (for their open incidents), have their spans read.
    func overview(tenantID: UUID, now: Date) async throws -> TenantOverview {
        let end = now.unixMicros
        let queries = UptimeQueries(client: client, logger: logger)
        let zone = try await queries.tenant(tenantID).timeZone
        let windows = try await maintenanceWindows(tenantID: tenantID)
        let (targets, paused) = try await queries.allTargets(tenantID: tenantID)
        let ranges: [(from: Int64, to: Int64)] = [(end - TenantOverview.day, end), (end - 30 * TenantOverview.day, end)]
        let coverage = MaintenanceCoverage(windows: windows, from: ranges[1].from, to: end, timeZone: zone)
        let own = targets.filter { coverage.byTarget[$0.id.description] != nil }
        let shared = targets.filter { coverage.byTarget[$0.id.description] == nil }
        async let totalsQuery = queries.stateTotals(tenantID: tenantID, targetIDs: shared.map(\.id.description), to: end,
                                                    froms: ranges.map(\.from), maintenance: coverage.tenantWide)
        async let lastQuery = queries.lastSpans(tenantID: tenantID, targetIDs: targets.map(\.id.description))
        let (spanTotals, last) = try await (totalsQuery, lastQuery)

        var totals = ranges.map { _ in [String: UptimeTotal]() }
        var states: [(target: NamedTarget, state: SpanState)] = []
        var downNow: [NamedTarget] = []
        for target in targets {
            let maintenance = coverage.intervals(for: target.id)
            var state = SpanState.unknown
            if let span = last[target.id.description], span.startMicros < end, (span.endMicros ?? Int64.max) >= end { state = span.state }
            if maintenance.contains(where: { $0.start < end && $0.end >= end }) { state = .maintenance }
            states.append((target, state))
            if state == .down { downNow.append(target) }
        }
        // Targets under the tenant-wide windows only: the sums from PostgreSQL; maintenance is the windows' time,
        // and what neither covers is unknown.
        let sharedCounts = Dictionary(grouping: shared, by: \.id.kind).mapValues(\.count)
        for (index, range) in ranges.enumerated() {
            let windowMaintenance = coverage.tenantWide.reduce(Int64(0)) { $0 + max(0, min($1.end, range.to) - max($1.start, range.from)) }
            for kind in TenantOverview.kinds {
                let count = Int64(sharedCounts[kind] ?? 0)
                let stored = spanTotals[index][kind] ?? [:]
                var total = UptimeTotal()
                total.targets = Int(count)
                total.time.up = stored[.up] ?? 0
                total.time.degraded = stored[.degraded] ?? 0
                total.time.down = stored[.down] ?? 0
                total.time.maintenance = count * windowMaintenance + (stored[.maintenance] ?? 0)
                total.time.unknown = count * (range.to - range.from) - total.time.up - total.time.degraded - total.time.down
                    - total.time.maintenance
                totals[index][kind] = total
            }
        }
        // Targets with windows of their own, and those down now: their spans, read whole over the 30 days.
        let read = own + downNow.filter { coverage.byTarget[$0.id.description] == nil }
        let spans = try await StatusSpanStore.spans(tenantID: tenantID, targetIDs: read.map(\.id.description),
                                                    fromMicros: ranges[1].from, toMicros: end, on: client, logger: logger)
        for target in own {
            let raw = spans[target.id.description] ?? []
            let clipped = IntervalSet.overlay(UptimeArithmetic.clip(raw, from: ranges[1].from, to: end),
                                              maintenance: coverage.intervals(for: target.id))
            for (index, range) in ranges.enumerated() {
                let time = UptimeArithmetic.timeInStates(IntervalSet.intersect(clipped, with: [(range.from, range.to)]))
                totals[index][target.id.kind, default: UptimeTotal()].add(time)
            }
        }
        for index in ranges.indices {
            var all = UptimeTotal()
            for kind in TenantOverview.kinds { all.add(totals[index][kind] ?? UptimeTotal()) }
            totals[index]["all"] = all
        }
        let uptimes = downNow.map { TargetUptime(target: $0, clipped: [], raw: spans[$0.id.description] ?? []) }
        return TenantOverview(states: states, pausedChecks: paused, lastDay: totals[0], lastMonth: totals[1],
                              openIncidents: IncidentJSON.list(uptimes, from: end - 1, to: end, openOnly: true), nowMicros: end)
    }
}
