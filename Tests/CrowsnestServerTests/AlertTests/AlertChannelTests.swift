import CrowsnestWire
import Foundation
import Hummingbird
import HummingbirdTesting
import XCTest

@testable import CrowsnestServer

/// Slack-, Discord- and Alertmanager-compatible webhooks against a real HTTP receiver, and email against a real
/// SMTP server (aiosmtpd) with STARTTLS, TLS from the start and AUTH — each fed an alert about a container whose
/// name is hostile.
final class AlertChannelTests: XCTestCase {
    static let hostileName = "api<!channel> @everyone *bold* <http://evil.example|click> Bcc: victim@evil.example"

    /// A tenant that may reach loopback, its admin key, a container with a hostile name that has been down for
    /// 100 s, and a rule on it (for 30 s) sending to `channels` (created from their JSON bodies).
    private static func outage(_ seed: APISeed, _ client: some TestClientProtocol, channels: [String], ruleExtra: String = "")
        async throws -> (tenant: UUID, admin: IssuedAPIKey, channelIDs: [String], ruleID: String, target: TargetID) {
        let tenant = try await seed.tenant("acme")
        let admin = try await seed.apiKey(tenant: tenant, role: .admin)
        try await TenantStore(client: seed.database, logger: APITestHarness.logger).allowNetwork(tenantID: tenant, network: IPNetwork("127.0.0.0/8")!)
        let host = try await seed.agent(tenant: tenant, hostname: "web-1", lastSeenSecondsAgo: 1)
        try await seed.container(tenant: tenant, agent: host, name: Self.hostileName)
        let target = TargetID.container(agentID: host, name: Self.hostileName)
        var channelIDs: [String] = []
        for body in channels {
            let created = try await AlertDeliveryTests.post(client, "/api/v1/alert-channels", admin.secret, body)
            XCTAssertEqual(created.status, .created, "\(body): \(String(buffer: created.body))")
            channelIDs.append(try XCTUnwrap(try created.jsonObject()["id"] as? String))
        }
        let list = channelIDs.map { "\"\($0)\"" }.joined(separator: ",")
        let rule = try await AlertDeliveryTests.post(client, "/api/v1/alert-rules", admin.secret, """
            {"name":"api down","targets":[\(JSONValue.string(target.description).jsonText)],"for_seconds":30,"channels":[\(list)]\(ruleExtra)}
            """)
        XCTAssertEqual(rule.status, .created, String(buffer: rule.body))
        let now = Date()
        try await seed.statusSpan(tenant: tenant, target: target, state: "up", startedAt: now.addingTimeInterval(-3600), endedAt: now.addingTimeInterval(-100))
        try await seed.statusSpan(tenant: tenant, target: target, state: "down", startedAt: now.addingTimeInterval(-100), endedAt: nil,
                                  cause: "exited with code 137 <script>")
        return (tenant, admin, channelIDs, try XCTUnwrap(try rule.jsonObject()["id"] as? String), target)
    }

    private static func recover(_ seed: APISeed, tenant: UUID, target: TargetID, at time: Date) async throws {
        try await seed.database.query("""
            UPDATE status_spans SET ended_at = \(time) WHERE tenant_id = \(tenant) AND ended_at IS NULL
            """, logger: APITestHarness.logger)
        try await seed.statusSpan(tenant: tenant, target: target, state: "up", startedAt: time, endedAt: nil)
    }

    private static func json(_ text: String) throws -> Any {
        try JSONSerialization.jsonObject(with: Data(text.utf8))
    }

