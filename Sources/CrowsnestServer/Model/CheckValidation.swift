import CrowsnestWire
import Foundation

/// A refused check definition: which field, and what is wrong with it, in words an operator can act on.
public struct CheckValidationError: Error, Equatable, CustomStringConvertible, Sendable {
    /// The field's path: `interval_seconds`, `run_on.labels[1]`, `options.headers`; empty for the body itself.
    public var field: String
    /// What is wrong, phrased to follow the field's name.
    public var problem: String

    public init(field: String, problem: String) {
        self.field = field
        self.problem = problem
    }

    /// "interval_seconds must be an integer from 5 to 86400 (got 2)".
    public var description: String { field.isEmpty ? problem : "\(field) \(problem)" }
}

/// A check as a client submitted it (POST or PUT): the validated definition and, when given, whether it is paused
/// and what of it the tenant's public status page shows.
public struct CheckSubmission: Equatable, Sendable {
    public var definition: CheckDefinition
    /// nil when the body left `paused` out.
    public var paused: Bool?
    /// `public`: the check's name, state and uptime are on the status page and its badges; nil when left out.
    public var isPublic: Bool?
    /// `public_target`: its target (URL, address) is shown there too; nil when left out.
    public var publicTarget: Bool?

    public init(definition: CheckDefinition, paused: Bool? = nil, isPublic: Bool? = nil, publicTarget: Bool? = nil) {
        (self.definition, self.paused, self.isPublic, self.publicTarget) = (definition, paused, isPublic, publicTarget)
    }
}

extension CheckDefinition {
    /// Bounds of the definition's fields.
    public static let maximumNameLength = 100
    public static let maximumTargetLength = 2048
    public static let intervalRange = 5...86_400
    public static let defaultIntervalSeconds = 30
    public static let minimumTimeoutMs = 100
    public static let retriesRange = 0...10
    public static let maximumLabels = 20
    public static let quorumRange = 1...1000

    /// Fields a check takes.
    static let fields = ["name", "type", "target", "interval_seconds", "timeout_ms", "retries", "run_on", "options", "paused", "public",
                         "public_target"]
    /// Fields the server sets: accepted and ignored, so a check read with GET can be sent back with PUT.
    static let serverFields: Set<String> = ["id", "state", "last_result_at", "push_url", "created_at", "updated_at"]

    /// Validates a submitted check (a POST or PUT body), filling in defaults. Throws `CheckValidationError` for
    /// the first field that is wrong; unknown fields and options are refused by name.
    public static func parse(_ body: JSONValue) throws -> CheckSubmission {
        let fields = try JSONFields(body, path: "", what: "the request body")
        try fields.refuseUnknown(allowed: Self.fields, ignoring: Self.serverFields, known: "a check takes")

        let name = try fields.text("name", required: true, maximumLength: maximumNameLength, controlCharacters: false)!
        guard !name.isEmpty else { throw fields.error("name", "must not be empty") }

        guard let typeText = try fields.text("type", required: true, maximumLength: 20, controlCharacters: false) else {
            throw fields.error("type", "is required")
        }
        guard let type = CheckType(rawValue: typeText) else {
            throw fields.error("type", "must be one of \(CheckType.allCases.map(\.rawValue).joined(separator: ", ")) (got \"\(typeText)\")")
        }

        let target = try Self.parseTarget(fields, type: type)
        let interval = try fields.integer("interval_seconds", in: intervalRange) ?? defaultIntervalSeconds
        let timeoutMs = try fields.integer("timeout_ms", in: minimumTimeoutMs...(interval * 1000),
                                           note: "the interval, in milliseconds") ?? interval * 800
        let retries = try fields.integer("retries", in: retriesRange) ?? 0
        let placement = try Self.parsePlacement(fields.value("run_on"), type: type)
        let options = try CheckOptionsParser(type: type, target: target, intervalSeconds: interval, timeoutMs: timeoutMs)
            .parse(fields.value("options"))
        let paused = try fields.bool("paused")
        let isPublic = try fields.bool("public")
        let publicTarget = try fields.bool("public_target")

        let definition = CheckDefinition(name: name, target: target, intervalSeconds: interval, timeoutMs: timeoutMs,
                                         retries: retries, placement: placement, options: options)
        return CheckSubmission(definition: definition, paused: paused, isPublic: isPublic, publicTarget: publicTarget)
    }

    /// The target, required and checked for its type's syntax; '' for push checks, which take none.
    private static func parseTarget(_ fields: JSONFields, type: CheckType) throws -> String {
        let target = try fields.text("target", required: false, maximumLength: maximumTargetLength, controlCharacters: false)
        if type == .push {
            guard target?.isEmpty ?? true else {
                throw fields.error("target", "must be left out for push checks: they are called at their push URL instead")
            }
            return ""
        }
        guard let target, !target.isEmpty else {
            throw fields.error("target", "is required for \(type.rawValue) checks: \(Self.targetHint(type))")
        }
        let problem: String?
        switch type {
        case .http, .nginx: problem = CheckTargetSyntax.httpURLProblem(target)
        case .tcp, .tls: problem = CheckTargetSyntax.hostPortProblem(target)
        case .dns: problem = CheckTargetSyntax.dnsNameProblem(target)
        case .postgres: problem = CheckTargetSyntax.postgresURLProblem(target)
        case .docker: problem = CheckTargetSyntax.dockerSelectorProblem(target)
        case .push: problem = nil
        }
        if let problem { throw fields.error("target", problem) }
        return target
    }

