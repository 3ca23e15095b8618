import CrowsnestWire
import Foundation
import Logging
import PostgresNIO

/// Timelines and SLA reports from what is stored: targets' spans, services' members, maintenance windows. The
/// arithmetic is `UptimeArithmetic`, `ServiceTimeline` and `SLAReport`; this type only gathers their inputs.
public struct UptimeReports: Sendable {
    let client: PostgresClient
    let logger: Logger
    private let queries: UptimeQueries

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
        self.queries = UptimeQueries(client: client, logger: logger)
    }

    /// The tenant's maintenance windows.
    public func maintenanceWindows(tenantID: UUID) async throws -> [MaintenanceWindowDefinition] {
        try await DefinitionStore(.maintenanceWindows, client: client, logger: logger).list(tenantID: tenantID)
            .compactMap { try? MaintenanceWindowDefinition.parse($0.definition) }
    }

    /// One target's spans cut to `[from, to)`, gaps as unknown, maintenance windows applied.
    public func targetTimeline(tenantID: UUID, target: TargetID, from: Int64, to: Int64) async throws
        -> (clipped: [SpanInterval], raw: [SpanInterval]) {
        guard from < to else { return ([], []) }
        let zone = try await queries.tenant(tenantID).timeZone
        let windows = try await maintenanceWindows(tenantID: tenantID)
        let raw = try await StatusSpanStore.spans(tenantID: tenantID, targetID: target.description, fromMicros: from,
                                                  toMicros: to, on: client, logger: logger)
        let clipped = IntervalSet.overlay(UptimeArithmetic.clip(raw, from: from, to: to),
                                          maintenance: MaintenanceCoverage(windows: windows, from: from, to: to, timeZone: zone)
                                              .intervals(for: target))
        return (clipped, raw)
    }

    /// Several targets' spans over `[from, to)` read in one query, gaps as unknown, maintenance windows applied.
    public func targetTimelines(tenantID: UUID, targets: [TargetID], from: Int64, to: Int64,
                                windows: [MaintenanceWindowDefinition], timeZone: TimeZone) async throws -> [TargetID: [SpanInterval]] {
        guard from < to, !targets.isEmpty else { return [:] }
        let coverage = MaintenanceCoverage(windows: windows, from: from, to: to, timeZone: timeZone)
        let spans = try await StatusSpanStore.spans(tenantID: tenantID, targetIDs: targets.map(\.description),
                                                    fromMicros: from, toMicros: to, on: client, logger: logger)
        var timelines: [TargetID: [SpanInterval]] = [:]
        for target in targets {
            timelines[target] = IntervalSet.overlay(UptimeArithmetic.clip(spans[target.description] ?? [], from: from, to: to),
                                                    maintenance: coverage.intervals(for: target))
        }
        return timelines
    }

    /// A service's spans over `[from, to)`: its members' timelines (with their maintenance) combined by its rule,
    /// then its own and tenant-wide maintenance applied.
    public func serviceTimeline(tenantID: UUID, id: ServiceID, service: ServiceDefinition, from: Int64, to: Int64,
                                windows: [MaintenanceWindowDefinition], timeZone: TimeZone) async throws -> [SpanInterval] {
        guard from < to else { return [] }
        let coverage = MaintenanceCoverage(windows: windows, from: from, to: to, timeZone: timeZone)
        let members = try await queries.members(tenantID: tenantID, service: service)
        let spans = try await StatusSpanStore.spans(tenantID: tenantID, targetIDs: members.map(\.id.description),
                                                    fromMicros: from, toMicros: to, on: client, logger: logger)
        let timelines = members.map { member in
            ServiceTimeline.Member(name: member.name, spans: IntervalSet.overlay(
                UptimeArithmetic.clip(spans[member.id.description] ?? [], from: from, to: to),
                maintenance: coverage.intervals(for: member.id)))
        }
        let combined = ServiceTimeline.combine(timelines, rule: service.downRule, from: from, to: to)
        return IntervalSet.overlay(combined, maintenance: coverage.intervals(for: id))
    }

    /// The SLA report of every service of the tenant for one calendar month, each cut in its policy's time zone
    /// (else the tenant's), measured up to `now`.
    public func report(tenantID: UUID, period: ReportPeriod, now: Date) async throws -> (tenant: String, services: [ServiceSLA]) {
        let tenant = try await queries.tenant(tenantID)
        let windows = try await maintenanceWindows(tenantID: tenantID)
        let services = try await DefinitionStore(.services, client: client, logger: logger).list(tenantID: tenantID)
            .compactMap { stored in (try? ServiceDefinition.parse(stored.definition)).map { (ServiceID(uuid: stored.id), $0) } }
        // Services are independent: a few at a time, so one's database round trips overlap another's arithmetic.
        let figures = try await Self.concurrently(services, limit: Self.reportConcurrency) { (id, service) in
            let zone = service.policy.timeZone.flatMap(TimeZone.init(identifier:)) ?? tenant.timeZone
            let (start, end) = period.bounds(in: zone)
            let measuredEnd = min(end, now.unixMicros)
            let spans = try await serviceTimeline(tenantID: tenantID, id: id, service: service, from: start, to: measuredEnd,
                                                  windows: windows, timeZone: tenant.timeZone)
            return SLAReport.figures(name: service.name, policy: service.policy, spans: spans, periodStart: start,
                                     periodEnd: end, timeZone: zone)
        }
        return (tenant.name, figures)
    }

    /// Services computed at once by one report.
    static let reportConcurrency = 4

    /// `transform` applied to every element, at most `limit` at a time; results in the elements' order.
    static func concurrently<Element: Sendable, Result: Sendable>(
        _ elements: [Element], limit: Int, _ transform: @escaping @Sendable (Element) async throws -> Result
    ) async throws -> [Result] {
        try await withThrowingTaskGroup(of: (Int, Result).self) { group in
            var results = [Result?](repeating: nil, count: elements.count)
            var next = 0
            while next < min(limit, elements.count) {
                let index = next
                group.addTask { (index, try await transform(elements[index])) }
                next += 1
            }
            while let (index, result) = try await group.next() {
                results[index] = result
                if next < elements.count {
                    let index = next
                    group.addTask { (index, try await transform(elements[index])) }
                    next += 1
                }
            }
            return results.compactMap { $0 }
        }
    }
}

