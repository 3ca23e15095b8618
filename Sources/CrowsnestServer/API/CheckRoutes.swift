import CrowsnestWire
import Foundation
import Hummingbird

/// `/api/v1/checks`: create, list, read, replace, delete, pause and resume the tenant's checks, and list a check's
/// results. Writes need an admin key. `{id}` is the check's target id (`k-<uuid>`); anything else, and another
/// tenant's check, answers 404.
struct CheckRoutes: Sendable {
    let checks: CheckStore

    /// Default `limit` of the results route.
    static let defaultResultLimit = 100

    func register(on group: RouterGroup<APIRequestContext>) {
        group.post("checks") { request, context -> EditedResponse<CheckJSON> in
            let caller = try context.requireAdmin()
            let submission = try await Self.submission(of: request, context: context)
            let check = try await Self.mapConflict { try await self.checks.create(tenantID: caller.tenantID, submission: submission) }
            let id = TargetID.check(checkID: check.id).description
            return EditedResponse(status: .created, headers: [.location: "/api/v1/checks/\(id)"],
                                  response: CheckJSON(check: check, role: caller.role))
        }
        group.get("checks") { _, context in
            let caller = try context.requireCaller()
            return CheckListJSON(checks: try await self.checks.list(tenantID: caller.tenantID), role: caller.role)
        }
        group.get("checks/:id") { _, context in
            let caller = try context.requireCaller()
            let id = try Self.checkID(context)
            guard let check = try await self.checks.get(tenantID: caller.tenantID, id: id) else { throw Self.notFound(id) }
            return CheckJSON(check: check, role: caller.role)
        }
        group.put("checks/:id") { request, context in
            let caller = try context.requireAdmin()
            let id = try Self.checkID(context)
            let submission = try await Self.submission(of: request, context: context)
            let updated = try await Self.mapConflict {
                try await self.checks.update(tenantID: caller.tenantID, id: id, submission: submission)
            }
            guard let check = updated else { throw Self.notFound(id) }
            return CheckJSON(check: check, role: caller.role)
        }
        group.delete("checks/:id") { _, context -> Response in
            let caller = try context.requireAdmin()
            let id = try Self.checkID(context)
            guard try await self.checks.delete(tenantID: caller.tenantID, id: id) else { throw Self.notFound(id) }
            return Response(status: .noContent)
        }
        for (action, paused) in [("pause", true), ("resume", false)] {
            group.post("checks/:id/\(action)") { _, context in
                let caller = try context.requireAdmin()
                let id = try Self.checkID(context)
                guard let check = try await self.checks.setPaused(tenantID: caller.tenantID, id: id, paused: paused) else {
                    throw Self.notFound(id)
                }
                return CheckJSON(check: check, role: caller.role)
            }
        }
        group.get("checks/:id/results") { request, context in
            let caller = try context.requireCaller()
            let query = request.uri.queryParameters
            // The query is checked before the check is looked up, so a bad one costs no query.
            let (limit, from, to) = try Self.resultQuery(limit: query.get("limit"), from: query.get("from"), to: query.get("to"))
            let id = try Self.checkID(context)
            guard let results = try await self.checks.results(tenantID: caller.tenantID, checkID: id, limit: limit,
                                                              from: from, to: to)
            else { throw Self.notFound(id) }
            return CheckResultsJSON(results: results)
        }
    }

    /// The `{id}` path parameter as a check's UUID; 404 when it is not a `k-<uuid>` id.
    static func checkID(_ context: APIRequestContext) throws -> UUID {
        let raw = context.parameters.get("id") ?? ""
        let text = raw.removingPercentEncoding ?? raw
        guard case .check(let id)? = TargetID(text) else {
            throw APIError.notFound("no check with id \(text): check ids look like k-0c0ffee0-0000-4000-8000-000000000009")
        }
        return id
    }

    static func notFound(_ id: UUID) -> APIError {
        APIError.notFound("no check with id \(TargetID.check(checkID: id))")
    }

    /// The request body as a validated check; 400 naming the field when it is not one.
    static func submission(of request: Request, context: APIRequestContext) async throws -> CheckSubmission {
        let buffer = try await request.body.collect(upTo: context.maxUploadSize)
        guard buffer.readableBytes > 0 else {
            throw APIError.badRequest("the request body is empty: send the check as a JSON object such as "
                + #"{"name":"home page","type":"http","target":"https://example.com/"}"#)
        }
        let data = Data(buffer: buffer)
        let body: JSONValue
        do {
            body = try JSONValue.parse(data)
        } catch {
            throw APIError.badRequest("the request body is not valid JSON: \(Self.jsonSyntaxProblem(data))")
        }
        do {
            return try CheckDefinition.parse(body)
        } catch let error as CheckValidationError {
            throw APIError.badRequest(error.description)
        }
    }

    /// Turns a taken name into 409.
    static func mapConflict<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as StoreError where error.code == .alreadyExists {
            throw APIError.conflict(error.message)
        }
    }

    /// `limit` (1–1000, default 100) and the optional RFC 3339 bounds `from` ≤ `to`.
    static func resultQuery(limit limitText: String?, from fromText: String?, to toText: String?) throws -> (Int, Date?, Date?) {
        let limit = try QueryParameter.limit(limitText, range: 1...CheckStore.maximumResultLimit, defaultValue: defaultResultLimit)
        let from = try QueryParameter.timestamp(fromText, name: "from")
        let to = try QueryParameter.timestamp(toText, name: "to")
        if let from, let to, from > to {
            throw APIError.badRequest("from (\(RFC3339.string(from: from))) must not be after to (\(RFC3339.string(from: to)))")
        }
        return (limit, from, to)
    }

    /// Where JSON text goes wrong, in words ("Invalid value around character 1."): JSONDecoder's own errors do not
    /// say, JSONSerialization's do. Only called once decoding has failed.
    static func jsonSyntaxProblem(_ data: Data) -> String {
        do {
            _ = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
        } catch {
            if let detail = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String { return detail }
        }
        return "it could not be decoded (a number may be out of range)"
    }
}
