import CrowsnestProbes
import CrowsnestWire
import Foundation
import Hummingbird
import Logging
import PostgresNIO

/// `/api/v1/alert-channels` (create, list, read, delete; writes need an admin key),
/// `/api/v1/alert-notifications` (the delivery history, by rule or channel), `/api/v1/alerts` (what fires now,
/// and `POST /alerts/acknowledge`) and `/api/v1/alert-silences` (make, list, end). A channel's URL and secret are sealed
/// in the database and never shown again: the answer to its creation shows the secret once, when the server made
/// it. A URL the server's SSRF guard refuses (loopback, private, link-local, metadata, the server's own addresses,
/// unless the tenant allowed the network) is refused when the channel is made, and again at every delivery.
struct AlertRoutes: Sendable {
    let channels: AlertChannelStore
    let alerts: AlertStore
    let silences: AlertSilenceStore
    let secretKey: SecretKey?

    static let example = #"{"name":"ops webhook","type":"webhook","url":"https://hooks.example.com/crowsnest"}"#
    static let defaultHistoryLimit = 100
    static let maximumHistoryLimit = 1000

    func register(on group: RouterGroup<APIRequestContext>) {
        group.post("alert-channels") { request, context -> EditedResponse<AlertChannelJSON> in
            let caller = try context.requireAdmin()
            guard let secretKey = self.secretKey else {
                throw APIError.unavailable("this server has no secret key to seal alert channel secrets with; set secret_key_file")
            }
            let body = try await JSONBody.parse(request, context: context, example: Self.example, noun: "alert channel")
            let parsed: (definition: AlertChannelDefinition, secretGenerated: Bool)
            do {
                parsed = try AlertChannelDefinition.parse(body)
            } catch let error as CheckValidationError {
                throw APIError.badRequest(error.description)
            }
            try await Self.checkDestination(parsed.definition, tenantID: caller.tenantID, client: self.channels.client,
                                            logger: context.logger)
            let stored: StoredAlertChannel
            do {
                stored = try await self.channels.create(tenantID: caller.tenantID, definition: parsed.definition, secretKey: secretKey)
            } catch let error as StoreError where error.code == .alreadyExists || error.code == .invalid {
                throw APIError.conflict(error.message)
            }
            context.logger.info("alert channel created", metadata: ["tenant.id": "\(caller.tenantID)", "alert_channel.id": "\(stored.id)"])
            let id = AlertChannelID(uuid: stored.id).description
            return EditedResponse(status: .created, headers: [.location: "/api/v1/alert-channels/\(id)"],
                                  response: AlertChannelJSON(channel: stored, secret: parsed.secretGenerated ? parsed.definition.settings.secret : nil))
        }
        group.get("alert-channels") { _, context in
            let caller = try context.requireCaller()
            return AlertChannelListJSON(channels: try await self.channels.list(tenantID: caller.tenantID).map { AlertChannelJSON(channel: $0, secret: nil) })
        }
        group.get("alert-channels/:id") { _, context in
            let caller = try context.requireCaller()
            let id = try Self.channelID(context)
            guard let channel = try await self.channels.get(tenantID: caller.tenantID, id: id.uuid) else { throw Self.notFound(id) }
            return AlertChannelJSON(channel: channel, secret: nil)
        }
        group.delete("alert-channels/:id") { _, context -> Response in
            let caller = try context.requireAdmin()
            let id = try Self.channelID(context)
            guard try await self.channels.delete(tenantID: caller.tenantID, id: id.uuid) else { throw Self.notFound(id) }
            return Response(status: .noContent)
        }
        group.get("alert-notifications") { request, context in
            let caller = try context.requireCaller()
            let query = request.uri.queryParameters
            let limit = try QueryParameter.limit(query.get("limit"), range: 1...Self.maximumHistoryLimit, defaultValue: Self.defaultHistoryLimit)
            var ruleID: UUID?
            if let text = query.get("rule") {
                guard text.hasPrefix("a-"), let id = UUID(uuidString: String(text.dropFirst(2))) else {
                    throw APIError.badRequest("rule must be an alert rule id: a-<uuid> (got \"\(text.prefix(80))\")")
                }
                ruleID = id
            }
            var channelID: UUID?
            if let text = query.get("channel") {
                guard let id = AlertChannelID(text) else {
                    throw APIError.badRequest("channel must be an alert channel id: n-<uuid> (got \"\(text.prefix(80))\")")
                }
                channelID = id.uuid
            }
            let records = try await self.alerts.history(tenantID: caller.tenantID, ruleID: ruleID, channelID: channelID, limit: limit)
            return AlertNotificationListJSON(notifications: records)
        }
        group.get("alerts") { _, context in
            let caller = try context.requireCaller()
            let silences = try await self.silences.active(tenantID: caller.tenantID)
            return AlertListJSON(alerts: try await self.alerts.active(tenantID: caller.tenantID), silences: silences)
        }
        group.post("alerts/acknowledge") { request, context -> AlertListJSON in
            let caller = try context.requireAdmin()
            let body = try await JSONBody.parse(request, context: context, example: Self.acknowledgeExample, noun: "acknowledgement")
            let (ruleID, targetID) = try Self.ruleAndTarget(body, allowed: ["rule", "target"], required: true)
            guard let ruleID, let targetID,
                  let alert = try await self.alerts.acknowledge(tenantID: caller.tenantID, ruleID: ruleID, targetID: targetID,
                                                                by: "api key \(caller.keyID.uuidString.lowercased())") else {
                throw APIError.notFound("no alert of this rule fires for this target now (it may have recovered); GET /api/v1/alerts lists those that do")
            }
            context.logger.info("alert acknowledged", metadata: ["tenant.id": "\(caller.tenantID)", "alert_rule.id": "\(alert.ruleID)",
                                                                 "target.id": "\(alert.targetID)"])
            return AlertListJSON(alerts: [alert], silences: [])
        }
        group.post("alert-silences") { request, context -> EditedResponse<AlertSilenceJSON> in
            let caller = try context.requireAdmin()
            let body = try await JSONBody.parse(request, context: context, example: Self.silenceExample, noun: "silence")
            let (ruleID, targetID) = try Self.ruleAndTarget(body, allowed: ["rule", "target", "until", "comment"], required: false)
            guard case .object(let fields) = body, case .string(let untilText)? = fields["until"] else {
                throw APIError.badRequest("until is required: when the silence ends, as RFC 3339 (such as 2026-12-01T18:00:00Z)")
            }
            guard let until = RFC3339.date(from: untilText) else {
                throw APIError.badRequest("until must be an RFC 3339 time such as 2026-12-01T18:00:00Z (got \"\(untilText.prefix(80))\")")
            }
            guard until > Date(), until < Date().addingTimeInterval(Double(AlertSilenceStore.maximumDays) * 86_400) else {
                throw APIError.badRequest("until must be in the future and at most \(AlertSilenceStore.maximumDays) days ahead (got \(untilText.prefix(80)))")
            }
            var comment = ""
            if let value = fields["comment"], value != .null {
                guard case .string(let text) = value,
                      JSONFields.textProblem(text, maximumLength: AlertSilenceStore.maximumCommentLength, controlCharacters: false) == nil else {
                    throw APIError.badRequest("comment must be a string of at most \(AlertSilenceStore.maximumCommentLength) characters without control characters")
                }
                comment = text
            }
            if let ruleID, try await DefinitionStore(.alertRules, client: self.alerts.client, logger: context.logger)
                .get(tenantID: caller.tenantID, id: ruleID) == nil {
                throw APIError.badRequest("rule names no alert rule of this tenant (a-\(ruleID.uuidString.lowercased()))")
            }
            if let targetID, let id = TargetID(targetID),
               try await UptimeQueries(client: self.alerts.client, logger: context.logger).existing(tenantID: caller.tenantID, ids: [id])[id] == nil {
                throw APIError.badRequest("target names nothing this tenant has (\(targetID))")
            }
            let silence: AlertSilence
            do {
                silence = try await self.silences.create(tenantID: caller.tenantID, ruleID: ruleID, targetID: targetID, endsAt: until,
                                                         comment: comment, createdBy: "api key \(caller.keyID.uuidString.lowercased())")
            } catch let error as StoreError where error.code == .invalid {
                throw APIError.conflict(error.message)
            }
            context.logger.info("alert silence created", metadata: ["tenant.id": "\(caller.tenantID)", "silence.id": "\(silence.id)"])
            let id = "q-" + silence.id.uuidString.lowercased()
            return EditedResponse(status: .created, headers: [.location: "/api/v1/alert-silences/\(id)"], response: AlertSilenceJSON(silence: silence))
        }
        group.get("alert-silences") { _, context in
            let caller = try context.requireCaller()
            return AlertSilenceListJSON(silences: try await self.silences.list(tenantID: caller.tenantID))
        }
        group.delete("alert-silences/:id") { _, context -> Response in
            let caller = try context.requireAdmin()
            let raw = context.parameters.get("id") ?? ""
            guard raw.hasPrefix("q-"), raw.utf8.count == 38, let id = UUID(uuidString: String(raw.dropFirst(2))),
                  try await self.silences.end(tenantID: caller.tenantID, id: id) else {
                throw APIError.notFound("no silence in force with id \(raw.prefix(80)): GET /api/v1/alert-silences lists them")
            }
            return Response(status: .noContent)
        }
    }

