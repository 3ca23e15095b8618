import Foundation
import XCTest

/// The coordination promise end to end: two server replicas on one PostgreSQL, three agents, twenty checks against
/// real HTTP and TCP targets. Every slot gets exactly one result except around a kill; a killed agent's checks
/// move within one lease ttl plus one interval; a killed replica's agents reconnect to the other with nothing lost
/// or doubled; a stopped agent woken after its slot was reassigned has its late result refused.
final class ReplicaCheckEndToEndTests: XCTestCase {
    private static let ttl = 3.0
    private static let interval = 5.0
    private var deployment: Deployment!

    override func setUpWithError() throws {
        try requireServices()
        continueAfterFailure = false
        deployment = try Deployment()
        // Short leases, and agents (sampling every second) counted silent after 4 s: the test waits less.
        let coordination = ["CROWSNEST_CHECK_LEASE_TTL_SECONDS": "\(Int(Self.ttl))", "CROWSNEST_AGENT_SILENCE_LIMIT_SECONDS": "4"]
        deployment.serverEnvironment.merge(coordination) { _, new in new }
    }

    override func tearDown() {
        if let deployment {
            if testRun?.hasSucceeded == false { print(deployment.logs) }
            deployment.tearDown()
        }
        super.tearDown()
    }

    private func sqlInt(_ statement: String) throws -> Int { Int(try deployment.sql(statement)) ?? -1 }

    /// Slot starts (unix seconds) of the 20 checks from `from` up to the last slot whose results had time to arrive.
    private func completeSlots(from: Double) -> [Int] {
        let last = (Date().timeIntervalSince1970 - Self.interval - 2) / Self.interval
        let first = (from / Self.interval).rounded(.up)
        guard last >= first else { return [] }
        return (Int(first)...Int(last)).map { $0 * Int(Self.interval) }
    }

    /// Asserts that each of `checks` has exactly one result in each slot from `from` on (to the latest complete one).
    private func assertEverySlotHasOneResult(_ checks: [String], from: Double, _ what: String,
                                             file: StaticString = #filePath, line: UInt = #line) throws {
        let slots = completeSlots(from: from)
        XCTAssertGreaterThanOrEqual(slots.count, 2, "\(what): too few slots to judge", file: file, line: line)
        guard let first = slots.first, let last = slots.last else { return }
        let ids = checks.map { "'\($0.dropFirst(2))'" }.joined(separator: ",")
        let missing = try deployment.sql("""
            SELECT string_agg(c || '@' || extract(epoch FROM s)::bigint, ' ')
            FROM unnest(ARRAY[\(ids)]::uuid[]) c
            CROSS JOIN generate_series(to_timestamp(\(first)), to_timestamp(\(last)), interval '\(Int(Self.interval)) seconds') s
            WHERE NOT EXISTS (SELECT 1 FROM check_results r WHERE r.check_id = c AND r.slot_at = s)
            """)
        XCTAssertEqual(missing, "", "\(what): slots without a result", file: file, line: line)
        XCTAssertEqual(try sqlInt("""
            SELECT count(*) FROM check_results WHERE check_id IN (\(ids))
              AND slot_at BETWEEN to_timestamp(\(first)) AND to_timestamp(\(last))
            """), checks.count * slots.count, "\(what): exactly one result per slot", file: file, line: line)
    }

