import CrowsnestWire
import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import XCTest

@testable import CrowsnestServer

/// The overview, the uptime summary and the incident list against a real PostgreSQL, with spans seeded relative
/// to now.
final class DashboardRouteTests: XCTestCase {
    func testTheOverviewCountsTargetsByStateAndShowsAvailabilityAndOpenIncidents() async throws {
        try await APITestHarness.withAPI { seed, client in
            let tenant = try await seed.tenant(), other = try await seed.tenant()
            let key = try await seed.apiKey(tenant: tenant)
            let now = Date()
            func ago(_ seconds: Double) -> Date { now.addingTimeInterval(-seconds) }
            let up = try await seed.agent(tenant: tenant, hostname: "a-up", lastSeenSecondsAgo: 1)
            let silent = try await seed.agent(tenant: tenant, hostname: "b-silent", lastSeenSecondsAgo: 600)
            try await seed.statusSpan(tenant: tenant, target: .host(agentID: up), state: "up", startedAt: ago(40 * 86_400), endedAt: nil)
            try await seed.statusSpan(tenant: tenant, target: .host(agentID: silent), state: "up", startedAt: ago(2 * 86_400), endedAt: ago(600))
            try await seed.statusSpan(tenant: tenant, target: .host(agentID: silent), state: "unknown", startedAt: ago(600), endedAt: nil)
            for name in ["web", "db", "job"] { try await seed.container(tenant: tenant, agent: up, name: name) }
            let web = TargetID.container(agentID: up, name: "web"), db = TargetID.container(agentID: up, name: "db")
            // web: up 30 days except one hour down 10 days ago; db: down for the last 6 hours; job: no span.
            try await seed.statusSpan(tenant: tenant, target: web, state: "up", startedAt: ago(31 * 86_400), endedAt: ago(10 * 86_400))
            try await seed.statusSpan(tenant: tenant, target: web, state: "down", startedAt: ago(10 * 86_400), endedAt: ago(10 * 86_400 - 3600),
                                      cause: "exited with code 1")
            try await seed.statusSpan(tenant: tenant, target: web, state: "up", startedAt: ago(10 * 86_400 - 3600), endedAt: nil)
            try await seed.statusSpan(tenant: tenant, target: db, state: "up", startedAt: ago(31 * 86_400), endedAt: ago(6 * 3600))
            try await seed.statusSpan(tenant: tenant, target: db, state: "down", startedAt: ago(6 * 3600), endedAt: nil, cause: "OOM killed")
            // Another tenant's outage must not show.
            let theirs = try await seed.agent(tenant: other, hostname: "theirs", lastSeenSecondsAgo: 1)
            try await seed.container(tenant: other, agent: theirs, name: "secret")
            try await seed.statusSpan(tenant: other, target: .container(agentID: theirs, name: "secret"), state: "down",
                                      startedAt: ago(3600), endedAt: nil, cause: "theirs")

            let response = try await client.execute(uri: "/api/v1/dashboard/overview", method: .get, headers: bearer(key.secret))
            XCTAssertEqual(response.status, .ok)
            let body = try response.jsonObject()
            let hosts = try XCTUnwrap(body["hosts"] as? [String: Any])
            XCTAssertEqual(hosts["total"] as? Int, 2)
            XCTAssertEqual(hosts["by_state"] as? NSDictionary, ["up": 1, "unknown": 1])
            let containers = try XCTUnwrap(body["containers"] as? [String: Any])
            XCTAssertEqual(containers["total"] as? Int, 3)
            XCTAssertEqual((containers["by_state"] as? [String: Int])?.filter { $0.value > 0 }, ["up": 1, "down": 1, "unknown": 1])
            let availability = try XCTUnwrap(body["availability"] as? [String: [String: [String: Any]]])
            // 24 h: web up all day, db up 18 h of 24 → 42 / 48.
            XCTAssertEqual(try XCTUnwrap(availability["last_24h"]?["containers"]?["availability_percent"] as? Double),
                           42.0 / 48 * 100, accuracy: 0.01)
            // 30 d: web down 1 h, db down 6 h, of 60 days of container time.
            XCTAssertEqual(try XCTUnwrap(availability["last_30d"]?["containers"]?["availability_percent"] as? Double),
                           (60.0 * 24 - 7) / (60 * 24) * 100, accuracy: 0.01)
            XCTAssertEqual(try XCTUnwrap(availability["last_30d"]?["hosts"]?["availability_percent"] as? Double), 100, accuracy: 1e-9,
                           "a silent host is unknown, not down")
            XCTAssertTrue(availability["last_30d"]?["checks"]?["availability_percent"] is NSNull, "no checks: no availability")
            let open = try XCTUnwrap(body["open_incidents"] as? [[String: Any]])
            XCTAssertEqual(open.count, 1)
            XCTAssertEqual((open.first?["target"] as? [String: Any])?["id"] as? String, db.description)
            XCTAssertEqual(open.first?["cause"] as? String, "OOM killed")
            XCTAssertTrue(open.first?["ended_at"] is NSNull)
            XCTAssertEqual(try XCTUnwrap(open.first?["duration_seconds"] as? Double), 6 * 3600, accuracy: 5)
            XCTAssertFalse(String(buffer: response.body).contains("theirs"))
        }
    }