    static let acknowledgeExample = #"{"rule":"a-0c0ffee0-0000-4000-8000-000000000003","target":"h-0c0ffee0-0000-4000-8000-000000000001"}"#
    static let silenceExample = #"{"rule":"a-0c0ffee0-0000-4000-8000-000000000003","until":"2026-12-01T18:00:00Z","comment":"migrating the database"}"#

    /// The `rule` (a-<uuid>) and `target` of a body, checked for their form; fields other than `allowed` refused.
    static func ruleAndTarget(_ body: JSONValue, allowed: [String], required: Bool) throws -> (UUID?, String?) {
        let fields: JSONFields
        do {
            fields = try JSONFields(body, path: "", what: "the request body")
            try fields.refuseUnknown(allowed: allowed, known: "it takes")
        } catch let error as CheckValidationError {
            throw APIError.badRequest(error.description)
        }
        var ruleID: UUID?
        if let value = fields.value("rule") {
            guard case .string(let text) = value, text.hasPrefix("a-"), text.utf8.count == 38, let id = UUID(uuidString: String(text.dropFirst(2))) else {
                throw APIError.badRequest("rule must be an alert rule id: a-<uuid>")
            }
            ruleID = id
        } else if required {
            throw APIError.badRequest("rule is required: the alert rule's id (a-<uuid>)")
        }
        var targetID: String?
        if let value = fields.value("target") {
            guard case .string(let text) = value, let id = TargetID(text) else {
                throw APIError.badRequest("target must be a target id: h-<agent uuid>, c-<agent uuid>-<container name> or k-<check uuid>")
            }
            targetID = id.description
        } else if required {
            throw APIError.badRequest("target is required: the id of the target the alert is about")
        }
        return (ruleID, targetID)
    }

