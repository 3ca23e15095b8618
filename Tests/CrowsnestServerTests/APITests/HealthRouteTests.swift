import Foundation
import Hummingbird
import HummingbirdTesting
import XCTest

@testable import CrowsnestServer

final class HealthRouteTests: XCTestCase {
    func testContainerHealthShowsStateHealthOutputAndRecentChangesNewestFirst() async throws {
        try await APITestHarness.withAPI { seed, client in
            let tenant = try await seed.tenant()
            let key = try await seed.apiKey(tenant: tenant)
            let agent = try await seed.agent(tenant: tenant, hostname: "web-1", lastSeenSecondsAgo: 1)
            try await seed.container(
                tenant: tenant, agent: agent, name: "api", state: "running", health: "unhealthy",
                healthOutput: "curl: (7) Failed to connect to localhost port 8080"
            )
            try await seed.containerEvent(tenant: tenant, agent: agent, name: "api", ts: instant("2025-03-01T10:00:00Z"), action: "start")
            try await seed.containerEvent(tenant: tenant, agent: agent, name: "api", ts: instant("2025-03-01T10:05:00Z"), action: "exec_start")
            try await seed.containerEvent(
                tenant: tenant, agent: agent, name: "api", ts: instant("2025-03-01T10:10:00.5Z"), action: "die", exitCode: 137, detail: "OOMKilled"
            )
            try await seed.containerEvent(tenant: tenant, agent: agent, name: "api", ts: instant("2025-03-01T10:10:01Z"), action: "restart")
            try await seed.containerEvent(
                tenant: tenant, agent: agent, name: "api", ts: instant("2025-03-01T10:11:00Z"), action: "health_status: unhealthy"
            )
            try await seed.containerEvent(tenant: tenant, agent: agent, name: "other", ts: instant("2025-03-01T10:12:00Z"), action: "stop")

            let target = "c-\(agent.uuidString.lowercased())-api"
            let response = try await client.execute(uri: "/api/v1/health/\(target)", method: .get, headers: bearer(key.secret))
            XCTAssertEqual(response.status, .ok)
            let body = try response.jsonObject()
            XCTAssertEqual(Set(body.keys), ["target", "state", "health", "health_output", "changes"])
            XCTAssertEqual(body["target"] as? NSDictionary, ["id": target, "kind": "container", "name": "api"])
            XCTAssertEqual(body["state"] as? String, "running")
            XCTAssertEqual(body["health"] as? String, "unhealthy")
            XCTAssertEqual(body["health_output"] as? String, "curl: (7) Failed to connect to localhost port 8080")
            let changes = try XCTUnwrap(body["changes"] as? [NSDictionary])
            XCTAssertEqual(changes, [
                ["ts": "2025-03-01T10:11:00Z", "action": "health_status", "detail": "unhealthy", "exit_code": NSNull()],
                ["ts": "2025-03-01T10:10:01Z", "action": "restart", "detail": "", "exit_code": NSNull()],
                ["ts": "2025-03-01T10:10:00.500Z", "action": "die", "detail": "OOMKilled", "exit_code": 137],
                ["ts": "2025-03-01T10:00:00Z", "action": "start", "detail": "", "exit_code": NSNull()],
            ])
        }
    }

    func testContainerHealthReturnsAtMostFiftyChanges() async throws {
        try await APITestHarness.withAPI { seed, client in
            let tenant = try await seed.tenant()
            let key = try await seed.apiKey(tenant: tenant)
            let agent = try await seed.agent(tenant: tenant, hostname: "web-1", lastSeenSecondsAgo: 1)
            try await seed.container(tenant: tenant, agent: agent, name: "flappy", state: "restarting")
            let start = instant("2025-03-01T10:00:00Z")
            for index in 0..<60 {
                try await seed.containerEvent(
                    tenant: tenant, agent: agent, name: "flappy", ts: start.addingTimeInterval(Double(index)),
                    action: index.isMultiple(of: 2) ? "start" : "die", exitCode: index.isMultiple(of: 2) ? nil : 1
                )
            }
            let response = try await client.execute(
                uri: "/api/v1/health/c-\(agent.uuidString.lowercased())-flappy", method: .get, headers: bearer(key.secret)
            )
            let changes = try XCTUnwrap(try response.jsonObject()["changes"] as? [[String: Any]])
            XCTAssertEqual(changes.count, 50)
            XCTAssertEqual(changes.first?["ts"] as? String, "2025-03-01T10:00:59Z")
            XCTAssertEqual(changes.last?["ts"] as? String, "2025-03-01T10:00:10Z")
        }
    }

    func testHostHealthShowsLivenessAndStatusSpansNewestFirst() async throws {
        try await APITestHarness.withAPI { seed, client in
            let tenant = try await seed.tenant()
            let key = try await seed.apiKey(tenant: tenant)
            let agent = try await seed.agent(tenant: tenant, hostname: "web-1", lastSeenSecondsAgo: 3600)
            let target = TargetID.host(agentID: agent)
            try await seed.statusSpan(
                tenant: tenant, target: target, state: "up", startedAt: instant("2025-03-01T08:00:00Z"), endedAt: instant("2025-03-01T09:00:00Z")
            )
            try await seed.statusSpan(
                tenant: tenant, target: target, state: "unknown", startedAt: instant("2025-03-01T09:00:00Z"), endedAt: nil,
                cause: "no data from the agent"
            )
            try await seed.statusSpan(
                tenant: tenant, target: .host(agentID: UUID()), state: "up", startedAt: instant("2025-03-01T09:30:00Z"), endedAt: nil
            )

            let response = try await client.execute(uri: "/api/v1/health/\(target)", method: .get, headers: bearer(key.secret))
            XCTAssertEqual(response.status, .ok)
            let body = try response.jsonObject()
            XCTAssertEqual(Set(body.keys), ["target", "state", "last_seen", "changes"])
            XCTAssertEqual(body["target"] as? NSDictionary, ["id": target.description, "kind": "host", "name": "web-1"])
            XCTAssertEqual(body["state"] as? String, "unknown", "the host's state is its open span")
            XCTAssertNotNil(body["last_seen"] as? String)
            XCTAssertEqual(body["changes"] as? [NSDictionary], [
                ["ts": "2025-03-01T09:00:00Z", "state": "unknown", "ended_at": NSNull(), "cause": "no data from the agent"],
                ["ts": "2025-03-01T08:00:00Z", "state": "up", "ended_at": "2025-03-01T09:00:00Z", "cause": ""],
            ])
        }
    }

    func testHealthOfUnknownOrForeignTargetsIs404() async throws {
        try await APITestHarness.withAPI { seed, client in
            let tenantA = try await seed.tenant("a")
            let tenantB = try await seed.tenant("b")
            let keyB = try await seed.apiKey(tenant: tenantB)
            let agentA = try await seed.agent(tenant: tenantA, hostname: "a-host", lastSeenSecondsAgo: 1)
            try await seed.container(tenant: tenantA, agent: agentA, name: "web")
            for target in [
                "h-\(agentA.uuidString.lowercased())", "c-\(agentA.uuidString.lowercased())-web", "k-\(UUID().uuidString.lowercased())", "x",
            ] {
                let response = try await client.execute(uri: "/api/v1/health/\(target)", method: .get, headers: bearer(keyB.secret))
                XCTAssertEqual(response.status, .notFound, target)
                XCTAssertEqual(try response.apiError().code, "not_found", target)
            }
        }
    }
}
