import Foundation
import XCTest

/// The web pages in a real browser: headless Chromium (Debian's, driven by selenium through chromedriver,
/// `scripts/browser-check.sh`) against a real server. Three hosts and twenty containers of test data, with
/// script and markup payloads wherever an agent or a container chooses the text; no dialog may fire, no console
/// error or failed request may occur, and the payloads must read as text. Screenshots are kept under
/// `.build/artefacts/web/` (or `$CROWSNEST_ARTEFACTS_DIR/web/`).
final class WebBrowserEndToEndTests: XCTestCase {
    private var deployment: Deployment!

    static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path
    static let payloads = [
        "<img src=x onerror=alert(1)>",
        "</script><script>alert(2)</script>",
        "javascript:alert(3)",
        "\"><svg onload=alert(4)>",
    ]

    override func setUpWithError() throws {
        try requireServices()
        continueAfterFailure = false
        deployment = try Deployment()
    }

    private let containerName = "crowsnest-e2e-web-" + String(UUID().uuidString.prefix(6)).lowercased()

    override func tearDown() {
        Shell.docker("rm", "-f", containerName)
        if let deployment {
            if testRun?.hasSucceeded == false { print(deployment.logs) }
            deployment.tearDown()
        }
        super.tearDown()
    }

    private func quoted(_ text: String) -> String { "'" + text.replacingOccurrences(of: "'", with: "''") + "'" }

