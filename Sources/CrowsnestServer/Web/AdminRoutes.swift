import CrowsnestWire
import Foundation
import Hummingbird
import Logging
import PostgresNIO

/// `/admin` and its forms: admin users only (a read-only user is refused the page and every form, 403), each
/// form carrying the session's CSRF token.
struct AdminRoutes: Sendable {
    let templates: WebTemplates
    let settings: WebSettings
    let database: PostgresClient
    let secretKey: SecretKey?
    let logger: Logger

    func register(on pages: RouterGroup<APIRequestContext>) {
        pages.get("admin") { _, context in
            let session = try Self.requireAdmin(context)
            return self.templates.page("admin", try await AdminPage.build(session: session, database: self.database, logger: context.logger))
        }
        pages.post("admin/users") { request, context in
            try await self.form(request, context) { session, form in
                let role = APIKeyRole(rawValue: form["role"] ?? "") ?? .read
                let username = (form["username"] ?? "").trimmingCharacters(in: .whitespaces)
                let password = form["password"] ?? ""
                if let problem = UserStore.problem(username: username) ?? PasswordHasher.problem(password: password) {
                    throw APIError.badRequest(problem)
                }
                let hash = try await self.settings.passwords.hash(password)
                let user = try await UserStore(client: self.database, logger: context.logger)
                    .create(tenantID: session.user.tenantID, username: username, role: role, passwordHash: hash)
                return AdminPage.Notice(heading: "User \(user.username) created", lines: ["role: \(user.role == .admin ? "admin" : "read-only")"])
            }
        }
        pages.post("admin/api-keys") { request, context in
            try await self.form(request, context) { session, form in
                let role = APIKeyRole(rawValue: form["role"] ?? "") ?? .read
                let key = try await APIKeyStore(database: self.database, logger: context.logger).create(tenantID: session.user.tenantID, role: role)
                return AdminPage.Notice(heading: "API key created (\(role.rawValue))", lines: [key.secret], isSecret: true)
            }
        }
        pages.post("admin/api-keys/revoke") { request, context in
            try await self.form(request, context) { session, form in
                guard let id = UUID(uuidString: form["id"] ?? ""),
                      try await APIKeyStore(database: self.database, logger: context.logger).revoke(tenantID: session.user.tenantID, keyID: id) else {
                    throw APIError.notFound("This tenant has no such active API key.")
                }
                return AdminPage.Notice(heading: "API key revoked", lines: [id.uuidString.lowercased()])
            }
        }
        pages.post("admin/enrollment-tokens") { request, context in
            try await self.form(request, context) { session, _ in
                guard let pin = try await CertificateAuthorityStore.pin(client: self.database, logger: context.logger) else {
                    throw APIError.unavailable("The server has no certificate authority yet.")
                }
                let token = try await EnrollmentTokenStore(client: self.database, logger: context.logger).create(tenantID: session.user.tenantID)
                return AdminPage.Notice(heading: "Enrollment token created (valid 24 hours, one host)", lines: [
                    "crowsnest-agent enroll --server \(self.settings.agentAddress) --token \(token) --ca-pin \(pin)",
                    "crowsnest-agent run",
                ], isSecret: true)
            }
        }
        for kind in [DefinitionRoutes.services, DefinitionRoutes.maintenanceWindows, DefinitionRoutes.alertRules] {
            let routes = DefinitionRoutes(kind: kind, store: DefinitionStore(kind.table, client: database, logger: logger),
                                          queries: UptimeQueries(client: database, logger: logger))
            pages.post(RouterPath("admin/\(kind.path)")) { request, context in
                try await self.form(request, context) { session, form in
                    guard let text = form["definition"], let body = try? JSONValue.parse(Data(text.utf8)) else {
                        throw APIError.badRequest("The \(kind.noun) must be a JSON object such as \(kind.example).")
                    }
                    let (name, json): (String, JSONValue)
                    do {
                        (name, json) = try await routes.validated(body, tenantID: session.user.tenantID)
                    } catch let error as APIError {
                        throw APIError.badRequest("The \(kind.noun) was not added: \(error.message)")
                    }
                    _ = try await routes.store.create(tenantID: session.user.tenantID, name: name, definition: json)
                    return AdminPage.Notice(heading: "\(kind.noun.prefix(1).uppercased() + kind.noun.dropFirst()) \(name) added", lines: [])
                }
            }
            pages.post(RouterPath("admin/\(kind.path)/delete")) { request, context in
                try await self.form(request, context) { session, form in
                    let text = form["id"] ?? ""
                    guard text.hasPrefix(kind.idPrefix), let id = UUID(uuidString: String(text.dropFirst(kind.idPrefix.count))),
                          try await routes.store.delete(tenantID: session.user.tenantID, id: id) else {
                        throw APIError.notFound("This tenant has no such \(kind.noun).")
                    }
                    return AdminPage.Notice(heading: "\(kind.noun.prefix(1).uppercased() + kind.noun.dropFirst()) deleted", lines: [])
                }
            }
        }
        let channels = AlertChannelStore(client: database, logger: logger)
        pages.post("admin/alert-channels") { request, context in
            try await self.form(request, context) { session, form in
                guard let secretKey = self.secretKey else {
                    throw APIError.unavailable("This server has no secret key to seal alert channel secrets with; set secret_key_file.")
                }
                var body: [String: JSONValue] = ["name": .string(form["name"] ?? ""), "type": .string("webhook"), "url": .string(form["url"] ?? "")]
                if let secret = form["secret"], !secret.isEmpty { body["secret"] = .string(secret) }
                let parsed: (definition: AlertChannelDefinition, secretGenerated: Bool)
                do {
                    if let json = form["definition"], !json.isEmpty {
                        // Any channel type, written as the API takes it.
                        guard case .object(let given)? = try? JSONValue.parse(Data(json.utf8)) else {
                            throw APIError.badRequest("The alert channel was not added: its settings must be a JSON object such as \(AlertRoutes.example).")
                        }
                        body = given
                    }
                    parsed = try AlertChannelDefinition.parse(.object(body))
                    try await AlertRoutes.checkDestination(parsed.definition, tenantID: session.user.tenantID, client: self.database,
                                                           logger: context.logger)
                } catch let error as CheckValidationError {
                    throw APIError.badRequest("The alert channel was not added: \(error.description).")
                } catch let error as APIError where error.status == .badRequest {
                    throw APIError.badRequest("The alert channel was not added: \(error.message).")
                }
                let channel = try await channels.create(tenantID: session.user.tenantID, definition: parsed.definition, secretKey: secretKey)
                let id = AlertChannelID(uuid: channel.id).description
                return AdminPage.Notice(heading: "Alert channel \(channel.name) added (\(id))",
                                        lines: parsed.secretGenerated ? ["signing secret: " + parsed.definition.settings.secret] : [],
                                        isSecret: parsed.secretGenerated)
            }
        }
        pages.post("admin/alerts/acknowledge") { request, context in
            try await self.form(request, context) { session, form in
                let (ruleID, targetID) = try Self.ruleAndTarget(form)
                guard let ruleID, let targetID,
                      try await AlertStore(client: self.database, logger: context.logger)
                          .acknowledge(tenantID: session.user.tenantID, ruleID: ruleID, targetID: targetID, by: session.user.username) != nil else {
                    throw APIError.notFound("That alert does not fire now (it may have recovered).")
                }
                return AdminPage.Notice(heading: "Alert acknowledged: no reminders and no escalation until it recovers", lines: [])
            }
        }
        pages.post("admin/alert-silences") { request, context in
            try await self.form(request, context) { session, form in
                let (ruleID, targetID) = try Self.ruleAndTarget(form)
                guard let hours = Int(form["hours"] ?? ""), (1...(24 * AlertSilenceStore.maximumDays)).contains(hours) else {
                    throw APIError.badRequest("A silence lasts 1 hour to \(AlertSilenceStore.maximumDays) days.")
                }
                _ = try await AlertSilenceStore(client: self.database, logger: context.logger)
                    .create(tenantID: session.user.tenantID, ruleID: ruleID, targetID: targetID,
                            endsAt: Date().addingTimeInterval(Double(hours) * 3600), comment: "", createdBy: session.user.username)
                return AdminPage.Notice(heading: "Silenced for \(hours) h", lines: [])
            }
        }
        pages.post("admin/alert-silences/end") { request, context in
            try await self.form(request, context) { session, form in
                let text = form["id"] ?? ""
                guard text.hasPrefix("q-"), let id = UUID(uuidString: String(text.dropFirst(2))),
                      try await AlertSilenceStore(client: self.database, logger: context.logger).end(tenantID: session.user.tenantID, id: id) else {
                    throw APIError.notFound("This tenant has no such silence in force.")
                }
                return AdminPage.Notice(heading: "Silence ended", lines: [])
            }
        }
        pages.post("admin/alert-channels/delete") { request, context in
            try await self.form(request, context) { session, form in
                guard let id = AlertChannelID(form["id"] ?? ""), try await channels.delete(tenantID: session.user.tenantID, id: id.uuid) else {
                    throw APIError.notFound("This tenant has no such alert channel.")
                }
                return AdminPage.Notice(heading: "Alert channel deleted", lines: [])
            }
        }
        let checks = CheckStore(client: database, logger: logger)
        pages.post("admin/checks") { request, context in
            try await self.form(request, context) { session, form in
                guard let text = form["definition"], let body = try? JSONValue.parse(Data(text.utf8)) else {
                    throw APIError.badRequest("The check must be a JSON object such as \(Self.checkExample).")
                }
                let submission: CheckSubmission
                do {
                    submission = try CheckDefinition.parse(body)
                } catch let error as CheckValidationError {
                    throw APIError.badRequest("The check was not added: \(error.description).")
                }
                let check = try await checks.create(tenantID: session.user.tenantID, submission: submission)
                return AdminPage.Notice(heading: "Check \(check.name) added", lines: check.pushToken.map { [CheckJSON.pushPath($0)] } ?? [])
            }
        }
        for (action, paused) in [("pause", true), ("resume", false)] {
            pages.post(RouterPath("admin/checks/\(action)")) { request, context in
                try await self.form(request, context) { session, form in
                    let id = try Self.checkID(form)
                    guard let check = try await checks.setPaused(tenantID: session.user.tenantID, id: id, paused: paused) else {
                        throw APIError.notFound("This tenant has no such check.")
                    }
                    return AdminPage.Notice(heading: "Check \(check.name) \(paused ? "paused" : "resumed")", lines: [])
                }
            }
        }
        pages.post("admin/checks/publication") { request, context in
            try await self.form(request, context) { session, form in
                let id = try Self.checkID(form)
                let isPublic = form["public"] == "on", publicTarget = isPublic && form["public_target"] == "on"
                guard let check = try await checks.setPublication(tenantID: session.user.tenantID, id: id, isPublic: isPublic,
                                                                  publicTarget: publicTarget) else {
                    throw APIError.notFound("This tenant has no such check.")
                }
                let shown = !isPublic ? "is not on the status page" : (publicTarget ? "is on the status page with its target"
                                                                                   : "is on the status page, its target hidden")
                return AdminPage.Notice(heading: "Check \(check.name) \(shown)", lines: [])
            }
        }
        pages.post("admin/checks/delete") { request, context in
            try await self.form(request, context) { session, form in
                guard try await checks.delete(tenantID: session.user.tenantID, id: try Self.checkID(form)) else {
                    throw APIError.notFound("This tenant has no such check.")
                }
                return AdminPage.Notice(heading: "Check deleted", lines: [])
            }
        }
        pages.post("admin/status-page") { request, context in
            try await self.form(request, context) { session, form in
                let slug = (form["slug"] ?? "").trimmingCharacters(in: .whitespaces)
                let title = form["title"] ?? ""
                guard slug.isEmpty || StatusPageRoutes.isSlug(slug) else {
                    throw APIError.badRequest("The address must be 2 to 63 lowercase letters, digits and dashes, starting with a letter or digit.")
                }
                guard title.unicodeScalars.count <= 100, !title.unicodeScalars.contains(where: CheckTargetSyntax.isControl) else {
                    throw APIError.badRequest("The title must be at most 100 characters on one line.")
                }
                try await TenantStore(client: self.database, logger: context.logger)
                    .setStatusPage(tenantID: session.user.tenantID, slug: slug.isEmpty ? nil : slug, title: title)
                return AdminPage.Notice(heading: slug.isEmpty ? "Status page unpublished" : "Status page published", lines: slug.isEmpty ? [] : ["/status/\(slug)"])
            }
        }
    }

