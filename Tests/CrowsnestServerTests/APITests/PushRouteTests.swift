import CrowsnestWire
import Foundation
import Hummingbird
import HummingbirdTesting
import PostgresNIO
import XCTest

@testable import CrowsnestServer

/// `/api/v1/push/{token}` through the real router: a call records the current slot's result, without an API key.
final class PushRouteTests: XCTestCase {
    private static func createPushCheck(_ client: any TestClientProtocol, key: IssuedAPIKey, interval: Int = 3600,
                                        name: String = "backup") async throws -> (id: String, pushURL: String) {
        let response = try await client.execute(
            uri: "/api/v1/checks", method: .post, headers: bearer(key.secret),
            body: ByteBuffer(string: #"{"name":"\#(name)","type":"push","interval_seconds":\#(interval)}"#))
        XCTAssertEqual(response.status, .created, String(buffer: response.body))
        let check = try response.jsonObject()
        return (try XCTUnwrap(check["id"] as? String), try XCTUnwrap(check["push_url"] as? String))
    }

    private static func results(_ client: any TestClientProtocol, key: IssuedAPIKey, id: String) async throws -> [[String: Any]] {
        let response = try await client.execute(uri: "/api/v1/checks/\(id)/results", method: .get, headers: bearer(key.secret))
        XCTAssertEqual(response.status, .ok, String(buffer: response.body))
        return try XCTUnwrap(try response.jsonObject()["results"] as? [[String: Any]])
    }

    func testACallRecordsTheCurrentSlotAndALaterCallInTheSlotReplacesIt() async throws {
        try await APITestHarness.withAPI { seed, client in
            let tenant = try await seed.tenant()
            let admin = try await seed.apiKey(tenant: tenant, role: .admin)
            let (id, pushURL) = try await Self.createPushCheck(client, key: admin)

            let up = try await client.execute(uri: pushURL, method: .get)
            XCTAssertEqual(up.status, .ok, String(buffer: up.body))
            let answer = try up.jsonObject()
            XCTAssertEqual(answer["check_id"] as? String, id)
            XCTAssertEqual(answer["status"] as? String, "up")
            let slot = try XCTUnwrap(RFC3339.date(from: try XCTUnwrap(answer["slot_at"] as? String)))
            XCTAssertEqual(slot.timeIntervalSince1970.truncatingRemainder(dividingBy: 3600), 0, "a multiple of the interval")
            XCTAssertLessThanOrEqual(slot, Date())

            var stored = try await Self.results(client, key: admin, id: id)
            XCTAssertEqual(stored.count, 1)
            XCTAssertEqual(stored.first?["ok"] as? Bool, true)

            let down = try await client.execute(uri: pushURL + "?status=down&msg=disk%20full&latency_ms=1500", method: .post)
            XCTAssertEqual(down.status, .ok, String(buffer: down.body))
            stored = try await Self.results(client, key: admin, id: id)
            XCTAssertEqual(stored.count, 1, "one result per slot")
            XCTAssertEqual(stored.first?["ok"] as? Bool, false)
            XCTAssertEqual(stored.first?["error"] as? String, "disk full")
            XCTAssertEqual(stored.first?["latency_ms"] as? Double, 1500)

            let state = try await client.execute(uri: "/api/v1/checks/\(id)", method: .get, headers: bearer(admin.secret))
            XCTAssertEqual(try state.jsonObject()["state"] as? String, "down")
        }
    }

    func testUnknownTokensBadParametersAndPausedChecksRecordNothing() async throws {
        try await APITestHarness.withAPI { seed, client in
            let tenant = try await seed.tenant()
            let admin = try await seed.apiKey(tenant: tenant, role: .admin)
            let (id, pushURL) = try await Self.createPushCheck(client, key: admin)

            let unknown = try await client.execute(uri: "/api/v1/push/cnp_not-a-token", method: .get)
            XCTAssertEqual(unknown.status, .notFound)
            XCTAssertEqual(try (unknown.jsonObject()["error"] as? [String: Any])?["code"] as? String, "not_found")
            let badStatus = try await client.execute(uri: pushURL + "?status=sideways", method: .get)
            XCTAssertEqual(badStatus.status, .badRequest)
            XCTAssertTrue(String(buffer: badStatus.body).contains("status must be up or down"), String(buffer: badStatus.body))
            let badLatency = try await client.execute(uri: pushURL + "?latency_ms=-3", method: .get)
            XCTAssertEqual(badLatency.status, .badRequest)

            let pause = try await client.execute(uri: "/api/v1/checks/\(id)/pause", method: .post, headers: bearer(admin.secret))
            XCTAssertEqual(pause.status, .ok)
            let paused = try await client.execute(uri: pushURL, method: .get)
            XCTAssertEqual(paused.status, .conflict)
            let stored = try await Self.results(client, key: admin, id: id)
            XCTAssertEqual(stored.count, 0, "nothing recorded for refused calls")
        }
    }

    func testCallsOverTheLimitAnswer429WithRetryAfter() async throws {
        try await APITestHarness.withAPI { seed, client in
            let tenant = try await seed.tenant()
            let admin = try await seed.apiKey(tenant: tenant, role: .admin)
            let (_, pushURL) = try await Self.createPushCheck(client, key: admin)
            for call in 1...PushRoutes.callsPerMinute {
                let response = try await client.execute(uri: pushURL, method: .get)
                XCTAssertEqual(response.status, .ok, "call \(call)")
            }
            let over = try await client.execute(uri: pushURL, method: .get)
            XCTAssertEqual(over.status, .tooManyRequests)
            let retryAfter = try XCTUnwrap(over.headers[.retryAfter].flatMap { Int($0) })
            XCTAssertTrue((1...60).contains(retryAfter), "\(retryAfter)")
        }
    }
}
