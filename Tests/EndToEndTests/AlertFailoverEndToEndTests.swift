import Foundation
import XCTest

/// Alert evaluation through a replica's death: two server replicas on one PostgreSQL, ten hosts going down in two
/// waves, a webhook receiver on loopback. The replica holding `job:alerts` is killed with SIGKILL while the second
/// wave's notifications are due; the other takes the lease over within its ttl, and every notification id the
/// outbox holds reaches the receiver, each target's "firing" once (a repeat only for a delivery in flight at the
/// kill).
final class AlertFailoverEndToEndTests: XCTestCase {
    private var deployment: Deployment!

    override func setUpWithError() throws {
        try requireServices()
        continueAfterFailure = false
        deployment = try Deployment()
    }

    override func tearDown() {
        if let deployment {
            if testRun?.hasSucceeded == false { print(deployment.logs) }
            deployment.tearDown()
        }
        super.tearDown()
    }

    private func hookIDs(_ log: String) -> [(id: String, target: String, kind: String)] {
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { line in
            guard let entry = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let body = (entry["body"] as? String).flatMap({ try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }),
                  let id = body["id"] as? String, let kind = body["kind"] as? String,
                  let target = (body["target"] as? [String: Any])?["id"] as? String else { return nil }
            return (id, target, kind)
        }
    }

    func testKillingTheEvaluatingReplicaLosesNoNotification() throws {
        let hookPort = freePort()
        let hookLog = deployment.root + "/hooks.jsonl"
        _ = try deployment.start("/usr/bin/python3", [WebBrowserEndToEndTests.repositoryRoot + "/scripts/webhook-receiver.py",
                                                      "--port", "\(hookPort)", "--log", hookLog], log: "webhook-receiver.log")
        try deployment.startServer()
        let replicaA = try XCTUnwrap(deployment.server)
        var replicaEnvironment = deployment.serverEnvironment
        replicaEnvironment["CROWSNEST_SECRET_KEY_FILE"] = deployment.dataDir + "/secret.key"
        let replicaB = try deployment.start(Binaries.server, ["serve", "--data-dir", deployment.root + "/replica", "--database-url",
                                                              deployment.databaseURL, "--agent-listen", "127.0.0.1:\(freePort())",
                                                              "--http-listen", "127.0.0.1:\(freePort())"],
                                            log: "replica-b.log", environment: replicaEnvironment)
        _ = try eventually(timeout: 60, "replica B up") { () -> Bool? in
            guard replicaB.isRunning else { throw DeploymentError("replica B exited: \(replicaB.log.suffix(2000))") }
            return replicaB.log.contains("agent gateway listening") ? true : nil
        }
        _ = try deployment.admin(["tenant", "create", "e2e"])
        deployment.apiKey = try XCTUnwrap(try deployment.admin(["apikey", "create", "--tenant", "e2e", "--role", "read"])["key"])
        let admin = try XCTUnwrap(try deployment.admin(["apikey", "create", "--tenant", "e2e", "--role", "admin"])["key"])
        let allow = Shell.run(Binaries.server, ["tenant", "allow-network", "e2e", "127.0.0.0/8", "--data-dir", deployment.dataDir])
        XCTAssertEqual(allow.status, 0, allow.error)

        // Ten hosts, up (their agents are rows only: the test moves their spans).
        let tenant = try deployment.sql("SELECT id FROM tenants WHERE name = 'e2e'")
        var hosts: [String] = []
        for index in 0..<10 {
            let id = UUID().uuidString.lowercased()
            hosts.append(id)
            _ = try deployment.sql("""
                INSERT INTO agents (tenant_id, id, hostname, agent_version, interval_seconds, last_seen)
                VALUES ('\(tenant)', '\(id)', 'host-\(index)', '1.0.0', 30, now());
                INSERT INTO status_spans (tenant_id, target_id, state, started_at) VALUES ('\(tenant)', 'h-\(id)', 'up', now() - interval '1 hour')
                """)
        }
        let channel = try deployment.send("POST", "/api/v1/alert-channels", json: """
            {"name":"ops","type":"webhook","url":"http://127.0.0.1:\(hookPort)/hook"}
            """, key: admin)
        XCTAssertEqual(channel.status, 201, String(decoding: channel.body, as: UTF8.self))
        let channelID = try XCTUnwrap(channel.json["id"] as? String)
        let targets = hosts.map { "\"h-\($0)\"" }.joined(separator: ",")
        let rule = try deployment.send("POST", "/api/v1/alert-rules", json: """
            {"name":"host down","targets":[\(targets)],"for_seconds":0,"channels":["\(channelID)"]}
            """, key: admin)
        XCTAssertEqual(rule.status, 201, String(decoding: rule.body, as: UTF8.self))

        func down(_ ids: ArraySlice<String>) throws {
            for id in ids {
                _ = try deployment.sql("""
                    UPDATE status_spans SET ended_at = now() WHERE tenant_id = '\(tenant)' AND target_id = 'h-\(id)' AND ended_at IS NULL;
                    INSERT INTO status_spans (tenant_id, target_id, state, started_at, cause)
                    VALUES ('\(tenant)', 'h-\(id)', 'down', now(), 'switched off by the test')
                    """)
            }
        }
        // First wave, with both replicas up.
        try down(hosts[0..<5])
        _ = try eventually(timeout: 30, "the first wave announced") { () -> Bool? in
            Set(hookIDs(hookLog).map(\.target)).count == 5 ? true : nil
        }
        let holderA = replicaA.log.contains("this replica now runs alert evaluation")
        let holderB = replicaB.log.contains("this replica now runs alert evaluation")
        XCTAssertTrue(holderA != holderB, "exactly one replica evaluates (A: \(holderA), B: \(holderB))")

        // Second wave, then at once SIGKILL of the evaluating replica.
        try down(hosts[5..<10])
        let killed = Date()
        if holderA { replicaA.kill9() } else { replicaB.kill9() }
        let survivor = holderA ? replicaB : replicaA
        _ = try eventually(timeout: 60, "the second wave announced by the survivor") { () -> Bool? in
            Set(hookIDs(hookLog).map(\.target)).count == 10 ? true : nil
        }
        let tookOver = Date().timeIntervalSince(killed)
        print("alert failover: all ten hosts announced \(String(format: "%.1f", tookOver)) s after the SIGKILL (lease ttl 30 s, tick 5 s)")
        XCTAssertTrue(survivor.log.contains("this replica now runs alert evaluation"), "the survivor took the job over")
        XCTAssertLessThan(tookOver, 30 + 2 * 5 + 5, "within the lease ttl plus the survivor's next round (two ticks on a loaded machine) and a delivery")

        // Every notification the outbox holds arrived; each target's firing once, a repeat only for one in flight.
        Thread.sleep(forTimeInterval: 3)
        let outbox = try deployment.sql("SELECT string_agg(id::text, ',' ORDER BY id) FROM alert_notifications")
            .split(separator: ",").map(String.init)
        let received = hookIDs(hookLog)
        XCTAssertEqual(outbox.count, 10, "one notification per host")
        XCTAssertEqual(Set(received.map(\.id)), Set(outbox), "every id arrived")
        XCTAssertTrue(received.allSatisfy { $0.kind == "firing" })
        let repeats = received.count - Set(received.map(\.id)).count
        XCTAssertLessThanOrEqual(repeats, 1, "at most the delivery in flight at the kill came twice")
    }
}
