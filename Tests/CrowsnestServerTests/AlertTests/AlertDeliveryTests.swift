import Crypto
import CrowsnestWire
import Foundation
import Hummingbird
import HummingbirdTesting
import XCTest

@testable import CrowsnestServer

/// Alerts against a real database and a real webhook receiver on loopback: channels and rules through the API
/// (validated, SSRF-guarded, secrets sealed), the evaluation job's notifications written to the outbox once, and
/// delivered signed, again under the same id when the receiver failed.
final class AlertDeliveryTests: XCTestCase {
    static func post(_ client: some TestClientProtocol, _ path: String, _ key: String, _ body: String) async throws -> TestResponse {
        try await client.execute(uri: path, method: .post, headers: bearer(key), body: ByteBuffer(string: body))
    }

    func testAChannelIsGuardedAndItsSecretShownOnceAndRulesNameWhatExists() async throws {
        try await APITestHarness.withAPI { seed, client in
            let tenant = try await seed.tenant(), other = try await seed.tenant()
            let admin = try await seed.apiKey(tenant: tenant, role: .admin), reader = try await seed.apiKey(tenant: tenant, role: .read)
            let otherAdmin = try await seed.apiKey(tenant: other, role: .admin)
            let body = #"{"name":"ops","type":"webhook","url":"http://127.0.0.1:9/hook/secret-token"}"#
            let refused = try await Self.post(client, "/api/v1/alert-channels", admin.secret, body)
            XCTAssertEqual(refused.status, .badRequest)
            XCTAssertTrue(try refused.apiError().message.contains("url is refused: address 127.0.0.1 is loopback"), String(buffer: refused.body))
            for (bad, message) in [(#"{"name":"x","type":"pager","url":"http://a.example/"}"#, "type must be one of webhook, slack, discord, alertmanager, email"),
                                   (#"{"name":"x","type":"webhook","url":"ftp://a.example/"}"#, "url "),
                                   (#"{"name":"x","type":"webhook","url":"http://a.example/","secret":"short"}"#, "secret must be at least 16"),
                                   (#"{"name":"x","type":"webhook","url":"http://169.254.169.254/"}"#, "cloud metadata")] {
                let response = try await Self.post(client, "/api/v1/alert-channels", admin.secret, bad)
                XCTAssertEqual(response.status, .badRequest, bad)
                XCTAssertTrue(try response.apiError().message.contains(message), "\(bad): \(String(buffer: response.body))")
            }
            let forbidden = try await Self.post(client, "/api/v1/alert-channels", reader.secret, body)
            XCTAssertEqual(forbidden.status, .forbidden)

            try await TenantStore(client: seed.database, logger: APITestHarness.logger).allowNetwork(tenantID: tenant, network: IPNetwork("127.0.0.0/8")!)
            let created = try await Self.post(client, "/api/v1/alert-channels", admin.secret, body)
            XCTAssertEqual(created.status, .created, String(buffer: created.body))
            let channel = try created.jsonObject()
            let channelID = try XCTUnwrap(channel["id"] as? String)
            XCTAssertEqual((channel["secret"] as? String)?.count, 43, "a generated secret, shown once")
            XCTAssertEqual(channel["destination"] as? String, "http://127.0.0.1:9/…", "the URL's path (often a token) is not shown")
            let read = try await client.execute(uri: "/api/v1/alert-channels/\(channelID)", method: .get, headers: bearer(reader.secret))
            let readText = String(buffer: read.body)
            XCTAssertFalse(readText.contains("secret") || readText.contains("secret-token"), "never shown again: \(readText)")
            let stored = try await seed.database.query("SELECT encode(sealed, 'escape') FROM alert_channels", logger: APITestHarness.logger)
            for try await sealed in stored.decode(String.self) {
                XCTAssertFalse(sealed.contains("secret-token"), "the URL is sealed in the database")
            }
            let theirs = try await client.execute(uri: "/api/v1/alert-channels/\(channelID)", method: .get, headers: bearer(otherAdmin.secret))
            XCTAssertEqual(theirs.status, .notFound, "another tenant's channel")

            let host = try await seed.agent(tenant: tenant, hostname: "web-1", lastSeenSecondsAgo: 1)
            let hostID = "h-" + host.uuidString.lowercased()
            for (bad, message) in [
                (#"{"name":"r","targets":["h-\#(UUID().uuidString.lowercased())"],"channels":["\#(channelID)"]}"#, "targets[0] names nothing this tenant has"),
                (#"{"name":"r","targets":["\#(hostID)"],"channels":["n-\#(UUID().uuidString.lowercased())"]}"#, "channels[0] names no alert channel"),
                (#"{"name":"r","service":"s-\#(UUID().uuidString.lowercased())","channels":["\#(channelID)"]}"#, "service names no service"),
                (#"{"name":"r","targets":["\#(hostID)"],"channels":["\#(channelID)"],"for_seconds":-1}"#, "for_seconds must be an integer from 0"),
            ] {
                let response = try await Self.post(client, "/api/v1/alert-rules", admin.secret, bad)
                XCTAssertEqual(response.status, .badRequest, bad)
                XCTAssertTrue(try response.apiError().message.contains(message), "\(bad): \(String(buffer: response.body))")
            }
            let theirRule = try await Self.post(client, "/api/v1/alert-rules", otherAdmin.secret,
                                                #"{"name":"r","targets":["\#(hostID)"],"channels":["\#(channelID)"]}"#)
            XCTAssertEqual(theirRule.status, .badRequest, "another tenant cannot watch this tenant's host or use its channel")
            let rule = try await Self.post(client, "/api/v1/alert-rules", admin.secret,
                                           #"{"name":"host down","targets":["\#(hostID)"],"channels":["\#(channelID)"]}"#)
            XCTAssertEqual(rule.status, .created, String(buffer: rule.body))
            let ruleObject = try rule.jsonObject()
            XCTAssertEqual(ruleObject["for_seconds"] as? Int, 60)
            XCTAssertEqual(ruleObject["states"] as? [String], ["down"])
            XCTAssertTrue((ruleObject["id"] as? String)?.hasPrefix("a-") == true)
            let deleted = try await client.execute(uri: "/api/v1/alert-channels/\(channelID)", method: .delete, headers: bearer(admin.secret))
            XCTAssertEqual(deleted.status, .noContent)
        }
    }

    func testAnOutageIsAnnouncedOnceSignedAndItsRecoveryDeliveredAgainAfterAFailure() async throws {
        let receiver = try await TestWebhookReceiver.start()
        defer { Task { await receiver.stop() } }
        try await APITestHarness.withAPI { seed, client in
            let tenant = try await seed.tenant("acme <b>")
            let admin = try await seed.apiKey(tenant: tenant, role: .admin)
            try await TenantStore(client: seed.database, logger: APITestHarness.logger).allowNetwork(tenantID: tenant, network: IPNetwork("127.0.0.0/8")!)
            let host = try await seed.agent(tenant: tenant, hostname: "web-1", lastSeenSecondsAgo: 1)
            try await seed.container(tenant: tenant, agent: host, name: "api<img src=x>")
            let api = TargetID.container(agentID: host, name: "api<img src=x>")
            let channel = try await Self.post(client, "/api/v1/alert-channels", admin.secret,
                                              #"{"name":"ops","type":"webhook","url":"\#(receiver.url)","secret":"0123456789abcdef-signing"}"#)
            XCTAssertEqual(channel.status, .created, String(buffer: channel.body))
            XCTAssertNil(try channel.jsonObject()["secret"], "a secret the operator chose is not echoed")
            let channelID = try XCTUnwrap(try channel.jsonObject()["id"] as? String)
            let rule = try await Self.post(client, "/api/v1/alert-rules", admin.secret, """
                {"name":"api down","targets":[\(JSONValue.string(api.description).jsonText)],"for_seconds":30,"channels":["\(channelID)"]}
                """)
            XCTAssertEqual(rule.status, .created, String(buffer: rule.body))
            let ruleID = try XCTUnwrap(try rule.jsonObject()["id"] as? String)

            let now = Date()
            try await seed.statusSpan(tenant: tenant, target: api, state: "up", startedAt: now.addingTimeInterval(-3600), endedAt: now.addingTimeInterval(-100))
            try await seed.statusSpan(tenant: tenant, target: api, state: "down", startedAt: now.addingTimeInterval(-100), endedAt: nil,
                                      cause: "exited with code 1")
            let job = AlertJob(client: seed.database, logger: APITestHarness.logger)
            let delivery = AlertDelivery(client: seed.database, secretKey: APITestHarness.secretKey, logger: APITestHarness.logger)
            let first = try await job.round(now: now)
            XCTAssertEqual(first, .init(holder: true, rules: 1, notifications: 1))
            let second = try await job.round(now: now.addingTimeInterval(5))
            XCTAssertEqual(second.notifications, 0, "announced once, not every round")
            let delivered = try await delivery.deliverDue()
            XCTAssertEqual(delivered, 1)
            var requests = await receiver.requests
            XCTAssertEqual(requests.count, 1)
            let firing = try XCTUnwrap(requests.first)
            let payload = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(firing.body.utf8)) as? [String: Any])
            XCTAssertEqual(payload["kind"] as? String, "firing")
            XCTAssertEqual(payload["state"] as? String, "down")
            XCTAssertEqual(payload["cause"] as? String, "exited with code 1")
            XCTAssertEqual(payload["tenant"] as? String, "acme <b>")
            XCTAssertEqual((payload["target"] as? [String: Any])?["name"] as? String, "api<img src=x>")
            XCTAssertEqual((payload["rule"] as? [String: Any])?["id"] as? String, ruleID)
            XCTAssertEqual(firing.headers["x-crowsnest-notification-id"], payload["id"] as? String, "the id receivers deduplicate on")
            let timestamp = try XCTUnwrap(firing.headers["x-crowsnest-timestamp"])
            let expected = HMAC<SHA256>.authenticationCode(for: Array((timestamp + "." + firing.body).utf8),
                                                           using: SymmetricKey(data: Array("0123456789abcdef-signing".utf8)))
            XCTAssertEqual(firing.headers["x-crowsnest-signature"], "sha256=" + expected.map { String(format: "%02x", $0) }.joined(),
                           "signed with the channel's secret over the timestamp and the body")
            XCTAssertLessThan(abs(Double(timestamp)! - Date().timeIntervalSince1970), 60)

            // It recovers; the receiver fails the first try; the same notification comes again.
            try await seed.database.query("""
                UPDATE status_spans SET ended_at = \(now.addingTimeInterval(10)) WHERE tenant_id = \(tenant) AND ended_at IS NULL
                """, logger: APITestHarness.logger)
            try await seed.statusSpan(tenant: tenant, target: api, state: "up", startedAt: now.addingTimeInterval(10), endedAt: nil)
            let recovered = try await job.round(now: now.addingTimeInterval(15))
            XCTAssertEqual(recovered.notifications, 1)
            await receiver.answer([500])
            let result1 = try await delivery.deliverDue()
            XCTAssertEqual(result1, 1)
            var history = try await client.execute(uri: "/api/v1/alert-notifications?rule=\(ruleID)", method: .get, headers: bearer(admin.secret))
            var notifications = try XCTUnwrap(try history.jsonObject()["notifications"] as? [[String: Any]])
            XCTAssertEqual(notifications.map { $0["kind"] as? String }, ["resolved", "firing"], "newest first")
            XCTAssertEqual(notifications.map { $0["delivery"] as? String }, ["pending", "delivered"])
            XCTAssertTrue((notifications[0]["last_error"] as? String ?? "").contains("500"), "\(notifications[0])")
            let result2 = try await delivery.deliverDue()
            XCTAssertEqual(result2, 0, "not again before its backoff")
            try await seed.database.query("UPDATE alert_notifications SET next_attempt_at = now() WHERE delivered_at IS NULL",
                                          logger: APITestHarness.logger)
            let result3 = try await delivery.deliverDue()
            XCTAssertEqual(result3, 1)
            requests = await receiver.requests
            XCTAssertEqual(requests.count, 3)
            XCTAssertEqual(requests[1].headers["x-crowsnest-notification-id"], requests[2].headers["x-crowsnest-notification-id"],
                           "the retry carries the same id")
            let retried = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(requests[2].body.utf8)) as? [String: Any])
            XCTAssertEqual(retried["kind"] as? String, "resolved")
            XCTAssertEqual(retried["state"] as? String, "up")
            XCTAssertEqual(retried["since"] as? String, payload["since"] as? String, "since when it was down")
            history = try await client.execute(uri: "/api/v1/alert-notifications?channel=\(channelID)", method: .get, headers: bearer(admin.secret))
            notifications = try XCTUnwrap(try history.jsonObject()["notifications"] as? [[String: Any]])
            XCTAssertEqual(notifications.map { $0["delivery"] as? String }, ["delivered", "delivered"])
            XCTAssertEqual(notifications.first?["attempts"] as? Int, 2)

            // A receiver that refuses (4xx) is not retried.
            try await seed.database.query("""
                UPDATE status_spans SET ended_at = \(now.addingTimeInterval(20)) WHERE tenant_id = \(tenant) AND ended_at IS NULL
                """, logger: APITestHarness.logger)
            try await seed.statusSpan(tenant: tenant, target: api, state: "down", startedAt: now.addingTimeInterval(20), endedAt: nil)
            let result4 = try await job.round(now: now.addingTimeInterval(60)).notifications
            XCTAssertEqual(result4, 1)
            await receiver.answer([403])
            let result5 = try await delivery.deliverDue()
            XCTAssertEqual(result5, 1)
            try await seed.database.query("UPDATE alert_notifications SET next_attempt_at = now() WHERE delivered_at IS NULL",
                                          logger: APITestHarness.logger)
            let result6 = try await delivery.deliverDue()
            XCTAssertEqual(result6, 0, "given up after a 403")
            history = try await client.execute(uri: "/api/v1/alert-notifications?limit=1", method: .get, headers: bearer(admin.secret))
            notifications = try XCTUnwrap(try history.jsonObject()["notifications"] as? [[String: Any]])
            XCTAssertEqual(notifications.first?["delivery"] as? String, "failed")
            let badQuery = try await client.execute(uri: "/api/v1/alert-notifications?rule=nope", method: .get, headers: bearer(admin.secret))
            XCTAssertEqual(badQuery.status, .badRequest)
        }
    }

    /// A tenant that allows loopback, its admin key, and a webhook channel to a closed loopback port.
    private static func tenantWithChannel(_ seed: APISeed, _ client: some TestClientProtocol) async throws
        -> (tenant: UUID, admin: IssuedAPIKey, channelID: String) {
        let tenant = try await seed.tenant()
        let admin = try await seed.apiKey(tenant: tenant, role: .admin)
        try await TenantStore(client: seed.database, logger: APITestHarness.logger).allowNetwork(tenantID: tenant, network: IPNetwork("127.0.0.0/8")!)
        let channel = try await post(client, "/api/v1/alert-channels", admin.secret, #"{"name":"ops","type":"webhook","url":"http://127.0.0.1:9/"}"#)
        return (tenant, admin, try XCTUnwrap(try channel.jsonObject()["id"] as? String))
    }

    func testATenantHasAtMost5000AlertRules() async throws {
        try await APITestHarness.withAPI { seed, client in
            let (tenant, admin, channelID) = try await Self.tenantWithChannel(seed, client)
            let host = try await seed.agent(tenant: tenant, hostname: "h1", lastSeenSecondsAgo: 1)
            let limit = DefinitionStore.Table.alertRules.maximumPerTenant
            XCTAssertEqual(limit, 5000)
            try await seed.database.query("""
                INSERT INTO alert_rules (tenant_id, id, name, definition)
                SELECT \(tenant), gen_random_uuid(), 'rule ' || n, '{}'::jsonb FROM generate_series(1, \(limit - 1)) n
                """, logger: APITestHarness.logger)
            func rule(_ name: String) -> String {
                #"{"name":"\#(name)","targets":["h-\#(host.uuidString.lowercased())"],"channels":["\#(channelID)"]}"#
            }
            let last = try await Self.post(client, "/api/v1/alert-rules", admin.secret, rule("the last one"))
            XCTAssertEqual(last.status, .created, "the 5,000th")
            let over = try await Self.post(client, "/api/v1/alert-rules", admin.secret, rule("one too many"))
            XCTAssertEqual(over.status, .conflict)
            XCTAssertTrue(try over.apiError().message.contains("already has 5000 alert rules"), String(buffer: over.body))
        }
    }

    func testARecoveryWaitsForItsFiringToBeDeliveredFirst() async throws {
        try await TestPostgres.withTestDatabase { client in
            let tenant = try await TenantStore(client: client, logger: APITestHarness.logger).create(name: "acme")
            let rule = UUID(), channel = UUID()
            func draft(_ kind: AlertNotificationKind, target: String = "h-1") -> AlertNotificationDraft {
                AlertNotificationDraft(id: UUID(), ruleID: rule, channelID: channel, targetID: target, kind: kind, payload: .object([:]))
            }
            let firing = draft(.firing), resolved = draft(.resolved), elsewhere = draft(.firing, target: "h-2")
            try await client.withConnection { connection in
                try await AlertStore.enqueue([firing], tenantID: tenant, on: connection, logger: APITestHarness.logger)
                try await AlertStore.enqueue([resolved, elsewhere], tenantID: tenant, on: connection, logger: APITestHarness.logger)
            }
            let store = AlertStore(client: client, logger: APITestHarness.logger)
            // The firing failed once and waits for its backoff.
            try await store.retry(tenantID: tenant, id: firing.id, after: .seconds(60), error: "HTTP 500")
            let claimed = try await store.claimDue(limit: 10, hold: .seconds(60))
            XCTAssertEqual(claimed.map(\.id), [elsewhere.id], "the recovery waits behind its firing; another target's goes")
            try await client.query("UPDATE alert_notifications SET next_attempt_at = now() WHERE id = \(firing.id)", logger: APITestHarness.logger)
            let next = try await store.claimDue(limit: 10, hold: .seconds(60))
            XCTAssertEqual(next.map(\.id), [firing.id])
            try await store.markDelivered(tenantID: tenant, id: firing.id)
            let last = try await store.claimDue(limit: 10, hold: .seconds(60))
            XCTAssertEqual(last.map(\.id), [resolved.id], "then the recovery")
        }
    }

    func testAnEditedRuleGoesOnFromWhatItAnnouncedAndATargetThatLeavesIsResolved() async throws {
        try await APITestHarness.withAPI { seed, client in
            let (tenant, admin, channelID) = try await Self.tenantWithChannel(seed, client)
            let a = try await seed.agent(tenant: tenant, hostname: "a", lastSeenSecondsAgo: 1)
            let b = try await seed.agent(tenant: tenant, hostname: "b", lastSeenSecondsAgo: 1)
            let now = Date()
            try await seed.statusSpan(tenant: tenant, target: .host(agentID: a), state: "down", startedAt: now.addingTimeInterval(-600), endedAt: nil)
            func body(_ name: String, _ hosts: [UUID]) -> String {
                let targets = hosts.map { "\"h-\($0.uuidString.lowercased())\"" }.joined(separator: ",")
                return #"{"name":"\#(name)","targets":[\#(targets)],"for_seconds":0,"channels":["\#(channelID)"]}"#
            }
            let created = try await Self.post(client, "/api/v1/alert-rules", admin.secret, body("hosts", [a, b]))
            let ruleID = try XCTUnwrap(try created.jsonObject()["id"] as? String)
            let job = AlertJob(client: seed.database, logger: APITestHarness.logger)
            let first = try await job.round(now: now)
            XCTAssertEqual(first.notifications, 1, "host a fires")
            let renamed = try await client.execute(uri: "/api/v1/alert-rules/\(ruleID)", method: .put, headers: bearer(admin.secret),
                                                   body: ByteBuffer(string: body("hosts renamed", [a, b])))
            XCTAssertEqual(renamed.status, .ok)
            let afterRename = try await job.round(now: now.addingTimeInterval(5))
            XCTAssertEqual(afterRename.notifications, 0, "a rename announces nothing again")
            let narrowed = try await client.execute(uri: "/api/v1/alert-rules/\(ruleID)", method: .put, headers: bearer(admin.secret),
                                                    body: ByteBuffer(string: body("hosts renamed", [b])))
            XCTAssertEqual(narrowed.status, .ok)
            let afterNarrowing = try await job.round(now: now.addingTimeInterval(10))
            XCTAssertEqual(afterNarrowing.notifications, 1)
            let history = try await AlertStore(client: seed.database, logger: APITestHarness.logger)
                .history(tenantID: tenant, ruleID: nil, channelID: nil, limit: 10)
            XCTAssertEqual(history.map(\.kind), ["resolved", "firing"])
            guard case .object(let payload)? = history.first?.payload else { return XCTFail("no payload") }
            XCTAssertEqual(payload["cause"], .string("no longer watched by this rule (removed, or no longer matching it)"))
            XCTAssertEqual(history.first?.targetID, "h-" + a.uuidString.lowercased())
            let quiet = try await job.round(now: now.addingTimeInterval(15))
            XCTAssertEqual(quiet.notifications, 0, "and forgotten")
        }
    }
}