    /// What the target of each type is, for the "is required" message.
    static func targetHint(_ type: CheckType) -> String {
        switch type {
        case .http: return "the URL to request, such as https://example.com/health"
        case .nginx: return "the URL of nginx's stub_status page, such as http://127.0.0.1/nginx_status"
        case .tcp, .tls: return "host:port, such as example.com:443"
        case .dns: return "the DNS name to resolve, such as example.com"
        case .postgres: return "a connection URL, such as postgres://monitor:secret@db.example.com:5432/app"
        case .docker: return "a container name, or label=key=value"
        case .push: return "none"
        }
    }

    /// `run_on`: `{"mode":"any"}` (default), `{"mode":"labels","labels":[…]}`, `{"mode":"all","labels":[…],"quorum":N}`
    /// or `{"mode":"server"}`.
    static func parsePlacement(_ value: JSONValue?, type: CheckType) throws -> CheckPlacement {
        guard let value else { return type == .push ? .server : .any }
        let fields = try JSONFields(value, path: "run_on", what: "run_on")
        let modes = ["any", "labels", "all", "server"]
        guard let mode = try fields.text("mode", required: false, maximumLength: 20, controlCharacters: false),
              modes.contains(mode)
        else {
            let got = fields.value("mode").map { value -> String in
                if case .string(let text) = value { return "\"\(text)\"" }
                return value.kindDescription
            }
            throw fields.error("mode", "must be one of \(modes.joined(separator: ", ")) (got \(got ?? "nothing"))")
        }
        switch mode {
        case "labels": try fields.refuseUnknown(allowed: ["mode", "labels"], known: "run_on with mode labels takes")
        case "all": try fields.refuseUnknown(allowed: ["mode", "labels", "quorum"], known: "run_on with mode all takes")
        default: try fields.refuseUnknown(allowed: ["mode"], known: "run_on with mode \(mode) takes")
        }

        if type == .push {
            guard mode == "server" else {
                throw fields.error("", "must be left out for push checks: they are not run anywhere, they wait for calls to their push URL")
            }
            return .server
        }
        switch mode {
        case "any": return .any
        case "server":
            guard type != .docker else {
                throw fields.error("mode", "cannot be server for docker checks: they look at containers on an agent's own host (use any, labels or all)")
            }
            return .server
        case "labels":
            return .labels(try parseLabels(fields, required: true))
        default:
            let labels = try parseLabels(fields, required: false)
            let quorum = try fields.integer("quorum", in: quorumRange, note: "how many agents must report down") ?? 1
            return .all(labels: labels, quorum: quorum)
        }
    }

    /// `labels`: 1 to 20 distinct `key=value` strings (0 allowed when not `required`).
    private static func parseLabels(_ fields: JSONFields, required: Bool) throws -> [String] {
        guard let value = fields.value("labels") else {
            if required { throw fields.error("labels", "is required with mode labels: a list of key=value labels such as [\"env=prod\"]") }
            return []
        }
        guard case .array(let items) = value else {
            throw fields.error("labels", "must be a list of key=value strings such as [\"env=prod\"] (got \(value.kindDescription))")
        }
        let range = (required ? 1 : 0)...maximumLabels
        guard range.contains(items.count) else {
            throw fields.error("labels", "must hold \(range.lowerBound) to \(maximumLabels) labels (got \(items.count))")
        }
        var labels: [String] = []
        for (index, item) in items.enumerated() {
            let field = "labels[\(index)]"
            guard case .string(let label) = item else {
                throw fields.error(field, "must be a key=value string (got \(item.kindDescription))")
            }
            if let problem = labelProblem(label) { throw fields.error(field, problem) }
            guard !labels.contains(label) else { throw fields.error(field, "repeats the label \"\(label)\"") }
            labels.append(label)
        }
        return labels
    }

    /// An agent label: `key=value` (the rule is `AgentLabels.problem`, shared with the agent's configuration).
    static func labelProblem(_ label: String) -> String? {
        AgentLabels.problem(label)
    }
}

/// Reads the fields of one JSON object for validation; every error names the field by its full path.
struct JSONFields {
    let path: String
    let values: [String: JSONValue]

    /// Refuses anything but an object; `what` names it in the message ("run_on must be an object").
    init(_ value: JSONValue, path: String, what: String) throws {
        guard case .object(let values) = value else {
            throw CheckValidationError(field: path, problem: path.isEmpty
                ? "\(what) must be a JSON object (got \(value.kindDescription))"
                : "must be an object (got \(value.kindDescription))")
        }
        self.path = path
        self.values = values
    }

    /// The full path of `key` (`run_on.labels`).
    func name(_ key: String) -> String {
        path.isEmpty ? key : key.isEmpty ? path : "\(path).\(key)"
    }

