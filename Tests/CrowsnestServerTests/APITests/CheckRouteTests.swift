import CrowsnestWire
import Foundation
import Hummingbird
import HummingbirdTesting
import PostgresNIO
import XCTest

@testable import CrowsnestServer

/// `/api/v1/checks` through the real router: roles, tenant confinement, validation, conflicts and results.
final class CheckRouteTests: XCTestCase {
    private static let httpBody = #"{"name":"home page","type":"http","target":"https://example.com/","interval_seconds":60}"#

    private static func send(
        _ client: any TestClientProtocol, _ method: HTTPRequest.Method, _ uri: String, key: IssuedAPIKey, body: String? = nil
    ) async throws -> TestResponse {
        try await client.execute(uri: uri, method: method, headers: bearer(key.secret), body: body.map { ByteBuffer(string: $0) })
    }

    /// Creates a check through the API and returns its JSON.
    private static func create(_ client: any TestClientProtocol, key: IssuedAPIKey, _ body: String = httpBody,
                        file: StaticString = #filePath, line: UInt = #line) async throws -> [String: Any] {
        let response = try await Self.send(client, .post, "/api/v1/checks", key: key, body: body)
        XCTAssertEqual(response.status, .created, String(buffer: response.body), file: file, line: line)
        return try response.jsonObject()
    }

    private static func checkCount(_ seed: APISeed) async throws -> Int64 {
        let rows = try await seed.database.query("SELECT count(*) FROM checks", logger: APITestHarness.logger)
        for try await count in rows.decode(Int64.self) { return count }
        return -1
    }

    private static func uuid(of check: [String: Any]) throws -> UUID {
        let id = try XCTUnwrap(check["id"] as? String)
        guard case .check(let uuid)? = TargetID(id) else { throw APISeedError(description: "not a check id: \(id)") }
        return uuid
    }

    func testCreateAnswers201WithTheCheckAndGetReadsItBack() async throws {
        try await APITestHarness.withAPI { seed, client in
            let tenant = try await seed.tenant()
            let admin = try await seed.apiKey(tenant: tenant, role: .admin)
            let response = try await Self.send(client, .post, "/api/v1/checks", key: admin, body: Self.httpBody)
            XCTAssertEqual(response.status, .created)
            XCTAssertEqual(response.headers[.contentType], "application/json; charset=utf-8")
            let check = try response.jsonObject()
            let id = try XCTUnwrap(check["id"] as? String)
            XCTAssertTrue(id.hasPrefix("k-") && TargetID(id) != nil, id)
            XCTAssertEqual(response.headers[.location], "/api/v1/checks/\(id)")
            XCTAssertEqual(Set(check.keys), ["id", "name", "type", "target", "interval_seconds", "timeout_ms", "retries", "run_on",
                                             "options", "paused", "public", "public_target", "state", "last_result_at", "push_url", "created_at", "updated_at"])
            XCTAssertEqual(check["name"] as? String, "home page")
            XCTAssertEqual(check["type"] as? String, "http")
            XCTAssertEqual(check["target"] as? String, "https://example.com/")
            XCTAssertEqual(check["interval_seconds"] as? Int, 60)
            XCTAssertEqual(check["timeout_ms"] as? Int, 48_000)
            XCTAssertEqual(check["retries"] as? Int, 0)
            XCTAssertEqual(check["run_on"] as? [String: String], ["mode": "any"])
            XCTAssertEqual((check["options"] as? [String: Any])?["method"] as? String, "GET")
            XCTAssertEqual(check["paused"] as? Bool, false)
            XCTAssertEqual(check["state"] as? String, "unknown")
            XCTAssertTrue(check["last_result_at"] is NSNull)
            XCTAssertTrue(check["push_url"] is NSNull)
            XCTAssertNotNil(RFC3339.date(from: try XCTUnwrap(check["created_at"] as? String)))

            let read = try await Self.send(client, .get, "/api/v1/checks/\(id)", key: admin)
            XCTAssertEqual(read.status, .ok)
            XCTAssertEqual(try read.jsonObject() as NSDictionary, check as NSDictionary)
            let list = try await Self.send(client, .get, "/api/v1/checks", key: admin)
            let checks = try XCTUnwrap(try list.jsonObject()["checks"] as? [[String: Any]])
            XCTAssertEqual(checks.map { $0["id"] as? String }, [id])
        }
    }

