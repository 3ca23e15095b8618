import Foundation
import XCTest

/// deploy/haproxy.cfg as shipped, run by Debian's haproxy in front of two replicas on one PostgreSQL of their own: an agent
/// enrolls and ships through the balancer (TCP pass-through with a PROXY v2 header the replicas trust), the API
/// answers through it, and when the replica holding the agent's session is killed the agent comes back through
/// the balancer to the other with nothing doubled; in a rolling restart (SIGTERM) the stopping replica sends it on
/// at once with no tick missing.
final class HAProxyEndToEndTests: XCTestCase {
    private var deployment: Deployment!
    private static let haproxy = "/usr/sbin/haproxy"
    private static let configuration = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path + "/deploy/haproxy.cfg"

    override func setUpWithError() throws {
        try requireServices()
        guard FileManager.default.isExecutableFile(atPath: Self.haproxy) else {
            XCTFail("haproxy is not installed: this test runs the shipped deploy/haproxy.cfg (scripts/ensure-packages.sh installs it)")
            throw XCTSkip("haproxy missing")
        }
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

    private func get(_ path: String, port: Int) -> (status: Int, body: String) {
        let result = Shell.run("/usr/bin/env", ["curl", "-sS", "-m", "5", "-o", "-", "-w", "\n%{http_code}",
                                                "-H", "Authorization: Bearer \(deployment.apiKey)", "http://127.0.0.1:\(port)\(path)"])
        guard result.status == 0, let split = result.output.lastIndex(of: "\n"),
              let status = Int(result.output[result.output.index(after: split)...]) else { return (0, result.error) }
        return (status, String(result.output[..<split]))
    }

    private func sqlInt(_ statement: String) throws -> Int { Int(try deployment.sql(statement)) ?? -1 }

    func testAnAgentShipsThroughHAProxyFollowsItWhenItsReplicaDiesAndMovesAtOnceInARollingRestart() throws {
        let balancerAgents = freePort(), balancerHTTP = freePort(), replicaPort = freePort(), replicaHTTP = freePort()
        // Both replicas believe the balancer's PROXY header and send agents back through it.
        deployment.serverEnvironment["CROWSNEST_TRUSTED_PROXIES"] = "127.0.0.1/32"
        deployment.serverEnvironment["CROWSNEST_AGENT_ADDRESSES"] = "127.0.0.1:\(balancerAgents)"
        // Both replicas on a PostgreSQL of their own, so either can be stopped.
        try deployment.useStandaloneDatabase()
        try deployment.startServer()
        let replicaA = try XCTUnwrap(deployment.server)
        let environmentB = deployment.serverEnvironment
        let startReplicaB = { (log: String) throws -> ChildProcess in
            let replica = try self.deployment.start(Binaries.server, ["serve", "--data-dir", self.deployment.root + "/replica",
                                                                      "--agent-listen", "127.0.0.1:\(replicaPort)",
                                                                      "--http-listen", "127.0.0.1:\(replicaHTTP)"],
                                                    log: log, environment: environmentB)
            _ = try eventually(timeout: 60, "replica B ready") { () -> Bool? in
                guard replica.isRunning else { throw DeploymentError("replica B exited: \(replica.log.suffix(2000))") }
                return self.get("/readyz", port: replicaHTTP).status == 200 ? true : nil
            }
            return replica
        }
        let replicaB = try startReplicaB("replica-b.log")
        var balancerEnvironment = ProcessInfo.processInfo.environment
        balancerEnvironment.merge([
            "CROWSNEST_AGENT_BIND": "127.0.0.1:\(balancerAgents)", "CROWSNEST_HTTP_BIND": "127.0.0.1:\(balancerHTTP)",
            "CROWSNEST_REPLICA_1_AGENTS": "127.0.0.1:\(deployment.agentPort)", "CROWSNEST_REPLICA_2_AGENTS": "127.0.0.1:\(replicaPort)",
            "CROWSNEST_REPLICA_1_HTTP": "127.0.0.1:\(deployment.httpPort)", "CROWSNEST_REPLICA_2_HTTP": "127.0.0.1:\(replicaHTTP)",
        ]) { _, new in new }
        let balancer = try deployment.start(Self.haproxy, ["-db", "-f", Self.configuration], log: "haproxy.log", environment: balancerEnvironment)
        _ = try eventually(timeout: 30, "the API through HAProxy") { () -> Bool? in
            guard balancer.isRunning else { throw DeploymentError("haproxy exited: \(balancer.log.suffix(2000))") }
            return get("/readyz", port: balancerHTTP).status == 200 ? true : nil
        }

        // Enrollment and the session go through the balancer.
        _ = try deployment.admin(["tenant", "create", "e2e"])
        deployment.apiKey = try XCTUnwrap(try deployment.admin(["apikey", "create", "--tenant", "e2e", "--role", "read"])["key"])
        let token = try deployment.admin(["token", "create", "--tenant", "e2e"])
        let enroll = Shell.run(Binaries.agent, ["enroll", "--server", "127.0.0.1:\(balancerAgents)", "--token", token["token"]!,
                                                "--ca-pin", token["ca_pin"]!, "--state-dir", deployment.stateDir])
        XCTAssertEqual(enroll.status, 0, enroll.error)
        try deployment.startAgent(interval: 1)
        _ = try eventually(timeout: 30, "samples through HAProxy") { () -> Bool? in
            try sqlInt("SELECT count(*) FROM host_samples") >= 3 ? true : nil
        }
        let infrastructure = get("/api/v1/infrastructure", port: balancerHTTP)
        XCTAssertEqual(infrastructure.status, 200, infrastructure.body)
        XCTAssertTrue(infrastructure.body.contains(#""state":"up""#), infrastructure.body)

        // Kill -9 the replica holding the session: the agent comes back through the balancer to the other one.
        let onA = replicaA.log.contains("agent session established")
        let (victim, survivor) = onA ? (replicaA, replicaB) : (replicaB, replicaA)
        XCTAssertFalse(survivor.log.contains("agent session established"), "one session, on one replica")
        victim.kill9()
        let killedAt = Date().timeIntervalSince1970
        _ = try eventually(timeout: 60, "the agent's session on the surviving replica") { () -> Bool? in
            survivor.log.contains("agent session established") ? true : nil
        }
        _ = try eventually(timeout: 30, "samples after the kill") { () -> Bool? in
            try sqlInt("SELECT count(*) FROM host_samples WHERE ts > to_timestamp(\(killedAt + 1))") >= 3 ? true : nil
        }
        XCTAssertEqual(try sqlInt("SELECT count(*) - count(DISTINCT ts) FROM host_samples"), 0, "no sample stored twice")
        _ = try eventually(timeout: 30, "the API through HAProxy after the kill") { () -> Bool? in
            get("/api/v1/infrastructure", port: balancerHTTP).status == 200 ? true : nil
        }
        XCTAssertTrue(deployment.agent?.isRunning ?? false)

        // A rolling restart: the killed replica comes back, then the survivor is stopped with SIGTERM. It stores and
        // acknowledges what arrived and says Goodbye{SHUTTING_DOWN}; the agent goes straight back through the
        // balancer to the restarted replica. No tick is missing and none is stored twice.
        let restarted: ChildProcess
        if onA {
            try deployment.startServer()
            restarted = try XCTUnwrap(deployment.server)
        } else {
            restarted = try startReplicaB("replica-b-restarted.log")
        }
        Thread.sleep(forTimeInterval: 5)  // the balancer's health check (every 2 s, up after 2) sees it back
        let rollingFrom = Int(Date().timeIntervalSince1970) - 3
        survivor.terminate()
        XCTAssertTrue(survivor.log.contains("this server is shutting down; the agent moves to another"), String(survivor.log.suffix(3000)))
        _ = try eventually(timeout: 15, "the agent's session on the restarted replica") { () -> Bool? in
            restarted.log.contains("agent session established") ? true : nil
        }
        XCTAssertTrue(deployment.agent?.log.contains("server is shutting down; moving to the next server") ?? false,
                      deployment.agent?.log.suffix(3000).description ?? "")
        let rollingTo = Int(Date().timeIntervalSince1970) + 3
        _ = try eventually(timeout: 30, "every tick of the rolling restart stored") { () -> Bool? in
            let ticks = try sqlInt("SELECT count(DISTINCT date_trunc('second', ts)) FROM host_samples "
                + "WHERE ts >= to_timestamp(\(rollingFrom)) AND ts < to_timestamp(\(rollingTo))")
            return ticks == rollingTo - rollingFrom ? true : nil
        }
        XCTAssertEqual(try sqlInt("SELECT count(*) - count(DISTINCT ts) FROM host_samples"), 0, "no sample stored twice")
        // The balancer's health checks (a connection every 2 s that ends before TLS) do not fill the log.
        XCTAssertFalse(survivor.log.contains("EOF during handshake"), String(survivor.log.suffix(3000)))
    }
}
