import Foundation
import Hummingbird
import HummingbirdTesting
import XCTest

@testable import CrowsnestServer

/// The incidents, checks and SLA pages, and the SLA downloads, for a signed-in user: the tenant's own data, hostile
/// text escaped, bad periods refused.
final class WebListPagesTests: XCTestCase {
    func testIncidentsChecksAndTheSLAReportOfTheTenantOnly() async throws {
        try await APITestHarness.withWeb { seed, client in
            let (tenant, user) = try await WebSignInTests.user(seed)
            let host = try await seed.agent(tenant: tenant, hostname: "web-1", lastSeenSecondsAgo: 1)
            try await seed.container(tenant: tenant, agent: host, name: "api")
            let api = TargetID.container(agentID: host, name: "api")
            let now = Date()
            try await seed.statusSpan(tenant: tenant, target: api, state: "up", startedAt: now.addingTimeInterval(-86_400),
                                      endedAt: now.addingTimeInterval(-3600))
            try await seed.statusSpan(tenant: tenant, target: api, state: "down", startedAt: now.addingTimeInterval(-3600),
                                      endedAt: now.addingTimeInterval(-3000), cause: "<script>alert('cause')</script>")
            try await seed.statusSpan(tenant: tenant, target: api, state: "up", startedAt: now.addingTimeInterval(-3000), endedAt: nil)
            let admin = try await seed.apiKey(tenant: tenant, role: .admin)
            let check = try await client.execute(uri: "/api/v1/checks", method: .post, headers: bearer(admin.secret), body: ByteBuffer(string:
                #"{"name":"<b>home</b>","type":"http","target":"https://example.com/","interval_seconds":60}"#))
            XCTAssertEqual(check.status, .created, String(buffer: check.body))
            let service = try await client.execute(uri: "/api/v1/services", method: .post, headers: bearer(admin.secret), body: ByteBuffer(string:
                #"{"name":"shop \"front\"","targets":["\#(api.description)"],"objective_percent":99.9}"#))
            XCTAssertEqual(service.status, .created, String(buffer: service.body))
            let other = try await seed.tenant()
            let theirs = try await seed.agent(tenant: other, hostname: "theirs", lastSeenSecondsAgo: 1)
            try await seed.statusSpan(tenant: other, target: .container(agentID: theirs, name: "their-secret"), state: "down",
                                      startedAt: now.addingTimeInterval(-600), endedAt: nil, cause: "their secret cause")

            let token = try await WebSignInTests.signIn(client, username: user.username)
            let cookie: HTTPFields = [.cookie: "\(WebSessionMiddleware.cookieName)=\(token)"]
            let incidents = String(buffer: try await client.execute(uri: "/incidents", method: .get, headers: cookie).body)
            XCTAssertTrue(incidents.contains("&lt;script&gt;alert(&#39;cause&#39;)&lt;/script&gt;"), "the cause, escaped")
            XCTAssertFalse(incidents.contains("<script>alert"))
            XCTAssertTrue(incidents.contains("href=\"\(TargetPath.container(host, "api"))\""), "linked to the container's page")
            XCTAssertTrue(incidents.contains("10 min 0 s"))
            XCTAssertFalse(incidents.contains("their secret"), "another tenant's incident is not listed")

            let checks = String(buffer: try await client.execute(uri: "/checks", method: .get, headers: cookie).body)
            XCTAssertTrue(checks.contains("&lt;b&gt;home&lt;/b&gt;"))
            XCTAssertTrue(checks.contains("https://example.com/"))
            XCTAssertTrue(checks.contains("none yet"))
            let checkID = try XCTUnwrap(try check.jsonObject()["id"] as? String)
            XCTAssertTrue(checks.contains("href=\"/checks/\(checkID)\""), "each check links to its page")
            let checkUUID = try XCTUnwrap(UUID(uuidString: String(checkID.dropFirst(2))))
            try await seed.checkResult(tenant: tenant, check: checkUUID, slotAt: now.addingTimeInterval(-120), ok: false,
                                       error: "HTTP 500: <iframe src=javascript:alert(1)>", httpStatus: 500)
            try await seed.statusSpan(tenant: tenant, target: .check(checkID: checkUUID), state: "down", startedAt: now.addingTimeInterval(-120),
                                      endedAt: nil, cause: "HTTP 500: <iframe src=javascript:alert(1)>")
            let checkPage = try await client.execute(uri: "/checks/\(checkID)?range=1h", method: .get, headers: cookie)
            XCTAssertEqual(checkPage.status, .ok)
            let checkHTML = String(buffer: checkPage.body)
            XCTAssertTrue(checkHTML.contains("&lt;b&gt;home&lt;/b&gt;"))
            XCTAssertFalse(checkHTML.contains("<iframe"), "the probed service's error is text")
            XCTAssertTrue(checkHTML.contains("HTTP 500: &lt;iframe src=javascript:alert(1)&gt;"))
            XCTAssertTrue(checkHTML.contains("<td>500</td>"), "the status code")
            XCTAssertTrue(checkHTML.contains("<rect class=\"down\""), "the outage on the bar")
            let missing = try await client.execute(uri: "/checks/k-\(UUID().uuidString.lowercased())", method: .get, headers: cookie)
            XCTAssertEqual(missing.status, .notFound)

            let sla = try await client.execute(uri: "/sla", method: .get, headers: cookie)
            XCTAssertEqual(sla.status, .ok)
            let slaHTML = String(buffer: sla.body)
            XCTAssertTrue(slaHTML.contains("shop &quot;front&quot;"))
            let period = SLAReportRoutes.currentPeriod(now: now).description
            XCTAssertTrue(slaHTML.contains("href=\"/sla/report.csv?period=\(period)\""))
            XCTAssertTrue(slaHTML.contains("aria-current=\"page\">\(period)</a>"))
            let csv = try await client.execute(uri: "/sla/report.csv?period=\(period)", method: .get, headers: cookie)
            XCTAssertEqual(csv.headers[.contentType], "text/csv; charset=utf-8")
            XCTAssertTrue(String(buffer: csv.body).contains("shop \"\"front\"\""), String(buffer: csv.body))
            let printable = try await client.execute(uri: "/sla/report.html?period=\(period)", method: .get, headers: cookie)
            XCTAssertEqual(printable.status, .ok)
            XCTAssertTrue(String(buffer: printable.body).contains("shop &quot;front&quot;"))
            let bad = try await client.execute(uri: "/sla?period=2025-13", method: .get, headers: cookie)
            XCTAssertEqual(bad.status, .badRequest)
            XCTAssertTrue(String(buffer: bad.body).contains("period must be a month as YYYY-MM"))
            for path in ["/incidents", "/checks", "/sla", "/sla/report.csv", "/services"] {
                let signedOut = try await client.execute(uri: path, method: .get)
                XCTAssertEqual(signedOut.status, .seeOther, path)
            }
        }
    }

    func testServicesAndIncidentPagesShowTheTenantsOwnAndRefuseOthers() async throws {
        try await APITestHarness.withWeb { seed, client in
            let (tenant, user) = try await WebSignInTests.user(seed)
            let host = try await seed.agent(tenant: tenant, hostname: "web-1", lastSeenSecondsAgo: 1)
            try await seed.container(tenant: tenant, agent: host, name: "api<img src=x onerror=alert(1)>")
            try await seed.container(tenant: tenant, agent: host, name: "db")
            let api = TargetID.container(agentID: host, name: "api<img src=x onerror=alert(1)>")
            let db = TargetID.container(agentID: host, name: "db")
            // Whole seconds: PostgreSQL keeps microseconds, rounded, and the incident's address names its start in them.
            let now = Date(timeIntervalSince1970: Date().timeIntervalSince1970.rounded(.down) - 1)
            let downStart = now.addingTimeInterval(-3600)
            try await seed.statusSpan(tenant: tenant, target: api, state: "up", startedAt: now.addingTimeInterval(-86_400), endedAt: downStart)
            try await seed.statusSpan(tenant: tenant, target: api, state: "down", startedAt: downStart,
                                      endedAt: now.addingTimeInterval(-3300), cause: "exited with code 137 <b>oom</b>")
            try await seed.statusSpan(tenant: tenant, target: api, state: "down", startedAt: now.addingTimeInterval(-3300),
                                      endedAt: now.addingTimeInterval(-3000), cause: "restarting")
            try await seed.statusSpan(tenant: tenant, target: api, state: "up", startedAt: now.addingTimeInterval(-3000), endedAt: nil)
            try await seed.statusSpan(tenant: tenant, target: db, state: "up", startedAt: now.addingTimeInterval(-86_400), endedAt: nil)
            let admin = try await seed.apiKey(tenant: tenant, role: .admin)
            let created = try await client.execute(uri: "/api/v1/services", method: .post, headers: bearer(admin.secret), body: ByteBuffer(string:
                #"{"name":"shop <script>x</script>","targets":["\#(api.description)","\#(db.description)"],"objective_percent":99.95,"public":true}"#))
            XCTAssertEqual(created.status, .created, String(buffer: created.body))
            let serviceID = try XCTUnwrap(try created.jsonObject()["id"] as? String)
            let other = try await seed.tenant()
            let otherAdmin = try await seed.apiKey(tenant: other, role: .admin)
            let theirHost = try await seed.agent(tenant: other, hostname: "theirs", lastSeenSecondsAgo: 1)
            let theirs = try await client.execute(uri: "/api/v1/services", method: .post, headers: bearer(otherAdmin.secret), body: ByteBuffer(string:
                #"{"name":"their-service","targets":["h-\#(theirHost.uuidString.lowercased())"]}"#))
            let theirID = try XCTUnwrap(try theirs.jsonObject()["id"] as? String)
            try await seed.statusSpan(tenant: other, target: .host(agentID: theirHost), state: "down", startedAt: downStart, endedAt: nil,
                                      cause: "their secret cause")

            let token = try await WebSignInTests.signIn(client, username: user.username)
            let cookie: HTTPFields = [.cookie: "\(WebSessionMiddleware.cookieName)=\(token)"]
            let list = String(buffer: try await client.execute(uri: "/services", method: .get, headers: cookie).body)
            XCTAssertTrue(list.contains("shop &lt;script&gt;x&lt;/script&gt;"), "the service, its name escaped")
            XCTAssertFalse(list.contains("<script>x"))
            XCTAssertTrue(list.contains("href=\"/services/\(serviceID)\""))
            XCTAssertTrue(list.contains("99.95 %"), "the objective as set")
            XCTAssertTrue(list.contains("<span class=\"state down\">"), "30-day availability below 99.95 % is marked")
            XCTAssertFalse(list.contains("their-service"), "another tenant's service is not listed")

            let page = try await client.execute(uri: "/services/\(serviceID)?range=24h", method: .get, headers: cookie)
            XCTAssertEqual(page.status, .ok)
            let html = String(buffer: page.body)
            XCTAssertTrue(html.contains("down while any of its targets is down"))
            XCTAssertTrue(html.contains("on the public status page"))
            XCTAssertTrue(html.contains("api&lt;img src=x onerror=alert(1)&gt;"), "its targets, names escaped")
            XCTAssertFalse(html.contains("<img src=x"))
            XCTAssertTrue(html.contains("href=\"\(TargetPath.container(host, "db"))\""), "each target links to its page")
            XCTAssertTrue(html.contains("10 min 0 s"), "the service's incident: both down spans of its target, as one")
            XCTAssertTrue(html.contains("<rect class=\"down\""))
            for path in ["/services/\(theirID)", "/services/s-\(UUID().uuidString.lowercased())", "/services/not-an-id"] {
                let refused = try await client.execute(uri: path, method: .get, headers: cookie)
                XCTAssertEqual(refused.status, .notFound, path)
                XCTAssertFalse(String(buffer: refused.body).contains("their-service"), path)
            }

            // The incidents list links to each incident's page.
            let incidents = String(buffer: try await client.execute(uri: "/incidents", method: .get, headers: cookie).body)
            let href = IncidentPage.href(target: api, startMicros: downStart.unixMicros)
            XCTAssertTrue(incidents.contains("href=\"\(href)\""), "the incident links to its page")
            let incident = try await client.execute(uri: href, method: .get, headers: cookie)
            XCTAssertEqual(incident.status, .ok)
            let incidentHTML = String(buffer: incident.body)
            XCTAssertTrue(incidentHTML.contains("exited with code 137 &lt;b&gt;oom&lt;/b&gt;"), "its cause, escaped")
            XCTAssertTrue(incidentHTML.contains("10 min 0 s"), "as long as its whole down run")
            XCTAssertTrue(incidentHTML.contains("restarting"), "the spans around it")
            XCTAssertTrue(incidentHTML.contains("href=\"\(TargetPath.container(host, "api<img src=x onerror=alert(1)>"))\""))
            XCTAssertFalse(incidentHTML.contains("<img src=x"))
            // Not an incident's start (the second down span continues the first), another tenant's, or nothing.
            for path in [IncidentPage.href(target: api, startMicros: now.addingTimeInterval(-3300).unixMicros),
                         IncidentPage.href(target: .host(agentID: theirHost), startMicros: downStart.unixMicros),
                         IncidentPage.href(target: db, startMicros: downStart.unixMicros),
                         "/incidents/\(api.description)/soon"] {
                let refused = try await client.execute(uri: path, method: .get, headers: cookie)
                XCTAssertEqual(refused.status, .notFound, path)
                XCTAssertFalse(String(buffer: refused.body).contains("their secret"), path)
            }
        }
    }
}