    func testTheSummaryAndTheIncidentListCoverTheRangeAndRefuseBadInput() async throws {
        try await APITestHarness.withAPI { seed, client in
            let tenant = try await seed.tenant()
            let admin = try await seed.apiKey(tenant: tenant, role: .admin)
            let agent = try await seed.agent(tenant: tenant, hostname: "vps", lastSeenSecondsAgo: 1)
            try await seed.container(tenant: tenant, agent: agent, name: "web")
            let web = TargetID.container(agentID: agent, name: "web")
            try await seed.statusSpan(tenant: tenant, target: web, state: "up", startedAt: instant("2025-03-01T00:00:00Z"), endedAt: instant("2025-03-01T10:00:00Z"))
            try await seed.statusSpan(tenant: tenant, target: web, state: "down", startedAt: instant("2025-03-01T10:00:00Z"),
                                      endedAt: instant("2025-03-01T10:15:00Z"), cause: "exited with code 1")
            try await seed.statusSpan(tenant: tenant, target: web, state: "up", startedAt: instant("2025-03-01T10:15:00Z"), endedAt: instant("2025-03-01T20:00:00Z"))
            try await seed.statusSpan(tenant: tenant, target: web, state: "down", startedAt: instant("2025-03-01T20:00:00Z"),
                                      endedAt: instant("2025-03-01T20:05:00Z"), cause: "exited with code 2")
            try await seed.statusSpan(tenant: tenant, target: web, state: "up", startedAt: instant("2025-03-01T20:05:00Z"), endedAt: nil)
            let created = try await client.execute(uri: "/api/v1/services", method: .post, headers: bearer(admin.secret),
                                                   body: ByteBuffer(string: #"{"name":"site","targets":["\#(web)"],"objective_percent":98}"#))
            XCTAssertEqual(created.status, .created)

            let range = "from=2025-03-01T00:00:00Z&to=2025-03-02T00:00:00Z"
            let summary = try await client.execute(uri: "/api/v1/uptime/summary?\(range)", method: .get, headers: bearer(admin.secret))
            XCTAssertEqual(summary.status, .ok)
            let body = try summary.jsonObject()
            let container = try XCTUnwrap((body["kinds"] as? [String: [String: Any]])?["container"])
            XCTAssertEqual(try XCTUnwrap(container["availability_percent"] as? Double), (1440.0 - 20) / 1440 * 100, accuracy: 1e-9)
            let service = try XCTUnwrap((body["services"] as? [[String: Any]])?.first)
            XCTAssertEqual(service["name"] as? String, "site")
            XCTAssertEqual(service["incident_count"] as? Int, 2)
            XCTAssertEqual(service["met"] as? Bool, true, "20 minutes is within 2 % of a day (28.8 minutes)")
            let incidents = try XCTUnwrap(body["incidents"] as? [[String: Any]])
            XCTAssertEqual(incidents.map { $0["cause"] as? String }, ["exited with code 2", "exited with code 1"], "newest first")

            let list = try await client.execute(uri: "/api/v1/incidents?\(range)", method: .get, headers: bearer(admin.secret))
            let listed = try XCTUnwrap(try list.jsonObject()["incidents"] as? [[String: Any]])
            XCTAssertEqual(listed.map { $0["id"] as? String }, incidents.map { $0["id"] as? String })
            let open = try await client.execute(uri: "/api/v1/incidents?\(range)&state=open", method: .get, headers: bearer(admin.secret))
            XCTAssertEqual((try open.jsonObject()["incidents"] as? [Any])?.count, 0)

            for (path, message) in [("/api/v1/incidents?state=closed", "state must be open or all"),
                                    ("/api/v1/uptime/summary?from=2025-03-02T00:00:00Z&to=2025-03-01T00:00:00Z", "must be before to")] {
                let refused = try await client.execute(uri: path, method: .get, headers: bearer(admin.secret))
                XCTAssertEqual(refused.status, .badRequest, path)
                XCTAssertTrue(try refused.apiError().message.contains(message), path)
            }
        }
    }
}

/// Per-key rate limits through the lease keyspace's INCR: 429 with Retry-After past the limit, other keys unaffected.
final class APIRateLimitTests: XCTestCase {
    func testAKeyOverItsLimitGets429WithRetryAfterAndOtherKeysDoNot() async throws {
        try await APITestHarness.withAPI(requestsPerMinute: 5) { seed, client in
            let tenant = try await seed.tenant()
            let busy = try await seed.apiKey(tenant: tenant), calm = try await seed.apiKey(tenant: tenant)
            for index in 1...5 {
                let response = try await client.execute(uri: "/api/v1/infrastructure", method: .get, headers: bearer(busy.secret))
                XCTAssertEqual(response.status, .ok, "request \(index) is within the limit")
            }
            let refused = try await client.execute(uri: "/api/v1/infrastructure", method: .get, headers: bearer(busy.secret))
            XCTAssertEqual(refused.status, .tooManyRequests)
            let retryAfter = try XCTUnwrap(Int(refused.headers[.retryAfter] ?? ""))
            XCTAssertTrue((1...60).contains(retryAfter), "\(retryAfter)")
            XCTAssertEqual(try refused.apiError().code, "rate_limited")
            let other = try await client.execute(uri: "/api/v1/infrastructure", method: .get, headers: bearer(calm.secret))
            XCTAssertEqual(other.status, .ok, "each key has its own window")
            let unauthenticated = try await client.execute(uri: "/api/v1/infrastructure", method: .get, headers: bearer("cnk_nope"))
            XCTAssertEqual(unauthenticated.status, .unauthorized, "a bad key is refused before it is counted")
        }
    }
}
