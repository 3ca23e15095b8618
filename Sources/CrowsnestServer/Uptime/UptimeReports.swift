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

    /// The windows that cover `target` (naming it, or tenant-wide) within `[from, to)`, normalized.
    static func windows(for target: TargetID, in windows: [MaintenanceWindowDefinition], from: Int64, to: Int64,
                        timeZone: TimeZone) -> [(start: Int64, end: Int64)] {
        let id = target.description
        return IntervalSet.normalized(windows.filter { $0.isTenantWide || $0.targets.contains(id) }
            .flatMap { $0.intervals(from: from, to: to, tenantTimeZone: timeZone) })
    }

    /// The windows that cover `service` (naming it, or tenant-wide) within `[from, to)`, normalized.
    static func windows(for service: ServiceID, in windows: [MaintenanceWindowDefinition], from: Int64, to: Int64,
                        timeZone: TimeZone) -> [(start: Int64, end: Int64)] {
        let id = service.description
        return IntervalSet.normalized(windows.filter { $0.isTenantWide || $0.services.contains(id) }
            .flatMap { $0.intervals(from: from, to: to, tenantTimeZone: timeZone) })
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
                                          maintenance: Self.windows(for: target, in: windows, from: from, to: to, timeZone: zone))
        return (clipped, raw)
    }

    /// A service's spans over `[from, to)`: its members' timelines (with their maintenance) combined by its rule,
    /// then its own and tenant-wide maintenance applied.
    public func serviceTimeline(tenantID: UUID, id: ServiceID, service: ServiceDefinition, from: Int64, to: Int64,
                                windows: [MaintenanceWindowDefinition], timeZone: TimeZone) async throws -> [SpanInterval] {
        guard from < to else { return [] }
        let members = try await queries.members(tenantID: tenantID, service: service)
        let spans = try await StatusSpanStore.spans(tenantID: tenantID, targetIDs: members.map(\.id.description),
                                                    fromMicros: from, toMicros: to, on: client, logger: logger)
        let timelines = members.map { member in
            ServiceTimeline.Member(name: member.name, spans: IntervalSet.overlay(
                UptimeArithmetic.clip(spans[member.id.description] ?? [], from: from, to: to),
                maintenance: Self.windows(for: member.id, in: windows, from: from, to: to, timeZone: timeZone)))
        }
        let combined = ServiceTimeline.combine(timelines, rule: service.downRule, from: from, to: to)
        return IntervalSet.overlay(combined, maintenance: Self.windows(for: id, in: windows, from: from, to: to, timeZone: timeZone))
    }

    /// The SLA report of every service of the tenant for one calendar month, each cut in its policy's time zone
    /// (else the tenant's), measured up to `now`.
    public func report(tenantID: UUID, period: ReportPeriod, now: Date) async throws -> (tenant: String, services: [ServiceSLA]) {
        let tenant = try await queries.tenant(tenantID)
        let windows = try await maintenanceWindows(tenantID: tenantID)
        let services = try await DefinitionStore(.services, client: client, logger: logger).list(tenantID: tenantID)
        var figures: [ServiceSLA] = []
        for stored in services {
            guard let service = try? ServiceDefinition.parse(stored.definition) else { continue }
            let zone = service.policy.timeZone.flatMap(TimeZone.init(identifier:)) ?? tenant.timeZone
            let (start, end) = period.bounds(in: zone)
            let measuredEnd = min(end, now.unixMicros)
            let spans = try await serviceTimeline(tenantID: tenantID, id: ServiceID(uuid: stored.id), service: service,
                                                  from: start, to: measuredEnd, windows: windows, timeZone: tenant.timeZone)
            figures.append(SLAReport.figures(name: service.name, policy: service.policy, spans: spans, periodStart: start,
                                             periodEnd: end, timeZone: zone))
        }
        return (tenant.name, figures)
    }
}
