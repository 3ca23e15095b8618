import Foundation
import Hummingbird
import HummingbirdTesting
import XCTest

@testable import CrowsnestServer

/// The overview page against a real database: what it shows of hosts, containers and incidents; attacker-chosen
/// names and causes shown as text; another tenant's hosts never shown.
final class WebOverviewPageTests: XCTestCase {
    /// Payloads a hostile container, agent or check could put where the page shows text.
    static let payloads = [
        "<img src=x onerror=alert(1)>",
        "</script><script>alert(2)</script>",
        "javascript:alert(3)",
        "\"><svg onload=alert(4)>",
        "' onmouseover='alert(5)",
    ]

    func testHostsContainersAndIncidentsWithHostileNamesAreShownAsText() async throws {
        try await APITestHarness.withWeb { seed, client in
            let (tenant, user) = try await WebSignInTests.user(seed)
            let quiet = try await seed.agent(tenant: tenant, hostname: "quiet-host", lastSeenSecondsAgo: 5)
            let hostile = try await seed.agent(tenant: tenant, hostname: Self.payloads[0], lastSeenSecondsAgo: 2)
            try await seed.statusSpan(tenant: tenant, target: .host(agentID: quiet), state: "unknown",
                                      startedAt: Date().addingTimeInterval(-600), endedAt: nil, cause: "no data")
            try await seed.statusSpan(tenant: tenant, target: .host(agentID: hostile), state: "up",
                                      startedAt: Date().addingTimeInterval(-3600), endedAt: nil)
            for (index, payload) in Self.payloads.enumerated() {
                try await seed.container(tenant: tenant, agent: hostile, name: "app-\(index)\(payload)",
                                         state: index == 0 ? "exited" : "running", health: index == 1 ? "unhealthy" : "none",
                                         healthOutput: payload)
            }
            let downName = "app-0" + Self.payloads[0]
            try await seed.statusSpan(tenant: tenant, target: .container(agentID: hostile, name: downName), state: "down",
                                      startedAt: Date().addingTimeInterval(-300), endedAt: nil, cause: Self.payloads[1])
            try await seed.hostSample(tenant: tenant, agent: hostile, ts: Date().addingTimeInterval(-10), cpuPercent: 37.5,
                                      memoryTotal: 4 << 30, memoryAvailable: 3 << 30)
            // Another tenant's host, which must not appear.
            let other = try await seed.tenant()
            _ = try await seed.agent(tenant: other, hostname: "someone-elses-host", lastSeenSecondsAgo: 1)

            let token = try await WebSignInTests.signIn(client, username: user.username)
            let response = try await client.execute(uri: "/", method: .get, headers: [.cookie: "\(WebSessionMiddleware.cookieName)=\(token)"])
            XCTAssertEqual(response.status, .ok)
            let html = String(buffer: response.body)
            for payload in Self.payloads {
                XCTAssertFalse(html.contains(payload), "a payload appears unescaped: \(payload)")
            }
            XCTAssertTrue(html.contains("&lt;img src=x onerror=alert(1)&gt;"), "the hostile host name is shown, as text")
            XCTAssertTrue(html.contains("&lt;/script&gt;&lt;script&gt;alert(2)&lt;/script&gt;"), "the incident's cause, as text")
            XCTAssertFalse(html.contains("<script>"), "no inline script at all")
            XCTAssertFalse(html.contains("someone-elses-host"), "another tenant's host is never shown")
            // The host that needs a look comes first; figures are the newest sample's.
            let table = String(html[try XCTUnwrap(html.range(of: "<table class=\"hosts\">")).upperBound...])
            let quietAt = try XCTUnwrap(table.range(of: "quiet-host")).lowerBound
            let hostileAt = try XCTUnwrap(table.range(of: "\">&lt;img src=x onerror=alert(1)&gt;</a></td>")).lowerBound
            XCTAssertTrue(table.contains("<a href=\"/hosts/h-\(hostile.uuidString.lowercased())\">"), "each host links to its page")
            XCTAssertLessThan(quietAt, hostileAt, "unknown hosts are listed before up ones")
            XCTAssertTrue(html.contains("37.5 %"), "the host's CPU")
            XCTAssertTrue(html.contains("1.0 GiB of 4.0 GiB (25.0 %)"), "the host's memory")
            XCTAssertTrue(html.contains("4 running"), "running containers counted")
            XCTAssertTrue(html.contains("1 stopped"), "the exited container counted")
            XCTAssertTrue(html.contains("1 unhealthy"), "the unhealthy container counted")
            XCTAssertTrue(html.contains("<h2>Open incidents</h2>"), "the open incident is listed")
            XCTAssertTrue(html.contains("src=\"/static/live.js\""), "live refresh from a file, allowed by the CSP")
        }
    }

    func testStaticFilesAreServedWithTheirTypesAndUnknownPagesAreHTML404s() async throws {
        try await APITestHarness.withWeb { _, client in
            let css = try await client.execute(uri: "/static/app.css", method: .get)
            XCTAssertEqual(css.status, .ok)
            XCTAssertEqual(css.headers[.contentType], "text/css; charset=utf-8")
            XCTAssertEqual(css.headers[.xContentTypeOptions], "nosniff")
            let script = try await client.execute(uri: "/static/live.js", method: .get)
            XCTAssertEqual(script.headers[.contentType], "text/javascript; charset=utf-8")
            XCTAssertTrue(String(buffer: script.body).contains("DOMParser"))
            let missing = try await client.execute(uri: "/static/..%2Fsecret.key", method: .get)
            XCTAssertEqual(missing.status, .notFound)
            XCTAssertEqual(missing.headers[.contentType], "text/html; charset=utf-8")
            XCTAssertEqual(missing.headers[.contentSecurityPolicy], WebSecurityHeadersMiddleware.contentSecurityPolicy)
        }
    }
}