    func testSignInAndTheOverviewInChromiumWithHostileTestData() async throws {
        try deployment.startServer()
        // A real agent too: a real container's hostile labels and health output reach the pages over the wire.
        let tenantName = "web <img src=x onerror=alert(15)>"
        try deployment.provision(tenant: tenantName)
        let password = "correct horse battery staple"
        var environment = ProcessInfo.processInfo.environment
        environment["CROWSNEST_USER_PASSWORD"] = password
        let created = Shell.run(Binaries.server, ["user", "create", "--tenant", tenantName, "--username", "ops", "--role", "admin",
                                                  "--data-dir", deployment.dataDir, "--json"], environment: environment)
        XCTAssertEqual(created.status, 0, created.error)

        // Three hosts, twenty containers; payloads in a host name, container names, health output and a cause.
        let tenant = try deployment.sql("SELECT id FROM tenants WHERE name = \(quoted(tenantName))")
        let hostnames = ["web-1", "db-1", Self.payloads[0]]
        var agents: [String] = []
        for hostname in hostnames {
            let id = UUID().uuidString.lowercased()
            agents.append(id)
            _ = try deployment.sql("""
                INSERT INTO agents (tenant_id, id, hostname, agent_version, interval_seconds, last_seen)
                VALUES ('\(tenant)', '\(id)', \(quoted(hostname)), '1.0.0', 30, now());
                INSERT INTO status_spans (tenant_id, target_id, state, started_at) VALUES ('\(tenant)', 'h-\(id)', 'up', now() - interval '2 days')
                """)
        }
        for index in 0..<20 {
            let agent = agents[index % 3]
            let name = index < Self.payloads.count ? "app-\(index)" + Self.payloads[index] : "app-\(index)"
            let state = index == 0 ? "exited" : "running"
            _ = try deployment.sql("""
                INSERT INTO containers (tenant_id, agent_id, name, docker_id, image, state, health, health_output, labels, updated_at)
                VALUES ('\(tenant)', '\(agent)', \(quoted(name)), 'id\(index)', 'example/app:1', '\(state)',
                        '\(index == 1 ? "unhealthy" : "none")', \(quoted(Self.payloads[index % Self.payloads.count])),
                        jsonb_build_object('evil', \(quoted(Self.payloads[1]))), now())
                """)
        }
        _ = try deployment.sql("""
            INSERT INTO status_spans (tenant_id, target_id, state, started_at, cause)
            VALUES ('\(tenant)', 'c-\(agents[0])-app-0\(Self.payloads[0].replacingOccurrences(of: "'", with: "''"))', 'down',
                    now() - interval '5 minutes', \(quoted(Self.payloads[1])))
            """)

        let started = Shell.run("/usr/bin/env", ["docker", "run", "-d", "--name", containerName,
                                             "--label", "evil=</script><script>alert(8)</script>", "--label", "link=javascript:alert(7)",
                                             "--health-cmd", "echo '<img src=x onerror=alert(9)>'; exit 1", "--health-interval", "1s",
                                             "--health-retries", "1", testImage, "sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"])
        XCTAssertEqual(started.status, 0, started.error)
        try deployment.startAgent(interval: 2)
        let realContainer = try eventually(timeout: 60, "the real container reported unhealthy") { () -> String? in
            let hosts = try deployment.http("/api/v1/infrastructure").json["hosts"] as? [[String: Any]] ?? []
            let found = hosts.flatMap { $0["containers"] as? [[String: Any]] ?? [] }
                .first { $0["name"] as? String == containerName && $0["health"] as? String == "unhealthy" }
            return found?["id"] as? String
        }
        _ = try eventually(timeout: 30, "its health output stored") { () -> Bool? in
            let output = try deployment.sql("SELECT health_output FROM containers WHERE name = '\(containerName)'")
            return output.contains("onerror") ? true : nil
        }

        // A simulated agent sends what Docker would refuse: markup in its host name and its containers' names.
        let simulated = try SimulatedAgent.enroll(deployment, tenant: tenantName, name: "simulated-agent")
        let wireHost = "</title><script>alert(5)</script>"
        let wireContainer = "db<img src=x onerror=alert(6)>"
        try await simulated.send(hostname: wireHost, containers: [
            SimulatedAgent.container(name: wireContainer, labels: ["href": "javascript:alert(10)"], health: "unhealthy",
                                     healthOutput: "<iframe src=javascript:alert(11)>"),
            SimulatedAgent.container(name: "plain"),
        ])
        _ = try eventually(timeout: 30, "the simulated host stored") { () -> Bool? in
            try deployment.sql("SELECT count(*) FROM containers WHERE agent_id = '\(simulated.agentID)'") == "2" ? true : nil
        }

        // A real HTTP check run by the real agent whose error text quotes what a hostile server answered.
        let www = deployment.root + "/www"
        try FileManager.default.createDirectory(atPath: www, withIntermediateDirectories: true)
        try #"{"status":"<img src=x onerror=alert(12)>"}"#.write(toFile: www + "/status.json", atomically: true, encoding: .utf8)
        let webPort = freePort()
        _ = try deployment.start("/usr/bin/python3", ["-m", "http.server", "--bind", "127.0.0.1", "--directory", www, "\(webPort)"], log: "web.log")

        // A public status page with one public service (hostile name) and one private one.
        let admin = try XCTUnwrap(try deployment.admin(["apikey", "create", "--tenant", tenantName, "--role", "admin"])["key"])
        let checkName = "API <svg onload=alert(13)>"
        let createdCheck = try deployment.send("POST", "/api/v1/checks", json: """
            {"name":"\(checkName)","type":"http","target":"http://127.0.0.1:\(webPort)/status.json","interval_seconds":5,
             "options":{"json_path":"$.status","json_equals":"ok"},"public":true}
            """, key: admin)
        XCTAssertEqual(createdCheck.status, 201, String(decoding: createdCheck.body, as: UTF8.self))
        let checkID = try XCTUnwrap(createdCheck.json["id"] as? String)
        _ = try eventually(timeout: 60, "the check's failed run stored") { () -> Bool? in
            let results = try deployment.http("/api/v1/checks/\(checkID)/results").json["results"] as? [[String: Any]]
            return results?.contains { ($0["error"] as? String ?? "").contains("onerror=alert(12)") } == true ? true : nil
        }
        let publicService = try deployment.send("POST", "/api/v1/services", json: """
            {"name":"Shop \(Self.payloads[3].replacingOccurrences(of: "\"", with: "\\\""))","targets":["h-\(agents[0])"],"public":true}
            """, key: admin)
        XCTAssertEqual(publicService.status, 201, String(decoding: publicService.body, as: UTF8.self))
        let privateService = try deployment.send("POST", "/api/v1/services", json: #"{"name":"internal-billing","targets":["h-\#(agents[1])"]}"#, key: admin)
        XCTAssertEqual(privateService.status, 201)
        let published = try deployment.send("PUT", "/api/v1/status-page", json: #"{"slug":"web-status","title":"Web status <b onmouseover=alert(14)>"}"#, key: admin)
        XCTAssertEqual(published.status, 200, String(decoding: published.body, as: UTF8.self))

        var allowed = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
        allowed.insert(charactersIn: "-_.~")
        let hostPath = "/hosts/h-\(agents[2])"
        let containerPath = "/containers/" + ("c-\(agents[0])-app-0" + Self.payloads[0]).addingPercentEncoding(withAllowedCharacters: allowed)!
        let realContainerPath = "/containers/" + realContainer.addingPercentEncoding(withAllowedCharacters: allowed)!
        let wireHostPath = "/hosts/h-\(simulated.agentID)"
        let servicePath = "/services/" + (try XCTUnwrap(publicService.json["id"] as? String))
        let incidentTarget = "c-\(agents[0])-app-0" + Self.payloads[0]
        let incidentStart = try deployment.sql("""
            SELECT (extract(epoch FROM started_at) * 1000000)::bigint FROM status_spans
            WHERE tenant_id = '\(tenant)' AND target_id = \(quoted(incidentTarget)) AND state = 'down'
            """)
        let incidentPath = "/incidents/" + incidentTarget.addingPercentEncoding(withAllowedCharacters: allowed)! + "/" + incidentStart
        let wireContainerPath = "/containers/" + "c-\(simulated.agentID)-\(wireContainer)".addingPercentEncoding(withAllowedCharacters: allowed)!
        let artefacts = (ProcessInfo.processInfo.environment["CROWSNEST_ARTEFACTS_DIR"] ?? Self.repositoryRoot + "/.build/artefacts") + "/web"
        environment["CROWSNEST_BROWSER_PASSWORD"] = password
        let run = Shell.run("/bin/bash", [Self.repositoryRoot + "/scripts/browser-check.sh", "--base", "http://127.0.0.1:\(deployment.httpPort)",
                                          "--username", "ops", "--page", "/", "--page", hostPath, "--page", containerPath, "--page", realContainerPath, "--page", "/admin",
                                          "--page", "/incidents", "--page", "/checks", "--page", "/sla",
                                          "--page", wireHostPath, "--page", wireContainerPath, "--page", "/checks/\(checkID)",
                                          "--page", "/services", "--page", servicePath, "--page", incidentPath,
                                          "--phone", "/", "--phone", hostPath, "--phone", servicePath,
                                          "--public", "/sign-in", "--public", "/", "--public", "/status/web-status",
                                          "--screenshots", artefacts], environment: environment)
        XCTAssertEqual(run.status, 0, run.error)
        let result = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(run.output.utf8)) as? [String: Any], run.output)
        let signedIn = try XCTUnwrap(result["signed_in"] as? [String: Any])
        XCTAssertEqual(signedIn["url"] as? String, "http://127.0.0.1:\(deployment.httpPort)/", "signing in lands on the overview")
        XCTAssertTrue(signedIn["dialog"] is NSNull)
        let pages = (result["pages"] as? [[String: Any]] ?? []) + (result["public"] as? [[String: Any]] ?? [])
            + [try XCTUnwrap(signedIn["form"] as? [String: Any])]
        XCTAssertEqual(pages.count, 18)
        for page in pages {
            let path = page["path"] as? String ?? "?"
            XCTAssertTrue(page["dialog"] is NSNull, "a dialog fired on \(path): \(page["dialog"] ?? "")")
            XCTAssertEqual(page["console_errors"] as? [String], [], "console errors on \(path)")
            for response in page["responses"] as? [[String: Any]] ?? [] {
                let status = response["status"] as? Int ?? 0
                XCTAssertTrue((200..<400).contains(status), "a failed request on \(path): \(response)")
            }
            XCTAssertNotNil(page["screenshot"] as? String)
        }
        // On a phone's screen the pages fit its width (tables may scroll inside themselves, the page does not).
        let phone = try XCTUnwrap(result["phone"] as? [[String: Any]])
        XCTAssertEqual(phone.count, 3)
        for page in phone {
            XCTAssertEqual(page["overflow_px"] as? Int, 0, "\(page["path"] ?? "?") is wider than a phone's screen")
            XCTAssertTrue(page["dialog"] is NSNull)
        }
        let overview = try XCTUnwrap((result["pages"] as? [[String: Any]])?.first)
        let text = try XCTUnwrap(overview["text"] as? String)
        XCTAssertEqual(overview["title"] as? String, "Overview · Crowsnest")
        XCTAssertTrue(text.contains(Self.payloads[0]), "the hostile host name reads as text on the overview")
        XCTAssertTrue(text.contains(tenantName), "the tenant's name reads as text beside the user's")
        XCTAssertTrue(text.contains(Self.payloads[1]), "the incident's cause reads as text")
        XCTAssertTrue(text.contains("20") && text.contains("3"), "twenty containers on three hosts")
        let host = try XCTUnwrap((result["pages"] as? [[String: Any]])?[1])
        XCTAssertEqual(host["title"] as? String, Self.payloads[0] + " · Crowsnest", "the host page, its hostile name as text")
        XCTAssertTrue((host["text"] as? String ?? "").contains("app-2" + Self.payloads[2]), "its containers listed")
        let container = try XCTUnwrap((result["pages"] as? [[String: Any]])?[2])
        let containerText = try XCTUnwrap(container["text"] as? String)
        XCTAssertTrue(containerText.contains("app-0" + Self.payloads[0]), "the container page: \(containerText.prefix(300))")
        XCTAssertTrue(containerText.contains(Self.payloads[1]), "the incident's cause as text on the container page")
        let real = try XCTUnwrap((result["pages"] as? [[String: Any]])?[3])
        let realText = try XCTUnwrap(real["text"] as? String)
        XCTAssertTrue(realText.contains("</script><script>alert(8)</script>"), "a label sent by the real agent reads as text: \(realText.prefix(400))")
        XCTAssertTrue(realText.contains("javascript:alert(7)"))
        XCTAssertTrue(realText.contains("<img src=x onerror=alert(9)>"), "the health check's output reads as text")
        // Signed out, the overview is the sign-in page.
        let status = try XCTUnwrap((result["public"] as? [[String: Any]])?.last)
        XCTAssertEqual(status["title"] as? String, "Web status <b onmouseover=alert(14)>", "the status page's title as text")
        let statusText = try XCTUnwrap(status["text"] as? String)
        XCTAssertTrue(statusText.contains("Shop " + Self.payloads[3]), "the public service, its name as text: \(statusText.prefix(300))")
        XCTAssertFalse(statusText.contains("internal-billing"), "a private service is not on the public page")
        XCTAssertFalse(statusText.contains("web-1"), "no host names on the public page")
        XCTAssertTrue(statusText.contains(checkName), "the public check, its name as text")
        XCTAssertFalse(statusText.contains("127.0.0.1:\(webPort)"), "its target is not shown unless marked so")
        XCTAssertFalse(statusText.contains("alert(12)"), "no error text on the public page")
        let signedInPages = try XCTUnwrap(result["pages"] as? [[String: Any]])
        let wireHostPage = signedInPages[8], wireContainerPage = signedInPages[9], checkPage = signedInPages[10]
        XCTAssertEqual(wireHostPage["title"] as? String, wireHost + " · Crowsnest", "a host name sent over the wire, as text")
        XCTAssertTrue((wireHostPage["text"] as? String ?? "").contains(wireContainer), "its container's name as text")
        let wireContainerText = wireContainerPage["text"] as? String ?? ""
        XCTAssertTrue(wireContainerText.contains(wireContainer) && wireContainerText.contains("<iframe src=javascript:alert(11)>")
                      && wireContainerText.contains("javascript:alert(10)"),
                      "a container name, label and health output sent over the wire, as text: \(wireContainerText.prefix(400))")
        let servicePage = signedInPages[12], incidentPage = signedInPages[13]
        XCTAssertTrue((signedInPages[11]["text"] as? String ?? "").contains("Shop " + Self.payloads[3]), "the services list")
        XCTAssertEqual(servicePage["title"] as? String, "Shop " + Self.payloads[3] + " · Crowsnest", "the service's page, its name as text")
        let incidentText = incidentPage["text"] as? String ?? ""
        XCTAssertTrue(incidentText.contains("app-0" + Self.payloads[0]) && incidentText.contains(Self.payloads[1]),
                      "the incident's page: its target and cause as text: \(incidentText.prefix(300))")
        let checkText = checkPage["text"] as? String ?? ""
        XCTAssertTrue(checkText.contains(checkName) && checkText.contains("<img src=x onerror=alert(12)>"),
                      "the check's name and the HTTP error text quoting the server's answer, as text: \(checkText.prefix(400))")
        let publicOverview = try XCTUnwrap((result["public"] as? [[String: Any]])?[1])
        XCTAssertEqual(publicOverview["url"] as? String, "http://127.0.0.1:\(deployment.httpPort)/sign-in")
        XCTAssertFalse((publicOverview["text"] as? String ?? "").contains("web-1"), "nothing of the tenant signed out")
        XCTAssertTrue(FileManager.default.fileExists(atPath: artefacts + "/signed-in-root.png"))
    }
}