    func testPushChecksAnswerWithTheirPushURLForAdminsOnly() async throws {
        try await APITestHarness.withAPI { seed, client in
            let tenant = try await seed.tenant()
            let admin = try await seed.apiKey(tenant: tenant, role: .admin)
            let reader = try await seed.apiKey(tenant: tenant, role: .read)
            let check = try await Self.create(client, key: admin, #"{"name":"backup","type":"push","interval_seconds":3600}"#)
            let pushURL = try XCTUnwrap(check["push_url"] as? String)
            XCTAssertTrue(pushURL.hasPrefix("/api/v1/push/cnp_"), pushURL)
            XCTAssertEqual(check["target"] as? String, "")
            XCTAssertEqual(check["run_on"] as? [String: String], ["mode": "server"])
            XCTAssertEqual((check["options"] as? [String: Int])?["grace_seconds"], 3600)

            let id = try XCTUnwrap(check["id"] as? String)
            let asAdmin = try await Self.send(client, .get, "/api/v1/checks/\(id)", key: admin)
            XCTAssertEqual(try asAdmin.jsonObject()["push_url"] as? String, pushURL)
            let asReader = try await Self.send(client, .get, "/api/v1/checks/\(id)", key: reader)
            XCTAssertEqual(asReader.status, .ok)
            XCTAssertTrue(try asReader.jsonObject()["push_url"] is NSNull, "a read key cannot report for the check")
        }
    }

    func testReadKeysSeeSecretsRedacted() async throws {
        try await APITestHarness.withAPI { seed, client in
            let tenant = try await seed.tenant()
            let admin = try await seed.apiKey(tenant: tenant, role: .admin)
            let reader = try await seed.apiKey(tenant: tenant, role: .read)
            let db = try await Self.create(client, key: admin, #"{"name":"db","type":"postgres","target":"postgres://monitor:s3cret@db.internal:5432/app?password=s3cret&sslmode=require"}"#)
            let api = try await Self.create(client, key: admin, #"{"name":"api","type":"http","target":"https://user:pw@example.com/","options":{"method":"POST","headers":{"Authorization":"Bearer t0ken"},"body":"token=t0ken"}}"#)
            XCTAssertEqual(db["target"] as? String, "postgres://monitor:s3cret@db.internal:5432/app?password=s3cret&sslmode=require",
                           "admins see what they stored, so they can PUT it back")

            let list = try await Self.send(client, .get, "/api/v1/checks", key: reader)
            let text = String(buffer: list.body)
            XCTAssertFalse(text.contains("s3cret") || text.contains("t0ken") || text.contains(":pw@"), text)
            let checks = try XCTUnwrap(try list.jsonObject()["checks"] as? [[String: Any]])
            XCTAssertEqual(checks.map { $0["id"] as? String }, [api["id"] as? String, db["id"] as? String], "by name")
            XCTAssertEqual(checks[1]["target"] as? String, "postgres://monitor:redacted@db.internal:5432/app?password=redacted&sslmode=require")
            XCTAssertEqual(checks[0]["target"] as? String, "https://user:redacted@example.com/")
            let options = try XCTUnwrap(checks[0]["options"] as? [String: Any])
            XCTAssertEqual(options["headers"] as? [String: String], ["Authorization": "redacted"])
            XCTAssertEqual(options["body"] as? String, "redacted")
            XCTAssertEqual(options["method"] as? String, "POST")
        }
    }

    func testReadKeysAreRefusedEveryWriteAndNothingChanges() async throws {
        try await APITestHarness.withAPI { seed, client in
            let tenant = try await seed.tenant()
            let admin = try await seed.apiKey(tenant: tenant, role: .admin)
            let reader = try await seed.apiKey(tenant: tenant, role: .read)
            let check = try await Self.create(client, key: admin)
            let id = try XCTUnwrap(check["id"] as? String)
            let writes: [(HTTPRequest.Method, String, String?)] = [
                (.post, "/api/v1/checks", #"{"name":"other","type":"tcp","target":"h:1"}"#),
                (.put, "/api/v1/checks/\(id)", #"{"name":"renamed","type":"tcp","target":"h:1"}"#),
                (.delete, "/api/v1/checks/\(id)", nil),
                (.post, "/api/v1/checks/\(id)/pause", nil),
                (.post, "/api/v1/checks/\(id)/resume", nil),
            ]
            for (method, uri, body) in writes {
                let response = try await Self.send(client, method, uri, key: reader, body: body)
                XCTAssertEqual(response.status, .forbidden, "\(method) \(uri)")
                let error = try response.apiError()
                XCTAssertEqual(error.code, "forbidden")
                XCTAssertTrue(error.message.contains("admin key is required"), error.message)
            }
            let after = try await Self.send(client, .get, "/api/v1/checks/\(id)", key: reader)
            XCTAssertEqual(try after.jsonObject()["name"] as? String, "home page")
            XCTAssertEqual(try after.jsonObject()["paused"] as? Bool, false)
            let count1 = try await Self.checkCount(seed)
            XCTAssertEqual(count1, 1)

            let anonymous = try await client.execute(uri: "/api/v1/checks", method: .get)
            XCTAssertEqual(anonymous.status, .unauthorized)
        }
    }

    func testAnotherTenantsCheckIsNotFoundOnEveryRoute() async throws {
        try await APITestHarness.withAPI { seed, client in
            let owner = try await seed.apiKey(tenant: try await seed.tenant(), role: .admin)
            let stranger = try await seed.apiKey(tenant: try await seed.tenant(), role: .admin)
            let check = try await Self.create(client, key: owner)
            let id = try XCTUnwrap(check["id"] as? String)
            let requests: [(HTTPRequest.Method, String, String?)] = [
                (.get, "/api/v1/checks/\(id)", nil),
                (.put, "/api/v1/checks/\(id)", #"{"name":"mine now","type":"tcp","target":"h:1"}"#),
                (.delete, "/api/v1/checks/\(id)", nil),
                (.post, "/api/v1/checks/\(id)/pause", nil),
                (.post, "/api/v1/checks/\(id)/resume", nil),
                (.get, "/api/v1/checks/\(id)/results", nil),
            ]
            for (method, uri, body) in requests {
                let response = try await Self.send(client, method, uri, key: stranger, body: body)
                XCTAssertEqual(response.status, .notFound, "\(method) \(uri)")
                let error = try response.apiError()
                XCTAssertEqual(error.code, "not_found")
                XCTAssertEqual(error.message, "no check with id \(id)", "the same answer as for an id that never existed")
            }
            let strangers = try await Self.send(client, .get, "/api/v1/checks", key: stranger)
            XCTAssertEqual((try strangers.jsonObject()["checks"] as? [Any])?.count, 0)
            let unchanged = try await Self.send(client, .get, "/api/v1/checks/\(id)", key: owner)
            XCTAssertEqual(try unchanged.jsonObject() as NSDictionary, check as NSDictionary)

            let missing = try await Self.send(client, .get, "/api/v1/checks/k-\(UUID().uuidString.lowercased())", key: stranger)
            XCTAssertEqual(missing.status, .notFound)
            for malformed in ["nonsense", "h-0c0ffee0-0000-4000-8000-000000000001", UUID().uuidString] {
                let response = try await Self.send(client, .get, "/api/v1/checks/\(malformed)", key: owner)
                XCTAssertEqual(response.status, .notFound, malformed)
                XCTAssertTrue(try response.apiError().message.contains("check ids look like k-"), malformed)
            }
        }
    }

    func testADuplicateNameIsAConflict() async throws {
        try await APITestHarness.withAPI { seed, client in
            let admin = try await seed.apiKey(tenant: try await seed.tenant(), role: .admin)
            _ = try await Self.create(client, key: admin)
            let other = try await Self.create(client, key: admin, #"{"name":"api","type":"tcp","target":"api.internal:443"}"#)

            let duplicate = try await Self.send(client, .post, "/api/v1/checks", key: admin, body: Self.httpBody)
            XCTAssertEqual(duplicate.status, .conflict)
            let error = try duplicate.apiError()
            XCTAssertEqual(error.code, "conflict")
            XCTAssertTrue(error.message.contains("\"home page\" already exists"), error.message)

            let id = try XCTUnwrap(other["id"] as? String)
            let rename = try await Self.send(client, .put, "/api/v1/checks/\(id)", key: admin, body: Self.httpBody)
            XCTAssertEqual(rename.status, .conflict)
            let count2 = try await Self.checkCount(seed)
            XCTAssertEqual(count2, 2)
        }
    }

    func testRefusedBodiesAnswer400NamingTheFieldAndStoreNothing() async throws {
        try await APITestHarness.withAPI { seed, client in
            let admin = try await seed.apiKey(tenant: try await seed.tenant(), role: .admin)
            let cases: [(String, String)] = [
                ("", "the request body is empty"),
                ("{not json", "the request body is not valid JSON: Invalid value around character 1."),
                (#"{"name":"a","type":"gopher","target":"x"}"#, "type must be one of"),
                (#"{"name":"a","type":"http"}"#, "target is required for http checks"),
                (#"{"name":"a","type":"http","target":"https://example.com/","interval_seconds":1}"#, "interval_seconds must be an integer from 5 to 86400 (got 1)"),
                (#"{"name":"a","type":"http","target":"https://example.com/","options":{"colour":"red"}}"#, "options.colour is not a known field"),
                (#"{"name":"a","type":"docker","target":"web","run_on":{"mode":"server"}}"#, "run_on.mode cannot be server"),
            ]
            for (body, message) in cases {
                let response = try await Self.send(client, .post, "/api/v1/checks", key: admin, body: body)
                XCTAssertEqual(response.status, .badRequest, body)
                let error = try response.apiError()
                XCTAssertEqual(error.code, "bad_request", body)
                XCTAssertTrue(error.message.hasPrefix(message), "\(body): \(error.message)")
            }
            let count3 = try await Self.checkCount(seed)
            XCTAssertEqual(count3, 0)

            let check = try await Self.create(client, key: admin)
            let id = try XCTUnwrap(check["id"] as? String)
            let badPut = try await Self.send(client, .put, "/api/v1/checks/\(id)", key: admin,
                                             body: #"{"name":"home page","type":"tcp","target":"no-port"}"#)
            XCTAssertEqual(badPut.status, .badRequest)
            XCTAssertTrue(try badPut.apiError().message.hasPrefix("target must be host:port"))
            let unchanged = try await Self.send(client, .get, "/api/v1/checks/\(id)", key: admin)
            XCTAssertEqual(try unchanged.jsonObject() as NSDictionary, check as NSDictionary)
        }
    }

    func testABodyOverTheLimitAnswers413() async throws {
        try await APITestHarness.withAPI { seed, client in
            let admin = try await seed.apiKey(tenant: try await seed.tenant(), role: .admin)
            let padding = String(repeating: "a", count: HTTPRequestLimits.defaultMaxBodyBytes)
            let body = #"{"name":"a","type":"http","target":"https://example.com/","options":{"body":"\#(padding)"}}"#
            let response = try await Self.send(client, .post, "/api/v1/checks", key: admin, body: body)
            XCTAssertEqual(response.status, .contentTooLarge)
            XCTAssertEqual(try response.apiError().code, "payload_too_large")
            let count4 = try await Self.checkCount(seed)
            XCTAssertEqual(count4, 0)
        }
    }

    func testPutReplacesTheCheckAndDeleteRemovesIt() async throws {
        try await APITestHarness.withAPI { seed, client in
            let tenant = try await seed.tenant()
            let admin = try await seed.apiKey(tenant: tenant, role: .admin)
            let check = try await Self.create(client, key: admin, #"{"name":"db","type":"tcp","target":"db:5432","retries":3,"paused":true}"#)
            let id = try XCTUnwrap(check["id"] as? String)
            XCTAssertEqual(check["state"] as? String, "paused")

            var echoed = check
            echoed["target"] = "db.internal:6432"
            echoed["run_on"] = ["mode": "labels", "labels": ["env=prod"]]
            let body = String(decoding: try JSONSerialization.data(withJSONObject: echoed), as: UTF8.self)
            let put = try await Self.send(client, .put, "/api/v1/checks/\(id)", key: admin, body: body)
            XCTAssertEqual(put.status, .ok, String(buffer: put.body))
            let replaced = try put.jsonObject()
            XCTAssertEqual(replaced["id"] as? String, id)
            XCTAssertEqual(replaced["target"] as? String, "db.internal:6432")
            XCTAssertEqual(replaced["retries"] as? Int, 3)
            XCTAssertEqual(replaced["paused"] as? Bool, true)
            XCTAssertEqual((replaced["run_on"] as? [String: Any])?["labels"] as? [String], ["env=prod"])
            XCTAssertEqual(replaced["created_at"] as? String, check["created_at"] as? String)

            try await seed.checkResult(tenant: tenant, check: try Self.uuid(of: check), slotAt: Date(), ok: true)
            let delete = try await Self.send(client, .delete, "/api/v1/checks/\(id)", key: admin)
            XCTAssertEqual(delete.status, .noContent)
            XCTAssertEqual(delete.body.readableBytes, 0)
            let gone = try await Self.send(client, .get, "/api/v1/checks/\(id)", key: admin)
            XCTAssertEqual(gone.status, .notFound)
            let deleteAgain = try await Self.send(client, .delete, "/api/v1/checks/\(id)", key: admin)
            XCTAssertEqual(deleteAgain.status, .notFound)
            let count5 = try await Self.checkCount(seed)
            XCTAssertEqual(count5, 0)
        }
    }

    func testPauseAndResumeReportTheState() async throws {
        try await APITestHarness.withAPI { seed, client in
            let tenant = try await seed.tenant()
            let admin = try await seed.apiKey(tenant: tenant, role: .admin)
            let check = try await Self.create(client, key: admin, #"{"name":"api","type":"tcp","target":"api:443","retries":1}"#)
            let id = try XCTUnwrap(check["id"] as? String)
            let uuid = try Self.uuid(of: check)
            let now = Date()
            // Newest first: fail, fail, ok. retries 1: two consecutive failures are down.
            for (age, ok) in [(0.0, false), (30.0, false), (60.0, true)] {
                try await seed.checkResult(tenant: tenant, check: uuid, slotAt: now.addingTimeInterval(-age), ok: ok)
            }
            let pause = try await Self.send(client, .post, "/api/v1/checks/\(id)/pause", key: admin)
            XCTAssertEqual(pause.status, .ok)
            XCTAssertEqual(try pause.jsonObject()["state"] as? String, "paused")
            XCTAssertEqual(try pause.jsonObject()["paused"] as? Bool, true)
            let resume = try await Self.send(client, .post, "/api/v1/checks/\(id)/resume", key: admin)
            XCTAssertEqual(resume.status, .ok)
            XCTAssertEqual(try resume.jsonObject()["paused"] as? Bool, false)
            XCTAssertEqual(try resume.jsonObject()["state"] as? String, "down")
            let lastResultAt = try XCTUnwrap(try resume.jsonObject()["last_result_at"] as? String)
            XCTAssertEqual(RFC3339.date(from: lastResultAt)?.timeIntervalSince1970 ?? 0,
                           now.addingTimeInterval(0.25).timeIntervalSince1970, accuracy: 0.001)

            try await seed.checkResult(tenant: tenant, check: uuid, slotAt: now.addingTimeInterval(30), ok: true)
            let read = try await Self.send(client, .get, "/api/v1/checks/\(id)", key: admin)
            XCTAssertEqual(try read.jsonObject()["state"] as? String, "up")
        }
    }

    func testResultsAreListedNewestFirstWithLimitAndRange() async throws {
        try await APITestHarness.withAPI { seed, client in
            let tenant = try await seed.tenant()
            let reader = try await seed.apiKey(tenant: tenant, role: .read)
            let admin = try await seed.apiKey(tenant: tenant, role: .admin)
            let agent = try await seed.agent(tenant: tenant, hostname: "probe-1", lastSeenSecondsAgo: 1)
            let check = try await Self.create(client, key: admin)
            let id = try XCTUnwrap(check["id"] as? String)
            let uuid = try Self.uuid(of: check)
            let base = instant("2025-03-01T12:00:00Z")
            for i in [3, 0, 4, 1, 2] {
                try await seed.checkResult(tenant: tenant, check: uuid, slotAt: base.addingTimeInterval(Double(i * 60)), ok: i != 4,
                                           agent: i == 4 ? agent : nil, latencyMs: i == 4 ? nil : 10.5, error: i == 4 ? "connection refused" : "",
                                           httpStatus: i == 4 ? nil : 204, figures: #"{"n":\#(i)}"#)
            }

            let all = try await Self.send(client, .get, "/api/v1/checks/\(id)/results", key: reader)
            XCTAssertEqual(all.status, .ok)
            let results = try XCTUnwrap(try all.jsonObject()["results"] as? [[String: Any]])
            XCTAssertEqual(results.map { $0["slot_at"] as? String },
                           ["2025-03-01T12:04:00Z", "2025-03-01T12:03:00Z", "2025-03-01T12:02:00Z", "2025-03-01T12:01:00Z", "2025-03-01T12:00:00Z"])
            let newest = results[0]
            XCTAssertEqual(Set(newest.keys), ["ts", "slot_at", "agent_id", "runner", "ok", "latency_ms", "error", "http_status",
                                              "cert_not_after", "figures"])
            XCTAssertEqual(newest["ts"] as? String, "2025-03-01T12:04:00.250Z")
            XCTAssertEqual(newest["agent_id"] as? String, "h-\(agent.uuidString.lowercased())")
            XCTAssertEqual(newest["ok"] as? Bool, false)
            XCTAssertTrue(newest["latency_ms"] is NSNull)
            XCTAssertEqual(newest["error"] as? String, "connection refused")
            XCTAssertTrue(newest["http_status"] is NSNull)
            XCTAssertEqual(newest["figures"] as? [String: Int], ["n": 4])
            XCTAssertTrue(results[1]["agent_id"] is NSNull, "run by a server replica")
            XCTAssertEqual(results[1]["latency_ms"] as? Double, 10.5)
            XCTAssertEqual(results[1]["http_status"] as? Int, 204)

            let limited = try await Self.send(client, .get, "/api/v1/checks/\(id)/results?limit=2", key: reader)
            XCTAssertEqual((try limited.jsonObject()["results"] as? [[String: Any]])?.map { $0["slot_at"] as? String },
                           ["2025-03-01T12:04:00Z", "2025-03-01T12:03:00Z"])
            let ranged = try await Self.send(client, .get,
                                             "/api/v1/checks/\(id)/results?from=2025-03-01T12:01:00Z&to=2025-03-01T12:02:30Z", key: reader)
            XCTAssertEqual((try ranged.jsonObject()["results"] as? [[String: Any]])?.map { $0["slot_at"] as? String },
                           ["2025-03-01T12:02:00Z", "2025-03-01T12:01:00Z"])

            for (query, message) in [("limit=0", "limit must be an integer from 1 to 1000"), ("limit=1001", "limit must be"),
                                     ("from=yesterday", "from must be an RFC 3339 timestamp"),
                                     ("from=2025-03-02T00:00:00Z&to=2025-03-01T00:00:00Z", "from (2025-03-02T00:00:00Z) must not be after to")] {
                let response = try await Self.send(client, .get, "/api/v1/checks/\(id)/results?\(query)", key: reader)
                XCTAssertEqual(response.status, .badRequest, query)
                XCTAssertTrue(try response.apiError().message.hasPrefix(message), query)
            }
        }
    }
}
