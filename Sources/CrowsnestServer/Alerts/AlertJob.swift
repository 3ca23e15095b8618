import CrowsnestWire
import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle

/// Alert evaluation, a singleton under the `job:alerts` lease: every `tick` the holder applies each tenant's
/// rules to their targets' recent spans (`AlertStateMachine`) and writes the state changes together with the
/// notifications they cause, in one transaction fenced by the lease's token — a replica that lost the lease
/// mid-round writes nothing, and the one that took it over evaluates the same changes again. Delivery is
/// `AlertDelivery`'s, on every replica.
public final class AlertJob: Service, Sendable {
    public struct Configuration: Sendable {
        public var tick: Duration = .seconds(5)
        public var leaseTTL: Duration = .seconds(30)
        public var replicaID = UUID()
        public init() {}
    }

    public static let leaseKey = "job:alerts"

    /// What one round did.
    public struct Round: Sendable, Equatable {
        public var holder = false
        public var rules = 0
        public var notifications = 0
    }

    public let configuration: Configuration
    private let client: PostgresClient
    private let leases: LeaseStore
    private let singleton: SingletonLease
    private let logger: Logger

    public init(configuration: Configuration = .init(), client: PostgresClient, logger: Logger) {
        self.configuration = configuration
        self.client = client
        self.leases = LeaseStore(client: client, logger: logger)
        self.singleton = SingletonLease(key: Self.leaseKey, replicaID: configuration.replicaID, ttl: configuration.leaseTTL,
                                        job: "alert evaluation", leases: leases, logger: logger)
        self.logger = logger
    }

    public func run() async throws {
        await singleton.runRounds(tick: configuration.tick) { try await self.round() }
    }

    /// Holds (or takes) the lease and, when holding it, evaluates every tenant's rules once.
    @discardableResult
    public func round(now: Date = Date()) async throws -> Round {
        var round = Round()
        guard let lease = try await singleton.hold() else { return round }
        round.holder = true
        for tenantID in try await AlertStore(client: client, logger: logger).tenantsWithRules() {
            let (rules, notifications) = try await evaluate(tenantID: tenantID, lease: lease, now: now)
            round.rules += rules
            round.notifications += notifications
        }
        return round
    }

    /// One tenant: every rule against its targets; the changes and notifications written fenced by `lease`.
    func evaluate(tenantID: UUID, lease: Lease, now: Date) async throws -> (rules: Int, notifications: Int) {
        let stored = try await DefinitionStore(.alertRules, client: client, logger: logger).list(tenantID: tenantID)
        let previous = try await AlertStore(client: client, logger: logger).states(tenantID: tenantID)
        let queries = UptimeQueries(client: client, logger: logger)
        let tenantName = try await queries.tenant(tenantID).name
        let nowMicros = now.unixMicros
        var saves: [(ruleID: UUID, targetID: String, state: AlertTargetState?, version: Date)] = []
        var drafts: [AlertNotificationDraft] = []
        for item in stored {
            guard let rule = try? AlertRuleDefinition.parse(item.definition) else {
                logger.warning("alert rule skipped: its stored definition no longer validates", metadata: ["alert_rule.id": "\(item.id)"])
                continue
            }
            let targets = try await Self.targets(of: rule, tenantID: tenantID, client: client, logger: logger)
            let lookback = Int64(max(rule.forSeconds, rule.flapMinutes * 60)) * 1_000_000 + 60_000_000
            let spans = try await StatusSpanStore.spans(tenantID: tenantID, targetIDs: targets.map(\.id.description),
                                                        fromMicros: nowMicros - lookback, toMicros: nowMicros, on: client, logger: logger)
            let remembered = previous[item.id] ?? [:]
            for target in targets {
                let key = target.id.description
                let targetSpans = spans[key] ?? []
                // A rule edited since the state was kept starts afresh.
                let before = remembered[key].flatMap { $0.ruleVersion == item.updatedAt ? $0.state : nil }
                let outcome = AlertStateMachine.evaluate(rule: rule, spans: targetSpans, previous: before, nowMicros: nowMicros)
                if outcome.state != before || (remembered[key] != nil && before == nil) {
                    saves.append((item.id, key, outcome.state, item.updatedAt))
                }
                guard let kind = outcome.notification else { continue }
                for channel in rule.channels.compactMap(AlertChannelID.init) {
                    let id = UUID()
                    drafts.append(AlertNotificationDraft(
                        id: id, ruleID: item.id, channelID: channel.uuid, targetID: key, kind: kind,
                        payload: Self.payload(id: id, kind: kind, ruleID: item.id, rule: rule, target: target, spans: targetSpans,
                                              state: outcome.state ?? before, tenant: tenantName, now: now)))
                }
            }
            // Targets that left the rule (removed, or no longer matching) are forgotten without a word.
            let current = Set(targets.map(\.id.description))
            for key in remembered.keys where !current.contains(key) { saves.append((item.id, key, nil, item.updatedAt)) }
        }
        let ruleIDs = stored.map(\.id)
        if saves.isEmpty && drafts.isEmpty && previous.keys.allSatisfy(ruleIDs.contains) { return (stored.count, 0) }
        let logger = self.logger
        try await leases.withFencedTransaction(key: Self.leaseKey, token: lease.token) { connection in
            for save in saves {
                try await AlertStore.save(tenantID: tenantID, ruleID: save.ruleID, targetID: save.targetID, state: save.state,
                                          ruleVersion: save.version, on: connection, logger: logger)
            }
            try await AlertStore.forgetRulesOtherThan(ruleIDs, tenantID: tenantID, on: connection, logger: logger)
            try await AlertStore.enqueue(drafts, tenantID: tenantID, on: connection, logger: logger)
        }
        for draft in drafts {
            logger.info("alert notification queued", metadata: [
                "tenant.id": "\(tenantID)", "alert_rule.id": "\(draft.ruleID)", "target.id": "\(draft.targetID)",
                "notification.kind": "\(draft.kind.rawValue)", "notification.id": "\(draft.id)",
            ])
        }
        return (stored.count, drafts.count)
    }

