import Foundation
import Hummingbird
import HummingbirdTesting
import XCTest

@testable import CrowsnestServer

/// Host and container pages against a real database: charts drawn from samples, containers linked, events and
/// incidents listed, hostile text escaped, another tenant's targets not found.
final class WebTargetPagesTests: XCTestCase {
    func testHostAndContainerPagesShowChartsEventsAndIncidentsAsText() async throws {
        try await APITestHarness.withWeb { seed, client in
            let (tenant, user) = try await WebSignInTests.user(seed)
            let host = try await seed.agent(tenant: tenant, hostname: "web-1", lastSeenSecondsAgo: 3)
            let hostile = "api/<img src=x onerror=alert(1)>"
            try await seed.container(tenant: tenant, agent: host, name: hostile, state: "running", health: "unhealthy",
                                     healthOutput: "</pre><script>alert(2)</script>", restartCount: 3)
            try await seed.container(tenant: tenant, agent: host, name: "db", state: "exited", exitCode: 137, oomKilled: true)
            let now = Date()
            for minute in 0..<30 {
                let ts = now.addingTimeInterval(-Double(minute) * 60 - 5)
                try await seed.hostSample(tenant: tenant, agent: host, ts: ts, cpuPercent: 40, memoryTotal: 8 << 30, memoryAvailable: 6 << 30)
                try await seed.containerSample(tenant: tenant, agent: host, name: hostile, ts: ts, cpuPercent: 12.5, workingSet: 200 << 20,
                                               usage: nil, limit: 512 << 20, rx: 1000, tx: 2000)
            }
            try await seed.containerEvent(tenant: tenant, agent: host, name: hostile, ts: now.addingTimeInterval(-600), action: "die", exitCode: 1)
            try await seed.containerEvent(tenant: tenant, agent: host, name: hostile, ts: now.addingTimeInterval(-540), action: "start")
            let target = TargetID.container(agentID: host, name: hostile)
            try await seed.statusSpan(tenant: tenant, target: target, state: "up", startedAt: now.addingTimeInterval(-7200),
                                      endedAt: now.addingTimeInterval(-600))
            try await seed.statusSpan(tenant: tenant, target: target, state: "down", startedAt: now.addingTimeInterval(-600),
                                      endedAt: now.addingTimeInterval(-540), cause: "exit code 1 <b>bold</b>")
            try await seed.statusSpan(tenant: tenant, target: target, state: "up", startedAt: now.addingTimeInterval(-540), endedAt: nil)

            try await seed.database.query("""
                UPDATE containers SET labels = jsonb_build_object('evil', '"><img src=x onerror=alert(3)>', 'com.docker.compose.project', 'shop')
                WHERE agent_id = \(host) AND name = \(hostile)
                """, logger: APITestHarness.logger)
            try await seed.database.query("""
                UPDATE host_samples SET load1 = 1.5, swap_total_bytes = 1073741824, swap_free_bytes = 805306368 WHERE agent_id = \(host)
                """, logger: APITestHarness.logger)
            let token = try await WebSignInTests.signIn(client, username: user.username)
            let cookie: HTTPFields = [.cookie: "\(WebSessionMiddleware.cookieName)=\(token)"]
            let hostPage = try await client.execute(uri: "/hosts/h-\(host.uuidString.lowercased())?range=1h", method: .get, headers: cookie)
            XCTAssertEqual(hostPage.status, .ok, String(buffer: hostPage.body))
            let hostHTML = String(buffer: hostPage.body)
            XCTAssertFalse(hostHTML.contains("<img src=x"), "the container name is escaped")
            XCTAssertTrue(hostHTML.contains("api/&lt;img src=x onerror=alert(1)&gt;"))
            XCTAssertTrue(hostHTML.contains("<polyline class=\"line-0\" points=\""), "the host's CPU is drawn")
            XCTAssertTrue(hostHTML.contains("40.0 %"), "the newest CPU figure in the legend")
            XCTAssertTrue(hostHTML.contains("load 1.50</span>"), "the host's load")
            XCTAssertTrue(hostHTML.contains("swap 256.0 MiB</span>"), "swap in use")
            XCTAssertTrue(hostHTML.contains("200.0 MiB of 512.0 MiB (39.1 %)"), "memory against the limit")
            XCTAssertTrue(hostHTML.contains("<svg class=\"sparkline\""), "a sparkline per container")
            XCTAssertTrue(hostHTML.contains("aria-current=\"page\">1h</a>"), "the chosen range is marked")
            let link = "/containers/" + TargetPath.encode(target.description)
            XCTAssertTrue(hostHTML.contains("href=\"\(link)\""), "the container links to its page: \(link)")
            XCTAssertFalse(link.contains("/", after: "/containers/"), "the id stays one path segment")

            let containerPage = try await client.execute(uri: link, method: .get, headers: cookie)
            XCTAssertEqual(containerPage.status, .ok, String(buffer: containerPage.body))
            let html = String(buffer: containerPage.body)
            XCTAssertFalse(html.contains("<script>alert(2)"), "health output is escaped")
            XCTAssertTrue(html.contains("&lt;/pre&gt;&lt;script&gt;alert(2)&lt;/script&gt;"))
            XCTAssertTrue(html.contains("exit code 1 &lt;b&gt;bold&lt;/b&gt;"), "the incident's cause, escaped")
            XCTAssertTrue(html.contains("<td>die</td><td class=\"cause\">exit code 1</td>"), "the die event with its exit code")
            XCTAssertTrue(html.contains("<rect class=\"down\""), "the outage on the uptime bar")
            XCTAssertTrue(html.contains("1 min 0 s"), "the incident's duration")
            XCTAssertTrue(html.contains("Memory against its limit"))
            XCTAssertTrue(html.contains("<dt>evil</dt><dd>&quot;&gt;&lt;img src=x onerror=alert(3)&gt;</dd>"), "labels, escaped")
            XCTAssertTrue(html.contains("<dt>com.docker.compose.project</dt><dd>shop</dd>"))

            let oom = try await client.execute(uri: "/containers/" + TargetPath.encode(TargetID.container(agentID: host, name: "db").description),
                                               method: .get, headers: cookie)
            XCTAssertTrue(String(buffer: oom.body).contains("killed for memory (OOM)"))
            XCTAssertTrue(String(buffer: oom.body).contains("No samples in this range."))

            let badRange = try await client.execute(uri: "/hosts/h-\(host.uuidString.lowercased())?range=1y", method: .get, headers: cookie)
            XCTAssertEqual(badRange.status, .badRequest)
            XCTAssertTrue(String(buffer: badRange.body).contains("range must be one of 1h, 24h, 7d, 30d"))
        }
    }

