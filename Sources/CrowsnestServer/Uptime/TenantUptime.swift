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
public struct TenantOverview: Sendable {
    /// Every current target over the last 30 days.
    public var targets: [TargetUptime]
    public var pausedChecks: Set<TargetID>
    /// Time per state summed per kind (`host`, `container`, `check`, `all`) over the last 24 hours and 30 days.
    public var lastDay: [String: UptimeTotal]
    public var lastMonth: [String: UptimeTotal]
    public var nowMicros: Int64

    static let day: Int64 = 86_400_000_000
}

extension UptimeReports {
    /// The tenant's overview as of `now`.
    public func overview(tenantID: UUID, now: Date) async throws -> TenantOverview {
        let end = now.unixMicros
        let month = try await tenantTargets(tenantID: tenantID, from: end - 30 * TenantOverview.day, to: end)
        let lastDay = month.targets.map { uptime in
            var day = uptime
            day.clipped = IntervalSet.intersect(uptime.clipped, with: [(end - TenantOverview.day, end)])
            return day
        }
        return TenantOverview(targets: month.targets, pausedChecks: month.pausedChecks, lastDay: Self.totals(lastDay),
                              lastMonth: Self.totals(month.targets), nowMicros: end)
    }
}