    /// The targets a rule watches now, with their names.
    static func targets(of rule: AlertRuleDefinition, tenantID: UUID, client: PostgresClient, logger: Logger) async throws -> [NamedTarget] {
        let queries = UptimeQueries(client: client, logger: logger)
        switch rule.selector {
        case .targets(let texts):
            let ids = texts.compactMap(TargetID.init)
            let names = try await queries.existing(tenantID: tenantID, ids: ids)
            return ids.compactMap { id in names[id].map { NamedTarget(id: id, name: $0) } }
        case .service(let text):
            guard let id = ServiceID(text),
                  let stored = try await DefinitionStore(.services, client: client, logger: logger).get(tenantID: tenantID, id: id.uuid),
                  let service = try? ServiceDefinition.parse(stored.definition) else { return [] }
            return try await queries.members(tenantID: tenantID, service: service)
        case .labels(let labels):
            let selection = ServiceDefinition(name: "labels", targets: [], labels: labels, downRule: .any, policy: SLAPolicy(),
                                              isPublic: false)
            return try await queries.members(tenantID: tenantID, service: selection)
        }
    }

    /// The notification's body: what receivers get (`AlertNotification` in server/openapi.yaml).
    static func payload(id: UUID, kind: AlertNotificationKind, ruleID: UUID, rule: AlertRuleDefinition, target: NamedTarget,
                        spans: [SpanInterval], state: AlertTargetState?, tenant: String, now: Date) -> JSONValue {
        let current = spans.last
        let since = state?.activeSinceMicros ?? current?.startMicros
        let stateName = current?.state.rawValue ?? SpanState.unknown.rawValue
        let summary: String
        switch kind {
        case .firing: summary = "\(target.id.kind) \(target.name) is \(stateName)"
        case .reminder: summary = "\(target.id.kind) \(target.name) is still \(stateName)"
        case .resolved: summary = "\(target.id.kind) \(target.name) recovered: \(stateName)"
        case .flapping: summary = "\(target.id.kind) \(target.name) is flapping: it changed state \(rule.flapChanges) times or more in \(rule.flapMinutes) min"
        case .flappingStopped: summary = "\(target.id.kind) \(target.name) stopped flapping: \(stateName)"
        }
        return .object([
            "id": .string(id.uuidString.lowercased()),
            "kind": .string(kind.rawValue),
            "summary": .string(summary),
            "tenant": .string(tenant),
            "rule": .object(["id": .string("a-" + ruleID.uuidString.lowercased()), "name": .string(rule.name)]),
            "target": .object(["id": .string(target.id.description), "kind": .string(target.id.kind), "name": .string(target.name)]),
            "state": .string(stateName),
            "since": since.map { .string(RFC3339.string(from: Date(unixMicros: $0))) } ?? .null,
            "cause": .string(current?.cause ?? ""),
            "created_at": .string(RFC3339.string(from: now)),
        ])
    }
}
