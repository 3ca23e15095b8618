import CrowsnestWire
import Foundation
import Hummingbird
import HummingbirdTesting
import XCTest

@testable import CrowsnestServer

/// `GET /api/v1/uptime/{target}/timeline` against a real PostgreSQL: spans cut to the window, availability from
/// up and down time only, incidents as maximal down spans, tenants kept apart, bad ranges refused.
final class UptimeRouteTests: XCTestCase {
    private static func timeline(_ client: some TestClientProtocol, _ key: String, _ target: String, _ query: String) async throws -> TestResponse {
        try await client.execute(uri: "/api/v1/uptime/\(target)/timeline\(query)", method: .get, headers: bearer(key))
    }

    func testAContainerTimelineHasItsOutagesToTheSecondAndTheAvailabilityOfTheWindow() async throws {
        try await APITestHarness.withAPI { seed, client in
            let tenant = try await seed.tenant()
            let key = try await seed.apiKey(tenant: tenant)
            let agent = try await seed.agent(tenant: tenant, hostname: "web-1", lastSeenSecondsAgo: 1)
            try await seed.container(tenant: tenant, agent: agent, name: "api")
            let target = TargetID.container(agentID: agent, name: "api")
            // Up from 10:00, down 17 s from 10:01:40 (died, restarted into a second failure), up, unhealthy for 10 s,
            // down 43 s from 10:03:20.
            let spans: [(String, String, String?, String)] = [
                ("up", "2025-03-01T10:00:00Z", "2025-03-01T10:01:40Z", ""),
                ("down", "2025-03-01T10:01:40Z", "2025-03-01T10:01:50Z", "exited with code 1"),
                ("down", "2025-03-01T10:01:50Z", "2025-03-01T10:01:57Z", "exited with code 137 (OOM killed)"),
                ("up", "2025-03-01T10:01:57Z", "2025-03-01T10:03:10Z", ""),
                ("degraded", "2025-03-01T10:03:10Z", "2025-03-01T10:03:20Z", "unhealthy"),
                ("down", "2025-03-01T10:03:20Z", "2025-03-01T10:04:03Z", "exited with code 2"),
                ("up", "2025-03-01T10:04:03Z", nil, ""),
            ]
            for (state, start, end, cause) in spans {
                try await seed.statusSpan(tenant: tenant, target: target, state: state, startedAt: instant(start),
                                          endedAt: end.map(instant), cause: cause)
            }
            let response = try await Self.timeline(client, key.secret, target.description,
                                               "?from=2025-03-01T09:59:00Z&to=2025-03-01T10:05:00Z")
            XCTAssertEqual(response.status, .ok)
            let body = try response.jsonObject()
            XCTAssertEqual(body["target"] as? NSDictionary, ["id": target.description, "kind": "container", "name": "api"])
            XCTAssertEqual(body["from"] as? String, "2025-03-01T09:59:00Z")
            XCTAssertEqual(body["to"] as? String, "2025-03-01T10:05:00Z")
            // 300 s known: 240 up (degraded counts as up), 60 down; the first minute has no data and is left out.
            XCTAssertEqual(try XCTUnwrap(body["availability_percent"] as? Double), 80.0, accuracy: 1e-9)
            XCTAssertEqual(body["seconds"] as? NSDictionary,
                           ["up": 230, "degraded": 10, "down": 60, "unknown": 60, "maintenance": 0])
            let listed = try XCTUnwrap(body["spans"] as? [[String: Any]])
            XCTAssertEqual(listed.map { $0["state"] as? String },
                           ["unknown", "up", "down", "down", "up", "degraded", "down", "up"])
            XCTAssertEqual(listed.first?["cause"] as? String, "no data")
            XCTAssertEqual(listed.last?["started_at"] as? String, "2025-03-01T10:04:03Z")
            XCTAssertEqual(listed.last?["ended_at"] as? String, "2025-03-01T10:05:00Z", "cut at the window's end")
            let incidents = try XCTUnwrap(body["incidents"] as? [[String: Any]])
            XCTAssertEqual(incidents.count, 2, "the two touching down spans are one incident")
            XCTAssertEqual(incidents.map { $0["started_at"] as? String }, ["2025-03-01T10:01:40Z", "2025-03-01T10:03:20Z"])
            XCTAssertEqual(incidents.map { $0["ended_at"] as? String }, ["2025-03-01T10:01:57Z", "2025-03-01T10:04:03Z"])
            XCTAssertEqual(incidents.map { $0["duration_seconds"] as? Double }, [17, 43])
            XCTAssertEqual(incidents.map { $0["cause"] as? String }, ["exited with code 1", "exited with code 2"])
            let ids = incidents.compactMap { $0["id"] as? String }
            XCTAssertEqual(Set(ids).count, 2)
            XCTAssertTrue(ids.allSatisfy { $0.hasPrefix("i-") && $0.count == 26 }, "\(ids)")
            // The same incident keeps its id in another window.
            let again = try await Self.timeline(client, key.secret, target.description, "?from=2025-03-01T10:03:00Z&to=2025-03-01T10:04:00Z")
            let againIncidents = try XCTUnwrap(try again.jsonObject()["incidents"] as? [[String: Any]])
            XCTAssertEqual(againIncidents.map { $0["id"] as? String }, [ids[1]])
            XCTAssertEqual(againIncidents.first?["duration_seconds"] as? Double, 43, "an incident is reported whole, not cut")
        }
    }

