import CrowsnestWire
import Foundation

/// An alert rule as a tenant defines it: which targets (listed, every target of a service, or every container
/// and host carrying some labels), which states count (`down` unless told), for how long before it fires, where
/// it goes, whether it reminds while firing, and when a target counts as flapping (then one "flapping" and one
/// "stopped flapping" replace every firing and recovery in between).
public struct AlertRuleDefinition: Sendable, Equatable {
    /// The targets a rule watches.
    public enum Selector: Sendable, Equatable {
        case targets([String])
        case service(String)
        case labels([String])
    }

    public var name: String
    public var selector: Selector
    public var states: [SpanState]
    public var forSeconds: Int
    /// Channel ids (`n-<uuid>`).
    public var channels: [String]
    public var reminderMinutes: Int?
    public var flapChanges: Int
    public var flapMinutes: Int
    public var sendResolved: Bool

    public static let maximumNameLength = 100
    public static let maximumTargets = 500
    public static let maximumChannels = 10
    public static let forRange = 0...86_400
    public static let defaultForSeconds = 60
    public static let reminderRange = 5...10_080
    public static let flapChangesRange = 2...100
    public static let flapMinutesRange = 1...1440
    /// The states a rule may watch: the ones that are not `up` and not `maintenance`.
    public static let watchableStates: [SpanState] = [.down, .unknown, .degraded]
    static let fieldNames = ["name", "kind", "targets", "service", "labels", "states", "for_seconds", "channels",
                             "reminder_minutes", "flap", "send_resolved"]
    static let serverFields: Set<String> = ["id", "created_at", "updated_at"]

    /// Validates a POST or PUT body; throws `CheckValidationError` naming the first wrong field. Whether the
    /// targets, service and channels exist is checked by the caller, against the tenant.
    public static func parse(_ body: JSONValue) throws -> AlertRuleDefinition {
        let fields = try JSONFields(body, path: "", what: "the request body")
        try fields.refuseUnknown(allowed: fieldNames, ignoring: serverFields, known: "an alert rule takes")
        let name = try fields.text("name", required: true, maximumLength: maximumNameLength, controlCharacters: false)!
        guard !name.isEmpty else { throw fields.error("name", "must not be empty") }
        let kind = try fields.text("kind", required: false, maximumLength: 20, controlCharacters: false) ?? "state"
        guard kind == "state" else {
            throw fields.error("kind", "must be state: a target in one of the rule's states for at least for_seconds (got \"\(kind)\")")
        }

        let targets = try canonical(fields, "targets", ServiceDefinition.stringList(fields, "targets", maximumCount: maximumTargets) { text in
            TargetID(text) == nil ? "must be a target id: h-<agent uuid>, c-<agent uuid>-<container name> or k-<check uuid>" : nil
        }) { TargetID($0)!.description }
        let service = try fields.text("service", required: false, maximumLength: 40, controlCharacters: false)
        let labels = try ServiceDefinition.stringList(fields, "labels", maximumCount: ServiceDefinition.maximumLabels) { AgentLabels.problem($0) }
        let given = [!targets.isEmpty, service != nil, !labels.isEmpty].filter { $0 }.count
        guard given == 1 else {
            throw fields.error("targets", "or service or labels (exactly one of them) must say which targets the rule watches: "
                + "a list of target ids, a service id (s-<uuid>), or key=value labels that containers or hosts carry")
        }
        let selector: Selector
        if let service {
            guard ServiceID(service) != nil else { throw fields.error("service", "must be a service id: s-<uuid> (got \"\(service)\")") }
            selector = .service(service)
        } else {
            selector = targets.isEmpty ? .labels(labels) : .targets(targets)
        }

        let stateNames = try ServiceDefinition.stringList(fields, "states", maximumCount: watchableStates.count) { text in
            guard let state = SpanState(rawValue: text), watchableStates.contains(state) else {
                return "must be one of down, unknown, degraded (got \"\(text)\")"
            }
            return nil
        }
        let states = stateNames.isEmpty ? [SpanState.down] : stateNames.compactMap(SpanState.init(rawValue:))
        let forSeconds = try fields.integer("for_seconds", in: forRange) ?? defaultForSeconds
        let channels = try canonical(fields, "channels", ServiceDefinition.stringList(fields, "channels", maximumCount: maximumChannels) { text in
            AlertChannelID(text) == nil ? "must be an alert channel id: n-<uuid>" : nil
        }) { AlertChannelID($0)!.description }
        guard !channels.isEmpty else {
            throw fields.error("channels", "must name at least one alert channel (n-<uuid>) the notifications go to")
        }
        let reminder = try fields.integer("reminder_minutes", in: reminderRange, note: "a reminder while still firing; leave out for none")
        var flapChanges = 4, flapMinutes = 2
        if let flap = fields.value("flap") {
            let flapFields = try JSONFields(flap, path: "flap", what: "flap")
            try flapFields.refuseUnknown(allowed: ["changes", "minutes"], known: "flap takes")
            flapChanges = try flapFields.integer("changes", in: flapChangesRange) ?? flapChanges
            flapMinutes = try flapFields.integer("minutes", in: flapMinutesRange) ?? flapMinutes
        }
        return AlertRuleDefinition(name: name, selector: selector, states: states, forSeconds: forSeconds, channels: channels,
                                   reminderMinutes: reminder, flapChanges: flapChanges, flapMinutes: flapMinutes,
                                   sendResolved: try fields.bool("send_resolved") ?? true)
    }

