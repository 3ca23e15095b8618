import CrowsnestWire
import Foundation
import Hummingbird
import HummingbirdTesting
import XCTest

@testable import CrowsnestServer

/// The administration page: admins manage users, API keys, enrollment tokens and the status page through forms
/// with the session's CSRF token; a read-only user sees no form and every route refuses it.
final class WebAdminTests: XCTestCase {
    private static func signedIn(_ seed: APISeed, _ client: some TestClientProtocol, role: APIKeyRole) async throws
        -> (tenant: UUID, cookie: HTTPFields, csrf: String) {
        let (tenant, user) = try await WebSignInTests.user(seed, role: role)
        let token = try await WebSignInTests.signIn(client, username: user.username)
        let cookie: HTTPFields = [.cookie: "\(WebSessionMiddleware.cookieName)=\(token)"]
        let overview = try await client.execute(uri: "/", method: .get, headers: cookie)
        return (tenant, cookie, try XCTUnwrap(WebSignInTests.csrfField(String(buffer: overview.body))))
    }

    private static func post(_ client: some TestClientProtocol, _ path: String, _ cookie: HTTPFields, _ fields: [String: String]) async throws -> TestResponse {
        var headers = cookie
        headers[.contentType] = "application/x-www-form-urlencoded"
        return try await client.execute(uri: path, method: .post, headers: headers, body: WebSignInTests.form(fields))
    }

