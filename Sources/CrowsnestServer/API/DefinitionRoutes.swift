import CrowsnestWire
import Foundation
import Hummingbird

/// `/api/v1/services`, `/api/v1/maintenance-windows` and `/api/v1/alert-rules`: create, list, read, replace and
/// delete. Writes need an admin key; `{id}` is `s-<uuid>`, `m-<uuid>` or `a-<uuid>`, and another tenant's answers
/// 404. Target ids a definition names must exist in the tenant (services and rules may also pick targets by
/// label), and the service and alert channel ids it names too.
struct DefinitionRoutes: Sendable {
    /// What differs between the two resources.
    struct Kind: Sendable {
        var path: String
        var idPrefix: String
        var table: DefinitionStore.Table
        /// "service", "maintenance window".
        var noun: String
        var example: String
        /// Validates a body: the name, the canonical definition, and the target, service and channel ids it names.
        var parse: @Sendable (JSONValue) throws -> Parsed
    }

    /// A validated body and the ids it names, which must exist in the tenant.
    struct Parsed: Sendable {
        var name: String
        var json: JSONValue
        var targets: [String]
        var services: [String]
        /// Channel ids, each with the field that named it (`channels[0]`, `escalation.channels[1]`).
        var channels: [(field: String, id: String)] = []
    }

    static let services = Kind(
        path: "services", idPrefix: "s-", table: .services, noun: "service",
        example: #"{"name":"shop","labels":["com.docker.compose.project=shop"],"objective_percent":99.9}"#
    ) { body in
        let service = try ServiceDefinition.parse(body)
        return Parsed(name: service.name, json: service.json, targets: service.targets, services: [])
    }

    static let maintenanceWindows = Kind(
        path: "maintenance-windows", idPrefix: "m-", table: .maintenanceWindows, noun: "maintenance window",
        example: #"{"name":"patch night","recurrence":{"days":["sun"],"start":"02:00","duration_minutes":60}}"#
    ) { body in
        let window = try MaintenanceWindowDefinition.parse(body)
        return Parsed(name: window.name, json: window.json, targets: window.targets, services: window.services)
    }

    static let alertRules = Kind(
        path: "alert-rules", idPrefix: "a-", table: .alertRules, noun: "alert rule",
        example: #"{"name":"api down","targets":["h-0c0ffee0-0000-4000-8000-000000000001"],"for_seconds":60,"channels":["n-0c0ffee0-0000-4000-8000-000000000002"]}"#
    ) { body in
        let rule = try AlertRuleDefinition.parse(body)
        return Parsed(name: rule.name, json: rule.json, targets: rule.targetIDs, services: rule.serviceIDs,
                      channels: rule.channels.enumerated().map { ("channels[\($0.offset)]", $0.element) }
                          + (rule.escalation?.channels ?? []).enumerated().map { ("escalation.channels[\($0.offset)]", $0.element) })
    }

    let kind: Kind
    let store: DefinitionStore
    let queries: UptimeQueries

    func register(on group: RouterGroup<APIRequestContext>) {
        group.post(RouterPath(kind.path)) { request, context -> EditedResponse<DefinitionJSON> in
            let caller = try context.requireAdmin()
            let (name, json) = try await self.validated(request, context: context, tenantID: caller.tenantID)
            let stored = try await Self.mapStoreErrors { try await self.store.create(tenantID: caller.tenantID, name: name, definition: json) }
            let body = DefinitionJSON(stored: stored, idPrefix: self.kind.idPrefix)
            return EditedResponse(status: .created, headers: [.location: "/api/v1/\(self.kind.path)/\(body.id)"], response: body)
        }
        group.get(RouterPath(kind.path)) { _, context in
            let caller = try context.requireCaller()
            let list = try await self.store.list(tenantID: caller.tenantID)
            return DefinitionListJSON(key: self.kind.path.replacingOccurrences(of: "-", with: "_"),
                                      items: list.map { DefinitionJSON(stored: $0, idPrefix: self.kind.idPrefix) })
        }
        group.get(RouterPath("\(kind.path)/:id")) { _, context in
            let caller = try context.requireCaller()
            let id = try self.id(context)
            guard let stored = try await self.store.get(tenantID: caller.tenantID, id: id) else { throw self.notFound(id) }
            return DefinitionJSON(stored: stored, idPrefix: self.kind.idPrefix)
        }
        group.put(RouterPath("\(kind.path)/:id")) { request, context in
            let caller = try context.requireAdmin()
            let id = try self.id(context)
            let (name, json) = try await self.validated(request, context: context, tenantID: caller.tenantID)
            let updated = try await Self.mapStoreErrors {
                try await self.store.update(tenantID: caller.tenantID, id: id, name: name, definition: json)
            }
            guard let stored = updated else { throw self.notFound(id) }
            return DefinitionJSON(stored: stored, idPrefix: self.kind.idPrefix)
        }
        group.delete(RouterPath("\(kind.path)/:id")) { _, context -> Response in
            let caller = try context.requireAdmin()
            let id = try self.id(context)
            guard try await self.store.delete(tenantID: caller.tenantID, id: id) else { throw self.notFound(id) }
            return Response(status: .noContent)
        }
    }