    func testAnotherTenantsHostsContainersChecksServicesAndIncidentsAreNotFoundAndSignedOutVisitorsAreSentToSignIn() async throws {
        try await APITestHarness.withWeb { seed, client in
            let (_, user) = try await WebSignInTests.user(seed)
            let other = try await seed.tenant()
            let theirs = try await seed.agent(tenant: other, hostname: "their-secret-host", lastSeenSecondsAgo: 1)
            try await seed.container(tenant: other, agent: theirs, name: "their-secret-app")
            let hostPath = "/hosts/h-\(theirs.uuidString.lowercased())"
            let containerPath = "/containers/" + TargetPath.encode(TargetID.container(agentID: theirs, name: "their-secret-app").description)
            let theirCheck = try await CheckStore(client: seed.database, logger: APITestHarness.logger).create(tenantID: other, submission:
                CheckDefinition.parse(.object(["name": .string("their-secret-check"), "type": .string("tcp"), "target": .string("a.example:1")])))
            let checkPath = "/checks/" + TargetID.check(checkID: theirCheck.id).description
            let theirService = try await DefinitionStore(.services, client: seed.database, logger: APITestHarness.logger).create(
                tenantID: other, name: "their-secret-service", definition: .object([
                    "name": .string("their-secret-service"), "targets": .array([.string("h-" + theirs.uuidString.lowercased())])]))
            let servicePath = "/services/" + ServiceID(uuid: theirService.id).description
            try await seed.statusSpan(tenant: other, target: .host(agentID: theirs), state: "down", startedAt: Date(timeIntervalSince1970: 1_790_000_000),
                                      endedAt: nil, cause: "their-secret-cause")
            let incidentPath = IncidentPage.href(target: .host(agentID: theirs), startMicros: 1_790_000_000_000_000)
            for path in [hostPath, containerPath, checkPath, servicePath, incidentPath] {
                let signedOut = try await client.execute(uri: path, method: .get)
                XCTAssertEqual(signedOut.status, .seeOther, path)
                XCTAssertEqual(signedOut.headers[.location], "/sign-in")
            }
            let token = try await WebSignInTests.signIn(client, username: user.username)
            for path in [hostPath, containerPath, checkPath, servicePath, incidentPath, "/hosts/not-an-id", "/containers/c-nothing"] {
                let response = try await client.execute(uri: path, method: .get, headers: [.cookie: "\(WebSessionMiddleware.cookieName)=\(token)"])
                XCTAssertEqual(response.status, .notFound, path)
                let html = String(buffer: response.body)
                XCTAssertFalse(html.contains("their-secret"), "nothing of the other tenant on \(path)")
            }
        }
    }
}

private extension String {
    /// True when `character` occurs after the first occurrence of `prefix`.
    func contains(_ character: Character, after prefix: String) -> Bool {
        guard let range = range(of: prefix) else { return false }
        return self[range.upperBound...].contains(character)
    }
}
