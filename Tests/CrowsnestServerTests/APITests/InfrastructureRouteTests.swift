import CrowsnestWire
import Foundation
import Hummingbird
import HummingbirdTesting
import XCTest

@testable import CrowsnestServer

final class InfrastructureRouteTests: XCTestCase {
    func testHostStateIsItsOpenSpanAndUnknownWithoutOne() async throws {
        try await APITestHarness.withAPI { seed, client in
            let tenant = try await seed.tenant()
            let key = try await seed.apiKey(tenant: tenant)
            // The state is the host's open span (kept by ingest and the liveness job), not judged from last_seen
            // on read: "b-silent" was seen long ago, but until the job says so it is still up.
            let recent = try await seed.agent(tenant: tenant, hostname: "a-recent", lastSeenSecondsAgo: 5, intervalSeconds: 30)
            let silent = try await seed.agent(tenant: tenant, hostname: "b-silent", lastSeenSecondsAgo: 120, intervalSeconds: 30)
            let never = try await seed.agent(tenant: tenant, hostname: "c-never", lastSeenSecondsAgo: nil)
            let gone = try await seed.agent(tenant: tenant, hostname: "d-gone", lastSeenSecondsAgo: 300, intervalSeconds: 2)
            let back = try await seed.agent(tenant: tenant, hostname: "e-back", lastSeenSecondsAgo: 1, intervalSeconds: 2)
            _ = try await seed.agent(tenant: tenant, hostname: "f-revoked", lastSeenSecondsAgo: 1, revoked: true)
            let hour = Date(timeIntervalSinceNow: -3600), minute = Date(timeIntervalSinceNow: -60)
            try await seed.statusSpan(tenant: tenant, target: .host(agentID: recent), state: "up", startedAt: hour, endedAt: nil)
            try await seed.statusSpan(tenant: tenant, target: .host(agentID: silent), state: "up", startedAt: hour, endedAt: nil)
            try await seed.statusSpan(tenant: tenant, target: .host(agentID: gone), state: "up", startedAt: hour, endedAt: minute)
            try await seed.statusSpan(tenant: tenant, target: .host(agentID: gone), state: "unknown", startedAt: minute, endedAt: nil)
            try await seed.statusSpan(tenant: tenant, target: .host(agentID: back), state: "unknown", startedAt: hour, endedAt: minute)
            try await seed.statusSpan(tenant: tenant, target: .host(agentID: back), state: "up", startedAt: minute, endedAt: nil)

            let response = try await client.execute(uri: "/api/v1/infrastructure", method: .get, headers: bearer(key.secret))
            XCTAssertEqual(response.status, .ok)
            let hosts = try XCTUnwrap(try response.jsonObject()["hosts"] as? [[String: Any]])
            XCTAssertEqual(hosts.map { $0["hostname"] as? String }, ["a-recent", "b-silent", "c-never", "d-gone", "e-back"])
            XCTAssertEqual(hosts.map { $0["id"] as? String }, [recent, silent, never, gone, back].map { "h-\($0.uuidString.lowercased())" })
            XCTAssertEqual(hosts.map { $0["state"] as? String }, ["up", "up", "unknown", "unknown", "up"])
            XCTAssertTrue(hosts[2]["last_seen"] is NSNull, "never seen: last_seen is null")
            let lastSeen = try XCTUnwrap(hosts[0]["last_seen"] as? String)
            let lastSeenDate = try XCTUnwrap(RFC3339.date(from: lastSeen), lastSeen)
            XCTAssertEqual(lastSeenDate.timeIntervalSinceNow, -5, accuracy: 5)
            XCTAssertTrue(lastSeen.hasSuffix("Z"))
        }
    }

