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
    /// Not acknowledged within `afterMinutes` of being announced → one "escalation" to `channels` (which then
    /// also hear the recovery).
    public var escalation: Escalation?
    /// Set for a threshold rule (`kind: threshold`): a metric beyond a bound for `forSeconds`, with hysteresis.
    /// The evaluator turns the metric's series into breaching (`down`) and clear (`up`) spans, so such a rule
    /// fires, recovers, flaps, reminds and escalates exactly like a state rule.
    public var threshold: Threshold?

    public struct Escalation: Sendable, Equatable {
        public var afterMinutes: Int
        public var channels: [String]
    }

    public struct Threshold: Sendable, Equatable {
        public var metric: AlertMetric
        /// true: fires above `bound` (and clears below `resolve`); false: fires below it (clears above `resolve`).
        public var above: Bool
        public var bound: Double
        public var resolve: Double
        /// For counted metrics (restarts, OOM kills): the sliding window they are counted over.
        public var windowMinutes: Int?

        /// Whether `value` breaches the bound, given whether it breached before (between the two bounds it stays as it was).
        public func breaches(_ value: Double, before: Bool) -> Bool {
            if above { return before ? value >= resolve : value > bound }
            return before ? value <= resolve : value < bound
        }
    }

    public static let maximumNameLength = 100
    public static let maximumTargets = 500
    public static let maximumChannels = 10
    public static let forRange = 0...86_400
    public static let defaultForSeconds = 60
    public static let reminderRange = 1...10_080
    public static let flapChangesRange = 2...100
    public static let flapMinutesRange = 1...1440
    public static let escalationRange = 1...10_080
    /// The states a rule may watch: the ones that are not `up` and not `maintenance`.
    public static let watchableStates: [SpanState] = [.down, .unknown, .degraded]
    static let fieldNames = ["name", "kind", "targets", "service", "labels", "states", "for_seconds", "channels",
                             "reminder_minutes", "flap", "send_resolved", "escalation"]
    static let thresholdFieldNames = ["metric", "above", "below", "resolve_below", "resolve_above", "window_minutes"]
    public static let windowRange = 1...1440
    public static let defaultWindowMinutes = 10
    static let serverFields: Set<String> = ["id", "created_at", "updated_at"]

    /// Validates a POST or PUT body; throws `CheckValidationError` naming the first wrong field. Whether the
    /// targets, service and channels exist is checked by the caller, against the tenant.
    public static func parse(_ body: JSONValue) throws -> AlertRuleDefinition {
        let fields = try JSONFields(body, path: "", what: "the request body")
        let kind = try fields.text("kind", required: false, maximumLength: 20, controlCharacters: false) ?? "state"
        guard kind == "state" || kind == "threshold" else {
            throw fields.error("kind", "must be state (a target in one of the rule's states for at least for_seconds) or threshold "
                + "(a metric above or below a bound for at least for_seconds) (got \"\(kind)\")")
        }
        try fields.refuseUnknown(allowed: kind == "state" ? fieldNames : fieldNames.filter { $0 != "states" } + thresholdFieldNames,
                                 ignoring: serverFields, known: "a \(kind) rule takes")
        let name = try fields.text("name", required: true, maximumLength: maximumNameLength, controlCharacters: false)!
        guard !name.isEmpty else { throw fields.error("name", "must not be empty") }

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
        let threshold = kind == "threshold" ? try parseThreshold(fields) : nil
        if let threshold, case .targets(let listed) = selector {
            for (index, text) in listed.enumerated() {
                guard let id = TargetID(text), !threshold.metric.appliesTo.contains(id.kind) else { continue }
                throw fields.error("targets[\(index)]", "is a \(id.kind); \(threshold.metric.rawValue) is a figure of "
                    + threshold.metric.appliesTo.map { $0 + "s" }.joined(separator: " and "))
            }
        }
        let countedDefault = threshold?.windowMinutes != nil ? 0 : defaultForSeconds
        let forSeconds = try fields.integer("for_seconds", in: forRange) ?? countedDefault
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
        var escalation: Escalation?
        if let value = fields.value("escalation") {
            let escalationFields = try JSONFields(value, path: "escalation", what: "escalation")
            try escalationFields.refuseUnknown(allowed: ["after_minutes", "channels"], known: "escalation takes")
            guard let after = try escalationFields.integer("after_minutes", in: escalationRange,
                                                           note: "minutes after the firing was announced, unless acknowledged") else {
                throw escalationFields.error("after_minutes", "is required: how long an unacknowledged firing waits before it escalates")
            }
            let escalationChannels = try canonical(escalationFields, "channels", ServiceDefinition.stringList(
                escalationFields, "channels", maximumCount: maximumChannels) { text in
                AlertChannelID(text) == nil ? "must be an alert channel id: n-<uuid>" : nil
            }) { AlertChannelID($0)!.description }
            guard !escalationChannels.isEmpty else {
                throw escalationFields.error("channels", "must name at least one alert channel (n-<uuid>) the escalation goes to")
            }
            escalation = Escalation(afterMinutes: after, channels: escalationChannels)
        }
        return AlertRuleDefinition(name: name, selector: selector, states: states, forSeconds: forSeconds, channels: channels,
                                   reminderMinutes: reminder, flapChanges: flapChanges, flapMinutes: flapMinutes,
                                   sendResolved: try fields.bool("send_resolved") ?? true, escalation: escalation, threshold: threshold)
    }

    /// `metric`, exactly one of `above` and `below` within the metric's range, the optional hysteresis bound on the
    /// clearing side, and `window_minutes` for counted metrics.
    private static func parseThreshold(_ fields: JSONFields) throws -> Threshold {
        guard let metricName = try fields.text("metric", required: false, maximumLength: 40, controlCharacters: false),
              let metric = AlertMetric(rawValue: metricName) else {
            throw fields.error("metric", "must be one of \(AlertMetric.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let range = metric.range
        let above = try fields.number("above", in: range), below = try fields.number("below", in: range)
        guard (above == nil) != (below == nil) else {
            throw fields.error("above", "or below (exactly one) is required: the bound \(metric.rawValue) fires beyond, in \(metric.unit)")
        }
        let bound = above ?? below!
        var resolve = bound
        if above != nil {
            if fields.value("resolve_above") != nil { throw fields.error("resolve_above", "goes with below; with above, give resolve_below") }
            if let given = try fields.number("resolve_below", in: range) {
                guard given <= bound else { throw fields.error("resolve_below", "must be at most above (\(bound)): it clears below it") }
                resolve = given
            }
        } else {
            if fields.value("resolve_below") != nil { throw fields.error("resolve_below", "goes with above; with below, give resolve_above") }
            if let given = try fields.number("resolve_above", in: range) {
                guard given >= bound else { throw fields.error("resolve_above", "must be at least below (\(bound)): it clears above it") }
                resolve = given
            }
        }
        var window: Int?
        if metric.isCounted {
            window = try fields.integer("window_minutes", in: windowRange, note: "the window \(metric.rawValue) are counted over") ?? defaultWindowMinutes
        } else if fields.value("window_minutes") != nil {
            throw fields.error("window_minutes", "applies to counted metrics only (restarts, oom_kills)")
        }
        return Threshold(metric: metric, above: above != nil, bound: bound, resolve: resolve, windowMinutes: window)
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
            "name": .string(name), "kind": .string(threshold == nil ? "state" : "threshold"),
            "for_seconds": .integer(Int64(forSeconds)), "channels": .array(channels.map(JSONValue.string)),
            "reminder_minutes": reminderMinutes.map { .integer(Int64($0)) } ?? .null,
            "flap": .object(["changes": .integer(Int64(flapChanges)), "minutes": .integer(Int64(flapMinutes))]),
            "send_resolved": .bool(sendResolved),
            "escalation": escalation.map { .object(["after_minutes": .integer(Int64($0.afterMinutes)),
                                                    "channels": .array($0.channels.map(JSONValue.string))]) } ?? .null,
        ]
        if let threshold {
            object["metric"] = .string(threshold.metric.rawValue)
            object[threshold.above ? "above" : "below"] = .number(threshold.bound)
            object[threshold.above ? "resolve_below" : "resolve_above"] = .number(threshold.resolve)
            if let window = threshold.windowMinutes { object["window_minutes"] = .integer(Int64(window)) }
        } else {
            object["states"] = .array(states.map { .string($0.rawValue) })
        }
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

    /// Every channel it sends to: its own, then its escalation's.
    public var allChannels: [String] {
        channels + (escalation?.channels ?? []).filter { !channels.contains($0) }
    }

    /// The service it names, if any.
    public var serviceIDs: [String] {
        if case .service(let service) = selector { return [service] }
        return []
    }
}

/// A figure a threshold rule watches, and which targets have it.
public enum AlertMetric: String, Sendable, CaseIterable {
    /// CPU in % of one core (a container using two full cores: 200); hosts too.
    case cpuPercent = "cpu_percent"
    /// CPU in % of the container's CPU limit (no limit: no figure) or of all of a host's cores.
    case cpuPercentOfLimit = "cpu_percent_of_limit"
    /// Memory in % of the container's limit (no limit: no figure) or of a host's memory.
    case memoryPercentOfLimit = "memory_percent_of_limit"
    /// The host's fullest filesystem, in %.
    case diskPercent = "disk_percent"
    /// How often the container started in the last `window_minutes`.
    case restarts
    /// How often the container was OOM-killed in the last `window_minutes`.
    case oomKills = "oom_kills"
    /// Days until the certificate an http or tls check saw expires (negative once expired).
    case certificateDays = "certificate_days"
    /// A postgres check's replication lag, in seconds.
    case replicationLagSeconds = "replication_lag_seconds"

    /// The target kinds it is a figure of.
    public var appliesTo: [String] {
        switch self {
        case .cpuPercent, .cpuPercentOfLimit, .memoryPercentOfLimit: ["container", "host"]
        case .diskPercent: ["host"]
        case .restarts, .oomKills: ["container"]
        case .certificateDays, .replicationLagSeconds: ["check"]
        }
    }

    /// Counted over a window rather than sampled.
    public var isCounted: Bool { self == .restarts || self == .oomKills }

    /// The bounds a threshold on it may take.
    public var range: ClosedRange<Double> {
        switch self {
        case .cpuPercent: 0...100_000
        case .cpuPercentOfLimit, .memoryPercentOfLimit, .diskPercent: 0...100
        case .restarts, .oomKills: 0...10_000
        case .certificateDays: -3650...3650
        case .replicationLagSeconds: 0...31_536_000
        }
    }

    public var unit: String {
        switch self {
        case .cpuPercent: "% of one core"
        case .cpuPercentOfLimit, .memoryPercentOfLimit, .diskPercent: "%"
        case .restarts: "starts in the window"
        case .oomKills: "OOM kills in the window"
        case .certificateDays: "days"
        case .replicationLagSeconds: "seconds"
        }
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

/// An alert channel as a tenant defines it: where notifications go and how they are written.
/// - `webhook`: the notification as JSON (`AlertNotification` in server/openapi.yaml), POSTed with an
///   HMAC-SHA256 signature over the timestamp and the body;
/// - `slack`, `discord`: a message to a Slack- or Discord-compatible incoming webhook;
/// - `alertmanager`: the alert posted to a Prometheus Alertmanager (`/api/v2/alerts`), again every
///   `repost_seconds` while it fires, with `endsAt` set when it recovers;
/// - `email`: a plain-text message over SMTP (STARTTLS or TLS from the start, optional AUTH).
public struct AlertChannelDefinition: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable {
        case webhook, slack, discord, alertmanager, email
    }

    public var name: String
    public var settings: AlertChannelSettings

    public var kind: Kind { settings.kind }

    public static let minimumSecretLength = 16
    public static let maximumSecretLength = 256
    public static let maximumRecipients = 20
    public static let repostRange = 30...3600
    public static let defaultRepostSeconds = 60
    static let fieldsByKind: [Kind: [String]] = [
        .webhook: ["name", "type", "url", "secret"],
        .slack: ["name", "type", "url"],
        .discord: ["name", "type", "url"],
        .alertmanager: ["name", "type", "url", "repost_seconds"],
        .email: ["name", "type", "smtp_host", "smtp_port", "smtp_security", "smtp_verify_tls", "smtp_username", "smtp_password",
                 "from", "to"],
    ]
    static let serverFields: Set<String> = ["id", "destination", "created_at"]

    /// Validates a POST body; a webhook's missing secret is generated (and shown once, in the answer).
    public static func parse(_ body: JSONValue) throws -> (definition: AlertChannelDefinition, secretGenerated: Bool) {
        let fields = try JSONFields(body, path: "", what: "the request body")
        let type = try fields.text("type", required: true, maximumLength: 20, controlCharacters: false)!
        guard let kind = Kind(rawValue: type) else {
            throw fields.error("type", "must be one of webhook, slack, discord, alertmanager, email (got \"\(type)\")")
        }
        try fields.refuseUnknown(allowed: fieldsByKind[kind]!, ignoring: serverFields,
                                 known: "\(kind == .email || kind == .alertmanager ? "an" : "a") \(kind.rawValue) channel takes")
        let name = try fields.text("name", required: true, maximumLength: AlertRuleDefinition.maximumNameLength, controlCharacters: false)!
        guard !name.isEmpty else { throw fields.error("name", "must not be empty") }
        var settings = AlertChannelSettings(kind: kind)
        var generated = false
        switch kind {
        case .webhook, .slack, .discord, .alertmanager:
            guard let url = try fields.text("url", required: true, maximumLength: CheckDefinition.maximumTargetLength,
                                            controlCharacters: false), !url.isEmpty else {
                throw fields.error("url", "is required: the http(s) URL the notifications are POSTed to")
            }
            if let problem = CheckTargetSyntax.httpURLProblem(url) { throw fields.error("url", problem) }
            settings.url = url
            if kind == .alertmanager {
                // An Alertmanager's address alone means its alerts endpoint.
                if let components = URLComponents(string: url), components.path.isEmpty || components.path == "/",
                   components.query == nil {
                    settings.url = url.hasSuffix("/") ? url + "api/v2/alerts" : url + "/api/v2/alerts"
                }
                settings.repostSeconds = try fields.integer("repost_seconds", in: repostRange,
                                                            note: "how often a firing alert is posted again; its endsAt is three times that ahead")
                    ?? defaultRepostSeconds
            }
            if kind == .webhook {
                let secret = try fields.text("secret", required: false, maximumLength: maximumSecretLength, controlCharacters: false)
                if let secret, secret.count < minimumSecretLength {
                    throw fields.error("secret", "must be at least \(minimumSecretLength) characters (or left out: one is generated)")
                }
                generated = secret == nil
                settings.secret = secret ?? RandomSecret.base64URL()
            }
        case .email:
            guard let host = try fields.text("smtp_host", required: true, maximumLength: 253, controlCharacters: false) else {
                throw fields.error("smtp_host", "is required")
            }
            if let problem = CheckTargetSyntax.hostProblem(host) { throw fields.error("smtp_host", problem) }
            let securityText = try fields.text("smtp_security", required: false, maximumLength: 20, controlCharacters: false) ?? "starttls"
            guard let security = SMTPSecurity(rawValue: securityText) else {
                throw fields.error("smtp_security", "must be starttls (port 587: plain, then STARTTLS, which the server must offer) "
                    + "or tls (port 465: TLS from the first byte) (got \"\(securityText)\")")
            }
            let port = try fields.integer("smtp_port", in: 1...65535) ?? security.defaultPort
            let username = try fields.text("smtp_username", required: false, maximumLength: 256, controlCharacters: false)
            let password = try fields.text("smtp_password", required: false, maximumLength: 256, controlCharacters: false)
            if password != nil, username == nil { throw fields.error("smtp_username", "is required with smtp_password") }
            settings.smtp = SMTPServer(host: host, port: port, security: security, verifyTLS: try fields.bool("smtp_verify_tls") ?? true,
                                       username: username, password: password)
            guard let from = try fields.text("from", required: true, maximumLength: 254, controlCharacters: false) else {
                throw fields.error("from", "is required")
            }
            if let problem = emailAddressProblem(from) { throw fields.error("from", problem) }
            settings.from = from
            guard let to = try fields.textList("to", maximumCount: maximumRecipients, maximumLength: 254) else {
                throw fields.error("to", "is required: the address (or a list of up to \(maximumRecipients)) the alerts are mailed to")
            }
            for (index, address) in to.enumerated() {
                if let problem = emailAddressProblem(address) { throw fields.error(to.count == 1 ? "to" : "to[\(index)]", problem) }
            }
            settings.to = to
        }
        return (AlertChannelDefinition(name: name, settings: settings), generated)
    }

    /// `local@domain` in plain ASCII, nothing that could end an SMTP command or a header (no spaces, angle
    /// brackets, quotes, commas or line breaks).
    static func emailAddressProblem(_ text: String) -> String? {
        let example = "must be an address such as ops@example.com (got \"\(text)\")"
        guard text.utf8.count <= 254, let at = text.lastIndex(of: "@") else { return example }
        let local = text[..<at], domain = String(text[text.index(after: at)...])
        let forbidden = Set("<>()[]\\,;:\"@ ".unicodeScalars)
        guard !local.isEmpty, local.utf8.count <= 64,
              local.unicodeScalars.allSatisfy({ (0x21...0x7E).contains($0.value) && !forbidden.contains($0) }) else { return example }
        if CheckTargetSyntax.dnsNameProblem(domain) != nil { return example }
        return nil
    }

    /// What may be shown: the URL's scheme and host (a webhook URL often carries a token in its path), or the
    /// mail server and how many are mailed.
    public var destination: String {
        if let smtp = settings.smtp {
            return "smtp://\(smtp.host.contains(":") ? "[\(smtp.host)]" : smtp.host):\(smtp.port) → \(settings.to.count) recipient\(settings.to.count == 1 ? "" : "s")"
        }
        guard let components = URLComponents(string: settings.url), let scheme = components.scheme, let host = components.host else { return "" }
        return "\(scheme)://\(host)\(components.port.map { ":\($0)" } ?? "")/…"
    }
}

/// What a channel needs to deliver, sealed in the database as JSON with the server's secret key.
public struct AlertChannelSettings: Sendable, Equatable {
    public var kind: AlertChannelDefinition.Kind
    public var url = ""
    public var secret = ""
    public var repostSeconds: Int?
    public var smtp: SMTPServer?
    public var from = ""
    public var to: [String] = []

    public init(kind: AlertChannelDefinition.Kind) { self.kind = kind }

    /// The sealed form.
    public var json: JSONValue {
        var object: [String: JSONValue] = ["type": .string(kind.rawValue)]
        if !url.isEmpty { object["url"] = .string(url) }
        if !secret.isEmpty { object["secret"] = .string(secret) }
        if let repostSeconds { object["repost_seconds"] = .integer(Int64(repostSeconds)) }
        if let smtp {
            object["smtp"] = .object([
                "host": .string(smtp.host), "port": .integer(Int64(smtp.port)), "security": .string(smtp.security.rawValue),
                "verify_tls": .bool(smtp.verifyTLS), "username": smtp.username.map(JSONValue.string) ?? .null,
                "password": smtp.password.map(JSONValue.string) ?? .null,
            ])
            object["from"] = .string(from)
            object["to"] = .array(to.map(JSONValue.string))
        }
        return .object(object)
    }

    /// Reads the sealed form back (a webhook channel made before there were other kinds holds only url and secret).
    public init(json: JSONValue, kind: AlertChannelDefinition.Kind) throws {
        guard case .object(let fields) = json else { throw StoreError(.invalid, "alert channel settings are not a JSON object") }
        self.kind = kind
        if case .string(let url)? = fields["url"] { self.url = url }
        if case .string(let secret)? = fields["secret"] { self.secret = secret }
        if case .integer(let seconds)? = fields["repost_seconds"] { repostSeconds = Int(seconds) }
        if case .object(let smtp)? = fields["smtp"], case .string(let host)? = smtp["host"], case .integer(let port)? = smtp["port"],
           case .string(let securityText)? = smtp["security"], let security = SMTPSecurity(rawValue: securityText) {
            var verify = true
            if case .bool(let flag)? = smtp["verify_tls"] { verify = flag }
            var username: String?, password: String?
            if case .string(let text)? = smtp["username"] { username = text }
            if case .string(let text)? = smtp["password"] { password = text }
            self.smtp = SMTPServer(host: host, port: Int(port), security: security, verifyTLS: verify, username: username, password: password)
        }
        if case .string(let from)? = fields["from"] { self.from = from }
        if case .array(let list)? = fields["to"] { to = list.compactMap { if case .string(let text) = $0 { return text } else { return nil } } }
        let complete: Bool
        switch kind {
        case .webhook: complete = !url.isEmpty && !secret.isEmpty
        case .slack, .discord: complete = !url.isEmpty
        case .alertmanager: complete = !url.isEmpty && repostSeconds != nil
        case .email: complete = smtp != nil && !from.isEmpty && !to.isEmpty
        }
        guard complete else { throw StoreError(.invalid, "the \(kind.rawValue) channel's settings are incomplete") }
    }
}