    /// The body parsed and validated, and the ids it names checked against the tenant.
    private func validated(_ request: Request, context: APIRequestContext, tenantID: UUID) async throws -> (String, JSONValue) {
        try await validated(try await JSONBody.parse(request, context: context, example: kind.example, noun: kind.noun), tenantID: tenantID)
    }

    /// A definition validated, and the ids it names checked against the tenant (the web's forms use it too).
    func validated(_ body: JSONValue, tenantID: UUID) async throws -> (String, JSONValue) {
        let parsed: Parsed
        do {
            parsed = try kind.parse(body)
        } catch let error as CheckValidationError {
            throw APIError.badRequest(error.description)
        }
        let ids = parsed.targets.compactMap(TargetID.init)
        let found = try await queries.existing(tenantID: tenantID, ids: ids)
        if let index = ids.firstIndex(where: { found[$0] == nil }) {
            throw APIError.badRequest("targets[\(index)] names nothing this tenant has (\(ids[index]))")
        }
        let services = DefinitionStore(.services, client: store.client, logger: store.logger)
        for (index, text) in parsed.services.enumerated() {
            guard let id = ServiceID(text), try await services.get(tenantID: tenantID, id: id.uuid) != nil else {
                let field = kind.table == .alertRules ? "service" : "services[\(index)]"
                throw APIError.badRequest("\(field) names no service of this tenant (\(text))")
            }
        }
        let channelIDs = parsed.channels.compactMap { named in AlertChannelID(named.id).map { (named.field, $0) } }
        let channels = try await AlertChannelStore(client: store.client, logger: store.logger)
            .existing(tenantID: tenantID, ids: channelIDs.map(\.1.uuid))
        if let (field, id) = channelIDs.first(where: { !channels.contains($0.1.uuid) }) {
            throw APIError.badRequest("\(field) names no alert channel of this tenant (\(id))")
        }
        return (parsed.name, parsed.json)
    }

    private func id(_ context: APIRequestContext) throws -> UUID {
        let raw = context.parameters.get("id") ?? ""
        let text = raw.removingPercentEncoding ?? raw
        guard text.hasPrefix(kind.idPrefix), text.utf8.count == kind.idPrefix.utf8.count + 36,
              let id = UUID(uuidString: String(text.dropFirst(kind.idPrefix.count)))
        else {
            throw APIError.notFound("no \(kind.noun) with id \(text): \(kind.noun) ids look like \(kind.idPrefix)0c0ffee0-0000-4000-8000-000000000001")
        }
        return id
    }

    private func notFound(_ id: UUID) -> APIError {
        APIError.notFound("no \(kind.noun) with id \(kind.idPrefix)\(id.uuidString.lowercased())")
    }

    private static func mapStoreErrors<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as StoreError where error.code == .alreadyExists {
            throw APIError.conflict(error.message)
        } catch let error as StoreError where error.code == .invalid {
            throw APIError.conflict(error.message)
        }
    }
}

/// A request body read as JSON, with one clear error for an empty or malformed one.
enum JSONBody {
    static func parse(_ request: Request, context: APIRequestContext, example: String, noun: String) async throws -> JSONValue {
        let buffer = try await request.body.collect(upTo: context.maxUploadSize)
        guard buffer.readableBytes > 0 else {
            throw APIError.badRequest("the request body is empty: send the \(noun) as a JSON object such as \(example)")
        }
        let data = Data(buffer: buffer)
        do {
            return try JSONValue.parse(data)
        } catch {
            throw APIError.badRequest("the request body is not valid JSON: \(CheckRoutes.jsonSyntaxProblem(data))")
        }
    }
}

/// A stored service or window: its definition's fields plus `id`, `created_at`, `updated_at`.
struct DefinitionJSON: ResponseEncodable, Sendable {
    let id: String
    let object: [String: JSONValue]

    init(stored: StoredDefinition, idPrefix: String) {
        id = idPrefix + stored.id.uuidString.lowercased()
        var object: [String: JSONValue] = [:]
        if case .object(let fields) = stored.definition { object = fields }
        object["id"] = .string(id)
        object["created_at"] = .string(RFC3339.string(from: stored.createdAt))
        object["updated_at"] = .string(RFC3339.string(from: stored.updatedAt))
        self.object = object
    }

    func encode(to encoder: any Encoder) throws {
        try JSONValue.object(object).encode(to: encoder)
    }
}

/// `{"services":[…]}` or `{"maintenance_windows":[…]}`.
struct DefinitionListJSON: ResponseEncodable, Sendable {
    let key: String
    let items: [DefinitionJSON]

    struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        try container.encode(items.map { JSONValue.object($0.object) }, forKey: Key(stringValue: key))
    }
}
