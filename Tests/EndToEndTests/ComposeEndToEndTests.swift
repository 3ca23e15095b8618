import Foundation
import XCTest

/// deploy/compose.yaml (one server on its embedded PostgreSQL) and deploy/compose-replicas.yaml as shipped, started
/// with Debian's docker-compose on images built here
/// (`deploy/build-images.sh --debug`: the base from debootstrap, no registry): two server replicas, PostgreSQL and
/// HAProxy. An agent on this host ships through the balancer; the replica holding its session is killed, then
/// both replicas are upgraded one after the other (SIGTERM, start). Every one-second tick is stored, exactly once.
final class ComposeEndToEndTests: XCTestCase {
    private var deployment: Deployment!
    private var directory = ""
    private var project = ""
    private var composeFile = "compose-replicas.yaml"
    private let agentPort = freePort(), httpPort = freePort()
    /// The debug images go under their own tag, never over the release images tagged latest.
    private static let imageTag = "e2e-debug"
    private static let repository = repositoryRoot

    override func setUpWithError() throws {
        try requireServices()
        try requireBaseImage()
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/docker-compose") else {
            XCTFail("docker-compose is not installed (scripts/ensure-packages.sh installs Debian's)")
            throw XCTSkip("docker-compose missing")
        }
        continueAfterFailure = false
        deployment = try Deployment()
        project = "cn" + String(UUID().uuidString.prefix(8)).lowercased()
        // deploy/ beside server/ and agent/, as in the repository (compose.yaml names ../server as its build context).
        directory = deployment.root + "/compose/deploy"
        for folder in [directory, deployment.root + "/compose/server", deployment.root + "/compose/agent"] {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        }
        for file in ["compose-replicas.yaml", "compose.yaml", "haproxy.cfg"] {
            try FileManager.default.copyItem(atPath: Self.repository + "/deploy/" + file, toPath: directory + "/" + file)
        }
        try """
            CROWSNEST_DB_PASSWORD=\(UUID().uuidString.replacingOccurrences(of: "-", with: ""))
            CROWSNEST_SERVER_NAMES=localhost,127.0.0.1
            CROWSNEST_AGENT_PUBLISH=127.0.0.1:\(agentPort)
            CROWSNEST_HTTP_PUBLISH=127.0.0.1:\(httpPort)
            CROWSNEST_AGENT_ADDRESS=127.0.0.1:\(agentPort)
            CROWSNEST_TAG=\(Self.imageTag)

            """.write(toFile: directory + "/.env", atomically: true, encoding: .utf8)
        let key = Shell.run("/usr/bin/env", ["sh", "-c", "umask 077; openssl rand -hex 32 > secret.key && chown 10001:10001 secret.key"],
                            currentDirectory: directory)
        XCTAssertEqual(key.status, 0, key.error)
    }

    override func tearDown() {
        if !project.isEmpty {
            if testRun?.hasSucceeded == false { print(compose(["logs", "--tail", "30"]).output) }
            compose(["down", "-v", "-t", "5"])
        }
        if testRun?.hasSucceeded == false { print(deployment?.logs ?? "") }
        deployment?.tearDown()
    }

    @discardableResult
    private func compose(_ arguments: [String]) -> Shell.Result {
        Shell.run("/usr/bin/docker-compose", ["-f", composeFile, "-p", project] + arguments, currentDirectory: directory)
    }

    /// A command in a service's container, with `docker exec` on the name docker-compose 1.x gives it
    /// (project_service_1): `docker-compose exec` starts a Python interpreter per call, several times slower, and
    /// these run in polling loops.
    private func exec(in service: String, _ arguments: [String]) -> Shell.Result {
        Shell.run("/usr/bin/env", ["docker", "exec", "\(project)_\(service)_1"] + arguments)
    }

    private func sql(_ statement: String) throws -> String {
        let result = exec(in: "postgres", ["psql", "-X", "-At", "-U", "crowsnest", "-d", "crowsnest", "-c", statement])
        guard result.status == 0 else { throw DeploymentError("psql in the stack: \(result.error)") }
        return result.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    private func admin(_ arguments: [String], in service: String = "replica-1") throws -> [String: String] {
        let result = exec(in: service, ["crowsnest-server"] + arguments + ["--json"])
        guard result.status == 0 else { throw DeploymentError("crowsnest-server \(arguments.joined(separator: " ")): \(result.error)") }
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: String])
    }

    private func replicaLog(_ service: String) -> String { compose(["logs", "--no-color", service]).output }

    private func readyThroughTheBalancer() -> Bool {
        Shell.run("/usr/bin/env", ["curl", "-fsS", "-m", "3", "http://127.0.0.1:\(httpPort)/readyz"]).status == 0
    }

    /// Waits until `service` answers its own /readyz (through its container) and HAProxy sees it up again.
    private func waitReady(_ service: String) throws {
        _ = try eventually(timeout: 90, "\(service) ready") { () -> Bool? in
            exec(in: service, ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:8080/readyz"]).status == 0 ? true : nil
        }
        Thread.sleep(forTimeInterval: 5)  // HAProxy's health check: every 2 s, up after 2 passes
    }

    /// Every tick of the one-second agent between `from` and `to` (unix seconds) is stored, exactly once.
    private func assertEveryTickStoredOnce(from: Int, to: Int, _ what: String) throws {
        _ = try eventually(timeout: 60, "every tick \(what)") { () -> Bool? in
            let ticks = Int(try sql("SELECT count(DISTINCT date_trunc('second', ts)) FROM host_samples "
                + "WHERE ts >= to_timestamp(\(from)) AND ts < to_timestamp(\(to))")) ?? -1
            return ticks == to - from ? true : nil
        }
        XCTAssertEqual(try sql("SELECT count(*) - count(DISTINCT ts) FROM host_samples"), "0", "no tick stored twice")
    }

    /// Which replica holds the agent's session now (the newest "agent session established" in the logs).
    private func sessionHolder() throws -> String {
        try eventually(timeout: 30, "an agent session on a replica") { () -> String? in
            let counts = ["replica-1", "replica-2"].map { ($0, replicaLog($0).components(separatedBy: "agent session established").count) }
            return agentSessions(counts)
        }
    }

    private var lastSessionCounts: [String: Int] = [:]

    /// The replica whose count of established sessions grew since the last look.
    private func agentSessions(_ counts: [(String, Int)]) -> String? {
        defer { for (service, count) in counts { lastSessionCounts[service] = count } }
        return counts.first { $0.1 > (lastSessionCounts[$0.0] ?? 1) }?.0
    }

    /// Both tests use the same images: built by the first that needs them, once per test run.
    private static let imageBuild = Shell.run(repository + "/deploy/build-images.sh", ["--debug", imageTag])

    private func buildImages() {
        let build = Self.imageBuild
        XCTAssertEqual(build.status, 0, "deploy/build-images.sh --debug: \(build.output.suffix(2000))\(build.error.suffix(2000))")
    }

    func testOneServerOnItsEmbeddedPostgreSQLKeepsItsDataAcrossARecreatedContainer() throws {
        buildImages()
        composeFile = "compose.yaml"
        let up = compose(["up", "-d", "server"])
        XCTAssertEqual(up.status, 0, up.output + up.error)
        _ = try eventually(timeout: 120, "the server's API") { readyThroughTheBalancer() ? true : nil }
        _ = try admin(["tenant", "create", "e2e"], in: "server")
        deployment.apiKey = try XCTUnwrap(try admin(["apikey", "create", "--tenant", "e2e", "--role", "read"], in: "server")["key"])
        let token = try admin(["token", "create", "--tenant", "e2e"], in: "server")
        let enroll = Shell.run(Binaries.agent, ["enroll", "--server", "127.0.0.1:\(agentPort)", "--token", token["token"]!,
                                                "--ca-pin", token["ca_pin"]!, "--state-dir", deployment.stateDir])
        XCTAssertEqual(enroll.status, 0, enroll.error)
        try deployment.startAgent(interval: 1)
        let hosts = { () throws -> [[String: Any]] in
            let result = Shell.run("/usr/bin/env", ["curl", "-fsS", "-m", "5", "-H", "Authorization: Bearer \(self.deployment.apiKey)",
                                                    "http://127.0.0.1:\(self.httpPort)/api/v1/infrastructure"])
            return (try? JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any])?["hosts"] as? [[String: Any]] ?? []
        }
        let host = try eventually(timeout: 60, "the agent's host up") { () -> String? in
            try hosts().first { $0["state"] as? String == "up" }?["id"] as? String
        }
        // The container goes and a new one comes on the same volume: the database, the CA and the agent's host stay.
        XCTAssertEqual(compose(["rm", "-s", "-f", "server"]).status, 0)
        XCTAssertEqual(compose(["up", "-d", "server"]).status, 0)
        _ = try eventually(timeout: 120, "the recreated server's API") { readyThroughTheBalancer() ? true : nil }
        _ = try eventually(timeout: 60, "the same host up again, through the same CA") { () -> Bool? in
            try hosts().contains { $0["id"] as? String == host && $0["state"] as? String == "up" } ? true : nil
        }
        XCTAssertEqual(try hosts().count, 1)
    }

    func testTwoReplicasBehindHAProxyLoseNoTickWhenOneDiesOrBothAreUpgradedInTurn() throws {
        buildImages()
        let up = compose(["up", "-d"])
        XCTAssertEqual(up.status, 0, up.output + up.error)
        _ = try eventually(timeout: 120, "the API through HAProxy") { readyThroughTheBalancer() ? true : nil }

        _ = try admin(["tenant", "create", "e2e"])
        let token = try admin(["token", "create", "--tenant", "e2e"])
        // HAProxy passes agents on once its TCP check has seen a gateway up, which can be a moment after the API
        // answers through it (its HTTP check is another); until then it closes the connection during the handshake,
        // before the token is shown, so trying again with the same token is safe.
        struct EnrollFailed: Error, CustomStringConvertible { let description: String }
        _ = try eventually(timeout: 60, "the agent enrolled through HAProxy") { () throws -> Bool? in
            let enroll = Shell.run(Binaries.agent, ["enroll", "--server", "127.0.0.1:\(agentPort)", "--token", token["token"]!,
                                                    "--ca-pin", token["ca_pin"]!, "--state-dir", deployment.stateDir])
            guard enroll.status == 0 else { throw EnrollFailed(description: enroll.error) }
            return true
        }
        try deployment.startAgent(interval: 1)
        let started = Int(Date().timeIntervalSince1970) + 2
        var holder = try sessionHolder()

        // The replica holding the session dies (SIGKILL): the agent continues through HAProxy on the other.
        XCTAssertEqual(compose(["kill", "-s", "SIGKILL", holder]).status, 0)
        let survivor = holder == "replica-1" ? "replica-2" : "replica-1"
        XCTAssertEqual(try sessionHolder(), survivor)
        XCTAssertEqual(compose(["start", holder]).status, 0)
        try waitReady(holder)
        try assertEveryTickStoredOnce(from: started, to: Int(Date().timeIntervalSince1970) - 2, "through the kill")

        // A rolling upgrade: each replica in turn stopped with SIGTERM and started again, the agent's first.
        holder = survivor
        let rollingFrom = Int(Date().timeIntervalSince1970)
        for _ in 0..<2 {
            let other = holder == "replica-1" ? "replica-2" : "replica-1"
            XCTAssertEqual(compose(["stop", "-t", "30", holder]).status, 0)
            XCTAssertTrue(replicaLog(holder).contains("this server is shutting down; the agent moves to another"),
                          "\(holder) said Goodbye{SHUTTING_DOWN}")
            XCTAssertEqual(try sessionHolder(), other)
            XCTAssertEqual(compose(["start", holder]).status, 0)
            try waitReady(holder)
            holder = other
        }
        try assertEveryTickStoredOnce(from: rollingFrom, to: Int(Date().timeIntervalSince1970) - 2, "through the rolling upgrade")
        XCTAssertTrue(deployment.agent?.log.contains("server is shutting down; moving to the next server") ?? false)
        XCTAssertTrue(deployment.agent?.isRunning ?? false)
    }
}
