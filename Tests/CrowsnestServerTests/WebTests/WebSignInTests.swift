import CrowsnestWire
import Foundation
import Hummingbird
import HummingbirdTesting
import XCTest

@testable import CrowsnestServer

/// Sign-in, sessions and CSRF on the web pages, against a real database: cookies HttpOnly and SameSite=Strict
/// (Secure when the public URL is HTTPS), a CSRF token on every form, attempts limited, sessions ended by sign-out.
final class WebSignInTests: XCTestCase {
    static let password = "correct horse battery"

    /// A tenant and a user of it (bcrypt at cost 4, as the harness checks).
    static func user(_ seed: APISeed, role: APIKeyRole = .admin, name: String = "ops-\(UUID().uuidString.prefix(6))") async throws -> (tenant: UUID, user: WebUser) {
        let tenantName = "web-" + UUID().uuidString.prefix(8).lowercased()
        let tenant = try await seed.tenant(tenantName)
        let user = try await ServerAdministration(client: seed.database, logger: APITestHarness.logger)
            .createUser(tenant: tenantName, username: name, role: role, password: password, hasher: PasswordHasher(cost: 4))
        return (tenant, user)
    }

    /// The `name=value` of a Set-Cookie header for `name`, with its attributes.
    static func setCookie(_ response: TestResponse, _ name: String) -> String? {
        response.headers[values: .setCookie].first { $0.hasPrefix(name + "=") }
    }

    static func cookieValue(_ header: String?) -> String? {
        header?.split(separator: ";").first?.split(separator: "=", maxSplits: 1).dropFirst().first.map(String.init)
    }

