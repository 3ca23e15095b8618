import Foundation
import XCTest

/// Alerts on the real system: a real server and agent (sampling every 30 s), a webhook receiver on loopback
/// (`scripts/webhook-receiver.py`), a container stopped and started, and one flapping. The outage is announced
/// once and its recovery once, signed, seconds after Docker's stop event (it follows the event, not the next
/// sample); the flapper gets one "flapping" and no firing.
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

    /// The webhook requests received so far, oldest first.
    private func hooks(_ log: String) -> [(receivedAt: Double, headers: [String: String], payload: [String: Any])] {
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { line in
            guard let entry = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let body = entry["body"] as? String,
                  let payload = try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any] else { return nil }
            return (entry["received_at"] as? Double ?? 0, entry["headers"] as? [String: String] ?? [:], payload)
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

    func testAnOutageIsAnnouncedOnceWithinSecondsOfDockersEventAndAFlapperOnlyAsFlapping() throws {
        try deployment.startServer()
        try deployment.provision()
        let allow = Shell.run(Binaries.server, ["tenant", "allow-network", "e2e", "127.0.0.0/8", "--data-dir", deployment.dataDir])
        XCTAssertEqual(allow.status, 0, allow.error)
        let admin = try XCTUnwrap(try deployment.admin(["apikey", "create", "--tenant", "e2e", "--role", "admin"])["key"])
        let hookPort = freePort()
        let hookLog = deployment.root + "/hooks.jsonl"
        _ = try deployment.start("/usr/bin/python3", [WebBrowserEndToEndTests.repositoryRoot + "/scripts/webhook-receiver.py",
                                                      "--port", "\(hookPort)", "--log", hookLog], log: "webhook-receiver.log")
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
        func quoted(_ text: String) -> String { String(decoding: try! JSONSerialization.data(withJSONObject: [text]), as: UTF8.self) }
        let rule = try deployment.send("POST", "/api/v1/alert-rules", json: """
            {"name":"app down","targets":\(quoted(target)),"for_seconds":5,"channels":["\(channelID)"]}
            """, key: admin)
        XCTAssertEqual(rule.status, 201, String(decoding: rule.body, as: UTF8.self))
        let flapRule = try deployment.send("POST", "/api/v1/alert-rules", json: """
            {"name":"flapper down","targets":\(quoted(flapper)),"for_seconds":20,"channels":["\(channelID)"]}
            """, key: admin)
        XCTAssertEqual(flapRule.status, 201, String(decoding: flapRule.body, as: UTF8.self))
        Thread.sleep(forTimeInterval: 6)  // a round with everything up: nothing to say
        XCTAssertEqual(hooks(hookLog).count, 0, "nothing while everything is up")

        // The outage: stopped for 20 s.
        let stoppedAt = Date()
        XCTAssertEqual(Shell.docker("stop", "-t", "2", containerName).status, 0)
        let firing = try eventually(timeout: 40, "the firing notification") { () -> [String: Any]? in
            hooks(hookLog).first { $0.payload["kind"] as? String == "firing" }?.payload
        }
        let died = try dockerEventTime(containerName, "die", since: stoppedAt)
        let firingReceived = try XCTUnwrap(hooks(hookLog).first { $0.payload["kind"] as? String == "firing" }?.receivedAt)
        XCTAssertEqual((firing["target"] as? [String: Any])?["id"] as? String, target)
        XCTAssertEqual(firing["state"] as? String, "down")
        let latency = firingReceived - died
        print("alert latency: Docker die event to webhook request \(String(format: "%.2f", latency)) s (for_seconds 5, sample interval 30 s)")
        XCTAssertLessThan(latency, 15 + 5, "it follows the event, not the next 30 s sample")
        Thread.sleep(forTimeInterval: 20 - Date().timeIntervalSince(stoppedAt))
        let startedAt = Date()
        XCTAssertEqual(Shell.docker("start", containerName).status, 0)
        _ = try eventually(timeout: 40, "the recovery notification") { () -> Bool? in
            hooks(hookLog).contains { $0.payload["kind"] as? String == "resolved" } ? true : nil
        }
        let started = try dockerEventTime(containerName, "start", since: startedAt)
        let resolvedReceived = try XCTUnwrap(hooks(hookLog).first { $0.payload["kind"] as? String == "resolved" }?.receivedAt)
        print("alert latency: Docker start event to recovery webhook \(String(format: "%.2f", resolvedReceived - started)) s")

        // The flapper: stopped and started every ~5 s for 40 s.
        let flapStart = Date()
        while Date().timeIntervalSince(flapStart) < 40 {
            _ = Shell.docker("stop", "-t", "1", flapperName)
            Thread.sleep(forTimeInterval: 2.5)
            _ = Shell.docker("start", flapperName)
            Thread.sleep(forTimeInterval: 2.5)
        }
        Thread.sleep(forTimeInterval: 8)
        let all = hooks(hookLog)
        let forTarget = all.filter { ($0.payload["target"] as? [String: Any])?["id"] as? String == target }
        XCTAssertEqual(forTarget.map { $0.payload["kind"] as? String }, ["firing", "resolved"], "exactly one down and one recovered")
        let forFlapper = all.filter { ($0.payload["target"] as? [String: Any])?["id"] as? String == flapper }
        XCTAssertEqual(forFlapper.map { $0.payload["kind"] as? String }, ["flapping"], "one flapping, nothing else")
        let ids = all.compactMap { $0.headers["x-crowsnest-notification-id"] }
        XCTAssertEqual(Set(ids).count, ids.count, "each notification once (none had to be retried here)")
        XCTAssertTrue(all.allSatisfy { ($0.headers["x-crowsnest-signature"] ?? "").hasPrefix("sha256=") }, "every request signed")
        let history = try deployment.http("/api/v1/alert-notifications")
        let delivered = (history.json["notifications"] as? [[String: Any]] ?? []).map { $0["delivery"] as? String }
        XCTAssertEqual(delivered, Array(repeating: "delivered", count: all.count), "the history agrees")
    }
}
