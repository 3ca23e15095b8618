import CrowsnestWire
import Foundation
import Hummingbird

// JSON bodies of the /api/v1/checks routes. Absent values are explicit nulls; timestamps are RFC 3339.

/// One check as the API shows it. Read-role callers see it with its secrets replaced (`redacted`): the password
/// of a URL target, HTTP header values and body, and no push URL; admins see everything, so they can PUT it back.
struct CheckJSON: ResponseEncodable, Sendable {
    let check: StoredCheck
    let role: APIKeyRole

    /// What stands in for a secret a read key may not see.
    static let redacted = "redacted"

    enum CodingKeys: String, CodingKey {
        case id, name, type, target, retries, options, paused, state
        case isPublic = "public"
        case publicTarget = "public_target"
        case intervalSeconds = "interval_seconds"
        case timeoutMs = "timeout_ms"
        case runOn = "run_on"
        case lastResultAt = "last_result_at"
        case pushURL = "push_url"
        case createdAt = "created_at"
        case updatedAt = "updated_at"
    }

    func encode(to encoder: any Encoder) throws {
        let admin = role == .admin
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(TargetID.check(checkID: check.id).description, forKey: .id)
        try c.encode(check.name, forKey: .name)
        try c.encode(check.type.rawValue, forKey: .type)
        try c.encode(admin ? check.target : Self.redactingPassword(check.target), forKey: .target)
        try c.encode(check.intervalSeconds, forKey: .intervalSeconds)
        try c.encode(check.timeoutMs, forKey: .timeoutMs)
        try c.encode(check.retries, forKey: .retries)
        try c.encode(check.runOn, forKey: .runOn)
        try c.encode(admin ? check.options : Self.redactingHTTPSecrets(check.options), forKey: .options)
        try c.encode(check.paused, forKey: .paused)
        try c.encode(check.isPublic, forKey: .isPublic)
        try c.encode(check.publicTarget, forKey: .publicTarget)
        try c.encode(check.state.rawValue, forKey: .state)
        try c.encode(check.lastResultAt.map(RFC3339.string(from:)), forKey: .lastResultAt)
        try c.encode(admin ? check.pushToken.map(Self.pushPath) : nil, forKey: .pushURL)
        try c.encode(RFC3339.string(from: check.createdAt), forKey: .createdAt)
        try c.encode(RFC3339.string(from: check.updatedAt), forKey: .updatedAt)
    }

    /// The path a push check's callers request: `/api/v1/push/{token}`.
    static func pushPath(_ token: String) -> String { "/api/v1/push/\(token)" }

    /// A URL with its password (in the user info or a `password` query parameter) replaced; other text unchanged.
    static func redactingPassword(_ target: String) -> String {
        guard var components = URLComponents(string: target), components.scheme != nil else { return target }
        var changed = false
        if components.percentEncodedPassword != nil {
            components.percentEncodedPassword = redacted
            changed = true
        }
        if let items = components.percentEncodedQueryItems, items.contains(where: { $0.name.lowercased() == "password" }) {
            components.percentEncodedQueryItems = items.map {
                $0.name.lowercased() == "password" ? URLQueryItem(name: $0.name, value: redacted) : $0
            }
            changed = true
        }
        return changed ? (components.string ?? target) : target
    }

    /// HTTP options with every header value and the body replaced.
    static func redactingHTTPSecrets(_ options: JSONValue) -> JSONValue {
        guard case .object(var object) = options else { return options }
        if case .object(let headers)? = object["headers"] {
            object["headers"] = .object(headers.mapValues { _ in .string(redacted) })
        }
        if case .string? = object["body"] {
            object["body"] = .string(redacted)
        }
        return .object(object)
    }
}

/// `GET /api/v1/checks`.
struct CheckListJSON: ResponseEncodable, Sendable {
    let checks: [StoredCheck]
    let role: APIKeyRole

    enum CodingKeys: String, CodingKey { case checks }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(checks.map { CheckJSON(check: $0, role: role) }, forKey: .checks)
    }
}

/// `GET /api/v1/checks/{id}/results`: newest first.
struct CheckResultsJSON: ResponseEncodable, Sendable {
    let results: [CheckResultRecord]

    enum CodingKeys: String, CodingKey { case results }
    enum ResultKeys: String, CodingKey {
        case ts, runner, ok, error, figures
        case slotAt = "slot_at"
        case agentID = "agent_id"
        case latencyMs = "latency_ms"
        case httpStatus = "http_status"
        case certificateNotAfter = "cert_not_after"
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        var list = c.nestedUnkeyedContainer(forKey: .results)
        for result in results {
            var item = list.nestedContainer(keyedBy: ResultKeys.self)
            try item.encode(RFC3339.string(from: result.ts), forKey: .ts)
            try item.encode(RFC3339.string(from: result.slotAt), forKey: .slotAt)
            try item.encode(result.agentID.map { TargetID.host(agentID: $0).description }, forKey: .agentID)
            try item.encode(result.runner, forKey: .runner)
            try item.encode(result.ok, forKey: .ok)
            try item.encode(result.latencyMs.flatMap { $0.isFinite ? $0 : nil }, forKey: .latencyMs)
            try item.encode(result.error, forKey: .error)
            try item.encode(result.httpStatus, forKey: .httpStatus)
            try item.encode(result.certificateNotAfter.map(RFC3339.string(from:)), forKey: .certificateNotAfter)
            try item.encode(result.figures, forKey: .figures)
        }
    }
}
