import Foundation
import XCTest

/// Alerts on the real system: a real server and agent (sampling every 30 s), a webhook receiver and an SMTP server
/// on loopback (`scripts/webhook-receiver.py`, `scripts/smtp-receiver.sh`), a container stopped and started, one
/// flapping, and an http check's target switched off. The container's outage is announced once and its recovery
/// once, signed, by webhook and by mail, seconds after Docker's stop event (it follows the event, not the next
/// sample); the flapper gets one "flapping" and no firing; the check's outage reminds at its interval and
/// escalates to a second channel after its delay, and both hear the recovery.
final class AlertEndToEndTests: XCTestCase {
    private var deployment: Deployment!
    private let suffix = String(UUID().uuidString.prefix(6)).lowercased()
    private var containerName: String { "crowsnest-e2e-alert-" + suffix }
    private var flapperName: String { "crowsnest-e2e-flap-" + suffix }

    override func setUpWithError() throws {
        try requireServices()
        continueAfterFailure = false
        deployment = try Deployment()
    }

    override func tearDown() {
        Shell.docker("rm", "-f", containerName, flapperName)
        if let deployment {
            if testRun?.hasSucceeded == false { print(deployment.logs) }
            deployment.tearDown()
        }
        super.tearDown()
    }

    /// One webhook request as the receiver logged it.
    private typealias Hook = (receivedAt: Double, path: String, headers: [String: String], payload: [String: Any])

    /// The id of the target a notification is about.
    private static func subject(of hook: Hook) -> String? {
        (hook.payload["target"] as? [String: Any])?["id"] as? String
    }