    /// The value of the hidden `csrf` field of the page.
    static func csrfField(_ html: String) -> String? {
        guard let range = html.range(of: #"name="csrf" value=""#) else { return nil }
        return String(html[range.upperBound...].prefix { $0 != "\"" })
    }

    static func form(_ fields: [String: String]) -> ByteBuffer {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-_.~")
        return ByteBuffer(string: fields.map { "\($0.key)=\($0.value.addingPercentEncoding(withAllowedCharacters: allowed)!)" }.joined(separator: "&"))
    }

    /// Opens the sign-in page; returns its CSRF token and the headers a post of its form carries (its cookie).
    static func signInForm(_ client: some TestClientProtocol) async throws -> (csrf: String, headers: HTTPFields) {
        let page = try await client.execute(uri: "/sign-in", method: .get)
        let csrf = try XCTUnwrap(csrfField(String(buffer: page.body)))
        let cookie = try XCTUnwrap(cookieValue(setCookie(page, WebRoutes.signInCookie)))
        return (csrf, [.contentType: "application/x-www-form-urlencoded", .cookie: "\(WebRoutes.signInCookie)=\(cookie)"])
    }

    /// Signs in through the form; returns the session cookie's value.
    static func signIn(_ client: some TestClientProtocol, username: String, password: String = password) async throws -> String {
        let (csrf, headers) = try await signInForm(client)
        let response = try await client.execute(uri: "/sign-in", method: .post, headers: headers,
                                                body: form(["csrf": csrf, "username": username, "password": password]))
        XCTAssertEqual(response.status, .seeOther, String(buffer: response.body))
        return try XCTUnwrap(cookieValue(setCookie(response, WebSessionMiddleware.cookieName)))
    }

    func testSignInSetsAStrictHttpOnlySessionAndSignOutEndsIt() async throws {
        try await APITestHarness.withWeb { seed, client in
            let (_, user) = try await Self.user(seed)
            // Signed out, the overview sends the browser to the sign-in page.
            let signedOut = try await client.execute(uri: "/", method: .get)
            XCTAssertEqual(signedOut.status, .seeOther)
            XCTAssertEqual(signedOut.headers[.location], "/sign-in")

            let page = try await client.execute(uri: "/sign-in", method: .get)
            XCTAssertEqual(page.status, .ok)
            XCTAssertEqual(page.headers[.contentType], "text/html; charset=utf-8")
            XCTAssertEqual(page.headers[.contentSecurityPolicy], WebSecurityHeadersMiddleware.contentSecurityPolicy)
            XCTAssertTrue(WebSecurityHeadersMiddleware.contentSecurityPolicy.contains("frame-ancestors 'none'"))
            XCTAssertFalse(WebSecurityHeadersMiddleware.contentSecurityPolicy.contains("unsafe-inline"))
            XCTAssertEqual(page.headers[.xContentTypeOptions], "nosniff")
            XCTAssertEqual(page.headers[WebSecurityHeadersMiddleware.referrerPolicy], "same-origin")
            let signInCookie = try XCTUnwrap(Self.setCookie(page, WebRoutes.signInCookie))
            XCTAssertTrue(signInCookie.contains("HttpOnly"), signInCookie)
            XCTAssertTrue(signInCookie.contains("SameSite=Strict"), signInCookie)
            XCTAssertFalse(signInCookie.contains("Secure"), "plain HTTP without an https public URL: \(signInCookie)")
            XCTAssertEqual(Self.csrfField(String(buffer: page.body)), Self.cookieValue(signInCookie))

            let token = try await Self.signIn(client, username: user.username.uppercased())
            let overview = try await client.execute(uri: "/", method: .get, headers: [.cookie: "\(WebSessionMiddleware.cookieName)=\(token)"])
            XCTAssertEqual(overview.status, .ok, String(buffer: overview.body))
            let html = String(buffer: overview.body)
            XCTAssertTrue(html.contains(user.username), "the signed-in user is named on the page")
            XCTAssertTrue(html.contains("No host has enrolled yet"))
            XCTAssertNil(overview.headers[.setCookie], "no cookie churn on ordinary pages")

            // Sign-out needs the session's CSRF token.
            let csrf = try XCTUnwrap(Self.csrfField(html))
            let forged = try await client.execute(uri: "/sign-out", method: .post,
                                                  headers: [.contentType: "application/x-www-form-urlencoded",
                                                            .cookie: "\(WebSessionMiddleware.cookieName)=\(token)"],
                                                  body: Self.form(["csrf": "x"]))
            XCTAssertEqual(forged.status, .forbidden)
            let still = try await client.execute(uri: "/", method: .get, headers: [.cookie: "\(WebSessionMiddleware.cookieName)=\(token)"])
            XCTAssertEqual(still.status, .ok, "a forged sign-out ends nothing")
            let signOut = try await client.execute(uri: "/sign-out", method: .post,
                                                   headers: [.contentType: "application/x-www-form-urlencoded",
                                                             .cookie: "\(WebSessionMiddleware.cookieName)=\(token)"],
                                                   body: Self.form(["csrf": csrf]))
            XCTAssertEqual(signOut.status, .seeOther)
            XCTAssertTrue(Self.setCookie(signOut, WebSessionMiddleware.cookieName)?.contains("Max-Age=0") == true)
            let after = try await client.execute(uri: "/", method: .get, headers: [.cookie: "\(WebSessionMiddleware.cookieName)=\(token)"])
            XCTAssertEqual(after.status, .seeOther, "the session is gone from the database, not just from the browser")
            let rows = try await seed.database.query("SELECT count(*) FROM web_sessions").collect()
            XCTAssertEqual(try rows.first?.decode(Int.self), 0)
        }
    }

    func testCookiesAreSecureWhenThePublicURLIsHTTPS() async throws {
        try await APITestHarness.withWeb(secureCookies: true) { seed, client in
            let (_, user) = try await Self.user(seed)
            let page = try await client.execute(uri: "/sign-in", method: .get)
            XCTAssertTrue(Self.setCookie(page, WebRoutes.signInCookie)?.contains("Secure") == true)
            let csrf = try XCTUnwrap(Self.csrfField(String(buffer: page.body)))
            let cookie = try XCTUnwrap(Self.cookieValue(Self.setCookie(page, WebRoutes.signInCookie)))
            let response = try await client.execute(uri: "/sign-in", method: .post,
                                                    headers: [.contentType: "application/x-www-form-urlencoded", .cookie: "\(WebRoutes.signInCookie)=\(cookie)"],
                                                    body: Self.form(["csrf": csrf, "username": user.username, "password": Self.password]))
            let session = try XCTUnwrap(Self.setCookie(response, WebSessionMiddleware.cookieName))
            for attribute in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
                XCTAssertTrue(session.contains(attribute), "\(attribute) in \(session)")
            }
        }
    }