    func error(_ key: String, _ problem: String) -> CheckValidationError {
        CheckValidationError(field: name(key), problem: problem)
    }

    /// Refuses keys outside `allowed` (and `ignoring`), naming the first unknown one and what is known.
    func refuseUnknown(allowed: [String], ignoring: Set<String> = [], known: String) throws {
        let unknown = values.keys.filter { !allowed.contains($0) && !ignoring.contains($0) }.sorted()
        guard let first = unknown.first else { return }
        let takes = allowed.isEmpty ? "\(known) no options" : "\(known) \(allowed.joined(separator: ", "))"
        throw error(first, "is not a known field: \(takes)")
    }

    /// The value of `key`; nil when missing or null (null means "use the default").
    func value(_ key: String) -> JSONValue? {
        guard let value = values[key], value != .null else { return nil }
        return value
    }

    /// A string of at most `maximumLength` characters (Unicode scalars, as PostgreSQL's char_length counts).
    /// NUL is always refused (PostgreSQL text and jsonb cannot hold it); other control characters unless allowed.
    func text(_ key: String, required: Bool, maximumLength: Int, controlCharacters: Bool = true) throws -> String? {
        guard let value = value(key) else {
            if required { throw error(key, "is required") }
            return nil
        }
        guard case .string(let text) = value else {
            throw error(key, "must be a string (got \(value.kindDescription))")
        }
        if let problem = Self.textProblem(text, maximumLength: maximumLength, controlCharacters: controlCharacters) {
            throw error(key, problem)
        }
        return text
    }

    static func textProblem(_ text: String, maximumLength: Int, controlCharacters: Bool) -> String? {
        let length = text.unicodeScalars.count
        if length > maximumLength { return "must be at most \(maximumLength) characters long (got \(length))" }
        if text.unicodeScalars.contains("\u{0}") { return "must not contain a NUL character" }
        if !controlCharacters, text.unicodeScalars.contains(where: CheckTargetSyntax.isControl) {
            return "must not contain control characters (such as line breaks or tabs)"
        }
        return nil
    }

    /// A whole number within `range`; `note` says what the bound is when it is not obvious.
    func integer(_ key: String, in range: ClosedRange<Int>, note: String? = nil) throws -> Int? {
        guard let value = value(key) else { return nil }
        let bounds = "an integer from \(range.lowerBound) to \(range.upperBound)" + (note.map { " (\($0))" } ?? "")
        let number: Int
        switch value {
        case .integer(let integer) where integer >= Int64(Int32.min) && integer <= Int64(Int32.max):
            number = Int(integer)
        case .integer(let integer):
            throw error(key, "must be \(bounds) (got \(integer))")
        case .number(let double) where double == double.rounded() && abs(double) < 1e9:
            number = Int(double)
        case .number(let double):
            throw error(key, "must be \(bounds) (got \(double))")
        default:
            throw error(key, "must be \(bounds) (got \(value.kindDescription))")
        }
        guard range.contains(number) else { throw error(key, "must be \(bounds) (got \(number))") }
        return number
    }

    /// A number (integer or not) within `range`.
    func number(_ key: String, in range: ClosedRange<Double>) throws -> Double? {
        guard let value = value(key) else { return nil }
        let number: Double
        switch value {
        case .integer(let integer): number = Double(integer)
        case .number(let double): number = double
        default: throw error(key, "must be a number (got \(value.kindDescription))")
        }
        guard range.contains(number) else {
            throw error(key, "must be a number from \(Self.format(range.lowerBound)) to \(Self.format(range.upperBound)) (got \(Self.format(number)))")
        }
        return number
    }

    func bool(_ key: String) throws -> Bool? {
        guard let value = value(key) else { return nil }
        guard case .bool(let flag) = value else {
            throw error(key, "must be true or false (got \(value.kindDescription))")
        }
        return flag
    }

    /// A string, or a list of 1 to `maximumCount` strings, each of 1 to `maximumLength` characters.
    func textList(_ key: String, maximumCount: Int, maximumLength: Int) throws -> [String]? {
        guard let value = value(key) else { return nil }
        let items: [(field: String, value: JSONValue)]
        switch value {
        case .string: items = [(key, value)]
        case .array(let list):
            guard (1...maximumCount).contains(list.count) else {
                throw error(key, "must hold 1 to \(maximumCount) entries (got \(list.count))")
            }
            items = list.enumerated().map { ("\(key)[\($0.offset)]", $0.element) }
        default:
            throw error(key, "must be a string or a list of strings (got \(value.kindDescription))")
        }
        return try items.map { field, item in
            guard case .string(let text) = item, !text.isEmpty else {
                throw error(field, "must be a non-empty string (got \(item == .string("") ? "an empty string" : item.kindDescription))")
            }
            if let problem = Self.textProblem(text, maximumLength: maximumLength, controlCharacters: false) {
                throw error(field, problem)
            }
            return text
        }
    }

    private static func format(_ number: Double) -> String {
        number == number.rounded() && abs(number) < 1e15 ? String(Int64(number)) : String(number)
    }
}