    func testAnOpenOutageIsOngoingAndAHostsUnknownTimeIsLeftOutOfItsAvailability() async throws {
        try await APITestHarness.withAPI { seed, client in
            let tenant = try await seed.tenant()
            let key = try await seed.apiKey(tenant: tenant)
            let agent = try await seed.agent(tenant: tenant, hostname: "web-1", lastSeenSecondsAgo: 1)
            let host = TargetID.host(agentID: agent)
            let now = Date()
            try await seed.statusSpan(tenant: tenant, target: host, state: "up", startedAt: now.addingTimeInterval(-3600),
                                      endedAt: now.addingTimeInterval(-1800))
            try await seed.statusSpan(tenant: tenant, target: host, state: "unknown", startedAt: now.addingTimeInterval(-1800),
                                      endedAt: nil, cause: "no data from the agent")
            let response = try await Self.timeline(client, key.secret, host.description, "")
            XCTAssertEqual(response.status, .ok)
            let body = try response.jsonObject()
            XCTAssertEqual(try XCTUnwrap(body["availability_percent"] as? Double), 100, accuracy: 1e-9,
                           "unknown is neither up nor down")
            let listed = try XCTUnwrap(body["spans"] as? [[String: Any]])
            XCTAssertEqual(listed.map { $0["state"] as? String }, ["unknown", "up", "unknown"], "the default window is 24 h")
            XCTAssertTrue(listed.last?["ended_at"] is NSNull, "the window reaches now: the last span is still going on")

            try await seed.container(tenant: tenant, agent: agent, name: "db")
            let db = TargetID.container(agentID: agent, name: "db")
            try await seed.statusSpan(tenant: tenant, target: db, state: "down", startedAt: now.addingTimeInterval(-600),
                                      endedAt: nil, cause: "exited with code 1")
            let down = try await Self.timeline(client, key.secret, db.description, "")
            let downBody = try down.jsonObject()
            XCTAssertEqual(try XCTUnwrap(downBody["availability_percent"] as? Double), 0, accuracy: 1e-9)
            let incident = try XCTUnwrap((downBody["incidents"] as? [[String: Any]])?.first)
            XCTAssertTrue(incident["ended_at"] is NSNull)
            XCTAssertEqual(try XCTUnwrap(incident["duration_seconds"] as? Double), 600, accuracy: 5)

            let never = try await seed.agent(tenant: tenant, hostname: "web-2", lastSeenSecondsAgo: nil)
            let empty = try await Self.timeline(client, key.secret, TargetID.host(agentID: never).description, "")
            let emptyBody = try empty.jsonObject()
            XCTAssertTrue(emptyBody["availability_percent"] is NSNull, "no up or down time: no availability, not 0 or 100")
        }
    }