    func testEveryChannelTypeIsValidatedWithTheFieldNamed() async throws {
        try await APITestHarness.withAPI { seed, client in
            let tenant = try await seed.tenant()
            let admin = try await seed.apiKey(tenant: tenant, role: .admin)
            try await TenantStore(client: seed.database, logger: APITestHarness.logger).allowNetwork(tenantID: tenant, network: IPNetwork("127.0.0.0/8")!)
            let smtp = #""name":"mail","type":"email","smtp_host":"127.0.0.1","from":"alerts@example.com""#
            for (bad, message) in [
                (#"{"name":"x","type":"email","url":"http://a.example/"}"#, "url is not a known field: an email channel takes"),
                (#"{"name":"x","type":"email","from":"a@example.com","to":"b@example.com"}"#, "smtp_host is required"),
                (#"{"name":"x","type":"email","smtp_host":"no such host!","from":"a@example.com","to":"b@example.com"}"#, "smtp_host must"),
                (#"{\#(smtp)}"#, "to is required"),
                (#"{\#(smtp),"to":["ops@example.com","not an address"]}"#, "to[1] must be an address"),
                (#"{\#(smtp),"to":"ops@example.com\r\nBcc: x@evil.example"}"#, "to must not contain control characters"),
                (#"{"name":"mail","type":"email","smtp_host":"127.0.0.1","from":"<a@example.com>","to":"b@example.com"}"#, "from must be an address"),
                (#"{\#(smtp),"to":"b@example.com","smtp_security":"none"}"#, "smtp_security must be starttls"),
                (#"{\#(smtp),"to":"b@example.com","smtp_port":0}"#, "smtp_port must be an integer from 1 to 65535"),
                (#"{\#(smtp),"to":"b@example.com","smtp_password":"p"}"#, "smtp_username is required with smtp_password"),
                (#"{"name":"mail","type":"email","smtp_host":"169.254.169.254","from":"a@example.com","to":"b@example.com"}"#, "smtp_host is refused"),
                (#"{"name":"x","type":"slack","url":"http://a.example/","secret":"0123456789abcdefgh"}"#, "secret is not a known field: a slack channel takes name, type, url"),
                (#"{"name":"x","type":"discord"}"#, "url is required"),
                (#"{"name":"x","type":"alertmanager","url":"http://a.example/","repost_seconds":10}"#, "repost_seconds must be an integer from 30 to 3600"),
                (#"{"name":"x","type":"alertmanager","url":"http://10.0.0.1:9093"}"#, "url is refused"),
            ] {
                let response = try await AlertDeliveryTests.post(client, "/api/v1/alert-channels", admin.secret, bad)
                XCTAssertEqual(response.status, .badRequest, bad)
                XCTAssertTrue(try response.apiError().message.contains(message), "\(bad): \(String(buffer: response.body))")
            }
            let email = try await AlertDeliveryTests.post(client, "/api/v1/alert-channels", admin.secret,
                                                          #"{\#(smtp),"to":["ops@example.com","oncall@example.com"],"smtp_username":"u","smtp_password":"hunter2-secret"}"#)
            XCTAssertEqual(email.status, .created, String(buffer: email.body))
            let shown = try email.jsonObject()
            XCTAssertEqual(shown["type"] as? String, "email")
            XCTAssertEqual(shown["destination"] as? String, "smtp://127.0.0.1:587 → 2 recipients")
            XCTAssertFalse(String(buffer: email.body).contains("hunter2"), "the password is never shown")
            let stored = try await seed.database.query("SELECT encode(sealed, 'escape') FROM alert_channels", logger: APITestHarness.logger)
            for try await sealed in stored.decode(String.self) {
                XCTAssertFalse(sealed.contains("hunter2"), "the password is sealed in the database")
            }
        }
    }

    func testSlackDiscordAndAlertmanagerGetTheirOwnFormatsWithHostileTextDefused() async throws {
        let receiver = try await TestWebhookReceiver.start()
        defer { Task { await receiver.stop() } }
        try await APITestHarness.withAPI { seed, client in
            let base = "http://127.0.0.1:\(receiver.port)"
            let (tenant, admin, channelIDs, ruleID, target) = try await Self.outage(seed, client, channels: [
                #"{"name":"slack","type":"slack","url":"\#(base)/slack/T000/B000/xyz"}"#,
                #"{"name":"discord","type":"discord","url":"\#(base)/discord/api/webhooks/1/abc"}"#,
                #"{"name":"am","type":"alertmanager","url":"\#(base)","repost_seconds":60}"#,
            ])
            let job = AlertJob(client: seed.database, logger: APITestHarness.logger)
            let delivery = AlertDelivery(client: seed.database, secretKey: APITestHarness.secretKey, logger: APITestHarness.logger)
            let now = Date()
            let fired = try await job.round(now: now)
            XCTAssertEqual(fired.notifications, 3, "one per channel")
            _ = try await delivery.deliverDue()
            var requests = await receiver.requests
            XCTAssertEqual(Set(requests.map(\.path)), ["/slack/T000/B000/xyz", "/discord/api/webhooks/1/abc", "/api/v2/alerts"],
                           "an Alertmanager given by its address gets its alerts endpoint")

            let slack = try XCTUnwrap(requests.first { $0.path.hasPrefix("/slack") })
            let slackText = try XCTUnwrap((try Self.json(slack.body) as? [String: Any])?["text"] as? String)
            XCTAssertTrue(slackText.hasPrefix("*FIRING* container "), slackText)
            XCTAssertTrue(slackText.contains("api&lt;!channel&gt;"), "no channel mention: \(slackText)")
            XCTAssertTrue(slackText.contains("&lt;http://evil.example|click&gt;"), "no link: \(slackText)")
            XCTAssertFalse(slackText.contains("<"), "nothing Slack would read as markup: \(slackText)")
            XCTAssertTrue(slackText.contains("cause: exited with code 137 &lt;script&gt;"), slackText)

            let discord = try XCTUnwrap(try Self.json(XCTUnwrap(requests.first { $0.path.hasPrefix("/discord") }).body) as? [String: Any])
            let content = try XCTUnwrap(discord["content"] as? String)
            XCTAssertEqual((discord["allowed_mentions"] as? [String: Any])?["parse"] as? [String], [], "pings nobody")
            XCTAssertTrue(content.contains("\\@everyone") && content.contains("\\*bold\\*"), "mentions and Markdown escaped: \(content)")
            XCTAssertLessThanOrEqual(content.count, 2000)

            let posted = try XCTUnwrap(try Self.json(XCTUnwrap(requests.first { $0.path == "/api/v2/alerts" }).body) as? [[String: Any]])
            XCTAssertEqual(posted.count, 1)
            let alert = posted[0]
            let labels = try XCTUnwrap(alert["labels"] as? [String: String])
            XCTAssertEqual(labels["alertname"], "api down")
            XCTAssertEqual(labels["crowsnest_rule"], ruleID)
            XCTAssertEqual(labels["crowsnest_target"], target.description)
            XCTAssertEqual(labels["target_name"], Self.hostileName)
            let ends = try XCTUnwrap(RFC3339.date(from: XCTUnwrap(alert["endsAt"] as? String)))
            XCTAssertEqual(ends.timeIntervalSinceNow, 180, accuracy: 30, "three repost intervals ahead while it fires")
            let starts = try XCTUnwrap(RFC3339.date(from: XCTUnwrap(alert["startsAt"] as? String)))
            XCTAssertEqual(starts.timeIntervalSince(now), -100, accuracy: 1, "since the outage began")

            // Still firing a repost interval later: the Alertmanager (only) is told again.
            let quiet = try await job.round(now: now.addingTimeInterval(30))
            XCTAssertEqual(quiet.notifications, 0)
            let refreshed = try await job.round(now: now.addingTimeInterval(61))
            XCTAssertEqual(refreshed.notifications, 1)
            _ = try await delivery.deliverDue()
            requests = await receiver.requests
            XCTAssertEqual(requests.count, 4)
            XCTAssertEqual(requests.last?.path, "/api/v2/alerts")
            let again = try XCTUnwrap((try Self.json(XCTUnwrap(requests.last).body) as? [[String: Any]])?.first)
            XCTAssertEqual(again["labels"] as? [String: String], labels, "the same alert, by its labels")
            XCTAssertEqual((again["annotations"] as? [String: String])?["notification"], "refresh")

            // Recovered: endsAt is when.
            let recovery = now.addingTimeInterval(70)
            try await Self.recover(seed, tenant: tenant, target: target, at: recovery)
            let resolved = try await job.round(now: now.addingTimeInterval(75))
            XCTAssertEqual(resolved.notifications, 3)
            _ = try await delivery.deliverDue()
            requests = await receiver.requests
            let end = try XCTUnwrap((try Self.json(XCTUnwrap(requests.last { $0.path == "/api/v2/alerts" }).body) as? [[String: Any]])?.first)
            let endsAt = try XCTUnwrap(RFC3339.date(from: XCTUnwrap(end["endsAt"] as? String)))
            XCTAssertEqual(endsAt.timeIntervalSince(now.addingTimeInterval(75)), 0, accuracy: 1, "ends when the recovery was noticed")
            let slackResolved = try XCTUnwrap((try Self.json(XCTUnwrap(requests.last { $0.path.hasPrefix("/slack") }).body) as? [String: Any])?["text"] as? String)
            XCTAssertTrue(slackResolved.hasPrefix("*RESOLVED*"), slackResolved)
            let history = try await client.execute(uri: "/api/v1/alert-notifications?channel=\(channelIDs[2])", method: .get, headers: bearer(admin.secret))
            let kinds = try XCTUnwrap(try history.jsonObject()["notifications"] as? [[String: Any]]).map { $0["kind"] as? String }
            XCTAssertEqual(kinds, ["resolved", "refresh", "firing"])
        }
    }

    func testEmailGoesOverSTARTTLSWithAuthAndOverTLSFromTheStart() async throws {
        let startTLS = try await TestSMTPReceiver.start(mode: "starttls", user: "alerts", password: "s3cret-pass")
        let implicitTLS = try await TestSMTPReceiver.start(mode: "tls")
        defer { startTLS.stop(); implicitTLS.stop() }
        try await APITestHarness.withAPI { seed, client in
            let (tenant, _, _, _, target) = try await Self.outage(seed, client, channels: [
                #"{"name":"mail 587","type":"email","smtp_host":"127.0.0.1","smtp_port":\#(startTLS.port),"smtp_security":"starttls","smtp_verify_tls":false,"smtp_username":"alerts","smtp_password":"s3cret-pass","from":"crowsnest@example.com","to":["ops@example.com","oncall@example.com"]}"#,
                #"{"name":"mail 465","type":"email","smtp_host":"127.0.0.1","smtp_port":\#(implicitTLS.port),"smtp_security":"tls","smtp_verify_tls":false,"from":"crowsnest@example.com","to":"ops@example.com"}"#,
            ])
            let job = AlertJob(client: seed.database, logger: APITestHarness.logger)
            let delivery = AlertDelivery(client: seed.database, secretKey: APITestHarness.secretKey, logger: APITestHarness.logger)
            let now = Date()
            _ = try await job.round(now: now)
            let delivered1 = try await delivery.deliverDue()
            XCTAssertEqual(delivered1, 2)
            let states = try await seed.database.query("SELECT count(*) FROM alert_notifications WHERE delivered_at IS NOT NULL",
                                                       logger: APITestHarness.logger)
            for try await count in states.decode(Int.self) { XCTAssertEqual(count, 2, "both delivered") }

            let viaSTARTTLS = try XCTUnwrap(startTLS.messages.first)
            XCTAssertEqual(startTLS.messages.count, 1)
            XCTAssertTrue(viaSTARTTLS.authenticated, "AUTH with the channel's credentials")
            XCTAssertEqual(viaSTARTTLS.mailFrom, "crowsnest@example.com")
            XCTAssertEqual(viaSTARTTLS.recipients, ["ops@example.com", "oncall@example.com"])
            let message = try XCTUnwrap(MailText(viaSTARTTLS.data))
            XCTAssertEqual(message.headers["To"], "ops@example.com, oncall@example.com")
            XCTAssertNil(message.headers["Bcc"], "a name in the subject adds no header")
            XCTAssertTrue(message.subject.hasPrefix("[crowsnest] FIRING: container api<!channel>"), message.subject)
            XCTAssertTrue(message.body.contains("cause: exited with code 137 <script>"), message.body)
            XCTAssertTrue(message.body.contains(Self.hostileName), "the name as it is, in the base64 body")
            XCTAssertNotNil(message.headers["Message-ID"])
            XCTAssertEqual(implicitTLS.messages.count, 1)
            XCTAssertFalse(implicitTLS.messages[0].authenticated)

            try await Self.recover(seed, tenant: tenant, target: target, at: now.addingTimeInterval(5))
            _ = try await job.round(now: now.addingTimeInterval(10))
            let delivered2 = try await delivery.deliverDue()
            XCTAssertEqual(delivered2, 2)
            let recovery = try XCTUnwrap(MailText(XCTUnwrap(startTLS.messages.last).data))
            XCTAssertTrue(recovery.subject.hasPrefix("[crowsnest] RESOLVED:"), recovery.subject)
            XCTAssertEqual(recovery.headers["References"], message.headers["References"], "threaded with its firing")
        }
    }

    func testAMailServerWithoutSTARTTLSOrRefusingTheRecipientIsGivenUpOnWithTheReason() async throws {
        let plain = try await TestSMTPReceiver.start(mode: "plain")
        let refusing = try await TestSMTPReceiver.start(mode: "starttls", rejectRecipients: true)
        defer { plain.stop(); refusing.stop() }
        try await APITestHarness.withAPI { seed, client in
            let (_, admin, channelIDs, _, _) = try await Self.outage(seed, client, channels: [
                #"{"name":"no tls","type":"email","smtp_host":"127.0.0.1","smtp_port":\#(plain.port),"from":"a@example.com","to":"b@example.com"}"#,
                #"{"name":"refuses","type":"email","smtp_host":"127.0.0.1","smtp_port":\#(refusing.port),"smtp_verify_tls":false,"from":"a@example.com","to":"b@example.com"}"#,
                #"{"name":"verifies","type":"email","smtp_host":"127.0.0.1","smtp_port":\#(refusing.port),"from":"a@example.com","to":"b@example.com"}"#,
            ])
            let job = AlertJob(client: seed.database, logger: APITestHarness.logger)
            let delivery = AlertDelivery(client: seed.database, secretKey: APITestHarness.secretKey, logger: APITestHarness.logger)
            _ = try await job.round(now: Date())
            let delivered3 = try await delivery.deliverDue()
            XCTAssertEqual(delivered3, 3)
            XCTAssertTrue(plain.messages.isEmpty, "nothing sent in the clear")
            XCTAssertTrue(refusing.messages.isEmpty)
            func notification(_ channel: String) async throws -> [String: Any] {
                let history = try await client.execute(uri: "/api/v1/alert-notifications?channel=\(channel)", method: .get, headers: bearer(admin.secret))
                return try XCTUnwrap(try XCTUnwrap(try history.jsonObject()["notifications"] as? [[String: Any]]).first)
            }
            let noTLS = try await notification(channelIDs[0])
            XCTAssertEqual(noTLS["delivery"] as? String, "failed", "given up: it will not offer STARTTLS next time either")
            XCTAssertTrue((noTLS["last_error"] as? String ?? "").contains("does not offer STARTTLS"), "\(noTLS)")
            let refused = try await notification(channelIDs[1])
            XCTAssertEqual(refused["delivery"] as? String, "failed")
            XCTAssertTrue((refused["last_error"] as? String ?? "").contains("550"), "\(refused)")
            let unverified = try await notification(channelIDs[2])
            XCTAssertEqual(unverified["delivery"] as? String, "pending", "a certificate that does not verify is retried, not sent around")
            XCTAssertTrue((unverified["last_error"] as? String ?? "").lowercased().contains("certificate"), "\(unverified)")
        }
    }
}

/// A received message split into headers (unfolded, RFC 2047 words decoded for the subject) and its base64 body.
struct MailText {
    let headers: [String: String]
    let subject: String
    let body: String

    init?(_ data: String) {
        let parts = data.components(separatedBy: "\r\n\r\n")
        guard parts.count >= 2 else { return nil }
        let unfolded = parts[0].replacingOccurrences(of: "\r\n ", with: " ")
        var headers: [String: String] = [:]
        for line in unfolded.components(separatedBy: "\r\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[String(line[..<colon])] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        self.headers = headers
        var subject = ""
        for word in (headers["Subject"] ?? "").split(separator: " ") {
            guard word.hasPrefix("=?UTF-8?B?"), word.hasSuffix("?="),
                  let bytes = Data(base64Encoded: String(word.dropFirst(10).dropLast(2))) else { return nil }
            subject += String(decoding: bytes, as: UTF8.self)
        }
        self.subject = subject
        guard let body = Data(base64Encoded: parts[1...].joined(separator: "\r\n\r\n"), options: .ignoreUnknownCharacters) else { return nil }
        self.body = String(decoding: body, as: UTF8.self)
    }
}
