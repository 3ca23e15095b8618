import Foundation
import Hummingbird
import Logging
import PostgresNIO

/// How the web pages behave where the deployment decides.
public struct WebSettings: Sendable {
    /// Cookies carry `Secure` (set when the public URL is HTTPS).
    public var secureCookies: Bool
    /// `scheme://host[:port]` of the public URL: forms posted from there are this site's too.
    public var publicOrigin: String?
    /// `host:port` agents dial, for the join command shown with a new enrollment token.
    public var agentAddress: String
    /// Bcrypt for passwords (tests lower the cost).
    public var passwords: PasswordHasher

    public init(secureCookies: Bool = false, publicOrigin: String? = nil, agentAddress: String = "SERVER:7443",
                passwords: PasswordHasher = PasswordHasher()) {
        self.secureCookies = secureCookies
        self.publicOrigin = publicOrigin
        self.agentAddress = agentAddress
        self.passwords = passwords
    }
}

/// The server-rendered pages: sign-in and sign-out, the overview, and the static files they use. Every page goes
/// through `WebSecurityHeadersMiddleware`, `WebErrorMiddleware` and `WebSessionMiddleware`.
struct WebRoutes: Sendable {
    static let signInCookie = "crowsnest_signin"

    let templates: WebTemplates
    let settings: WebSettings
    let database: PostgresClient
    /// Seals alert channels made on the admin page; nil refuses them.
    let secretKey: SecretKey?
    let logger: Logger

