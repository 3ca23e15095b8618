import CrowsnestWire
import Foundation

/// A service as a tenant defines it: a named group of targets (listed, or every container and host carrying
/// some labels), the rule that makes it down, and its SLA policy.
public struct ServiceDefinition: Sendable, Equatable {
    public var name: String
    /// Target ids (`h-…`, `c-…`, `k-…`) named explicitly.
    public var targets: [String]
    /// `key=value` labels: every container (Docker labels) and host (agent labels) carrying all of them belongs.
    public var labels: [String]
    public var downRule: ServiceDownRule
    public var policy: SLAPolicy
    /// Shown on the tenant's public status page.
    public var isPublic: Bool

    public static let maximumNameLength = 100
    public static let maximumTargets = 500
    public static let maximumLabels = 20
    static let fieldNames = ["name", "targets", "labels", "down_when", "k", "objective_percent", "degraded_counts_as_down",
                         "business_hours", "time_zone", "public"]
    static let serverFields: Set<String> = ["id", "created_at", "updated_at"]

    /// Validates a POST or PUT body; throws `CheckValidationError` naming the first wrong field.
    public static func parse(_ body: JSONValue) throws -> ServiceDefinition {
        let fields = try JSONFields(body, path: "", what: "the request body")
        try fields.refuseUnknown(allowed: fieldNames, ignoring: serverFields, known: "a service takes")
        let name = try fields.text("name", required: true, maximumLength: maximumNameLength, controlCharacters: false)!
        guard !name.isEmpty else { throw fields.error("name", "must not be empty") }
        let targets = try stringList(fields, "targets", maximumCount: maximumTargets) { text in
            TargetID(text) == nil ? "must be a target id: h-<agent uuid>, c-<agent uuid>-<container name> or k-<check uuid>" : nil
        }
        let labels = try stringList(fields, "labels", maximumCount: maximumLabels) { AgentLabels.problem($0) }
        guard !targets.isEmpty || !labels.isEmpty else {
            throw fields.error("targets", "or labels must name at least one target: a list of target ids, or key=value labels that containers or hosts carry")
        }
        let rule: ServiceDownRule
        switch try fields.text("down_when", required: false, maximumLength: 10) ?? "any" {
        case "any": rule = .any
        case "all": rule = .all
        case "k_of_n":
            guard let k = try fields.integer("k", in: 1...maximumTargets, note: "how many targets down make the service down") else {
                throw fields.error("k", "is required with down_when k_of_n")
            }
            rule = .atLeast(k)
        case let other:
            throw fields.error("down_when", "must be one of any, all, k_of_n (got \"\(other)\")")
        }
        if case .atLeast = rule {} else if fields.value("k") != nil {
            throw fields.error("k", "is only taken with down_when k_of_n")
        }
        let objective = try fields.number("objective_percent", in: 1...100) ?? 99.9
        let degraded = try fields.bool("degraded_counts_as_down") ?? false
        let hours = try fields.value("business_hours").map { try parseBusinessHours($0) }
        let zone = try timeZone(fields, "time_zone")
        let policy = SLAPolicy(objectivePercent: objective, degradedCountsAsDown: degraded, businessHours: hours, timeZone: zone)
        return ServiceDefinition(name: name, targets: targets, labels: labels, downRule: rule, policy: policy,
                                 isPublic: try fields.bool("public") ?? false)
    }

    /// The definition as the API shows it and the database keeps it (`services.definition`).
    public var json: JSONValue {
        var object: [String: JSONValue] = [
            "name": .string(name), "targets": .array(targets.map(JSONValue.string)), "labels": .array(labels.map(JSONValue.string)),
            "down_when": .string(downRule.name), "objective_percent": .number(policy.objectivePercent),
            "degraded_counts_as_down": .bool(policy.degradedCountsAsDown),
            "business_hours": policy.businessHours.map(Self.businessHoursJSON) ?? .null,
            "time_zone": policy.timeZone.map(JSONValue.string) ?? .null, "public": .bool(isPublic),
        ]
        if case .atLeast(let k) = downRule { object["k"] = .integer(Int64(k)) }
        return .object(object)
    }

    /// `{"days":["mon",…],"start":"09:00","end":"17:00"}`.
    static func parseBusinessHours(_ value: JSONValue) throws -> WeeklySchedule {
        let fields = try JSONFields(value, path: "business_hours", what: "business_hours")
        try fields.refuseUnknown(allowed: ["days", "start", "end"], known: "business_hours takes")
        let days = try parseDays(fields)
        let start = try clockMinute(fields, "start", allowMidnightEnd: false)
        let end = try clockMinute(fields, "end", allowMidnightEnd: true)
        guard end > start else { throw fields.error("end", "must be after start (business hours do not cross midnight)") }
        return WeeklySchedule(days: days, startMinute: start, durationMinutes: end - start)
    }

