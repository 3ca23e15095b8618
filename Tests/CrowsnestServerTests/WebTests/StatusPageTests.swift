import Foundation
import Hummingbird
import HummingbirdTesting
import XCTest

@testable import CrowsnestServer

/// Public status pages and badges against a real database: published through the API by an admin, showing only
/// services marked public, no causes or target names, and nothing of a tenant that did not publish.
final class StatusPageTests: XCTestCase {
    func testTheStatusPageSettingsAreValidatedAndOnlyAnAdminChangesThem() async throws {
        try await APITestHarness.withWeb { seed, client in
            let tenant = try await seed.tenant(), other = try await seed.tenant()
            let admin = try await seed.apiKey(tenant: tenant, role: .admin), reader = try await seed.apiKey(tenant: tenant, role: .read)
            let otherAdmin = try await seed.apiKey(tenant: other, role: .admin)
            let initial = try await client.execute(uri: "/api/v1/status-page", method: .get, headers: bearer(reader.secret))
            XCTAssertEqual(try initial.jsonObject() as NSDictionary, ["slug": NSNull(), "title": "", "url_path": NSNull()])
            let forbidden = try await client.execute(uri: "/api/v1/status-page", method: .put, headers: bearer(reader.secret),
                                                     body: ByteBuffer(string: #"{"slug":"acme"}"#))
            XCTAssertEqual(forbidden.status, .forbidden)
            for (body, message) in [
                (#"{"slug":"Acme"}"#, "slug must be 2 to 63 lowercase letters"),
                (#"{"slug":"-acme"}"#, "slug must be 2 to 63 lowercase letters"),
                (#"{"slug":"a"}"#, "slug must be 2 to 63 lowercase letters"),
                (#"{"title":"x"}"#, "slug is required"),
                (#"{"slug":"acme","colour":"red"}"#, "colour is not a known field"),
                (#"{"slug":"acme","title":"line\nbreak"}"#, "title must not contain control characters"),
            ] {
                let response = try await client.execute(uri: "/api/v1/status-page", method: .put, headers: bearer(admin.secret),
                                                        body: ByteBuffer(string: body))
                XCTAssertEqual(response.status, .badRequest, body)
                XCTAssertTrue(try response.apiError().message.contains(message), "\(body): \(String(buffer: response.body))")
            }
            let set = try await client.execute(uri: "/api/v1/status-page", method: .put, headers: bearer(admin.secret),
                                               body: ByteBuffer(string: #"{"slug":"acme-1","title":"Acme status"}"#))
            XCTAssertEqual(set.status, .ok, String(buffer: set.body))
            XCTAssertEqual(try set.jsonObject() as NSDictionary, ["slug": "acme-1", "title": "Acme status", "url_path": "/status/acme-1"])
            let taken = try await client.execute(uri: "/api/v1/status-page", method: .put, headers: bearer(otherAdmin.secret),
                                                 body: ByteBuffer(string: #"{"slug":"acme-1"}"#))
            XCTAssertEqual(taken.status, .conflict)
            let off = try await client.execute(uri: "/api/v1/status-page", method: .put, headers: bearer(admin.secret),
                                               body: ByteBuffer(string: #"{"slug":null}"#))
            XCTAssertEqual(off.status, .ok)
            let page = try await client.execute(uri: "/status/acme-1", method: .get)
            XCTAssertEqual(page.status, .notFound, "an unpublished page is gone")
        }
    }

    func testTheStatusPageShowsOnlyPublicServicesWithoutCausesAndBadgesOnlyForThem() async throws {
        try await APITestHarness.withWeb { seed, client in
            let tenant = try await seed.tenant("acme-<b>corp</b>")
            let admin = try await seed.apiKey(tenant: tenant, role: .admin)
            let host = try await seed.agent(tenant: tenant, hostname: "secret-db-host.internal", lastSeenSecondsAgo: 1)
            let target = TargetID.host(agentID: host).description
            let now = Date()
            try await seed.statusSpan(tenant: tenant, target: .host(agentID: host), state: "up", startedAt: now.addingTimeInterval(-5 * 86_400),
                                      endedAt: now.addingTimeInterval(-3600))
            try await seed.statusSpan(tenant: tenant, target: .host(agentID: host), state: "down", startedAt: now.addingTimeInterval(-3600),
                                      endedAt: now.addingTimeInterval(-3000), cause: "10.0.0.7 unreachable")
            try await seed.statusSpan(tenant: tenant, target: .host(agentID: host), state: "up", startedAt: now.addingTimeInterval(-3000), endedAt: nil)
            func service(_ body: String) async throws -> String {
                let response = try await client.execute(uri: "/api/v1/services", method: .post, headers: bearer(admin.secret),
                                                        body: ByteBuffer(string: body))
                XCTAssertEqual(response.status, .created, String(buffer: response.body))
                return try XCTUnwrap(try response.jsonObject()["id"] as? String)
            }
            let shop = try await service(#"{"name":"Shop <script>alert(1)</script>","targets":["\#(target)"],"public":true}"#)
            let billing = try await service(#"{"name":"internal-billing","targets":["\#(target)"]}"#)
            let publish = try await client.execute(uri: "/api/v1/status-page", method: .put, headers: bearer(admin.secret),
                                                   body: ByteBuffer(string: #"{"slug":"acme"}"#))
            XCTAssertEqual(publish.status, .ok)

            let page = try await client.execute(uri: "/status/acme", method: .get)
            XCTAssertEqual(page.status, .ok)
            XCTAssertEqual(page.headers[.contentSecurityPolicy], WebSecurityHeadersMiddleware.contentSecurityPolicy)
            let html = String(buffer: page.body)
            XCTAssertTrue(html.contains("Shop &lt;script&gt;alert(1)&lt;/script&gt;"), "the public service, its name escaped")
            XCTAssertFalse(html.contains("<script>alert(1)"))
            XCTAssertTrue(html.contains("acme-&lt;b&gt;corp&lt;/b&gt; status"), "the tenant's name as the default title, escaped")
            XCTAssertFalse(html.contains("internal-billing"), "a service not marked public is not shown")
            XCTAssertFalse(html.contains("secret-db-host"), "no target names")
            XCTAssertFalse(html.contains("10.0.0.7"), "no causes (they name addresses)")
            XCTAssertTrue(html.contains("Operational"))
            XCTAssertTrue(html.contains("outage from"), "the past outage, by time only")
            XCTAssertEqual(html.components(separatedBy: "<rect class=").count - 1, StatusPage.days, "a bar per day for 90 days")
            XCTAssertFalse(html.contains("Sign out"), "nobody is signed in on a public page")

            let badge = try await client.execute(uri: "/badge/\(shop)/status.svg", method: .get)
            XCTAssertEqual(badge.status, .ok)
            XCTAssertEqual(badge.headers[.contentType], "image/svg+xml")
            XCTAssertTrue(String(buffer: badge.body).contains(">operational</text>"))
            let uptime = try await client.execute(uri: "/badge/\(shop)/uptime-30d.svg", method: .get)
            XCTAssertTrue(String(buffer: uptime.body).contains(" %</text>"), String(buffer: uptime.body))
            for path in ["/badge/\(billing)/status.svg", "/badge/\(shop)/other.svg", "/badge/s-\(UUID().uuidString.lowercased())/status.svg",
                         "/badge/not-an-id/status.svg", "/status/nobody-here", "/status/..%2Fetc"] {
                let response = try await client.execute(uri: path, method: .get)
                XCTAssertEqual(response.status, .notFound, path)
                XCTAssertFalse(String(buffer: response.body).contains("internal-billing"), path)
            }
        }
    }

    func testPublicChecksAreListedWithTheirTargetOnlyWhenMarkedAndHaveBadges() async throws {
        try await APITestHarness.withWeb { seed, client in
            let tenant = try await seed.tenant(), other = try await seed.tenant()
            let admin = try await seed.apiKey(tenant: tenant, role: .admin)
            let otherAdmin = try await seed.apiKey(tenant: other, role: .admin)
            func check(_ body: String, key: String? = nil) async throws -> [String: Any] {
                let response = try await client.execute(uri: "/api/v1/checks", method: .post, headers: bearer(key ?? admin.secret),
                                                        body: ByteBuffer(string: body))
                XCTAssertEqual(response.status, .created, String(buffer: response.body))
                return try response.jsonObject()
            }
            let hidden = try await check(#"{"name":"api <img src=x onerror=alert(1)>","type":"http","target":"https://secret-api.internal/health","public":true}"#)
            let shown = try await check(#"{"name":"home page","type":"http","target":"https://www.example.com/","public":true,"public_target":true}"#)
            let privateCheck = try await check(#"{"name":"internal-db","type":"tcp","target":"db.internal:5432"}"#)
            let foreign = try await check(#"{"name":"foreign-check","type":"tcp","target":"foreign.example:443","public":true}"#, key: otherAdmin.secret)
            XCTAssertEqual(hidden["public"] as? Bool, true)
            XCTAssertEqual(hidden["public_target"] as? Bool, false)
            XCTAssertEqual(privateCheck["public"] as? Bool, false, "checks are not public unless marked")
            let hiddenID = try XCTUnwrap(hidden["id"] as? String), shownID = try XCTUnwrap(shown["id"] as? String)
            let internalID = try XCTUnwrap(privateCheck["id"] as? String), foreignID = try XCTUnwrap(foreign["id"] as? String)

            // A replace that leaves the flags out keeps them; a wrong type is refused by name.
            let replaced = try await client.execute(uri: "/api/v1/checks/\(shownID)", method: .put, headers: bearer(admin.secret),
                                                    body: ByteBuffer(string: #"{"name":"home page","type":"http","target":"https://www.example.com/"}"#))
            XCTAssertEqual(replaced.status, .ok)
            XCTAssertEqual(try replaced.jsonObject()["public_target"] as? Bool, true)
            let wrong = try await client.execute(uri: "/api/v1/checks", method: .post, headers: bearer(admin.secret),
                                                 body: ByteBuffer(string: #"{"name":"x","type":"tcp","target":"a.example:1","public":"yes"}"#))
            XCTAssertEqual(wrong.status, .badRequest)
            XCTAssertTrue(try wrong.apiError().message.contains("public must be"), String(buffer: wrong.body))

            let now = Date()
            for id in [hiddenID, shownID, internalID] {
                guard case .check(let uuid)? = TargetID(id) else { return XCTFail(id) }
                try await seed.statusSpan(tenant: tenant, target: .check(checkID: uuid), state: "down",
                                          startedAt: now.addingTimeInterval(-7200), endedAt: now.addingTimeInterval(-7000),
                                          cause: "connection refused by 10.9.8.7")
                try await seed.statusSpan(tenant: tenant, target: .check(checkID: uuid), state: "up",
                                          startedAt: now.addingTimeInterval(-7000), endedAt: nil)
            }
            for (key, slug) in [(admin.secret, "acme"), (otherAdmin.secret, "other")] {
                let publish = try await client.execute(uri: "/api/v1/status-page", method: .put, headers: bearer(key),
                                                       body: ByteBuffer(string: #"{"slug":"\#(slug)"}"#))
                XCTAssertEqual(publish.status, .ok)
            }
            let html = String(buffer: try await client.execute(uri: "/status/acme", method: .get).body)
            XCTAssertTrue(html.contains("api &lt;img src=x onerror=alert(1)&gt;"), "a public check, its name escaped")
            XCTAssertFalse(html.contains("secret-api.internal"), "its target is hidden unless marked public_target")
            XCTAssertTrue(html.contains("home page") && html.contains("https://www.example.com/"), "a public check with its target")
            XCTAssertFalse(html.contains("internal-db") || html.contains("db.internal"), "a check not marked public is not shown")
            XCTAssertFalse(html.contains("foreign-check"), "another tenant's public check is on its own page only")
            XCTAssertFalse(html.contains("10.9.8.7"), "no causes")
            XCTAssertTrue(html.contains("Operational"))
            XCTAssertEqual(html.components(separatedBy: "<rect class=").count - 1, 2 * StatusPage.days, "a 90-day bar per public check")
            XCTAssertTrue(html.contains("outage from"), "the checks' past outages, by time only")

            let badge = try await client.execute(uri: "/badge/\(hiddenID)/status.svg", method: .get)
            XCTAssertEqual(badge.status, .ok)
            XCTAssertTrue(String(buffer: badge.body).contains(">operational</text>"), String(buffer: badge.body))
            let uptime = String(buffer: try await client.execute(uri: "/badge/\(shownID)/uptime-30d.svg", method: .get).body)
            XCTAssertTrue(uptime.contains(" %</text>"), uptime)
            XCTAssertFalse(uptime.contains("www.example.com"), "a badge shows a state or a number, no target")
            for path in ["/badge/\(internalID)/status.svg", "/badge/k-\(UUID().uuidString.lowercased())/uptime-30d.svg"] {
                let response = try await client.execute(uri: path, method: .get)
                XCTAssertEqual(response.status, .notFound, path)
            }

            // Unpublishing takes effect at once for badges not yet cached, and the page of a new request.
            let unpublished = try await client.execute(uri: "/api/v1/checks/\(hiddenID)", method: .put, headers: bearer(admin.secret),
                                                       body: ByteBuffer(string: #"{"name":"api","type":"http","target":"https://secret-api.internal/health","public":false}"#))
            XCTAssertEqual(try unpublished.jsonObject()["public"] as? Bool, false)
            let gone = try await client.execute(uri: "/badge/\(hiddenID)/uptime-30d.svg", method: .get)
            XCTAssertEqual(gone.status, .notFound, "an unpublished check has no badges")
            let otherPage = String(buffer: try await client.execute(uri: "/status/other", method: .get).body)
            XCTAssertTrue(otherPage.contains("foreign-check") && !otherPage.contains("home page"), "each tenant's page shows its own")
            let foreignBadge = try await client.execute(uri: "/badge/\(foreignID)/status.svg", method: .get)
            XCTAssertEqual(foreignBadge.status, .ok)
        }
    }
}
