import Foundation
import XCTest

/// Health checks as an operator runs them: checks created through the API, assigned by the server's coordinator
/// to a real agent process, probed against real servers on loopback, results stored under their slots' tokens.
final class CheckEndToEndTests: XCTestCase {
    private var deployment: Deployment!
    private var target: ChildProcess?

    override func setUpWithError() throws {
        try requireServices()
        continueAfterFailure = false
        deployment = try Deployment()
    }

    override func tearDown() {
        target?.terminate()
        if let deployment {
            if testRun?.hasSucceeded == false { print(deployment.logs) }
            deployment.tearDown()
        }
        super.tearDown()
    }

    /// A real HTTP server (Python's) on a free loopback port, serving `health` with a known body.
    private func startTarget() throws -> Int {
        let port = freePort()
        let directory = deployment.root + "/www"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try "crowsnest target ok\n".write(toFile: directory + "/health", atomically: true, encoding: .utf8)
        target = try ChildProcess(executable: "/usr/bin/python3",
                                  arguments: ["-m", "http.server", "--bind", "127.0.0.1", "--directory", directory, "\(port)"],
                                  logPath: deployment.root + "/target.log")
        _ = try eventually(timeout: 20, "the target HTTP server") { () -> Bool? in
            Shell.run("/usr/bin/env", ["curl", "-sf", "http://127.0.0.1:\(port)/health"]).status == 0 ? true : nil
        }
        return port
    }

    private func createCheck(_ json: String, key: String) throws -> String {
        let created = try deployment.send("POST", "/api/v1/checks", json: json, key: key)
        XCTAssertEqual(created.status, 201, String(decoding: created.body, as: UTF8.self))
        return try XCTUnwrap(created.json["id"] as? String)
    }

    private func results(_ id: String) throws -> [[String: Any]] {
        let answer = try deployment.http("/api/v1/checks/\(id)/results")
        return answer.json["results"] as? [[String: Any]] ?? []
    }

    func testAssignedChecksRunOnTheAgentOncePerSlotAndTheirResultsAreServed() throws {
        let port = try startTarget()
        let closedPort = freePort()
        try deployment.startServer()
        try deployment.provision()
        let admin = try XCTUnwrap(try deployment.admin(["apikey", "create", "--tenant", "e2e", "--role", "admin"])["key"])
        let web = try createCheck(#"{"name":"web","type":"http","target":"http://127.0.0.1:\#(port)/health","interval_seconds":5,"options":{"keyword":"target ok"}}"#, key: admin)
        let socket = try createCheck(#"{"name":"socket","type":"tcp","target":"127.0.0.1:\#(port)","interval_seconds":5}"#, key: admin)
        let closed = try createCheck(#"{"name":"closed","type":"tcp","target":"127.0.0.1:\#(closedPort)","interval_seconds":5}"#, key: admin)
        let metadata = try createCheck(#"{"name":"metadata","type":"http","target":"http://169.254.169.254/latest/meta-data/","interval_seconds":5}"#, key: admin)
        try deployment.startAgent(interval: 5)

        // Three slots of each check: 10–15 s once the agent is connected.
        let webResults = try eventually(timeout: 60, "three results of the http check") { () -> [[String: Any]]? in
            let found = try results(web)
            return found.count >= 3 ? found : nil
        }
        for result in webResults {
            XCTAssertEqual(result["ok"] as? Bool, true, "\(result)")
            XCTAssertEqual(result["error"] as? String, "")
            XCTAssertNotNil(result["agent_id"] as? String)
        }
        let socketResults = try results(socket)
        XCTAssertGreaterThanOrEqual(socketResults.count, 2)
        XCTAssertTrue(socketResults.allSatisfy { $0["ok"] as? Bool == true }, "\(socketResults)")
        let closedResults = try results(closed)
        XCTAssertGreaterThanOrEqual(closedResults.count, 2)
        for result in closedResults {
            XCTAssertEqual(result["ok"] as? Bool, false)
            XCTAssertEqual(result["error"] as? String, "cannot connect to 127.0.0.1:\(closedPort): connection refused")
        }
        // The agent may reach loopback, never the metadata address: the run fails with the guard's reason.
        let metadataResults = try results(metadata)
        XCTAssertTrue(metadataResults.allSatisfy { ($0["error"] as? String)?.contains("cloud metadata") == true }, "\(metadataResults)")

        // The API says what state each check is in.
        XCTAssertEqual(try deployment.http("/api/v1/checks/\(web)").json["state"] as? String, "up")
        XCTAssertEqual(try deployment.http("/api/v1/checks/\(closed)").json["state"] as? String, "down")
        // One result per slot, slots on multiples of the interval, each under the token issued for it.
        XCTAssertEqual(try deployment.sql("""
            SELECT count(*) FROM check_results r JOIN check_slots s USING (tenant_id, check_id, slot_at)
            WHERE r.token <> s.token OR r.agent_id IS DISTINCT FROM s.agent_id
               OR extract(epoch FROM r.slot_at)::bigint % 5 <> 0
            """), "0")
        XCTAssertEqual(try deployment.sql("""
            SELECT count(*) = count(DISTINCT slot_at) FROM check_results WHERE check_id::text = '\(web.dropFirst(2))'
            """), "t")
        XCTAssertEqual(try deployment.sql("SELECT count(*) FROM leases WHERE key LIKE 'agent:%' AND expires_at > now()"), "1")
    }
}