    /// 400 naming `url` (or `smtp_host`) when the server's SSRF guard refuses where the channel leads.
    static func checkDestination(_ channel: AlertChannelDefinition, tenantID: UUID, client: PostgresClient, logger: Logger) async throws {
        let field: String, host: String, port: Int
        if let smtp = channel.settings.smtp {
            (field, host, port) = ("smtp_host", smtp.host, smtp.port)
        } else {
            guard let components = URLComponents(string: channel.settings.url), let urlHost = components.host else {
                throw APIError.badRequest("url must be an http(s) URL with a host")
            }
            field = "url"
            host = urlHost.hasPrefix("[") && urlHost.hasSuffix("]") ? String(urlHost.dropFirst().dropLast()) : urlHost
            port = components.port ?? (components.scheme == "https" ? 443 : 80)
        }
        let allowed = try await TenantStore(client: client, logger: logger).allowedNetworks(tenantID: tenantID)
        let guarded = GuardedResolver(addressGuard: AddressGuard(runner: .server, allowedNetworks: allowed,
                                                                 ownAddresses: ServerCheckRuns.localAddresses()))
        do {
            _ = try await guarded.resolve(host: host, port: port)
        } catch let failure as ProbeFailure {
            throw APIError.badRequest("\(field) is refused: \(failure.reason)")
        }
    }

    static func channelID(_ context: APIRequestContext) throws -> AlertChannelID {
        let raw = context.parameters.get("id") ?? ""
        guard let id = AlertChannelID(raw.removingPercentEncoding ?? raw) else {
            throw APIError.notFound("no alert channel with id \(raw.prefix(80)): alert channel ids look like n-0c0ffee0-0000-4000-8000-000000000002")
        }
        return id
    }