/// The maintenance windows of a tenant turned into intervals of one range, once: tenant-wide ones shared by every
/// target and service, the others by whom they name (weekly windows need calendar arithmetic, too slow to repeat
/// for each of a thousand targets).
struct MaintenanceCoverage {
    let tenantWide: [(start: Int64, end: Int64)]
    let byTarget: [String: [(start: Int64, end: Int64)]]
    let byService: [String: [(start: Int64, end: Int64)]]

    init(windows: [MaintenanceWindowDefinition], from: Int64, to: Int64, timeZone: TimeZone) {
        var tenantWide: [(start: Int64, end: Int64)] = []
        var byTarget: [String: [(start: Int64, end: Int64)]] = [:]
        var byService: [String: [(start: Int64, end: Int64)]] = [:]
        for window in windows {
            let intervals = window.intervals(from: from, to: to, tenantTimeZone: timeZone)
            guard !intervals.isEmpty else { continue }
            if window.isTenantWide { tenantWide += intervals }
            for target in window.targets { byTarget[target, default: []] += intervals }
            for service in window.services { byService[service, default: []] += intervals }
        }
        self.tenantWide = IntervalSet.normalized(tenantWide)
        self.byTarget = byTarget.mapValues { IntervalSet.normalized($0 + tenantWide) }
        self.byService = byService.mapValues { IntervalSet.normalized($0 + tenantWide) }
    }

    /// The windows that cover `target` (naming it, or tenant-wide), normalized.
    func intervals(for target: TargetID) -> [(start: Int64, end: Int64)] {
        byTarget[target.description] ?? tenantWide
    }

    /// The windows that cover `service` (naming it, or tenant-wide), normalized.
    func intervals(for service: ServiceID) -> [(start: Int64, end: Int64)] {
        byService[service.description] ?? tenantWide
    }
}