    func testSignInRefusesForgedFormsWrongPasswordsAndUnknownNamesAlike() async throws {
        try await APITestHarness.withWeb { seed, client in
            let (_, user) = try await Self.user(seed)
            let (csrf, headers) = try await Self.signInForm(client)
            // No sign-in cookie (a form posted from another site's page): refused before the password is looked at.
            let noCookie = try await client.execute(uri: "/sign-in", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"],
                                                    body: Self.form(["csrf": csrf, "username": user.username, "password": Self.password]))
            XCTAssertEqual(noCookie.status, .forbidden)
            XCTAssertNil(Self.setCookie(noCookie, WebSessionMiddleware.cookieName))
            let wrongToken = try await client.execute(uri: "/sign-in", method: .post, headers: headers,
                                                      body: Self.form(["csrf": "not-it", "username": user.username, "password": Self.password]))
            XCTAssertEqual(wrongToken.status, .forbidden)
            var crossOrigin = headers
            crossOrigin[.origin] = "https://evil.example"
            let foreign = try await client.execute(uri: "/sign-in", method: .post, headers: crossOrigin,
                                                   body: Self.form(["csrf": csrf, "username": user.username, "password": Self.password]))
            XCTAssertEqual(foreign.status, .forbidden)
            XCTAssertTrue(String(buffer: foreign.body).contains("another site"))

            let wrong = try await client.execute(uri: "/sign-in", method: .post, headers: headers,
                                                 body: Self.form(["csrf": csrf, "username": user.username, "password": "wrong password!"]))
            let unknown = try await client.execute(uri: "/sign-in", method: .post, headers: headers,
                                                   body: Self.form(["csrf": csrf, "username": "nobody-here", "password": Self.password]))
            for response in [wrong, unknown] {
                XCTAssertEqual(response.status, .unauthorized)
                XCTAssertTrue(String(buffer: response.body).contains("Wrong user name or password."))
                XCTAssertNil(Self.setCookie(response, WebSessionMiddleware.cookieName))
            }
            let rows = try await seed.database.query("SELECT count(*) FROM web_sessions").collect()
            XCTAssertEqual(try rows.first?.decode(Int.self), 0)
        }
    }

    func testSignInAttemptsForOneNameAreLimitedEvenWithTheRightPassword() async throws {
        try await APITestHarness.withWeb { seed, client in
            let (_, user) = try await Self.user(seed)
            let (csrf, headers) = try await Self.signInForm(client)
            for attempt in 1...Int(SignInLimiter.perUsername) {
                let response = try await client.execute(uri: "/sign-in", method: .post, headers: headers,
                                                        body: Self.form(["csrf": csrf, "username": user.username, "password": "guess number \(attempt)"]))
                XCTAssertEqual(response.status, .unauthorized, "attempt \(attempt)")
            }
            let limited = try await client.execute(uri: "/sign-in", method: .post, headers: headers,
                                                   body: Self.form(["csrf": csrf, "username": user.username, "password": Self.password]))
            XCTAssertEqual(limited.status, .tooManyRequests)
            let retryAfter = try XCTUnwrap(Int(limited.headers[.retryAfter] ?? ""))
            XCTAssertTrue((1...900).contains(retryAfter), "\(retryAfter)")
            XCTAssertTrue(String(buffer: limited.body).contains("Too many sign-in attempts"))
            XCTAssertNil(Self.setCookie(limited, WebSessionMiddleware.cookieName), "no session while the name is limited")
            // Another name is not held back by this one's attempts.
            let (_, other) = try await Self.user(seed)
            _ = try await Self.signIn(client, username: other.username)
        }
    }