    /// The webhook requests received so far, oldest first.
    private func hooks(_ log: String) -> [Hook] {
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { line in
            guard let entry = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let body = entry["body"] as? String,
                  let payload = try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any] else { return nil }
            return (entry["received_at"] as? Double ?? 0, entry["path"] as? String ?? "", entry["headers"] as? [String: String] ?? [:], payload)
        }
    }

    /// The mails received so far, oldest first: their subject (RFC 2047 words decoded).
    private func mails(_ log: String) -> [(authenticated: Bool, recipients: [String], subject: String)] {
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { line in
            guard let entry = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let data = entry["data"] as? String else { return nil }
            let headers = data.components(separatedBy: "\r\n\r\n").first?.replacingOccurrences(of: "\r\n ", with: " ") ?? ""
            let subjectLine = headers.components(separatedBy: "\r\n").first { $0.hasPrefix("Subject: ") } ?? ""
            let subject = subjectLine.dropFirst(9).split(separator: " ").map { word -> String in
                guard word.hasPrefix("=?UTF-8?B?"), let bytes = Data(base64Encoded: String(word.dropFirst(10).dropLast(2))) else { return String(word) }
                return String(decoding: bytes, as: UTF8.self)
            }.joined()
            return (entry["authenticated"] as? Bool ?? false, entry["rcpt_tos"] as? [String] ?? [], subject)
        }
    }

    private func targetID(of name: String) throws -> String {
        try eventually(timeout: 60, "container \(name) reported") { () -> String? in
            let hosts = try deployment.http("/api/v1/infrastructure").json["hosts"] as? [[String: Any]] ?? []
            let found = hosts.flatMap { $0["containers"] as? [[String: Any]] ?? [] }.first { $0["name"] as? String == name }
            return found?["id"] as? String
        }
    }

    /// Docker's time of the newest `action` event of `name`, unix seconds.
    private func dockerEventTime(_ name: String, _ action: String, since: Date) throws -> Double {
        let events = Shell.docker("events", "--since", "\(Int(since.timeIntervalSince1970) - 5)", "--until", "\(Int(Date().timeIntervalSince1970) + 1)",
                                  "--filter", "container=\(name)", "--filter", "event=\(action)", "--format", "{{.TimeNano}}")
        XCTAssertEqual(events.status, 0, events.error)
        let last = try XCTUnwrap(events.output.split(separator: "\n").last.flatMap { Double($0) }, events.output)
        return last / 1e9
    }

    func testOutagesAreAnnouncedOnceByWebhookAndMailAFlapperOnlyAsFlappingAndACheckRemindsAndEscalates() throws {
        try deployment.startServer()
        try deployment.provision()
        let allow = Shell.run(Binaries.server, ["tenant", "allow-network", "e2e", "127.0.0.0/8", "--data-dir", deployment.dataDir])
        XCTAssertEqual(allow.status, 0, allow.error)
        let admin = try XCTUnwrap(try deployment.admin(["apikey", "create", "--tenant", "e2e", "--role", "admin"])["key"])
        let hookPort = freePort()
        let hookLog = deployment.root + "/hooks.jsonl"
        _ = try deployment.start("/usr/bin/python3", [WebBrowserEndToEndTests.repositoryRoot + "/scripts/webhook-receiver.py",
                                                      "--port", "\(hookPort)", "--log", hookLog], log: "webhook-receiver.log")
        let smtp = try deployment.startSMTPReceiver(user: "alerts", password: "end-to-end-mail")
        let targetPort = freePort()
        var checkTarget: ChildProcess? = try deployment.startHTTPTarget(port: targetPort)
        defer { checkTarget?.terminate() }
        try deployment.startAgent(interval: 30)
        for name in [containerName, flapperName] {
            let run = Shell.run("/usr/bin/env", ["docker", "run", "-d", "--name", name, testImage, "sh", "-c",
                                                 "trap 'exit 0' TERM; while true; do sleep 0.2; done"])
            XCTAssertEqual(run.status, 0, run.error)
        }
        let target = try targetID(of: containerName), flapper = try targetID(of: flapperName)

        let channel = try deployment.send("POST", "/api/v1/alert-channels", json: """
            {"name":"ops","type":"webhook","url":"http://127.0.0.1:\(hookPort)/hook","secret":"end-to-end-signing-secret"}
            """, key: admin)
        XCTAssertEqual(channel.status, 201, String(decoding: channel.body, as: UTF8.self))
        let channelID = try XCTUnwrap(channel.json["id"] as? String)
        let mail = try deployment.send("POST", "/api/v1/alert-channels", json: """
            {"name":"mail","type":"email","smtp_host":"127.0.0.1","smtp_port":\(smtp.port),"smtp_verify_tls":false,
             "smtp_username":"alerts","smtp_password":"end-to-end-mail","from":"crowsnest@example.com","to":"ops@example.com"}
            """, key: admin)
        XCTAssertEqual(mail.status, 201, String(decoding: mail.body, as: UTF8.self))
        let mailID = try XCTUnwrap(mail.json["id"] as? String)
        let escalation = try deployment.send("POST", "/api/v1/alert-channels", json: """
            {"name":"on call","type":"webhook","url":"http://127.0.0.1:\(hookPort)/escalation","secret":"end-to-end-signing-secret"}
            """, key: admin)
        let escalationID = try XCTUnwrap(escalation.json["id"] as? String)
        let check = try deployment.send("POST", "/api/v1/checks", json: """
            {"name":"web","type":"http","target":"http://127.0.0.1:\(targetPort)/health","interval_seconds":5}
            """, key: admin)
        XCTAssertEqual(check.status, 201, String(decoding: check.body, as: UTF8.self))
        let checkID = try XCTUnwrap(check.json["id"] as? String)
        func quoted(_ text: String) -> String { String(decoding: try! JSONSerialization.data(withJSONObject: [text]), as: UTF8.self) }
        let rule = try deployment.send("POST", "/api/v1/alert-rules", json: """
            {"name":"app down","targets":\(quoted(target)),"for_seconds":5,"channels":["\(channelID)","\(mailID)"]}
            """, key: admin)
        XCTAssertEqual(rule.status, 201, String(decoding: rule.body, as: UTF8.self))
        let checkRule = try deployment.send("POST", "/api/v1/alert-rules", json: """
            {"name":"web down","targets":["\(checkID)"],"for_seconds":5,"channels":["\(channelID)"],"reminder_minutes":1,
             "escalation":{"after_minutes":1,"channels":["\(escalationID)"]}}
            """, key: admin)
        XCTAssertEqual(checkRule.status, 201, String(decoding: checkRule.body, as: UTF8.self))
        _ = try eventually(timeout: 60, "the check up") { () -> Bool? in
            try deployment.http("/api/v1/checks/\(checkID)").json["state"] as? String == "up" ? true : nil
        }
        XCTAssertEqual(rule.status, 201, String(decoding: rule.body, as: UTF8.self))
        let flapRule = try deployment.send("POST", "/api/v1/alert-rules", json: """
            {"name":"flapper down","targets":\(quoted(flapper)),"for_seconds":20,"channels":["\(channelID)"]}
            """, key: admin)
        XCTAssertEqual(flapRule.status, 201, String(decoding: flapRule.body, as: UTF8.self))
        Thread.sleep(forTimeInterval: 6)  // a round with everything up: nothing to say
        XCTAssertEqual(hooks(hookLog).count, 0, "nothing while everything is up")

        // Two outages that overlap: the container stopped for 20 s, and the check's target switched off for 85 s
        // (while, after the container's recovery, the flapper flaps): the check fires, reminds and escalates a
        // minute later, then recovers on both channels.
        checkTarget?.terminate()
        checkTarget = nil
        let switchedOff = Date()
        let stoppedAt = Date()
        XCTAssertEqual(Shell.docker("stop", "-t", "2", containerName).status, 0)
        let firing = try eventually(timeout: 40, "the firing notification") { () -> [String: Any]? in
            hooks(hookLog).first { Self.subject(of: $0) == target && $0.payload["kind"] as? String == "firing" }?.payload
        }
        let died = try dockerEventTime(containerName, "die", since: stoppedAt)
        let firingReceived = try XCTUnwrap(hooks(hookLog).first { Self.subject(of: $0) == target && $0.payload["kind"] as? String == "firing" }?.receivedAt)
        XCTAssertEqual((firing["target"] as? [String: Any])?["id"] as? String, target)
        XCTAssertEqual(firing["state"] as? String, "down")
        let latency = firingReceived - died
        print("alert latency: Docker die event to webhook request \(String(format: "%.2f", latency)) s (for_seconds 5, sample interval 30 s)")
        XCTAssertLessThan(latency, 15 + 5, "it follows the event, not the next 30 s sample")
        Thread.sleep(forTimeInterval: 20 - Date().timeIntervalSince(stoppedAt))
        let startedAt = Date()
        XCTAssertEqual(Shell.docker("start", containerName).status, 0)
        _ = try eventually(timeout: 40, "the recovery notification") { () -> Bool? in
            hooks(hookLog).contains { Self.subject(of: $0) == target && $0.payload["kind"] as? String == "resolved" } ? true : nil
        }
        let started = try dockerEventTime(containerName, "start", since: startedAt)
        let resolvedReceived = try XCTUnwrap(hooks(hookLog).first { Self.subject(of: $0) == target && $0.payload["kind"] as? String == "resolved" }?.receivedAt)
        print("alert latency: Docker start event to recovery webhook \(String(format: "%.2f", resolvedReceived - started)) s")

        // The flapper: stopped and started every ~5 s for 40 s.
        let flapStart = Date()
        while Date().timeIntervalSince(flapStart) < 40 {
            _ = Shell.docker("stop", "-t", "1", flapperName)
            Thread.sleep(forTimeInterval: 2.5)
            _ = Shell.docker("start", flapperName)
            Thread.sleep(forTimeInterval: 2.5)
        }
        Thread.sleep(forTimeInterval: max(8, 85 - Date().timeIntervalSince(switchedOff)))
        checkTarget = try deployment.startHTTPTarget(port: targetPort)
        _ = try eventually(timeout: 40, "the check's recovery on both channels") { () -> Bool? in
            hooks(hookLog).filter { ($0.payload["target"] as? [String: Any])?["id"] as? String == checkID && $0.payload["kind"] as? String == "resolved" }
                .count == 2 ? true : nil
        }
        let all = hooks(hookLog)
        let forTarget = all.filter { ($0.payload["target"] as? [String: Any])?["id"] as? String == target }
        XCTAssertEqual(forTarget.map { $0.payload["kind"] as? String }, ["firing", "resolved"], "exactly one down and one recovered")
        let mailed = mails(smtp.log)
        XCTAssertEqual(mailed.map { String($0.subject.prefix(31)) }, ["[crowsnest] FIRING: container c", "[crowsnest] RESOLVED: container"],
                       "the same outage by mail, once each: \(mailed)")
        XCTAssertTrue(mailed.allSatisfy { $0.authenticated && $0.recipients == ["ops@example.com"] })

        let forCheck = all.filter { ($0.payload["target"] as? [String: Any])?["id"] as? String == checkID }
        let primary = forCheck.filter { $0.path == "/hook" }, escalated = forCheck.filter { $0.path == "/escalation" }
        XCTAssertEqual(primary.map { $0.payload["kind"] as? String }, ["firing", "reminder", "resolved"], "one reminder a minute in")
        XCTAssertEqual(escalated.map { $0.payload["kind"] as? String }, ["escalation", "resolved"], "escalated once, then told of the recovery")
        if primary.count == 3, escalated.count == 2 {
            let reminderDelay = primary[1].receivedAt - primary[0].receivedAt, escalationDelay = escalated[0].receivedAt - primary[0].receivedAt
            print("alert reminder \(String(format: "%.1f", reminderDelay)) s and escalation \(String(format: "%.1f", escalationDelay)) s after the firing (both set to 60 s)")
            XCTAssertEqual(reminderDelay, 60, accuracy: 12, "the reminder at its interval")
            XCTAssertEqual(escalationDelay, 60, accuracy: 12, "the escalation after its delay")
        }
        let forFlapper = all.filter { ($0.payload["target"] as? [String: Any])?["id"] as? String == flapper }
        XCTAssertEqual(forFlapper.map { $0.payload["kind"] as? String }, ["flapping"], "one flapping, nothing else")
        let ids = all.compactMap { $0.headers["x-crowsnest-notification-id"] }
        XCTAssertEqual(Set(ids).count, ids.count, "each notification once (none had to be retried here)")
        XCTAssertTrue(all.allSatisfy { ($0.headers["x-crowsnest-signature"] ?? "").hasPrefix("sha256=") }, "every request signed")
        let history = try deployment.http("/api/v1/alert-notifications")
        let delivered = (history.json["notifications"] as? [[String: Any]] ?? []).map { $0["delivery"] as? String }
        XCTAssertEqual(delivered, Array(repeating: "delivered", count: all.count + mailed.count), "the history agrees: every webhook and mail")

        // The server's own figures, as Prometheus tooling reads them.
        let exposition = String(decoding: try deployment.http("/metrics").body, as: UTF8.self)
        for expected in ["crowsnest_gateway_connected_agents 1", #"crowsnest_job_lease_held{job="job:alerts"} 1"#,
                         #"crowsnest_alert_notifications_total{outcome="delivered"} \#(all.count + mailed.count)"#,
                         "crowsnest_ingest_ack_duration_seconds_count", "crowsnest_http_requests_total{"] {
            XCTAssertTrue(exposition.contains(expected), "/metrics shows \(expected)")
        }
        let file = deployment.root + "/metrics.txt"
        try exposition.write(toFile: file, atomically: true, encoding: .utf8)
        let promtool = Shell.run("/bin/sh", ["-c", "promtool check metrics < \(file) 2>&1"])
        XCTAssertEqual(promtool.status, 0, "promtool check metrics: \(promtool.output)")
        XCTAssertEqual(promtool.output.trimmingCharacters(in: .whitespacesAndNewlines), "", "promtool's complaints")
    }
}