    static func notFound(_ id: AlertChannelID) -> APIError {
        APIError.notFound("no alert channel with id \(id)")
    }
}

/// One channel as the API shows it: never its URL's path or its secret, except a generated secret once.
struct AlertChannelJSON: ResponseEncodable, Sendable {
    let channel: StoredAlertChannel
    let secret: String?

    var object: JSONValue {
        var object: [String: JSONValue] = [
            "id": .string(AlertChannelID(uuid: channel.id).description), "name": .string(channel.name), "type": .string(channel.type),
            "destination": .string(channel.destination), "created_at": .string(RFC3339.string(from: channel.createdAt)),
        ]
        if let secret { object["secret"] = .string(secret) }
        return .object(object)
    }

    func encode(to encoder: any Encoder) throws { try object.encode(to: encoder) }
}

struct AlertChannelListJSON: ResponseEncodable, Sendable {
    let channels: [AlertChannelJSON]

    func encode(to encoder: any Encoder) throws {
        try JSONValue.object(["channels": .array(channels.map(\.object))]).encode(to: encoder)
    }
}

struct AlertNotificationListJSON: ResponseEncodable, Sendable {
    let notifications: [AlertNotificationRecord]

    func encode(to encoder: any Encoder) throws {
        try JSONValue.object(["notifications": .array(notifications.map { record in
            let state: String = record.deliveredAt != nil ? "delivered" : (record.failedAt != nil ? "failed" : "pending")
            return .object([
                "id": .string(record.id.uuidString.lowercased()),
                "rule_id": .string("a-" + record.ruleID.uuidString.lowercased()),
                "channel_id": .string(AlertChannelID(uuid: record.channelID).description),
                "target_id": .string(record.targetID), "kind": .string(record.kind), "delivery": .string(state),
                "attempts": .integer(Int64(record.attempts)),
                "created_at": .string(RFC3339.string(from: record.createdAt)),
                "delivered_at": record.deliveredAt.map { .string(RFC3339.string(from: $0)) } ?? .null,
                "failed_at": record.failedAt.map { .string(RFC3339.string(from: $0)) } ?? .null,
                "last_error": .string(record.lastError), "payload": record.payload,
            ])
        })]).encode(to: encoder)
    }
}

/// Alerts that fire now, and the silences in force.
struct AlertListJSON: ResponseEncodable, Sendable {
    let alerts: [AlertStore.ActiveAlert]
    let silences: [AlertSilence]

    func encode(to encoder: any Encoder) throws {
        func time(_ date: Date?) -> JSONValue { date.map { .string(RFC3339.string(from: $0)) } ?? .null }
        try JSONValue.object(["alerts": .array(alerts.map { alert in
            .object([
                "rule_id": .string("a-" + alert.ruleID.uuidString.lowercased()), "target_id": .string(alert.targetID),
                "status": .string(alert.status), "since": time(alert.activeSince), "announced_at": time(alert.announcedAt),
                "silenced": .bool(silences.contains { $0.covers(ruleID: alert.ruleID, targetID: alert.targetID) }),
                "acknowledged_at": time(alert.acknowledgedAt), "acknowledged_by": alert.acknowledgedBy.map(JSONValue.string) ?? .null,
                "escalated_at": time(alert.escalatedAt),
            ])
        })]).encode(to: encoder)
    }
}

struct AlertSilenceJSON: ResponseEncodable, Sendable {
    let silence: AlertSilence

    var object: JSONValue {
        .object([
            "id": .string("q-" + silence.id.uuidString.lowercased()),
            "rule": silence.ruleID.map { .string("a-" + $0.uuidString.lowercased()) } ?? .null,
            "target": silence.targetID.map(JSONValue.string) ?? .null,
            "until": .string(RFC3339.string(from: silence.endsAt)), "active": .bool(silence.endsAt > Date()),
            "comment": .string(silence.comment), "created_by": .string(silence.createdBy),
            "created_at": .string(RFC3339.string(from: silence.createdAt)),
        ])
    }

    func encode(to encoder: any Encoder) throws { try object.encode(to: encoder) }
}

struct AlertSilenceListJSON: ResponseEncodable, Sendable {
    let silences: [AlertSilence]

    func encode(to encoder: any Encoder) throws {
        try JSONValue.object(["silences": .array(silences.map { AlertSilenceJSON(silence: $0).object })]).encode(to: encoder)
    }
}