    func register(on router: Router<APIRequestContext>) {
        let sessions = WebSessionStore(client: database, logger: logger)
        let users = UserStore(client: database, logger: logger)
        let limiter = SignInLimiter(leases: LeaseStore(client: database, logger: logger))
        let pages = router.group()
            .add(middleware: WebSecurityHeadersMiddleware())
            .add(middleware: WebErrorMiddleware(templates: templates))
            .add(middleware: WebSessionMiddleware(sessions: sessions))

        pages.get("static/{file}") { _, context in
            let name = try context.parameters.require("file")
            guard let file = self.templates.staticBodies[name] else { throw APIError.notFound("no static file \(name)") }
            return Response(status: .ok, headers: [.contentType: file.contentType, .cacheControl: "public, max-age=300"],
                            body: .init(byteBuffer: ByteBuffer(string: file.body)))
        }

        pages.get("sign-in") { _, context in
            if context.webSession != nil { throw WebRedirect(location: "/") }
            return self.signInPage(error: nil, username: "", status: .ok)
        }

        pages.post("sign-in") { request, context in
            let form = try await WebForm.read(request, context: context)
            guard let expected = request.cookies[Self.signInCookie]?.value else {
                throw APIError.forbidden("the sign-in form has expired or cookies are off; reload the page and try again")
            }
            try form.check(csrf: expected, request: request, publicOrigin: self.settings.publicOrigin)
            let username = (form["username"] ?? "").trimmingCharacters(in: .whitespaces)
            let password = form["password"] ?? ""
            if let retryAfter = try await limiter.admit(username: username, address: context.remoteAddress) {
                context.logger.notice("sign-in refused: too many attempts", metadata: ["client.address": "\(context.remoteAddress ?? "-")"])
                var response = self.signInPage(error: "Too many sign-in attempts; try again in \(WebFormat.duration(seconds: Double(retryAfter))).",
                                               username: username, status: .tooManyRequests)
                response.headers[.retryAfter] = "\(retryAfter)"
                return response
            }
            let found = try await users.credentials(username: username)
            guard try await self.settings.passwords.verify(password, hash: found?.passwordHash), let user = found?.user else {
                context.logger.notice("sign-in failed", metadata: ["client.address": "\(context.remoteAddress ?? "-")"])
                return self.signInPage(error: "Wrong user name or password.", username: username, status: .unauthorized)
            }
            // A fresh session at every sign-in (an old cookie never becomes a signed-in one).
            if let old = request.cookies[WebSessionMiddleware.cookieName]?.value { try await sessions.delete(token: old) }
            let (token, _) = try await sessions.create(for: user)
            context.logger.info("signed in", metadata: ["tenant.id": "\(user.tenantID)", "user.id": "\(user.id)"])
            var response = WebErrorMiddleware.redirect(to: "/")
            response.setCookie(self.cookie(WebSessionMiddleware.cookieName, token, maxAge: Int(WebSessionStore.lifetime.components.seconds)))
            response.setCookie(self.cookie(Self.signInCookie, "", maxAge: 0, path: "/sign-in"))
            return response
        }

        pages.post("sign-out") { request, context in
            guard let session = context.webSession, let token = request.cookies[WebSessionMiddleware.cookieName]?.value else {
                throw WebRedirect.signIn
            }
            let form = try await WebForm.read(request, context: context)
            try form.check(csrf: session.csrfToken, request: request, publicOrigin: self.settings.publicOrigin)
            try await sessions.delete(token: token)
            var response = WebErrorMiddleware.redirect(to: "/sign-in")
            response.setCookie(self.cookie(WebSessionMiddleware.cookieName, "", maxAge: 0))
            return response
        }

        pages.get("hosts/{id}") { request, context in
            let session = try context.requireSession()
            let range = try PageRange(request.uri.queryParameters.get("range"))
            let text = try context.parameters.require("id")
            guard case .host(let agentID)? = TargetID(text.removingPercentEncoding ?? text),
                  let page = try await HostPage.build(session: session, agentID: agentID, range: range, database: self.database,
                                                      logger: context.logger, now: Date()) else {
                throw APIError.notFound("There is no host \(text.prefix(80)) in this tenant.")
            }
            return self.templates.page("host", page)
        }

        pages.get("containers/{id}") { request, context in
            let session = try context.requireSession()
            let range = try PageRange(request.uri.queryParameters.get("range"))
            let text = try context.parameters.require("id")
            guard case .container(let agentID, let name)? = TargetID(text.removingPercentEncoding ?? text),
                  let page = try await ContainerPage.build(session: session, agentID: agentID, name: name, range: range,
                                                           database: self.database, logger: context.logger, now: Date()) else {
                throw APIError.notFound("There is no such container in this tenant.")
            }
            return self.templates.page("container", page)
        }

        // Public: no sign-in, only what the tenant marked public, cached for a short while.
        let cache = PublicPageCache()
        pages.get("status/{slug}") { _, context in
            let slug = try context.parameters.require("slug")
            guard StatusPageRoutes.isSlug(slug) else { throw APIError.notFound("There is no status page here.") }
            let html = try await cache.value("status:" + slug) {
                guard let page = try await StatusPage.build(slug: slug, database: self.database, logger: self.logger, now: Date()) else {
                    return nil
                }
                return self.templates.library.render(page, withTemplate: "status")
            }
            guard let html else { throw APIError.notFound("There is no status page here.") }
            return Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "public, max-age=30"],
                            body: .init(byteBuffer: ByteBuffer(string: html)))
        }
        pages.get("badge/{subject}/{file}") { _, context in
            let file = try context.parameters.require("file")
            guard let subject = Badge.Subject(try context.parameters.require("subject")), Badge.files.contains(file) else {
                throw APIError.notFound("There is no such badge.")
            }
            let svg = try await cache.value("badge:\(subject):\(file)") {
                try await Badge.make(subject, file: file, database: self.database, logger: self.logger, now: Date())
            }
            guard let svg else { throw APIError.notFound("There is no such badge.") }
            return Response(status: .ok, headers: [.contentType: "image/svg+xml", .cacheControl: "public, max-age=30"],
                            body: .init(byteBuffer: ByteBuffer(string: svg)))
        }

        AdminRoutes(templates: templates, settings: settings, database: database, secretKey: secretKey, logger: logger).register(on: pages)

        pages.get("incidents") { _, context in
            let session = try context.requireSession()
            return self.templates.page("incidents", try await IncidentsPage.build(session: session, database: self.database,
                                                                                  logger: context.logger, now: Date()))
        }
        pages.get("checks") { _, context in
            let session = try context.requireSession()
            return self.templates.page("checks", try await ChecksPage.build(session: session, database: self.database,
                                                                            logger: context.logger, now: Date()))
        }
        pages.get("checks/{id}") { request, context in
            let session = try context.requireSession()
            let range = try PageRange(request.uri.queryParameters.get("range"))
            let text = try context.parameters.require("id")
            guard case .check(let checkID)? = TargetID(text),
                  let page = try await CheckPage.build(session: session, checkID: checkID, range: range, database: self.database,
                                                       logger: context.logger, now: Date()) else {
                throw APIError.notFound("There is no such check in this tenant.")
            }
            return self.templates.page("check", page)
        }
        pages.get("services") { _, context in
            let session = try context.requireSession()
            return self.templates.page("services", try await ServicesPage.build(session: session, database: self.database,
                                                                               logger: context.logger, now: Date()))
        }
        pages.get("services/{id}") { request, context in
            let session = try context.requireSession()
            let range = try PageRange(request.uri.queryParameters.get("range"))
            guard let id = ServiceID(try context.parameters.require("id")),
                  let page = try await ServicePage.build(session: session, id: id, range: range, database: self.database,
                                                         logger: context.logger, now: Date()) else {
                throw APIError.notFound("There is no such service in this tenant.")
            }
            return self.templates.page("service", page)
        }
        pages.get("incidents/{target}/{start}") { _, context in
            let session = try context.requireSession()
            let text = try context.parameters.require("target")
            guard let target = TargetID(text.removingPercentEncoding ?? text),
                  let start = Int64(try context.parameters.require("start")),
                  let page = try await IncidentPage.build(session: session, target: target, startMicros: start, database: self.database,
                                                          logger: context.logger, now: Date()) else {
                throw APIError.notFound("There is no such incident in this tenant.")
            }
            return self.templates.page("incident", page)
        }
        pages.get("sla") { request, context in
            let session = try context.requireSession()
            let now = Date()
            let (period, _) = try SLAReportRoutes.parameters(period: request.uri.queryParameters.get("period"), format: nil, now: now)
            return self.templates.page("sla", try await SLAPage.build(session: session, period: period, database: self.database,
                                                                      logger: context.logger, now: now))
        }
        for format in [SLAReportRoutes.Format.csv, .html] {
            pages.get(RouterPath("sla/report.\(format.rawValue)")) { request, context in
                let session = try context.requireSession()
                let now = Date()
                let (period, _) = try SLAReportRoutes.parameters(period: request.uri.queryParameters.get("period"), format: nil, now: now)
                let (tenant, services) = try await UptimeReports(client: self.database, logger: context.logger)
                    .report(tenantID: session.user.tenantID, period: period, now: now)
                let report = SLAReportDocument(tenant: tenant, period: period, generatedAt: now, services: services)
                return format == .csv ? report.csvResponse : report.htmlResponse
            }
        }

        pages.get("/") { _, context in
            let session = try context.requireSession()
            let page = try await OverviewPage.build(session: session, database: self.database, logger: context.logger, now: Date())
            return self.templates.page("overview", page)
        }
    }

    /// The sign-in form with a fresh double-submit CSRF token in its cookie and its hidden field.
    private func signInPage(error: String?, username: String, status: HTTPResponse.Status) -> Response {
        let csrf = RandomSecret.base64URL()
        var response = templates.page("sign-in", SignInView(error: error, username: username, csrf: csrf), status: status)
        response.setCookie(cookie(Self.signInCookie, csrf, maxAge: 3600, path: "/sign-in"))
        return response
    }

    private func cookie(_ name: String, _ value: String, maxAge: Int, path: String = "/") -> Cookie {
        Cookie(name: name, value: value, maxAge: maxAge, path: path, secure: settings.secureCookies, httpOnly: true, sameSite: .strict)
    }
}

struct SignInView {
    let error: String?
    let username: String
    let csrf: String
}
