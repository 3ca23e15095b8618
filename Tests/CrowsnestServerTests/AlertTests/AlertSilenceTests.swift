import CrowsnestWire
import Foundation
import Hummingbird
import HummingbirdTesting
import XCTest

@testable import CrowsnestServer

/// Silences, acknowledgement and escalation through the API and the evaluator, with notifications delivered to a
/// real HTTP receiver: a silenced outage is announced when the silence ends, an acknowledged one neither reminds
/// nor escalates, an unacknowledged one escalates once to its own channel, which then hears the recovery.
final class AlertSilenceTests: XCTestCase {
    func testSilencesHoldBackAcknowledgementStopsRemindersAndEscalationGoesOnceToItsChannel() async throws {
        let receiver = try await TestWebhookReceiver.start()
        defer { Task { await receiver.stop() } }
        try await APITestHarness.withAPI { seed, client in
            let tenant = try await seed.tenant(), other = try await seed.tenant()
            let admin = try await seed.apiKey(tenant: tenant, role: .admin), reader = try await seed.apiKey(tenant: tenant, role: .read)
            let otherAdmin = try await seed.apiKey(tenant: other, role: .admin)
            try await TenantStore(client: seed.database, logger: APITestHarness.logger).allowNetwork(tenantID: tenant, network: IPNetwork("127.0.0.0/8")!)
            let host = try await seed.agent(tenant: tenant, hostname: "web-1", lastSeenSecondsAgo: 1)
            let now = Date()
            var targets: [TargetID] = []
            for name in ["a", "b"] {
                try await seed.container(tenant: tenant, agent: host, name: name)
                let target = TargetID.container(agentID: host, name: name)
                try await seed.statusSpan(tenant: tenant, target: target, state: "up", startedAt: now.addingTimeInterval(-3600),
                                          endedAt: now.addingTimeInterval(-100))
                try await seed.statusSpan(tenant: tenant, target: target, state: "down", startedAt: now.addingTimeInterval(-100), endedAt: nil)
                targets.append(target)
            }
            let (a, b) = (targets[0].description, targets[1].description)
            var channels: [String] = []
            for name in ["primary", "escalation"] {
                let created = try await AlertDeliveryTests.post(client, "/api/v1/alert-channels", admin.secret,
                                                                #"{"name":"\#(name)","type":"webhook","url":"\#(receiver.url)/\#(name)"}"#)
                channels.append(try XCTUnwrap(try created.jsonObject()["id"] as? String))
            }
            let created = try await AlertDeliveryTests.post(client, "/api/v1/alert-rules", admin.secret, """
                {"name":"down","targets":["\(a)","\(b)"],"for_seconds":30,"channels":["\(channels[0])"],"reminder_minutes":5,
                 "escalation":{"after_minutes":10,"channels":["\(channels[1])"]}}
                """)
            XCTAssertEqual(created.status, .created, String(buffer: created.body))
            let ruleID = try XCTUnwrap(try created.jsonObject()["id"] as? String)
            XCTAssertEqual((try created.jsonObject()["escalation"] as? [String: Any])?["after_minutes"] as? Int, 10)
            let badEscalation = try await AlertDeliveryTests.post(client, "/api/v1/alert-rules", admin.secret, """
                {"name":"x","targets":["\(a)"],"channels":["\(channels[0])"],"escalation":{"after_minutes":10,"channels":["n-\(UUID().uuidString.lowercased())"]}}
                """)
            XCTAssertTrue(try badEscalation.apiError().message.contains("escalation.channels[0] names no alert channel"), String(buffer: badEscalation.body))

            let until = RFC3339.string(from: now.addingTimeInterval(3600))
            for (bad, message) in [
                (#"{"target":"\#(a)","until":"\#(RFC3339.string(from: now.addingTimeInterval(-60)))"}"#, "until must be in the future"),
                (#"{"target":"\#(a)"}"#, "until is required"),
                (#"{"target":"\#(a)","until":"tomorrow"}"#, "until must be an RFC 3339 time"),
                (#"{"rule":"a-\#(UUID().uuidString.lowercased())","until":"\#(until)"}"#, "rule names no alert rule"),
                (#"{"target":"h-\#(UUID().uuidString.lowercased())","until":"\#(until)"}"#, "target names nothing this tenant has"),
                (#"{"target":"\#(a)","until":"\#(until)","why":"x"}"#, "why is not a known field"),
                (#"{"target":"\#(a)","until":"\#(until)","comment":"a\nb"}"#, "comment must be a string"),
            ] {
                let response = try await AlertDeliveryTests.post(client, "/api/v1/alert-silences", admin.secret, bad)
                XCTAssertEqual(response.status, .badRequest, bad)
                XCTAssertTrue(try response.apiError().message.contains(message), "\(bad): \(String(buffer: response.body))")
            }
            let refused = try await AlertDeliveryTests.post(client, "/api/v1/alert-silences", reader.secret, #"{"target":"\#(a)","until":"\#(until)"}"#)
            XCTAssertEqual(refused.status, .forbidden)
            let silence = try await AlertDeliveryTests.post(client, "/api/v1/alert-silences", admin.secret,
                                                            #"{"rule":"\#(ruleID)","target":"\#(a)","until":"\#(until)","comment":"deploying a"}"#)
            XCTAssertEqual(silence.status, .created, String(buffer: silence.body))
            let silenceID = try XCTUnwrap(try silence.jsonObject()["id"] as? String)
            XCTAssertTrue(silenceID.hasPrefix("q-"))

            let job = AlertJob(client: seed.database, logger: APITestHarness.logger)
            let first = try await job.round(now: now)
            XCTAssertEqual(first.notifications, 1, "b fires; a is silenced")
            var alerts = try await client.execute(uri: "/api/v1/alerts", method: .get, headers: bearer(reader.secret))
            var list = try XCTUnwrap(try alerts.jsonObject()["alerts"] as? [[String: Any]])
            XCTAssertEqual(list.count, 2)
            let silencedA = try XCTUnwrap(list.first { $0["target_id"] as? String == a })
            XCTAssertEqual(silencedA["silenced"] as? Bool, true)
            XCTAssertTrue(silencedA["announced_at"] is NSNull, "held back")

            let theirEnd = try await client.execute(uri: "/api/v1/alert-silences/\(silenceID)", method: .delete, headers: bearer(otherAdmin.secret))
            XCTAssertEqual(theirEnd.status, .notFound, "another tenant's silence")
            let ended = try await client.execute(uri: "/api/v1/alert-silences/\(silenceID)", method: .delete, headers: bearer(admin.secret))
            XCTAssertEqual(ended.status, .noContent)
            let again = try await client.execute(uri: "/api/v1/alert-silences/\(silenceID)", method: .delete, headers: bearer(admin.secret))
            XCTAssertEqual(again.status, .notFound, "already ended")
            let listed = try await client.execute(uri: "/api/v1/alert-silences", method: .get, headers: bearer(reader.secret))
            let silences = try XCTUnwrap(try listed.jsonObject()["silences"] as? [[String: Any]])
            XCTAssertEqual(silences.first?["active"] as? Bool, false, "listed as ended")
            XCTAssertEqual(silences.first?["comment"] as? String, "deploying a")

            let second = try await job.round(now: now.addingTimeInterval(5))
            XCTAssertEqual(second.notifications, 1, "a is announced once its silence ended")

            let ackBody = #"{"rule":"\#(ruleID)","target":"\#(a)"}"#
            let readerAck = try await AlertDeliveryTests.post(client, "/api/v1/alerts/acknowledge", reader.secret, ackBody)
            XCTAssertEqual(readerAck.status, .forbidden)
            let theirAck = try await AlertDeliveryTests.post(client, "/api/v1/alerts/acknowledge", otherAdmin.secret, ackBody)
            XCTAssertEqual(theirAck.status, .notFound, "another tenant's alert")
            let notFiring = try await AlertDeliveryTests.post(client, "/api/v1/alerts/acknowledge", admin.secret,
                                                              #"{"rule":"\#(ruleID)","target":"h-\#(host.uuidString.lowercased())"}"#)
            XCTAssertEqual(notFiring.status, .notFound)
            let ack = try await AlertDeliveryTests.post(client, "/api/v1/alerts/acknowledge", admin.secret, ackBody)
            XCTAssertEqual(ack.status, .ok, String(buffer: ack.body))
            let acknowledged = try XCTUnwrap((try ack.jsonObject()["alerts"] as? [[String: Any]])?.first)
            XCTAssertTrue((acknowledged["acknowledged_by"] as? String ?? "").hasPrefix("api key "), "\(acknowledged)")

            // Eleven minutes on: b reminds and escalates; a, acknowledged, does neither.
            let later = try await job.round(now: now.addingTimeInterval(11 * 60))
            XCTAssertEqual(later.notifications, 2)
            let quiet = try await job.round(now: now.addingTimeInterval(11 * 60 + 5))
            XCTAssertEqual(quiet.notifications, 0, "the escalation goes once")
            alerts = try await client.execute(uri: "/api/v1/alerts", method: .get, headers: bearer(reader.secret))
            list = try XCTUnwrap(try alerts.jsonObject()["alerts"] as? [[String: Any]])
            XCTAssertFalse(try XCTUnwrap(list.first { $0["target_id"] as? String == b })["escalated_at"] is NSNull)
            XCTAssertTrue(try XCTUnwrap(list.first { $0["target_id"] as? String == a })["escalated_at"] is NSNull)

            try await seed.database.query("""
                UPDATE status_spans SET ended_at = \(now.addingTimeInterval(700)) WHERE tenant_id = \(tenant) AND ended_at IS NULL
                  AND target_id = \(b)
                """, logger: APITestHarness.logger)
            try await seed.statusSpan(tenant: tenant, target: targets[1], state: "up", startedAt: now.addingTimeInterval(700), endedAt: nil)
            let recovered = try await job.round(now: now.addingTimeInterval(12 * 60))
            XCTAssertEqual(recovered.notifications, 2, "b's recovery to its channel and to the escalation's")

            let delivery = AlertDelivery(client: seed.database, secretKey: APITestHarness.secretKey, logger: APITestHarness.logger)
            while try await delivery.deliverDue() > 0 {}
            let requests = await receiver.requests
            func kinds(_ path: String, _ target: String) throws -> [String] {
                try requests.filter { $0.path == path }.compactMap { request in
                    let payload = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(request.body.utf8)) as? [String: Any])
                    return (payload["target"] as? [String: Any])?["id"] as? String == target ? payload["kind"] as? String : nil
                }
            }
            XCTAssertEqual(try kinds("/hook/primary", a), ["firing"])
            XCTAssertEqual(try kinds("/hook/primary", b), ["firing", "reminder", "resolved"])
            XCTAssertEqual(try kinds("/hook/escalation", b), ["escalation", "resolved"])
            XCTAssertEqual(try kinds("/hook/escalation", a), [])
        }
    }
}