    static func businessHoursJSON(_ schedule: WeeklySchedule) -> JSONValue {
        .object(["days": daysJSON(schedule.days), "start": .string(clockText(schedule.startMinute)),
                 "end": .string(clockText(schedule.startMinute + schedule.durationMinutes))])
    }

    /// `days`: 1 to 7 distinct day names (`mon` … `sun`).
    static func parseDays(_ fields: JSONFields) throws -> Set<Int> {
        let names = try stringList(fields, "days", maximumCount: 7) { name in
            WeeklySchedule.dayNames.contains(name) ? nil : "must be a day: \(WeeklySchedule.dayNames.joined(separator: ", "))"
        }
        guard !names.isEmpty else { throw fields.error("days", "is required: a list of days such as [\"mon\",\"tue\"]") }
        return Set(names.map { WeeklySchedule.dayNames.firstIndex(of: $0)! + 1 })
    }

    static func daysJSON(_ days: Set<Int>) -> JSONValue {
        .array(days.sorted().map { .string(WeeklySchedule.dayNames[$0 - 1]) })
    }

    /// `HH:MM` as minutes after midnight; `24:00` only for an end.
    static func clockMinute(_ fields: JSONFields, _ key: String, allowMidnightEnd: Bool) throws -> Int {
        guard let text = try fields.text(key, required: true, maximumLength: 5) else { throw fields.error(key, "is required") }
        let parts = text.split(separator: ":")
        guard text.count == 5, parts.count == 2, let hour = Int(parts[0]), let minute = Int(parts[1]),
              (0...59).contains(minute), (0...23).contains(hour) || (allowMidnightEnd && hour == 24 && minute == 0)
        else { throw fields.error(key, "must be a time of day as HH:MM, such as 09:00 (got \"\(text)\")") }
        return hour * 60 + minute
    }

    static func clockText(_ minute: Int) -> String { String(format: "%02d:%02d", minute / 60, minute % 60) }

    /// An IANA time zone name, or nil when not given.
    static func timeZone(_ fields: JSONFields, _ key: String) throws -> String? {
        guard let text = try fields.text(key, required: false, maximumLength: 64, controlCharacters: false) else { return nil }
        guard TimeZone(identifier: text) != nil else {
            throw fields.error(key, "must be an IANA time zone name such as Europe/Berlin or UTC (got \"\(text)\")")
        }
        return text
    }

    /// A list of distinct strings, each checked by `problem`; empty when not given.
    static func stringList(_ fields: JSONFields, _ key: String, maximumCount: Int,
                           problem: (String) -> String?) throws -> [String] {
        guard let value = fields.value(key) else { return [] }
        guard case .array(let items) = value else { throw fields.error(key, "must be a list of strings (got \(value.kindDescription))") }
        guard items.count <= maximumCount else { throw fields.error(key, "must hold at most \(maximumCount) entries (got \(items.count))") }
        var result: [String] = []
        for (index, item) in items.enumerated() {
            let field = "\(key)[\(index)]"
            guard case .string(let text) = item else { throw fields.error(field, "must be a string (got \(item.kindDescription))") }
            if let issue = JSONFields.textProblem(text, maximumLength: 400, controlCharacters: false) ?? problem(text) {
                throw fields.error(field, issue)
            }
            guard !result.contains(text) else { throw fields.error(field, "repeats \"\(text)\"") }
            result.append(text)
        }
        return result
    }
}

/// A maintenance window: once (`starts_at`–`ends_at`) or every week (`recurrence` in a time zone), for some
/// targets, some services, or (neither given) the whole tenant. Its time counts as `maintenance`: on neither side
/// of availability.
public struct MaintenanceWindowDefinition: Sendable, Equatable {
    public enum Timing: Sendable, Equatable {
        case once(startMicros: Int64, endMicros: Int64)
        case weekly(WeeklySchedule, timeZone: String?)
    }

    public var name: String
    public var targets: [String]
    /// Service ids (`s-<uuid>`).
    public var services: [String]
    public var timing: Timing

    public static let maximumDurationMinutes = 7 * 1440
    static let fieldNames = ["name", "targets", "services", "starts_at", "ends_at", "recurrence", "time_zone"]
    static let serverFields: Set<String> = ["id", "created_at"]

    /// Covers the whole tenant: no targets or services named.
    public var isTenantWide: Bool { targets.isEmpty && services.isEmpty }