    static let checkExample = #"{"name":"home page","type":"http","target":"https://example.com/","interval_seconds":60}"#

    /// The form's `id` (`k-<uuid>`) as a check's UUID; 404 otherwise.
    static func checkID(_ form: WebForm) throws -> UUID {
        guard case .check(let id)? = TargetID(form["id"] ?? "") else { throw APIError.notFound("This tenant has no such check.") }
        return id
    }

    /// The session of an admin user, or 403 (a read-only user) or the sign-in page (nobody).
    static func requireAdmin(_ context: APIRequestContext) throws -> WebSession {
        let session = try context.requireSession()
        guard session.user.role == .admin else {
            throw APIError.forbidden("Administration is for admin users; you are signed in as a read-only user.")
        }
        return session
    }

    /// Runs an admin form: role and CSRF checked, then `action`; the admin page again with its notice, or with the
    /// refusal's reason (and its status) when the action was refused.
    /// The `rule` (a-<uuid>) and `target` fields of an alert form; a rule or target of another tenant simply matches nothing.
    private static func ruleAndTarget(_ form: WebForm) throws -> (UUID?, String?) {
        var ruleID: UUID?
        if let text = form["rule"], !text.isEmpty {
            guard text.hasPrefix("a-"), let id = UUID(uuidString: String(text.dropFirst(2))) else { throw APIError.badRequest("That is not an alert rule.") }
            ruleID = id
        }
        var targetID: String?
        if let text = form["target"], !text.isEmpty {
            guard let id = TargetID(text) else { throw APIError.badRequest("That is not a target.") }
            targetID = id.description
        }
        return (ruleID, targetID)
    }

    private func form(_ request: Request, _ context: APIRequestContext,
                      _ action: (WebSession, WebForm) async throws -> AdminPage.Notice) async throws -> Response {
        let session = try Self.requireAdmin(context)
        let form = try await WebForm.read(request, context: context)
        try form.check(csrf: session.csrfToken, request: request, publicOrigin: settings.publicOrigin)
        do {
            let notice = try await action(session, form)
            context.logger.info("administration form done", metadata: ["http.path": "\(request.uri.path)"])
            return templates.page("admin", try await AdminPage.build(session: session, database: database, logger: context.logger, notice: notice))
        } catch let error as APIError where error.status.code < 500 {
            return templates.page("admin", try await AdminPage.build(session: session, database: database, logger: context.logger,
                                                                    error: error.message), status: error.status)
        } catch let error as StoreError where error.code == .alreadyExists || error.code == .invalid {
            return templates.page("admin", try await AdminPage.build(session: session, database: database, logger: context.logger,
                                                                    error: error.message), status: .conflict)
        }
    }
}