    /// Ids written in their one form (lowercase uuids), each once: `N-0C0FFEE0-…` and `n-0c0ffee0-…` are one channel,
    /// and a channel listed twice would get every notification twice under two ids.
    private static func canonical(_ fields: JSONFields, _ key: String, _ items: [String], _ form: (String) -> String) throws -> [String] {
        var result: [String] = []
        for (index, item) in items.enumerated() {
            let id = form(item)
            guard !result.contains(id) else { throw fields.error("\(key)[\(index)]", "repeats \(id)") }
            result.append(id)
        }
        return result
    }

    /// The definition as the API shows it and the database keeps it (`alert_rules.definition`).
    public var json: JSONValue {
        var object: [String: JSONValue] = [
            "name": .string(name), "kind": .string("state"), "states": .array(states.map { .string($0.rawValue) }),
            "for_seconds": .integer(Int64(forSeconds)), "channels": .array(channels.map(JSONValue.string)),
            "reminder_minutes": reminderMinutes.map { .integer(Int64($0)) } ?? .null,
            "flap": .object(["changes": .integer(Int64(flapChanges)), "minutes": .integer(Int64(flapMinutes))]),
            "send_resolved": .bool(sendResolved),
        ]
        switch selector {
        case .targets(let targets): object["targets"] = .array(targets.map(JSONValue.string))
        case .service(let service): object["service"] = .string(service)
        case .labels(let labels): object["labels"] = .array(labels.map(JSONValue.string))
        }
        return .object(object)
    }

    /// The target ids it names (for the existence check).
    public var targetIDs: [String] {
        if case .targets(let targets) = selector { return targets }
        return []
    }

    /// The service it names, if any.
    public var serviceIDs: [String] {
        if case .service(let service) = selector { return [service] }
        return []
    }
}

/// `n-<uuid>`: an alert channel's id.
public struct AlertChannelID: Sendable, Hashable, CustomStringConvertible {
    public var uuid: UUID

    public init(uuid: UUID) { self.uuid = uuid }

    public init?(_ text: String) {
        guard text.hasPrefix("n-"), text.utf8.count == 38, let uuid = UUID(uuidString: String(text.dropFirst(2))) else { return nil }
        self.uuid = uuid
    }

    public var description: String { "n-" + uuid.uuidString.lowercased() }
}

/// An alert channel as a tenant defines it: a generic webhook (a JSON body, `AlertNotification` in
/// server/openapi.yaml, POSTed with an HMAC-SHA256 signature over the timestamp and the body).
public struct AlertChannelDefinition: Sendable, Equatable {
    public var name: String
    public var url: String
    /// The HMAC key receivers verify the signature with.
    public var secret: String

    public static let minimumSecretLength = 16
    public static let maximumSecretLength = 256
    static let fieldNames = ["name", "type", "url", "secret"]
    static let serverFields: Set<String> = ["id", "destination", "created_at"]

    /// Validates a POST body; a missing secret is generated (and shown once, in the answer).
    public static func parse(_ body: JSONValue) throws -> (definition: AlertChannelDefinition, secretGenerated: Bool) {
        let fields = try JSONFields(body, path: "", what: "the request body")
        try fields.refuseUnknown(allowed: fieldNames, ignoring: serverFields, known: "an alert channel takes")
        let name = try fields.text("name", required: true, maximumLength: AlertRuleDefinition.maximumNameLength, controlCharacters: false)!
        guard !name.isEmpty else { throw fields.error("name", "must not be empty") }
        let type = try fields.text("type", required: true, maximumLength: 20, controlCharacters: false)!
        guard type == "webhook" else {
            throw fields.error("type", "must be webhook: a JSON POST signed with HMAC-SHA256 (got \"\(type)\")")
        }
        guard let url = try fields.text("url", required: true, maximumLength: CheckDefinition.maximumTargetLength,
                                        controlCharacters: false), !url.isEmpty else {
            throw fields.error("url", "is required: the http(s) URL the notifications are POSTed to")
        }
        if let problem = CheckTargetSyntax.httpURLProblem(url) { throw fields.error("url", problem) }
        var secret = try fields.text("secret", required: false, maximumLength: maximumSecretLength, controlCharacters: false)
        if let given = secret, given.count < minimumSecretLength {
            throw fields.error("secret", "must be at least \(minimumSecretLength) characters (or left out: one is generated)")
        }
        let generated = secret == nil
        if generated { secret = RandomSecret.base64URL() }
        return (AlertChannelDefinition(name: name, url: url, secret: secret!), generated)
    }

    /// What may be shown of the URL: its scheme and host (a webhook URL often carries a token in its path).
    public var destination: String {
        guard let components = URLComponents(string: url), let scheme = components.scheme, let host = components.host else { return "" }
        return "\(scheme)://\(host)\(components.port.map { ":\($0)" } ?? "")/…"
    }
}