    public static func parse(_ body: JSONValue) throws -> MaintenanceWindowDefinition {
        let fields = try JSONFields(body, path: "", what: "the request body")
        try fields.refuseUnknown(allowed: Self.fieldNames, ignoring: serverFields, known: "a maintenance window takes")
        let name = try fields.text("name", required: true, maximumLength: ServiceDefinition.maximumNameLength, controlCharacters: false)!
        guard !name.isEmpty else { throw fields.error("name", "must not be empty") }
        let targets = try ServiceDefinition.stringList(fields, "targets", maximumCount: ServiceDefinition.maximumTargets) { text in
            TargetID(text) == nil ? "must be a target id: h-<agent uuid>, c-<agent uuid>-<container name> or k-<check uuid>" : nil
        }
        let services = try ServiceDefinition.stringList(fields, "services", maximumCount: 100) { text in
            ServiceID(text) == nil ? "must be a service id such as s-0c0ffee0-0000-4000-8000-000000000001" : nil
        }
        let timing: Timing
        if let recurrence = fields.value("recurrence") {
            guard fields.value("starts_at") == nil, fields.value("ends_at") == nil else {
                throw fields.error("recurrence", "cannot be given with starts_at and ends_at: a window is either once or weekly")
            }
            let inner = try JSONFields(recurrence, path: "recurrence", what: "recurrence")
            try inner.refuseUnknown(allowed: ["days", "start", "duration_minutes"], known: "recurrence takes")
            let days = try ServiceDefinition.parseDays(inner)
            let start = try ServiceDefinition.clockMinute(inner, "start", allowMidnightEnd: false)
            guard let duration = try inner.integer("duration_minutes", in: 1...maximumDurationMinutes) else {
                throw inner.error("duration_minutes", "is required")
            }
            timing = .weekly(WeeklySchedule(days: days, startMinute: start, durationMinutes: duration),
                             timeZone: try ServiceDefinition.timeZone(fields, "time_zone"))
        } else {
            guard let startText = try fields.text("starts_at", required: false, maximumLength: 40) else {
                throw fields.error("starts_at", "is required (with ends_at) unless the window has a weekly recurrence")
            }
            let endText = try fields.text("ends_at", required: true, maximumLength: 40)!
            guard let start = RFC3339.date(from: startText) else { throw fields.error("starts_at", "must be an RFC 3339 timestamp (got \"\(startText)\")") }
            guard let end = RFC3339.date(from: endText) else { throw fields.error("ends_at", "must be an RFC 3339 timestamp (got \"\(endText)\")") }
            guard end > start else { throw fields.error("ends_at", "must be after starts_at") }
            guard end.timeIntervalSince(start) <= 366 * 86_400 else { throw fields.error("ends_at", "must be at most 366 days after starts_at") }
            guard fields.value("time_zone") == nil else {
                throw fields.error("time_zone", "is only taken with a recurrence (starts_at and ends_at carry their own offset)")
            }
            timing = .once(startMicros: start.unixMicros, endMicros: end.unixMicros)
        }
        return MaintenanceWindowDefinition(name: name, targets: targets, services: services, timing: timing)
    }

    public var json: JSONValue {
        var object: [String: JSONValue] = ["name": .string(name), "targets": .array(targets.map(JSONValue.string)),
                                           "services": .array(services.map(JSONValue.string))]
        switch timing {
        case .once(let start, let end):
            object["starts_at"] = .string(RFC3339.string(from: Date(unixMicros: start)))
            object["ends_at"] = .string(RFC3339.string(from: Date(unixMicros: end)))
            object["recurrence"] = .null
            object["time_zone"] = .null
        case .weekly(let schedule, let zone):
            object["starts_at"] = .null
            object["ends_at"] = .null
            object["recurrence"] = .object(["days": ServiceDefinition.daysJSON(schedule.days),
                                            "start": .string(ServiceDefinition.clockText(schedule.startMinute)),
                                            "duration_minutes": .integer(Int64(schedule.durationMinutes))])
            object["time_zone"] = zone.map(JSONValue.string) ?? .null
        }
        return .object(object)
    }

    /// The window's intervals within `[from, to)`; `tenantTimeZone` for a weekly window without its own zone.
    public func intervals(from: Int64, to: Int64, tenantTimeZone: TimeZone) -> [(start: Int64, end: Int64)] {
        switch timing {
        case .once(let start, let end):
            let s = max(start, from), e = min(end, to)
            return s < e ? [(s, e)] : []
        case .weekly(let schedule, let zone):
            return schedule.intervals(from: from, to: to, timeZone: zone.flatMap(TimeZone.init(identifier:)) ?? tenantTimeZone)
        }
    }
}

/// A service's id as the API shows it: `s-<uuid>`.
public struct ServiceID: Sendable, Hashable, CustomStringConvertible {
    public var uuid: UUID

    public init(uuid: UUID) { self.uuid = uuid }

    public init?(_ text: String) {
        guard text.hasPrefix("s-"), text.utf8.count == 38, let uuid = UUID(uuidString: String(text.dropFirst(2))) else { return nil }
        self.uuid = uuid
    }

    public var description: String { "s-" + uuid.uuidString.lowercased() }
}