    func testChecksHaveTimelinesAndAnotherTenantsTargetsAreNotFound() async throws {
        try await APITestHarness.withAPI { seed, client in
            let tenant = try await seed.tenant(), other = try await seed.tenant()
            let key = try await seed.apiKey(tenant: tenant)
            let checks = CheckStore(client: seed.database, logger: APITestHarness.logger)
            let submission = try CheckDefinition.parse(JSONValue.parse(Data(#"{"name":"backup","type":"push"}"#.utf8)))
            let mine = try await checks.create(tenantID: tenant, submission: submission)
            let theirs = try await checks.create(tenantID: other, submission: submission)
            let response = try await Self.timeline(client, key.secret, TargetID.check(checkID: mine.id).description, "")
            XCTAssertEqual(response.status, .ok)
            XCTAssertEqual((try response.jsonObject()["target"] as? NSDictionary)?["kind"] as? String, "check")

            let otherAgent = try await seed.agent(tenant: other, hostname: "theirs", lastSeenSecondsAgo: 1)
            try await seed.container(tenant: other, agent: otherAgent, name: "api")
            try await seed.statusSpan(tenant: other, target: .host(agentID: otherAgent), state: "up",
                                      startedAt: Date(timeIntervalSinceNow: -60), endedAt: nil)
            for target in [TargetID.check(checkID: theirs.id), .host(agentID: otherAgent), .container(agentID: otherAgent, name: "api")] {
                let refused = try await Self.timeline(client, key.secret, target.description, "")
                XCTAssertEqual(refused.status, .notFound, "\(target)")
                XCTAssertFalse(String(buffer: refused.body).contains("theirs"))
            }
            // A check has results, not metrics.
            let metrics = try await client.execute(uri: "/api/v1/metrics/\(TargetID.check(checkID: mine.id))", method: .get,
                                                   headers: bearer(key.secret))
            XCTAssertEqual(metrics.status, .notFound)
        }
    }

    func testIncidentsCarryWhatWasKnownAroundTheirStart() async throws {
        try await APITestHarness.withAPI { seed, client in
            let tenant = try await seed.tenant()
            let key = try await seed.apiKey(tenant: tenant)
            let agent = try await seed.agent(tenant: tenant, hostname: "web-1", lastSeenSecondsAgo: 1)
            try await seed.container(tenant: tenant, agent: agent, name: "api", healthOutput: "curl: connection refused", restartCount: 4)
            let target = TargetID.container(agentID: agent, name: "api")
            let start = instant("2025-03-01T10:00:00Z")
            for minute in 1...4 {
                try await seed.containerSample(tenant: tenant, agent: agent, name: "api", ts: start.addingTimeInterval(Double(-60 * minute)),
                                               cpuPercent: Double(20 * minute), workingSet: Int64(100 * (10 - minute)), usage: nil, limit: 1000)
            }
            try await seed.containerEvent(tenant: tenant, agent: agent, name: "api", ts: start.addingTimeInterval(-120), action: "health_status: unhealthy")
            try await seed.containerEvent(tenant: tenant, agent: agent, name: "api", ts: start.addingTimeInterval(-0.1), action: "oom")
            try await seed.containerEvent(tenant: tenant, agent: agent, name: "api", ts: start, action: "die", exitCode: 137)
            try await seed.statusSpan(tenant: tenant, target: target, state: "up", startedAt: start.addingTimeInterval(-3600), endedAt: start)
            try await seed.statusSpan(tenant: tenant, target: target, state: "down", startedAt: start, endedAt: start.addingTimeInterval(30),
                                      cause: "exited with code 137 (OOM killed)")
            try await seed.statusSpan(tenant: tenant, target: target, state: "up", startedAt: start.addingTimeInterval(30), endedAt: nil)
            let response = try await Self.timeline(client, key.secret, target.description, "?from=2025-03-01T09:00:00Z&to=2025-03-01T11:00:00Z")
            let incident = try XCTUnwrap((try response.jsonObject()["incidents"] as? [[String: Any]])?.first)
            let context = try XCTUnwrap(incident["context"] as? [String: Any])
            XCTAssertEqual(context["exit_code"] as? Int, 137)
            XCTAssertEqual(context["oom_killed"] as? Bool, true)
            XCTAssertEqual(context["restart_count"] as? Int, 4)
            XCTAssertEqual(context["health_status"] as? String, "unhealthy")
            XCTAssertEqual(context["health_output"] as? String, "curl: connection refused")
            XCTAssertEqual(try XCTUnwrap(context["memory_percent_of_limit_max"] as? Double), 90, accuracy: 1e-9, "900 of 1000 a minute before")
            XCTAssertEqual(context["cpu_percent_max"] as? Double, 80)
            XCTAssertEqual(context["look_back_seconds"] as? Int, 300)

            // A check's incident carries its failing run.
            let checks = CheckStore(client: seed.database, logger: APITestHarness.logger)
            let check = try await checks.create(tenantID: tenant, submission: try CheckDefinition.parse(JSONValue.parse(Data(
                #"{"name":"home","type":"http","target":"https://example.com/"}"#.utf8))))
            let checkTarget = TargetID.check(checkID: check.id)
            try await seed.checkResult(tenant: tenant, check: check.id, slotAt: start, ok: false, latencyMs: 812, error: "HTTP 503", httpStatus: 503)
            try await seed.statusSpan(tenant: tenant, target: checkTarget, state: "down", startedAt: start.addingTimeInterval(0.25),
                                      endedAt: start.addingTimeInterval(60), cause: "HTTP 503")
            let checkResponse = try await Self.timeline(client, key.secret, checkTarget.description, "?from=2025-03-01T09:00:00Z&to=2025-03-01T11:00:00Z")
            let checkIncident = try XCTUnwrap((try checkResponse.jsonObject()["incidents"] as? [[String: Any]])?.first)
            let checkContext = try XCTUnwrap(checkIncident["context"] as? [String: Any])
            XCTAssertEqual(checkContext["http_status"] as? Int, 503)
            XCTAssertEqual(checkContext["error"] as? String, "HTTP 503")
            XCTAssertEqual(checkContext["latency_ms"] as? Double, 812)
        }
    }

    func testBadRangesAreRefusedNamingTheParameter() async throws {
        try await APITestHarness.withAPI { seed, client in
            let tenant = try await seed.tenant()
            let key = try await seed.apiKey(tenant: tenant)
            let agent = try await seed.agent(tenant: tenant, hostname: "web-1", lastSeenSecondsAgo: 1)
            let host = TargetID.host(agentID: agent).description
            let cases: [(String, String)] = [
                ("?from=2025-03-02T00:00:00Z&to=2025-03-01T00:00:00Z", "from (2025-03-02T00:00:00Z) must be before to"),
                ("?from=2023-01-01T00:00:00Z&to=2025-03-01T00:00:00Z", "longer than 400 days"),
                ("?from=yesterday", "from must be an RFC 3339 timestamp"),
                ("?to=2025-13-01T00:00:00Z", "to must be an RFC 3339 timestamp"),
            ]
            for (query, message) in cases {
                let response = try await Self.timeline(client, key.secret, host, query)
                XCTAssertEqual(response.status, .badRequest, query)
                let error = try XCTUnwrap(try response.jsonObject()["error"] as? [String: Any])
                XCTAssertEqual(error["code"] as? String, "bad_request")
                XCTAssertTrue((error["message"] as? String ?? "").contains(message), "\(query): \(error)")
            }
        }
    }
}
