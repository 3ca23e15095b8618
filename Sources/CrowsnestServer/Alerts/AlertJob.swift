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
        /// Tenants whose evaluation failed this round (logged).
        public var failedTenants = 0
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
            // One tenant's failure does not stop the others' alerts; losing the lease stops the round.
            do {
                let (rules, notifications) = try await evaluate(tenantID: tenantID, lease: lease, now: now)
                round.rules += rules
                round.notifications += notifications
            } catch let error as LeaseError {
                throw error
            } catch {
                round.failedTenants += 1
                logger.error("alert evaluation of a tenant failed; the others go on", metadata: [
                    "tenant.id": "\(tenantID)", "error": "\(String(reflecting: error))",
                ])
            }
        }
        return round
    }

    /// What one tenant's evaluation decided: the states to keep or forget and the notifications to queue.
    public struct Plan: Sendable {
        public var rules = 0
        public var targets = 0
        var saves: [(ruleID: UUID, targetID: String, state: AlertTargetState?, version: Date)] = []
        public var drafts: [AlertNotificationDraft] = []
        var ruleIDs: [UUID] = []
        /// States are kept for rules the tenant no longer has.
        var staleRules = false

        public var writesNothing: Bool { saves.isEmpty && drafts.isEmpty && !staleRules }
    }

    /// One tenant: every rule against its targets; the changes and notifications written fenced by `lease`.
    func evaluate(tenantID: UUID, lease: Lease, now: Date) async throws -> (rules: Int, notifications: Int) {
        let plan = try await plan(tenantID: tenantID, now: now)
        if plan.writesNothing { return (plan.rules, 0) }
        let logger = self.logger
        try await leases.withFencedTransaction(key: Self.leaseKey, token: lease.token) { connection in
            for save in plan.saves {
                try await AlertStore.save(tenantID: tenantID, ruleID: save.ruleID, targetID: save.targetID, state: save.state,
                                          ruleVersion: save.version, on: connection, logger: logger)
            }
            try await AlertStore.forgetRulesOtherThan(plan.ruleIDs, tenantID: tenantID, on: connection, logger: logger)
            try await AlertStore.enqueue(plan.drafts, tenantID: tenantID, on: connection, logger: logger)
        }
        for draft in plan.drafts {
            logger.info("alert notification queued", metadata: [
                "tenant.id": "\(tenantID)", "alert_rule.id": "\(draft.ruleID)", "target.id": "\(draft.targetID)",
                "notification.kind": "\(draft.kind.rawValue)", "notification.id": "\(draft.id)",
            ])
        }
        return (plan.rules, plan.drafts.count)
    }

    /// Applies every rule of the tenant to its targets' recent spans, writing nothing (the benchmark times this).
    public func plan(tenantID: UUID, now: Date) async throws -> Plan {
        let stored = try await DefinitionStore(.alertRules, client: client, logger: logger).list(tenantID: tenantID)
        let previous = try await AlertStore(client: client, logger: logger).states(tenantID: tenantID)
        let queries = UptimeQueries(client: client, logger: logger)
        let (tenantName, timeZone) = try await queries.tenant(tenantID)
        let windows = try await UptimeReports(client: client, logger: logger).maintenanceWindows(tenantID: tenantID)
        let silences = try await AlertSilenceStore(client: client, logger: logger).active(tenantID: tenantID)
        let reposts = try await AlertChannelStore(client: client, logger: logger).repostSeconds(tenantID: tenantID)
        let nowMicros = now.unixMicros
        var saves: [(ruleID: UUID, targetID: String, state: AlertTargetState?, version: Date)] = []
        var drafts: [AlertNotificationDraft] = []
        var targetCount = 0
        // Every rule's targets, then every target's spans in one query (a round is a few queries, not a few per rule).
        var parsed: [(item: StoredDefinition, rule: AlertRuleDefinition)] = []
        for item in stored {
            guard let rule = try? AlertRuleDefinition.parse(item.definition) else {
                logger.warning("alert rule skipped: its stored definition no longer validates", metadata: ["alert_rule.id": "\(item.id)"])
                continue
            }
            parsed.append((item, rule))
        }
        let resolved = try await Self.targets(of: parsed.map(\.rule), tenantID: tenantID, client: client, logger: logger)
        let lookback = Int64(parsed.map { max($0.rule.forSeconds, $0.rule.flapMinutes * 60) }.max() ?? 0) * 1_000_000 + 60_000_000
        let allTargets = Set(zip(parsed, resolved).filter { $0.0.rule.threshold == nil }.flatMap { $0.1.map(\.id.description) })
        let metrics = try await Self.metricData(parsed.map(\.rule), resolved, tenantID: tenantID, lookback: lookback, nowMicros: nowMicros,
                                                client: client, logger: logger)
        let spans = try await StatusSpanStore.spans(tenantID: tenantID, targetIDs: allTargets.sorted(), fromMicros: nowMicros - lookback,
                                                    toMicros: nowMicros, on: client, logger: logger)
        // Time in a maintenance window is `maintenance`, which no rule watches: a target down for planned work
        // does not alert (and one already firing is announced recovered when its window opens).
        let coverage = MaintenanceCoverage(windows: windows, from: nowMicros - lookback, to: nowMicros, timeZone: timeZone)
        for ((item, rule), targets) in zip(parsed, resolved) {
            let remembered = previous[item.id] ?? [:]
            let ruleSilences = silences.filter { $0.ruleID == nil || $0.ruleID == item.id }
            let refresh = rule.allChannels.compactMap { AlertChannelID($0).flatMap { reposts[$0.uuid] } }.min()
            targetCount += targets.count
            for target in targets {
                let key = target.id.description
                // An edited rule goes on from what was announced: a rename sends nothing again, and a target the
                // edit stops matching (other states) is announced recovered.
                let before = remembered[key]?.state
                let raw = rule.threshold.map { metrics.spans(for: key, threshold: $0, breachingBefore: before != nil, lookback: lookback,
                                                             nowMicros: nowMicros) } ?? spans[key] ?? []
                let targetSpans = Self.overlay(raw, maintenance: coverage.intervals(for: target.id), nowMicros: nowMicros)
                let circumstances = AlertStateMachine.Circumstances(
                    silenced: ruleSilences.contains { $0.covers(ruleID: item.id, targetID: key) }, refreshSeconds: refresh)
                let outcome = AlertStateMachine.evaluate(rule: rule, spans: targetSpans, previous: before, nowMicros: nowMicros,
                                                         circumstances: circumstances)
                if outcome.state != before || (remembered[key].map { $0.ruleVersion != item.updatedAt } ?? false) {
                    saves.append((item.id, key, outcome.state, item.updatedAt))
                }
                for kind in outcome.notifications {
                    for channel in Self.channels(for: kind, rule: rule, escalated: (outcome.state ?? before)?.escalatedMicros != nil,
                                                 reposts: reposts) {
                        let id = UUID()
                        drafts.append(AlertNotificationDraft(
                            id: id, ruleID: item.id, channelID: channel.uuid, targetID: key, kind: kind,
                            payload: Self.payload(id: id, kind: kind, ruleID: item.id, rule: rule, target: target, spans: targetSpans,
                                                  state: outcome.state ?? before, firing: outcome.state != nil, tenant: tenantName, now: now)))
                    }
                }
            }
            // Targets that left the rule (removed, or no longer matching) are forgotten; one announced firing is
            // announced resolved, so receivers do not keep an incident open for ever.
            let current = Set(targets.map(\.id.description))
            for (key, kept) in remembered where !current.contains(key) {
                saves.append((item.id, key, nil, item.updatedAt))
                guard kept.state.status == .firing, kept.state.announcedMicros != nil, rule.sendResolved, let id = TargetID(key) else { continue }
                let left = SpanInterval(state: .unknown, startMicros: nowMicros, endMicros: nil,
                                        cause: "no longer watched by this rule (removed, or no longer matching it)")
                for channel in Self.channels(for: .resolved, rule: rule, escalated: kept.state.escalatedMicros != nil, reposts: reposts) {
                    let notificationID = UUID()
                    drafts.append(AlertNotificationDraft(
                        id: notificationID, ruleID: item.id, channelID: channel.uuid, targetID: key, kind: .resolved,
                        payload: Self.payload(id: notificationID, kind: .resolved, ruleID: item.id, rule: rule,
                                              target: NamedTarget(id: id, name: key), spans: [left], state: kept.state, firing: false,
                                              tenant: tenantName, now: now)))
                }
            }
        }
        let ruleIDs = stored.map(\.id)
        return Plan(rules: stored.count, targets: targetCount, saves: saves, drafts: drafts, ruleIDs: ruleIDs,
                    staleRules: !previous.keys.allSatisfy(ruleIDs.contains))
    }

    /// The series (or event times) threshold rules need: one query per metric for every target of every rule on it.
    struct MetricData {
        var series: [AlertMetric: [String: [MetricPoint]]] = [:]
        var events: [AlertMetric: [String: [Int64]]] = [:]

        /// A target's breaching and clear spans under `threshold`.
        func spans(for target: String, threshold: AlertRuleDefinition.Threshold, breachingBefore: Bool, lookback: Int64,
                   nowMicros: Int64) -> [SpanInterval] {
            var points = series[threshold.metric]?[target] ?? []
            if let window = threshold.windowMinutes {
                points = ThresholdSeries.counts(of: events[threshold.metric]?[target] ?? [], windowMicros: Int64(window) * 60_000_000,
                                                fromMicros: nowMicros - lookback, nowMicros: nowMicros)
            }
            return ThresholdSeries.spans(points, threshold: threshold, breachingBefore: breachingBefore, nowMicros: nowMicros)
        }
    }

    static func metricData(_ rules: [AlertRuleDefinition], _ targets: [[NamedTarget]], tenantID: UUID, lookback: Int64, nowMicros: Int64,
                           client: PostgresClient, logger: Logger) async throws -> MetricData {
        var byMetric: [AlertMetric: Set<String>] = [:]
        var windows: [AlertMetric: Int] = [:]
        for (rule, ruleTargets) in zip(rules, targets) {
            guard let threshold = rule.threshold else { continue }
            byMetric[threshold.metric, default: []].formUnion(ruleTargets.map(\.id.description))
            if let window = threshold.windowMinutes { windows[threshold.metric] = max(windows[threshold.metric] ?? 0, window) }
        }
        let queries = AlertMetricQueries(client: client, logger: logger)
        var data = MetricData()
        for (metric, ids) in byMetric {
            let targets = ids.sorted().compactMap(TargetID.init)
            if let window = windows[metric] {
                data.events[metric] = try await queries.events(tenantID: tenantID, metric: metric, targets: targets,
                                                               fromMicros: nowMicros - lookback - Int64(window) * 60_000_000, toMicros: nowMicros)
            } else {
                data.series[metric] = try await queries.series(tenantID: tenantID, metric: metric, targets: targets,
                                                               fromMicros: nowMicros - lookback, toMicros: nowMicros)
            }
        }
        return data
    }

    /// Where a notification of `kind` goes: the rule's channels; an escalation to the escalation's channels, which
    /// then also hear the rest of that alert (its recovery); a refresh only to the Alertmanagers among them.
    static func channels(for kind: AlertNotificationKind, rule: AlertRuleDefinition, escalated: Bool, reposts: [UUID: Int]) -> [AlertChannelID] {
        let escalationChannels = rule.escalation?.channels ?? []
        let ids: [String]
        switch kind {
        case .escalation: ids = escalationChannels
        case .refresh:
            ids = (escalated ? rule.allChannels : rule.channels).filter { AlertChannelID($0).map { reposts[$0.uuid] != nil } ?? false }
        case .firing, .reminder, .flapping: ids = rule.channels
        case .resolved, .flappingStopped: ids = escalated ? rule.allChannels : rule.channels
        }
        return ids.compactMap(AlertChannelID.init)
    }

    /// `spans` with the time inside `maintenance` turned into `maintenance` (the open span counted up to now).
    static func overlay(_ spans: [SpanInterval], maintenance: [(start: Int64, end: Int64)], nowMicros: Int64) -> [SpanInterval] {
        guard !maintenance.isEmpty else { return spans }
        let closed = spans.map { span in
            var span = span
            if span.endMicros == nil { span.endMicros = max(nowMicros, span.startMicros) }
            return span
        }
        return IntervalSet.overlay(closed, maintenance: maintenance)
    }

    /// The targets each rule watches now, with their names: listed targets looked up together, each service and
    /// label set once.
    static func targets(of rules: [AlertRuleDefinition], tenantID: UUID, client: PostgresClient, logger: Logger) async throws -> [[NamedTarget]] {
        let queries = UptimeQueries(client: client, logger: logger)
        let listed = Array(Set(rules.flatMap { $0.targetIDs.compactMap(TargetID.init) }))
        let names = try await queries.existing(tenantID: tenantID, ids: listed)
        var selections: [String: [NamedTarget]] = [:]
        var result: [[NamedTarget]] = []
        for rule in rules {
            switch rule.selector {
            case .targets(let texts):
                result.append(texts.compactMap(TargetID.init).compactMap { id in names[id].map { NamedTarget(id: id, name: $0) } })
            case .service(let text):
                if selections["s:" + text] == nil {
                    var members: [NamedTarget] = []
                    if let id = ServiceID(text),
                       let stored = try await DefinitionStore(.services, client: client, logger: logger).get(tenantID: tenantID, id: id.uuid),
                       let service = try? ServiceDefinition.parse(stored.definition) {
                        members = try await queries.members(tenantID: tenantID, service: service)
                    }
                    selections["s:" + text] = members
                }
                result.append(selections["s:" + text]!)
            case .labels(let labels):
                let key = "l:" + labels.sorted().joined(separator: "\u{0}")
                if selections[key] == nil {
                    let selection = ServiceDefinition(name: "labels", targets: [], labels: labels, downRule: .any, policy: SLAPolicy(),
                                                      isPublic: false)
                    selections[key] = try await queries.members(tenantID: tenantID, service: selection)
                }
                result.append(selections[key]!)
            }
        }
        return result
    }

    /// The notification's body: what receivers get (`AlertNotification` in server/openapi.yaml).
    static func payload(id: UUID, kind: AlertNotificationKind, ruleID: UUID, rule: AlertRuleDefinition, target: NamedTarget,
                        spans: [SpanInterval], state: AlertTargetState?, firing: Bool, tenant: String, now: Date) -> JSONValue {
        let current = spans.last
        let since = state?.activeSinceMicros ?? current?.startMicros
        var stateName = current?.state.rawValue ?? SpanState.unknown.rawValue
        let summary: String
        if rule.threshold != nil {
            // Breaching spans are `down`, clear ones `up`: say what they mean.
            stateName = current?.state == .down ? "breaching" : current?.state == .up ? "clear" : stateName
            let what = current?.cause ?? ""
            switch kind {
            case .firing, .escalation, .refresh: summary = "\(target.id.kind) \(target.name): \(what)"
            case .reminder: summary = "\(target.id.kind) \(target.name), still: \(what)"
            case .resolved: summary = "\(target.id.kind) \(target.name) recovered: \(what)"
            case .flapping: summary = "\(target.id.kind) \(target.name) is flapping across the threshold: \(what)"
            case .flappingStopped: summary = "\(target.id.kind) \(target.name) stopped flapping: \(what)"
            }
        } else {
            switch kind {
            case .firing: summary = "\(target.id.kind) \(target.name) is \(stateName)"
            case .reminder: summary = "\(target.id.kind) \(target.name) is still \(stateName)"
            case .resolved: summary = "\(target.id.kind) \(target.name) recovered: \(stateName)"
            case .flapping: summary = "\(target.id.kind) \(target.name) is flapping: it changed state \(rule.flapChanges) times or more in \(rule.flapMinutes) min"
            case .flappingStopped: summary = "\(target.id.kind) \(target.name) stopped flapping: \(stateName)"
            case .escalation:
                summary = "\(target.id.kind) \(target.name) is still \(stateName) and nobody acknowledged it within \(rule.escalation?.afterMinutes ?? 0) min"
            case .refresh: summary = "\(target.id.kind) \(target.name) is still \(stateName)"
            }
        }
        return .object([
            "id": .string(id.uuidString.lowercased()),
            "kind": .string(kind.rawValue),
            "firing": .bool(firing),
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