    func testTwoReplicasThreeAgentsTwentyChecksThroughKillsAndALateResult() throws {
        // Targets: an HTTP server, and a listener that accepts and never answers (a probe of it runs to its deadline).
        let web = freePort(), blackHole = freePort()
        let www = deployment.root + "/www"
        try FileManager.default.createDirectory(atPath: www, withIntermediateDirectories: true)
        try "crowsnest target ok\n".write(toFile: www + "/health", atomically: true, encoding: .utf8)
        _ = try deployment.start("/usr/bin/python3", ["-m", "http.server", "--bind", "127.0.0.1", "--directory", www, "\(web)"], log: "web.log")
        _ = try deployment.start("/usr/bin/python3", ["-c", """
            import socket
            s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", \(blackHole))); s.listen(64); held = []
            while True: held.append(s.accept()[0])
            """], log: "blackhole.log")

        // Replica A (embedded PostgreSQL) and replica B on A's database; both tell agents both addresses.
        let replicaPort = freePort(), replicaHTTP = freePort()
        deployment.serverEnvironment["CROWSNEST_AGENT_ADDRESSES"] = "127.0.0.1:\(deployment.agentPort),127.0.0.1:\(replicaPort)"
        try deployment.startServer()
        let replicaA = try XCTUnwrap(deployment.server)
        var replicaEnvironment = deployment.serverEnvironment
        replicaEnvironment["CROWSNEST_SECRET_KEY_FILE"] = deployment.dataDir + "/secret.key"
        let replicaB = try deployment.start(Binaries.server, ["serve", "--data-dir", deployment.root + "/replica", "--database-url",
                                                   deployment.databaseURL, "--agent-listen", "127.0.0.1:\(replicaPort)",
                                                   "--http-listen", "127.0.0.1:\(replicaHTTP)"],
                                 log: "replica-b.log", environment: replicaEnvironment)
        _ = try eventually(timeout: 60, "replica B up") { () -> Bool? in
            guard replicaB.isRunning else { throw DeploymentError("replica B exited: \(replicaB.log.suffix(2000))") }
            return replicaB.log.contains("agent gateway listening") ? true : nil
        }
        // Three agents, enrolled with replica A only: they learn B's address from A's Welcome.
        _ = try deployment.admin(["tenant", "create", "e2e"])
        deployment.apiKey = try XCTUnwrap(try deployment.admin(["apikey", "create", "--tenant", "e2e", "--role", "read"])["key"])
        let admin = try XCTUnwrap(try deployment.admin(["apikey", "create", "--tenant", "e2e", "--role", "admin"])["key"])
        var agents: [ChildProcess] = []
        for index in 1...3 {
            let token = try deployment.admin(["token", "create", "--tenant", "e2e"])
            let state = deployment.root + "/agent-\(index)"
            let enroll = Shell.run(Binaries.agent, ["enroll", "--server", "127.0.0.1:\(deployment.agentPort)",
                                                    "--token", token["token"]!, "--ca-pin", token["ca_pin"]!, "--state-dir", state])
            XCTAssertEqual(enroll.status, 0, enroll.error)
            agents.append(try deployment.start(Binaries.agent, ["run", "--state-dir", state, "--interval", "1"], log: "agent-\(index).log"))
        }
        var checks: [String] = []
        for index in 0..<20 {
            let json = index < 10
                ? #"{"name":"web-\#(index)","type":"http","target":"http://127.0.0.1:\#(web)/health","interval_seconds":5,"options":{"keyword":"target ok"}}"#
                : #"{"name":"socket-\#(index)","type":"tcp","target":"127.0.0.1:\#(web)","interval_seconds":5}"#
            let created = try deployment.send("POST", "/api/v1/checks", json: json, key: admin)
            XCTAssertEqual(created.status, 201, String(decoding: created.body, as: UTF8.self))
            checks.append(try XCTUnwrap(created.json["id"] as? String))
        }
        let ids = checks.map { "'\($0.dropFirst(2))'" }.joined(separator: ",")
        _ = try eventually(timeout: 60, "all three agents running checks") { () -> Bool? in
            try sqlInt("SELECT count(DISTINCT agent_id) FROM check_results WHERE check_id IN (\(ids))") == 3 ? true : nil
        }
        for index in 1...3 {
            let identity = try String(contentsOfFile: deployment.root + "/agent-\(index)/identity.json", encoding: .utf8)
            XCTAssertTrue(identity.contains("127.0.0.1:\(replicaPort)"), "agent \(index) saved the list from Welcome: \(identity)")
        }
        let steady = Date().timeIntervalSince1970
        Thread.sleep(forTimeInterval: 5 * Self.interval)
        try assertEverySlotHasOneResult(checks, from: steady, "steady state")
        XCTAssertTrue(try sqlInt("SELECT count(*) FROM check_results WHERE check_id IN (\(ids)) AND NOT ok") == 0,
                      "every target answers")

        // kill -9 of an agent: its checks run elsewhere within one ttl plus one interval.
        let killedAgent = try deployment.sql("""
            SELECT agent_id FROM check_results WHERE check_id IN (\(ids)) GROUP BY agent_id ORDER BY count(*) DESC, agent_id LIMIT 1
            """)
        let agentIDs = try (1...3).map { index -> String in
            let identity = try Data(contentsOf: URL(fileURLWithPath: deployment.root + "/agent-\(index)/identity.json"))
            let object = try JSONSerialization.jsonObject(with: identity) as? [String: Any]
            return try XCTUnwrap(object?["agent_id"] as? String).lowercased()
        }
        let victim = try XCTUnwrap(agentIDs.firstIndex(of: killedAgent), "agent ids \(agentIDs), busiest \(killedAgent)")
        agents[victim].kill9()
        let agentKilled = Date().timeIntervalSince1970
        Thread.sleep(forTimeInterval: Self.ttl + 6 * Self.interval)
        try assertEverySlotHasOneResult(checks, from: agentKilled + Self.ttl + Self.interval, "after an agent was killed")
        XCTAssertEqual(try sqlInt("""
            SELECT count(*) FROM check_results WHERE agent_id = '\(killedAgent)' AND slot_at > to_timestamp(\(agentKilled + 1))
            """), 0, "the dead agent ran nothing after it died")

        // kill -9 of replica A: the agents reconnect to B; spooled results and samples arrive once.
        replicaA.kill9()
        let replicaKilled = Date().timeIntervalSince1970
        Thread.sleep(forTimeInterval: Self.ttl + 7 * Self.interval)
        try assertEverySlotHasOneResult(checks, from: replicaKilled + Self.ttl + 2 * Self.interval, "after a replica was killed")
        let survivors = agentIDs.enumerated().filter { $0.offset != victim }.map(\.element)
        for agentID in survivors {
            // One host sample per second, none twice, no hole across the failover (the spool replays what A lost).
            let stats = try deployment.sql("""
                SELECT count(*) || ' ' || count(DISTINCT ts) || ' ' ||
                       coalesce(max(gap), 0) FROM (
                    SELECT ts, extract(epoch FROM ts - lag(ts) OVER (ORDER BY ts)) AS gap FROM host_samples
                    WHERE agent_id = '\(agentID)' AND ts > to_timestamp(\(replicaKilled - 10)) AND ts < to_timestamp(\(replicaKilled + 10))
                ) s
                """).split(separator: " ")
            XCTAssertEqual(stats[0], stats[1], "agent \(agentID): a sample stored twice")
            XCTAssertLessThanOrEqual(Double(stats[2]) ?? 99, 1.5, "agent \(agentID): a hole in the samples across the failover")
        }
        XCTAssertTrue(replicaB.log.contains("agent session established"))

        // SIGSTOP: the agent running a slot stops; the slot goes to another agent; woken, its result is refused.
        // The check runs once a minute, created early in a minute so that its slot is still current when reassigned.
        while Int(Date().timeIntervalSince1970) % 60 > 20 || Int(Date().timeIntervalSince1970) % 60 < 2 { Thread.sleep(forTimeInterval: 0.5) }
        let created = try deployment.send("POST", "/api/v1/checks", json: #"{"name":"stuck","type":"http","target":"http://127.0.0.1:\#(blackHole)/","interval_seconds":60,"timeout_ms":12000}"#, key: admin, port: replicaHTTP)
        XCTAssertEqual(created.status, 201, String(decoding: created.body, as: UTF8.self))
        let stuck = try XCTUnwrap(created.json["id"] as? String).dropFirst(2)
        let first = try eventually(timeout: 10, "the stuck check's slot assigned") { () -> [String]? in
            let row = try deployment.sql("SELECT agent_id || ' ' || token || ' ' || extract(epoch FROM slot_at)::bigint FROM check_slots WHERE check_id = '\(stuck)'")
            return row.isEmpty ? nil : row.split(separator: " ").map(String.init)
        }
        let sleeper = try XCTUnwrap(agentIDs.firstIndex(of: first[0]))
        kill(agents[sleeper].process.processIdentifier, SIGSTOP)
        let reassigned = try eventually(timeout: 30, "the slot reassigned to another agent") { () -> [String]? in
            let row = try deployment.sql("SELECT agent_id || ' ' || token FROM check_slots WHERE check_id = '\(stuck)' AND slot_at = to_timestamp(\(first[2]))")
            let fields = row.split(separator: " ").map(String.init)
            return fields.count == 2 && fields[0] != first[0] ? fields : nil
        }
        XCTAssertGreaterThan(Int64(reassigned[1]) ?? 0, Int64(first[1]) ?? 0, "a larger token for the new runner")
        // The new runner's probe runs to its 12 s deadline; then the stopped agent wakes and sends its own result.
        _ = try eventually(timeout: 30, "the new runner's result") { () -> Bool? in
            try sqlInt("SELECT count(*) FROM check_results WHERE check_id = '\(stuck)'") == 1 ? true : nil
        }
        kill(agents[sleeper].process.processIdentifier, SIGCONT)
        _ = try eventually(timeout: 30, "the late result refused") { () -> Bool? in
            (replicaB.log.contains("check results refused")) ? true : nil
        }
        XCTAssertEqual(try deployment.sql("""
            SELECT agent_id || ' ' || token FROM check_results WHERE check_id = '\(stuck)' AND slot_at = to_timestamp(\(first[2]))
            """), reassigned.joined(separator: " "), "the slot's one result is the new runner's")
    }
}
