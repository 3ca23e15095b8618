import CrowsnestProbes
import CrowsnestWire
import Foundation
import Hummingbird
import Logging
import PostgresNIO

/// `/api/v1/alert-channels` (create, list, read, delete; writes need an admin key) and
/// `/api/v1/alert-notifications` (the delivery history, by rule or channel). A channel's URL and secret are sealed
/// in the database and never shown again: the answer to its creation shows the secret once, when the server made
/// it. A URL the server's SSRF guard refuses (loopback, private, link-local, metadata, the server's own addresses,
/// unless the tenant allowed the network) is refused when the channel is made, and again at every delivery.
struct AlertRoutes: Sendable {
    let channels: AlertChannelStore
    let alerts: AlertStore
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
            try await Self.checkDestination(parsed.definition.url, tenantID: caller.tenantID, client: self.channels.client,
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
                                  response: AlertChannelJSON(channel: stored, secret: parsed.secretGenerated ? parsed.definition.secret : nil))
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
    }

    /// 400 naming `url` when the server's SSRF guard refuses where it leads.
    static func checkDestination(_ url: String, tenantID: UUID, client: PostgresClient, logger: Logger) async throws {
        guard let components = URLComponents(string: url), let host = components.host else {
            throw APIError.badRequest("url must be an http(s) URL with a host")
        }
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        let allowed = try await TenantStore(client: client, logger: logger).allowedNetworks(tenantID: tenantID)
        let guarded = GuardedResolver(addressGuard: AddressGuard(runner: .server, allowedNetworks: allowed,
                                                                 ownAddresses: ServerCheckRuns.localAddresses()))
        do {
            _ = try await guarded.resolve(host: bare, port: components.port ?? (components.scheme == "https" ? 443 : 80))
        } catch let failure as ProbeFailure {
            throw APIError.badRequest("url is refused: \(failure.reason)")
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