    func testAReadOnlyUserSeesNoFormAndEveryAdminRouteRefusesIt() async throws {
        try await APITestHarness.withWeb { seed, client in
            let (tenant, cookie, csrf) = try await Self.signedIn(seed, client, role: .read)
            let overview = String(buffer: try await client.execute(uri: "/", method: .get, headers: cookie).body)
            XCTAssertFalse(overview.contains("/admin"), "no link to administration")
            XCTAssertEqual(overview.components(separatedBy: "<form").count - 1, 1, "only the sign-out form")
            let page = try await client.execute(uri: "/admin", method: .get, headers: cookie)
            XCTAssertEqual(page.status, .forbidden)
            XCTAssertFalse(String(buffer: page.body).contains("action=\"/admin"), "no administration form on the refusal")
            for (path, fields) in [("/admin/users", ["username": "sneaky", "password": "long enough password", "role": "admin"]),
                                   ("/admin/api-keys", ["role": "admin"]), ("/admin/enrollment-tokens", [:]),
                                   ("/admin/status-page", ["slug": "sneaky"]), ("/admin/api-keys/revoke", ["id": UUID().uuidString]),
                                   ("/admin/services", ["definition": #"{"name":"x","labels":["a=b"]}"#]),
                                   ("/admin/maintenance-windows/delete", ["id": "m-" + UUID().uuidString.lowercased()]),
                                   ("/admin/checks", ["definition": #"{"name":"x","type":"tcp","target":"a.example:1"}"#]),
                                   ("/admin/checks/pause", ["id": "k-" + UUID().uuidString.lowercased()]),
                                   ("/admin/checks/publication", ["id": "k-" + UUID().uuidString.lowercased(), "public": "on"]),
                                   ("/admin/checks/delete", ["id": "k-" + UUID().uuidString.lowercased()]),
                                   ("/admin/alert-channels", ["name": "x", "url": "https://hooks.example.com/"]),
                                   ("/admin/alert-rules", ["definition": "{}"])] {
                var withToken = fields
                withToken["csrf"] = csrf
                let response = try await Self.post(client, path, cookie, withToken)
                XCTAssertEqual(response.status, .forbidden, path)
            }
            let keys = try await APIKeyStore(database: seed.database, logger: APITestHarness.logger).list(tenantID: tenant)
            XCTAssertEqual(keys.count, 0, "nothing made")
            let users = try await UserStore(client: seed.database, logger: APITestHarness.logger).list(tenantID: tenant)
            XCTAssertEqual(users.count, 1)
            let slug = try await TenantStore(client: seed.database, logger: APITestHarness.logger).statusPage(tenantID: tenant).slug
            XCTAssertNil(slug)
        }
    }

    func testAnAdminManagesUsersKeysAndTheStatusPageWithCSRFOnEveryForm() async throws {
        try await APITestHarness.withWeb { seed, client in
            let (tenant, cookie, csrf) = try await Self.signedIn(seed, client, role: .admin)
            let page = try await client.execute(uri: "/admin", method: .get, headers: cookie)
            XCTAssertEqual(page.status, .ok)
            let html = String(buffer: page.body)
            for action in ["/admin/users", "/admin/api-keys", "/admin/enrollment-tokens", "/admin/status-page", "/admin/services",
                           "/admin/maintenance-windows"] {
                XCTAssertTrue(html.contains("action=\"\(action)\""), action)
            }
            // Without the token nothing happens.
            let forged = try await Self.post(client, "/admin/api-keys", cookie, ["role": "admin"])
            XCTAssertEqual(forged.status, .forbidden)

            let hostile = "<img src=x onerror=alert(1)>"
            let created = try await Self.post(client, "/admin/users", cookie, ["csrf": csrf, "username": hostile, "password": "another long password", "role": "read"])
            XCTAssertEqual(created.status, .ok, String(buffer: created.body))
            let createdHTML = String(buffer: created.body)
            XCTAssertFalse(createdHTML.contains(hostile), "the new user's name is escaped")
            XCTAssertTrue(createdHTML.contains("&lt;img src=x onerror=alert(1)&gt;"))
            let short = try await Self.post(client, "/admin/users", cookie, ["csrf": csrf, "username": "x", "password": "short", "role": "read"])
            XCTAssertEqual(short.status, .badRequest)
            XCTAssertTrue(String(buffer: short.body).contains("the password is shorter than 10 characters"))
            let taken = try await Self.post(client, "/admin/users", cookie, ["csrf": csrf, "username": hostile.uppercased(), "password": "another long password"])
            XCTAssertEqual(taken.status, .conflict)

            let key = try await Self.post(client, "/admin/api-keys", cookie, ["csrf": csrf, "role": "read"])
            XCTAssertEqual(key.status, .ok)
            let keyHTML = String(buffer: key.body)
            let keys = try await APIKeyStore(database: seed.database, logger: APITestHarness.logger).list(tenantID: tenant)
            XCTAssertEqual(keys.count, 1)
            XCTAssertTrue(keyHTML.contains("Shown once"))
            let secret = try XCTUnwrap(keyHTML.range(of: #"<pre class="output">"#).map { String(keyHTML[$0.upperBound...].prefix { $0 != "<" }) })
            let caller = try await APIKeyStore(database: seed.database, logger: APITestHarness.logger).authenticate(secret: secret)
            XCTAssertEqual(caller?.tenantID, tenant, "the shown secret is the key's")
            let revoked = try await Self.post(client, "/admin/api-keys/revoke", cookie, ["csrf": csrf, "id": keys[0].id.uuidString.lowercased()])
            XCTAssertEqual(revoked.status, .ok)
            let gone = try await APIKeyStore(database: seed.database, logger: APITestHarness.logger).authenticate(secret: secret)
            XCTAssertNil(gone, "a revoked key no longer works")

            let noCA = try await Self.post(client, "/admin/enrollment-tokens", cookie, ["csrf": csrf])
            XCTAssertEqual(noCA.status, .serviceUnavailable, "no certificate authority in this test database: said, not a crash")

            // Services and windows from the same JSON the API takes, validated the same way.
            let service = try await Self.post(client, "/admin/services", cookie, ["csrf": csrf, "definition":
                #"{"name":"shop <i>x</i>","targets":["h-\#(UUID().uuidString.lowercased())"]}"#])
            XCTAssertEqual(service.status, .badRequest, "a target the tenant does not have")
            XCTAssertTrue(String(buffer: service.body).contains("The service was not added: targets[0] names nothing this tenant has"))
            let host = try await seed.agent(tenant: tenant, hostname: "h1", lastSeenSecondsAgo: 1)
            let added = try await Self.post(client, "/admin/services", cookie, ["csrf": csrf, "definition":
                #"{"name":"shop <i>x</i>","targets":["h-\#(host.uuidString.lowercased())"],"public":true}"#])
            XCTAssertEqual(added.status, .ok, String(buffer: added.body))
            XCTAssertTrue(String(buffer: added.body).contains("shop &lt;i&gt;x&lt;/i&gt;"))
            let stored = try await DefinitionStore(.services, client: seed.database, logger: APITestHarness.logger).list(tenantID: tenant)
            XCTAssertEqual(stored.map(\.name), ["shop <i>x</i>"])
            let window = try await Self.post(client, "/admin/maintenance-windows", cookie, ["csrf": csrf, "definition":
                #"{"name":"patch","recurrence":{"days":["sun"],"start":"02:00","duration_minutes":60}}"#])
            XCTAssertEqual(window.status, .ok)
            let notJSON = try await Self.post(client, "/admin/maintenance-windows", cookie, ["csrf": csrf, "definition": "{not json"])
            XCTAssertEqual(notJSON.status, .badRequest)
            let deleted = try await Self.post(client, "/admin/services/delete", cookie, ["csrf": csrf, "id": "s-" + stored[0].id.uuidString.lowercased()])
            XCTAssertEqual(deleted.status, .ok)
            let left = try await DefinitionStore(.services, client: seed.database, logger: APITestHarness.logger).list(tenantID: tenant)
            XCTAssertTrue(left.isEmpty)

            let published = try await Self.post(client, "/admin/status-page", cookie, ["csrf": csrf, "slug": "acme-web", "title": "Acme"])
            XCTAssertEqual(published.status, .ok)
            let publishedSlug = try await TenantStore(client: seed.database, logger: APITestHarness.logger).statusPage(tenantID: tenant).slug
            XCTAssertEqual(publishedSlug, "acme-web")
            let bad = try await Self.post(client, "/admin/status-page", cookie, ["csrf": csrf, "slug": "Not A Slug"])
            XCTAssertEqual(bad.status, .badRequest)
            let keptSlug = try await TenantStore(client: seed.database, logger: APITestHarness.logger).statusPage(tenantID: tenant).slug
            XCTAssertEqual(keptSlug, "acme-web", "a refused form changes nothing")
        }
    }

    func testAnAdminAddsPausesPublishesAndDeletesChecks() async throws {
        try await APITestHarness.withWeb { seed, client in
            let (tenant, cookie, csrf) = try await Self.signedIn(seed, client, role: .admin)
            let other = try await seed.tenant()
            let store = CheckStore(client: seed.database, logger: APITestHarness.logger)
            let page = String(buffer: try await client.execute(uri: "/admin", method: .get, headers: cookie).body)
            XCTAssertTrue(page.contains("action=\"/admin/checks\""))
            XCTAssertTrue(page.contains("No checks yet."))

            let refused = try await Self.post(client, "/admin/checks", cookie, ["csrf": csrf, "definition": #"{"name":"x","type":"http","target":"ftp://a"}"#])
            XCTAssertEqual(refused.status, .badRequest)
            XCTAssertTrue(String(buffer: refused.body).contains("The check was not added: target"), String(buffer: refused.body))
            let notJSON = try await Self.post(client, "/admin/checks", cookie, ["csrf": csrf, "definition": "[1"])
            XCTAssertEqual(notJSON.status, .badRequest)
            let forged = try await Self.post(client, "/admin/checks", cookie, ["definition": #"{"name":"x","type":"tcp","target":"a.example:1"}"#])
            XCTAssertEqual(forged.status, .forbidden, "no CSRF token, no check")
            let none = try await store.list(tenantID: tenant)
            XCTAssertTrue(none.isEmpty, "refused forms store nothing")

            let hostile = "<script>alert(1)</script>"
            let added = try await Self.post(client, "/admin/checks", cookie, ["csrf": csrf, "definition":
                #"{"name":"\#(hostile)","type":"http","target":"https://example.com/?q=<b>","interval_seconds":60}"#])
            XCTAssertEqual(added.status, .ok, String(buffer: added.body))
            let addedHTML = String(buffer: added.body)
            XCTAssertFalse(addedHTML.contains(hostile), "the check's name is escaped")
            XCTAssertTrue(addedHTML.contains("&lt;script&gt;alert(1)&lt;/script&gt;"))
            let duplicate = try await Self.post(client, "/admin/checks", cookie, ["csrf": csrf, "definition":
                #"{"name":"\#(hostile)","type":"tcp","target":"a.example:1"}"#])
            XCTAssertEqual(duplicate.status, .conflict)
            let push = try await Self.post(client, "/admin/checks", cookie, ["csrf": csrf, "definition": #"{"name":"nightly backup","type":"push"}"#])
            XCTAssertTrue(String(buffer: push.body).contains("/api/v1/push/cnp_"), "a push check's URL is shown when it is made")
            let checks = try await store.list(tenantID: tenant)
            XCTAssertEqual(checks.count, 2)
            let check = try XCTUnwrap(checks.first { $0.type == .http })
            let id = TargetID.check(checkID: check.id).description

            let paused = try await Self.post(client, "/admin/checks/pause", cookie, ["csrf": csrf, "id": id])
            XCTAssertEqual(paused.status, .ok)
            XCTAssertTrue(String(buffer: paused.body).contains("action=\"/admin/checks/resume\""), "a paused check offers Resume")
            let pausedCheck = try await store.get(tenantID: tenant, id: check.id)
            XCTAssertEqual(pausedCheck?.paused, true)
            _ = try await Self.post(client, "/admin/checks/resume", cookie, ["csrf": csrf, "id": id])
            let resumedCheck = try await store.get(tenantID: tenant, id: check.id)
            XCTAssertEqual(resumedCheck?.paused, false)

            // "show target" means nothing without "public".
            _ = try await Self.post(client, "/admin/checks/publication", cookie, ["csrf": csrf, "id": id, "public_target": "on"])
            let targetOnly = try await store.get(tenantID: tenant, id: check.id)
            XCTAssertEqual(targetOnly.map { [$0.isPublic, $0.publicTarget] }, [false, false])
            let publish = try await Self.post(client, "/admin/checks/publication", cookie, ["csrf": csrf, "id": id, "public": "on"])
            XCTAssertTrue(String(buffer: publish.body).contains("is on the status page, its target hidden"))
            let published = try await store.get(tenantID: tenant, id: check.id)
            XCTAssertEqual(published.map { [$0.isPublic, $0.publicTarget] }, [true, false])

            // Another tenant's check is not reachable from here.
            let foreign = try await store.create(tenantID: other, submission: CheckDefinition.parse(
                .object(["name": .string("theirs"), "type": .string("tcp"), "target": .string("b.example:2")])))
            let foreignID = TargetID.check(checkID: foreign.id).description
            for path in ["/admin/checks/pause", "/admin/checks/delete", "/admin/checks/publication"] {
                let response = try await Self.post(client, path, cookie, ["csrf": csrf, "id": foreignID, "public": "on"])
                XCTAssertEqual(response.status, .notFound, path)
            }
            let untouched = try await store.get(tenantID: other, id: foreign.id)
            XCTAssertEqual(untouched.map { [$0.paused, $0.isPublic] }, [false, false])

            let deleted = try await Self.post(client, "/admin/checks/delete", cookie, ["csrf": csrf, "id": id])
            XCTAssertEqual(deleted.status, .ok)
            let left = try await store.list(tenantID: tenant)
            XCTAssertEqual(left.map(\.name), ["nightly backup"])
        }
    }

    func testAnAdminAddsAlertChannelsAndRules() async throws {
        try await APITestHarness.withWeb { seed, client in
            let (tenant, cookie, csrf) = try await Self.signedIn(seed, client, role: .admin)
            let page = String(buffer: try await client.execute(uri: "/admin", method: .get, headers: cookie).body)
            XCTAssertTrue(page.contains("action=\"/admin/alert-channels\""))
            XCTAssertTrue(page.contains("Add a channel first"), "no rule form before a channel exists")
            let guarded = try await Self.post(client, "/admin/alert-channels", cookie, ["csrf": csrf, "name": "ops", "url": "http://10.0.0.5/hook"])
            XCTAssertEqual(guarded.status, .badRequest)
            XCTAssertTrue(String(buffer: guarded.body).contains("The alert channel was not added: url is refused: address 10.0.0.5 is private"),
                          String(buffer: guarded.body))
            try await TenantStore(client: seed.database, logger: APITestHarness.logger).allowNetwork(tenantID: tenant, network: IPNetwork("10.0.0.0/8")!)
            let added = try await Self.post(client, "/admin/alert-channels", cookie, ["csrf": csrf, "name": "ops <b>", "url": "http://10.0.0.5/hook/token-123"])
            XCTAssertEqual(added.status, .ok, String(buffer: added.body))
            let addedHTML = String(buffer: added.body)
            XCTAssertTrue(addedHTML.contains("signing secret: "), "a made secret is shown once")
            XCTAssertTrue(addedHTML.contains("ops &lt;b&gt;"))
            XCTAssertFalse(addedHTML.contains("token-123"), "the URL's path is not shown")
            let channels = try await AlertChannelStore(client: seed.database, logger: APITestHarness.logger).list(tenantID: tenant)
            let channelID = AlertChannelID(uuid: try XCTUnwrap(channels.first).id).description
            let again = String(buffer: try await client.execute(uri: "/admin", method: .get, headers: cookie).body)
            XCTAssertFalse(again.contains("signing secret: "), "and never again")
            XCTAssertTrue(again.contains("action=\"/admin/alert-rules\""), "the rule form once a channel exists")

            let host = try await seed.agent(tenant: tenant, hostname: "h1", lastSeenSecondsAgo: 1)
            let badRule = try await Self.post(client, "/admin/alert-rules", cookie, ["csrf": csrf, "definition":
                #"{"name":"r","targets":["h-\#(UUID().uuidString.lowercased())"],"channels":["\#(channelID)"]}"#])
            XCTAssertEqual(badRule.status, .badRequest)
            XCTAssertTrue(String(buffer: badRule.body).contains("targets[0] names nothing this tenant has"))
            let rule = try await Self.post(client, "/admin/alert-rules", cookie, ["csrf": csrf, "definition":
                #"{"name":"host <i>down</i>","targets":["h-\#(host.uuidString.lowercased())"],"channels":["\#(channelID)"]}"#])
            XCTAssertEqual(rule.status, .ok, String(buffer: rule.body))
            XCTAssertTrue(String(buffer: rule.body).contains("host &lt;i&gt;down&lt;/i&gt;"))
            let rules = try await DefinitionStore(.alertRules, client: seed.database, logger: APITestHarness.logger).list(tenantID: tenant)
            XCTAssertEqual(rules.map(\.name), ["host <i>down</i>"])

            // Any channel type from its JSON; a firing alert acknowledged and silenced from the page.
            let mail = try await Self.post(client, "/admin/alert-channels", cookie, ["csrf": csrf, "definition":
                #"{"name":"mail","type":"email","smtp_host":"10.0.0.6","from":"a@example.com","to":"b@example.com","smtp_username":"u","smtp_password":"pw-secret"}"#])
            XCTAssertEqual(mail.status, .ok, String(buffer: mail.body))
            XCTAssertTrue(String(buffer: mail.body).contains("smtp://10.0.0.6:587 → 1 recipient"))
            XCTAssertFalse(String(buffer: mail.body).contains("pw-secret"))
            let target = TargetID.host(agentID: host)
            try await seed.statusSpan(tenant: tenant, target: target, state: "down", startedAt: Date().addingTimeInterval(-600), endedAt: nil)
            _ = try await AlertJob(client: seed.database, logger: APITestHarness.logger).round(now: Date())
            let firingPage = String(buffer: try await client.execute(uri: "/admin", method: .get, headers: cookie).body)
            XCTAssertTrue(firingPage.contains("action=\"/admin/alerts/acknowledge\""), "a firing alert can be acknowledged")
            let ruleID = "a-" + rules[0].id.uuidString.lowercased()
            let acknowledged = try await Self.post(client, "/admin/alerts/acknowledge", cookie, ["csrf": csrf, "rule": ruleID, "target": target.description])
            XCTAssertEqual(acknowledged.status, .ok, String(buffer: acknowledged.body))
            XCTAssertTrue(String(buffer: acknowledged.body).contains("by ops-"), "who acknowledged it")
            let silenced = try await Self.post(client, "/admin/alert-silences", cookie, ["csrf": csrf, "rule": ruleID, "target": target.description, "hours": "1"])
            XCTAssertEqual(silenced.status, .ok, String(buffer: silenced.body))
            let silences = try await AlertSilenceStore(client: seed.database, logger: APITestHarness.logger).active(tenantID: tenant)
            XCTAssertEqual(silences.count, 1)
            XCTAssertTrue(silences.first?.createdBy.hasPrefix("ops-") == true)
            let tooLong = try await Self.post(client, "/admin/alert-silences", cookie, ["csrf": csrf, "rule": ruleID, "hours": "100000"])
            XCTAssertEqual(tooLong.status, .badRequest)
            let ended = try await Self.post(client, "/admin/alert-silences/end", cookie, ["csrf": csrf, "id": "q-" + silences[0].id.uuidString.lowercased()])
            XCTAssertEqual(ended.status, .ok, String(buffer: ended.body))
            XCTAssertTrue(String(buffer: ended.body).contains("(ended)"))
            let noCSRF = try await Self.post(client, "/admin/alerts/acknowledge", cookie, ["rule": ruleID, "target": target.description])
            XCTAssertEqual(noCSRF.status, .forbidden)
            let deleted = try await Self.post(client, "/admin/alert-channels/delete", cookie, ["csrf": csrf, "id": channelID])
            XCTAssertEqual(deleted.status, .ok)
            let left = try await AlertChannelStore(client: seed.database, logger: APITestHarness.logger).list(tenantID: tenant)
            XCTAssertEqual(left.map(\.name), ["mail"])
        }
    }
}
