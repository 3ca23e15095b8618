import CrowsnestWire
import Foundation
import XCTest

@testable import CrowsnestServer

/// The overview's time per state, summed by PostgreSQL, equals the span arithmetic done in Swift
/// (`UptimeArithmetic` over `tenantTargets`) on the same spans: gaps, unknown spans, open spans, a tenant-wide
/// weekly window, a one-off window for one target.
final class OverviewTotalsTests: XCTestCase {
    func testSQLTotalsEqualTheSpanArithmeticWithMaintenanceWindows() async throws {
        try await APITestHarness.withAPI { seed, _ in
            let tenant = try await seed.tenant()
            let logger = APITestHarness.logger
            let now = Date()
            func ago(_ seconds: Double) -> Date { now.addingTimeInterval(-seconds) }
            let hostA = try await seed.agent(tenant: tenant, hostname: "a", lastSeenSecondsAgo: 1)
            let hostB = try await seed.agent(tenant: tenant, hostname: "b", lastSeenSecondsAgo: 900)
            for name in ["web", "db", "cron"] { try await seed.container(tenant: tenant, agent: hostA, name: name) }
            let web = TargetID.container(agentID: hostA, name: "web"), db = TargetID.container(agentID: hostA, name: "db")
            try await seed.statusSpan(tenant: tenant, target: .host(agentID: hostA), state: "up", startedAt: ago(40 * 86_400), endedAt: nil)
            try await seed.statusSpan(tenant: tenant, target: .host(agentID: hostB), state: "up", startedAt: ago(20 * 86_400), endedAt: ago(86_400))
            try await seed.statusSpan(tenant: tenant, target: .host(agentID: hostB), state: "unknown", startedAt: ago(86_400), endedAt: nil)
            try await seed.statusSpan(tenant: tenant, target: web, state: "up", startedAt: ago(35 * 86_400), endedAt: ago(9 * 86_400))
            try await seed.statusSpan(tenant: tenant, target: web, state: "down", startedAt: ago(9 * 86_400), endedAt: ago(9 * 86_400 - 5000))
            try await seed.statusSpan(tenant: tenant, target: web, state: "degraded", startedAt: ago(9 * 86_400 - 5000), endedAt: ago(3 * 86_400))
            // A gap, then up again.
            try await seed.statusSpan(tenant: tenant, target: web, state: "up", startedAt: ago(2 * 86_400), endedAt: nil)
            try await seed.statusSpan(tenant: tenant, target: db, state: "up", startedAt: ago(10 * 86_400), endedAt: ago(7200))
            try await seed.statusSpan(tenant: tenant, target: db, state: "down", startedAt: ago(7200), endedAt: nil)
            let windows = DefinitionStore(.maintenanceWindows, client: seed.database, logger: logger)
            let weekly = try MaintenanceWindowDefinition.parse(JSONValue.parse(Data(
                #"{"name":"patch","recurrence":{"days":["mon","thu"],"start":"02:00","duration_minutes":90}}"#.utf8)))
            _ = try await windows.create(tenantID: tenant, name: weekly.name, definition: weekly.json)
            let once = try MaintenanceWindowDefinition.parse(JSONValue.parse(Data(
                #"{"name":"db move","targets":["\#(db.description)"],"starts_at":"\#(RFC3339.string(from: ago(3 * 3600)))","ends_at":"\#(RFC3339.string(from: ago(3000)))"}"#.utf8)))
            _ = try await windows.create(tenantID: tenant, name: once.name, definition: once.json)

            let reports = UptimeReports(client: seed.database, logger: logger)
            let overview = try await reports.overview(tenantID: tenant, now: now)
            let end = now.unixMicros
            for (window, totals) in [(TenantOverview.day, overview.lastDay), (30 * TenantOverview.day, overview.lastMonth)] {
                let reference = UptimeReports.totals(try await reports.tenantTargets(tenantID: tenant, from: end - window, to: end).targets)
                for kind in ["host", "container", "check", "all"] {
                    let sql = try XCTUnwrap(totals[kind]), swift = try XCTUnwrap(reference[kind])
                    XCTAssertEqual(sql.targets, swift.targets, kind)
                    for (name, a, b) in [("up", sql.time.up, swift.time.up), ("degraded", sql.time.degraded, swift.time.degraded),
                                         ("down", sql.time.down, swift.time.down), ("unknown", sql.time.unknown, swift.time.unknown),
                                         ("maintenance", sql.time.maintenance, swift.time.maintenance)] {
                        XCTAssertEqual(Double(a), Double(b), accuracy: 100, "\(kind) \(name) over \(window / 3_600_000_000) h")
                    }
                }
            }
            XCTAssertGreaterThan(overview.lastMonth["container"]?.time.maintenance ?? 0, 0, "the weekly window counted")
            let states = Dictionary(uniqueKeysWithValues: overview.states.map { ($0.target.id, $0.state) })
            XCTAssertEqual(states[db], .down)
            XCTAssertEqual(states[.host(agentID: hostB)], .unknown)
            XCTAssertEqual(states[.container(agentID: hostA, name: "cron")], .unknown, "no span: unknown")
            XCTAssertEqual(overview.openIncidents.map(\.target.id), [db])
        }
    }
}