    func testHostAndContainerFieldsAreExact() async throws {
        try await APITestHarness.withAPI { seed, client in
            let tenant = try await seed.tenant()
            let key = try await seed.apiKey(tenant: tenant)
            let agent = try await seed.agent(
                tenant: tenant, hostname: "web-1", lastSeenSecondsAgo: 1, agentVersion: "0.9.1",
                containersUnavailableReason: "permission denied on /var/run/docker.sock"
            )
            try await seed.container(
                tenant: tenant, agent: agent, name: "web", image: "nginx:1.27", dockerID: "d0c4e7", state: "exited",
                health: "unhealthy", exitCode: 137, restartCount: 3, oomKilled: true,
                startedAt: "2025-03-01T10:00:00.123456Z", finishedAt: "2025-03-01T11:00:00Z"
            )
            try await seed.container(tenant: tenant, agent: agent, name: "db", image: "postgres:17", dockerID: "b1e2", startedAt: "2025-03-01T09:00:00.5Z")
            try await seed.container(tenant: tenant, agent: agent, name: "gone", removed: true)

            let response = try await client.execute(uri: "/api/v1/infrastructure", method: .get, headers: bearer(key.secret))
            XCTAssertEqual(response.status, .ok)
            let hosts = try XCTUnwrap(try response.jsonObject()["hosts"] as? [[String: Any]])
            XCTAssertEqual(hosts.count, 1)
            let host = hosts[0]
            XCTAssertEqual(
                Set(host.keys),
                ["id", "hostname", "state", "last_seen", "agent_version", "containers_unavailable_reason", "containers",
                 "clock_offset_ms", "truncated_values", "duplicate_samples", "ingest_rejections", "dead_lettered_batches",
                 "clone_suspected"]
            )
            XCTAssertEqual(host["agent_version"] as? String, "0.9.1")
            XCTAssertTrue(host["clock_offset_ms"] is NSNull, "no Hello or heartbeat yet: the offset is not known")
            XCTAssertEqual(host["ingest_rejections"] as? Int, 0)
            XCTAssertEqual(host["dead_lettered_batches"] as? Int, 0)
            XCTAssertEqual(host["clone_suspected"] as? Bool, false)
            XCTAssertEqual(host["containers_unavailable_reason"] as? String, "permission denied on /var/run/docker.sock")

            let containers = try XCTUnwrap(host["containers"] as? [[String: Any]])
            XCTAssertEqual(containers.map { $0["name"] as? String }, ["db", "web"], "removed containers are left out, ordered by name")
            let web = containers[1] as NSDictionary
            let expected: NSDictionary = [
                "id": "c-\(agent.uuidString.lowercased())-web",
                "name": "web",
                "image": "nginx:1.27",
                "docker_id": "d0c4e7",
                "state": "exited",
                "health": "unhealthy",
                "exit_code": 137,
                "restart_count": 3,
                "oom_killed": true,
                "started_at": "2025-03-01T10:00:00.123456Z",
                "finished_at": "2025-03-01T11:00:00Z",
            ]
            XCTAssertEqual(web, expected)
            XCTAssertEqual(containers[0]["started_at"] as? String, "2025-03-01T09:00:00.500Z")
            XCTAssertTrue(containers[0]["finished_at"] is NSNull)
            XCTAssertEqual(containers[0]["health"] as? String, "none")
            XCTAssertEqual(containers[0]["oom_killed"] as? Bool, false)
        }
    }

    func testContainersUnavailableReasonIsNullWhenDockerIsReadable() async throws {
        try await APITestHarness.withAPI { seed, client in
            let tenant = try await seed.tenant()
            let key = try await seed.apiKey(tenant: tenant)
            _ = try await seed.agent(tenant: tenant, hostname: "ok", lastSeenSecondsAgo: 1)
            let response = try await client.execute(uri: "/api/v1/infrastructure", method: .get, headers: bearer(key.secret))
            let hosts = try XCTUnwrap(try response.jsonObject()["hosts"] as? [[String: Any]])
            XCTAssertTrue(hosts.first?["containers_unavailable_reason"] is NSNull)
            XCTAssertEqual((hosts.first?["containers"] as? [Any])?.count, 0)
        }
    }

    func testAnotherTenantsHostsAreInvisible() async throws {
        try await APITestHarness.withAPI { seed, client in
            let tenantA = try await seed.tenant("a")
            let tenantB = try await seed.tenant("b")
            let keyB = try await seed.apiKey(tenant: tenantB)
            let agentA = try await seed.agent(tenant: tenantA, hostname: "a-host", lastSeenSecondsAgo: 1)
            try await seed.container(tenant: tenantA, agent: agentA, name: "secret-service")

            let response = try await client.execute(uri: "/api/v1/infrastructure", method: .get, headers: bearer(keyB.secret))
            XCTAssertEqual(response.status, .ok)
            XCTAssertEqual((try response.jsonObject()["hosts"] as? [Any])?.count, 0)
            XCTAssertFalse(String(buffer: response.body).contains("a-host"))
        }
    }
}