    func testBehindATrustedProxyAttemptsCountPerForwardedAddressAndAnUntrustedPeerCannotChooseOne() async throws {
        for trusted in [true, false] {
            try await APITestHarness.withWeb(live: true, trustedProxies: trusted ? [IPNetwork("127.0.0.0/8")!] : []) { _, client in
                let (csrf, headers) = try await Self.signInForm(client)
                func attempt(_ index: Int, from address: String) async throws -> HTTPResponse.Status {
                    var forwarded = headers
                    forwarded[ForwardedHeadersMiddleware.forwardedFor] = "\(address)"
                    // A different name each time: only the per-address limit is in play.
                    return try await client.execute(uri: "/sign-in", method: .post, headers: forwarded,
                                                    body: Self.form(["csrf": csrf, "username": "nobody-\(index)", "password": "guess guess guess"])).status
                }
                for index in 0..<Int(SignInLimiter.perAddress) {
                    let status = try await attempt(index, from: "198.51.100.\(trusted ? 7 : index % 200)")
                    XCTAssertEqual(status, .unauthorized, "attempt \(index)")
                }
                let over = try await attempt(999, from: "198.51.100.7")
                XCTAssertEqual(over, .tooManyRequests, trusted ? "the forwarded address is over its limit" : "the peer itself is over its limit")
                let elsewhere = try await attempt(1000, from: "203.0.113.50")
                XCTAssertEqual(elsewhere, trusted ? .unauthorized : .tooManyRequests,
                               trusted ? "another forwarded address has its own budget" : "an untrusted peer cannot pick an address to be counted under")
            }
        }
    }

    func testFormsFromThePublicURLsOriginAreThisSitesBehindAProxyThatRewritesTheHost() async throws {
        try await APITestHarness.withWeb(publicOrigin: "https://monitor.example.com") { seed, client in
            let (_, user) = try await Self.user(seed)
            let (csrf, headers) = try await Self.signInForm(client)
            for (origin, expected) in [("https://monitor.example.com", HTTPResponse.Status.seeOther), ("https://evil.example", .forbidden),
                                       ("http://monitor.example.com", .forbidden)] {
                var fromOrigin = headers
                fromOrigin[.origin] = origin
                let response = try await client.execute(uri: "/sign-in", method: .post, headers: fromOrigin,
                                                        body: Self.form(["csrf": csrf, "username": user.username, "password": Self.password]))
                XCTAssertEqual(response.status, expected, origin)
            }
        }
    }

    func testUserNamesAreUniqueWithoutCaseAndPasswordsHaveAFloor() async throws {
        try await APITestHarness.withWeb { seed, _ in
            let (_, user) = try await Self.user(seed)
            let tenantName = "web-" + UUID().uuidString.prefix(8).lowercased()
            _ = try await seed.tenant(tenantName)
            let admin = ServerAdministration(client: seed.database, logger: APITestHarness.logger)
            do {
                _ = try await admin.createUser(tenant: tenantName, username: user.username.uppercased(), role: .read,
                                               password: Self.password, hasher: PasswordHasher(cost: 4))
                XCTFail("a taken name in another case must be refused")
            } catch let error as StoreError {
                XCTAssertEqual(error.code, .alreadyExists)
                XCTAssertTrue(error.message.contains("already exists"), error.message)
            }
            do {
                _ = try await admin.createUser(tenant: tenantName, username: "short-pw", role: .read, password: "123456789",
                                               hasher: PasswordHasher(cost: 4))
                XCTFail("a 9-character password must be refused")
            } catch let error as StoreError {
                XCTAssertEqual(error.message, "the password is shorter than 10 characters")
            }
            let stored = try await seed.database.query("SELECT password_hash FROM users WHERE id = \(user.id)").collect()
            let hash = try XCTUnwrap(try stored.first?.decode(String.self))
            XCTAssertTrue(hash.hasPrefix("$2b$04$") || hash.hasPrefix("$2a$04$") || hash.hasPrefix("$2y$04$"), "a bcrypt hash, never the password: \(hash)")
            XCTAssertFalse(hash.contains(Self.password))
        }
    }
}
