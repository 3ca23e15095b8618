import CrowsnestWire
import Foundation
import Logging
import PostgresNIO

/// One notification: in the outbox until delivered, then its delivery history.
public struct AlertNotificationRecord: Sendable, Equatable {
    public var id: UUID
    public var ruleID: UUID
    public var channelID: UUID
    public var targetID: String
    public var kind: String
    public var payload: JSONValue
    public var createdAt: Date
    public var attempts: Int
    public var deliveredAt: Date?
    public var failedAt: Date?
    public var lastError: String
}

/// A notification to write to the outbox.
public struct AlertNotificationDraft: Sendable, Equatable {
    public var id: UUID
    public var ruleID: UUID
    public var channelID: UUID
    public var targetID: String
    public var kind: AlertNotificationKind
    public var payload: JSONValue
}

/// A notification a replica claimed for delivery.
public struct ClaimedAlertNotification: Sendable, Equatable {
    public var id: UUID
    public var tenantID: UUID
    public var channelID: UUID
    public var payload: String
    /// Including this one.
    public var attempts: Int
}

/// SQL for `alert_states` (what the evaluator remembers) and `alert_notifications` (the outbox and delivery
/// history). State changes and the notifications they cause are written on one connection, in the caller's
/// fenced transaction; deliveries are claimed with `FOR UPDATE SKIP LOCKED`, so replicas never deliver the same
/// row at once, and a claim that lapses (its replica died) is delivered again: at least once.
public struct AlertStore: Sendable {
    public let client: PostgresClient
    public let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// Tenants that have alert rules.
    public func tenantsWithRules() async throws -> [UUID] {
        let rows = try await client.query("SELECT DISTINCT tenant_id FROM alert_rules", logger: logger)
        var tenants: [UUID] = []
        for try await id in rows.decode(UUID.self) { tenants.append(id) }
        return tenants
    }

    /// The tenant's remembered states, by rule and target, with the rule version each was computed under.
    public func states(tenantID: UUID) async throws -> [UUID: [String: (state: AlertTargetState, ruleVersion: Date)]] {
        let rows = try await client.query("""
            SELECT rule_id, target_id, status, (extract(epoch FROM active_since) * 1000000)::int8,
                   (extract(epoch FROM notified_at) * 1000000)::int8, rule_version,
                   (extract(epoch FROM announced_at) * 1000000)::int8, (extract(epoch FROM acknowledged_at) * 1000000)::int8,
                   (extract(epoch FROM escalated_at) * 1000000)::int8, (extract(epoch FROM refreshed_at) * 1000000)::int8
            FROM alert_states WHERE tenant_id = \(tenantID)
            """, logger: logger)
        var states: [UUID: [String: (state: AlertTargetState, ruleVersion: Date)]] = [:]
        for try await (ruleID, targetID, status, activeSince, notifiedAt, version, announced, acknowledged, escalated, refreshed) in rows.decode(
            (UUID, String, String, Int64?, Int64, Date, Int64?, Int64?, Int64?, Int64?).self) {
            guard let status = AlertTargetState.Status(rawValue: status) else { continue }
            states[ruleID, default: [:]][targetID] = (AlertTargetState(status: status, activeSinceMicros: activeSince, notifiedMicros: notifiedAt,
                                                                       announcedMicros: announced, acknowledgedMicros: acknowledged,
                                                                       escalatedMicros: escalated, refreshedMicros: refreshed), version)
        }
        return states
    }

    /// Keeps (or, for nil, forgets) one rule's state for one target. Times go in and out as whole microseconds
    /// (integer arithmetic in SQL), so what is read back is exactly what was kept. The acknowledgement is the API's
    /// to write and is left as it is (an acknowledgement made during the round is not lost).
    public static func save(tenantID: UUID, ruleID: UUID, targetID: String, state: AlertTargetState?, ruleVersion: Date,
                            on connection: PostgresConnection, logger: Logger) async throws {
        guard let state else {
            try await connection.query("""
                DELETE FROM alert_states WHERE tenant_id = \(tenantID) AND rule_id = \(ruleID) AND target_id = \(targetID)
                """, logger: logger)
            return
        }
        try await connection.query("""
            INSERT INTO alert_states (tenant_id, rule_id, target_id, status, active_since, notified_at, rule_version, announced_at,
                                      escalated_at, refreshed_at)
            VALUES (\(tenantID), \(ruleID), \(targetID), \(state.status.rawValue),
                    'epoch'::timestamptz + \(state.activeSinceMicros) * interval '1 microsecond',
                    'epoch'::timestamptz + \(state.notifiedMicros) * interval '1 microsecond', \(ruleVersion),
                    'epoch'::timestamptz + \(state.announcedMicros) * interval '1 microsecond',
                    'epoch'::timestamptz + \(state.escalatedMicros) * interval '1 microsecond',
                    'epoch'::timestamptz + \(state.refreshedMicros) * interval '1 microsecond')
            ON CONFLICT (tenant_id, rule_id, target_id) DO UPDATE SET status = EXCLUDED.status, active_since = EXCLUDED.active_since,
                notified_at = EXCLUDED.notified_at, rule_version = EXCLUDED.rule_version, announced_at = EXCLUDED.announced_at,
                escalated_at = EXCLUDED.escalated_at, refreshed_at = EXCLUDED.refreshed_at
            """, logger: logger)
    }

    /// One alert that fires (or flaps) now, as the API shows it.
    public struct ActiveAlert: Sendable, Equatable {
        public var ruleID: UUID
        public var targetID: String
        public var status: String
        public var activeSince: Date?
        public var announcedAt: Date?
        public var acknowledgedAt: Date?
        public var acknowledgedBy: String?
        public var escalatedAt: Date?
    }

    /// The tenant's alerts that fire or flap now, newest first.
    public func active(tenantID: UUID) async throws -> [ActiveAlert] {
        try await Self.decodeActive(client.query("""
            SELECT rule_id, target_id, status, active_since, announced_at, acknowledged_at, acknowledged_by, escalated_at
            FROM alert_states WHERE tenant_id = \(tenantID) ORDER BY notified_at DESC, rule_id, target_id LIMIT 5000
            """, logger: logger))
    }

    /// Acknowledges one firing (or flapping) alert: no reminders and no escalation for it from now until it
    /// recovers. nil when the tenant has no such alert firing.
    public func acknowledge(tenantID: UUID, ruleID: UUID, targetID: String, by who: String) async throws -> ActiveAlert? {
        try await Self.decodeActive(client.query("""
            UPDATE alert_states SET acknowledged_at = coalesce(acknowledged_at, now()), acknowledged_by = coalesce(acknowledged_by, \(who))
            WHERE tenant_id = \(tenantID) AND rule_id = \(ruleID) AND target_id = \(targetID)
            RETURNING rule_id, target_id, status, active_since, announced_at, acknowledged_at, acknowledged_by, escalated_at
            """, logger: logger)).first
    }

    private static func decodeActive(_ rows: PostgresRowSequence) async throws -> [ActiveAlert] {
        var alerts: [ActiveAlert] = []
        for try await (ruleID, targetID, status, since, announced, acknowledged, by, escalated) in rows.decode(
            (UUID, String, String, Date?, Date?, Date?, String?, Date?).self) {
            alerts.append(ActiveAlert(ruleID: ruleID, targetID: targetID, status: status, activeSince: since, announcedAt: announced,
                                      acknowledgedAt: acknowledged, acknowledgedBy: by, escalatedAt: escalated))
        }
        return alerts
    }

    /// Forgets the states of rules the tenant no longer has.
    public static func forgetRulesOtherThan(_ ruleIDs: [UUID], tenantID: UUID, on connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query("""
            DELETE FROM alert_states WHERE tenant_id = \(tenantID) AND NOT (rule_id = ANY(\(ruleIDs)))
            """, logger: logger)
    }

    /// Writes notifications to the outbox, due now.
    public static func enqueue(_ drafts: [AlertNotificationDraft], tenantID: UUID, on connection: PostgresConnection, logger: Logger) async throws {
        guard !drafts.isEmpty else { return }
        try await connection.query("""
            INSERT INTO alert_notifications (tenant_id, id, rule_id, channel_id, target_id, kind, payload)
            SELECT \(tenantID), * FROM unnest(\(drafts.map(\.id)), \(drafts.map(\.ruleID)), \(drafts.map(\.channelID)),
                                              \(drafts.map(\.targetID)), \(drafts.map(\.kind.rawValue)),
                                              \(drafts.map(\.payload.jsonText))::jsonb[])
            """, logger: logger)
    }

    /// Claims up to `limit` due notifications for `hold` (every replica's deliverer calls this; `SKIP LOCKED`
    /// keeps two from taking the same row, and a lapsed claim is taken again).
    public func claimDue(limit: Int, hold: Duration) async throws -> [ClaimedAlertNotification] {
        let seconds = Double(hold.components.seconds) + Double(hold.components.attoseconds) / 1e18
        let rows = try await client.query("""
            UPDATE alert_notifications n
            SET claimed_until = now() + \(seconds) * interval '1 second', attempts = n.attempts + 1
            FROM (SELECT d.tenant_id, d.id FROM alert_notifications d
                  WHERE d.delivered_at IS NULL AND d.failed_at IS NULL AND d.next_attempt_at <= now()
                    AND (d.claimed_until IS NULL OR d.claimed_until < now())
                    -- In order per channel, rule and target: a recovery never overtakes its firing in a retry.
                    AND NOT EXISTS (SELECT 1 FROM alert_notifications o
                                    WHERE o.tenant_id = d.tenant_id AND o.channel_id = d.channel_id AND o.rule_id = d.rule_id
                                      AND o.target_id = d.target_id AND o.delivered_at IS NULL AND o.failed_at IS NULL
                                      AND (o.created_at, o.id) < (d.created_at, d.id))
                  ORDER BY d.next_attempt_at LIMIT \(limit) FOR UPDATE OF d SKIP LOCKED) due
            WHERE n.tenant_id = due.tenant_id AND n.id = due.id
            RETURNING n.id, n.tenant_id, n.channel_id, n.payload::text, n.attempts
            """, logger: logger)
        var claimed: [ClaimedAlertNotification] = []
        for try await (id, tenantID, channelID, payload, attempts) in rows.decode((UUID, UUID, UUID, String, Int32).self) {
            claimed.append(ClaimedAlertNotification(id: id, tenantID: tenantID, channelID: channelID, payload: payload, attempts: Int(attempts)))
        }
        return claimed
    }

    public func markDelivered(tenantID: UUID, id: UUID) async throws {
        try await client.query("""
            UPDATE alert_notifications SET delivered_at = now(), claimed_until = NULL, last_error = ''
            WHERE tenant_id = \(tenantID) AND id = \(id)
            """, logger: logger)
    }

    /// Gives up on a notification (the receiver refused it, or it is out of attempts).
    public func markFailed(tenantID: UUID, id: UUID, error: String) async throws {
        try await client.query("""
            UPDATE alert_notifications SET failed_at = now(), claimed_until = NULL, last_error = \(String(error.prefix(1000)))
            WHERE tenant_id = \(tenantID) AND id = \(id)
            """, logger: logger)
    }

    /// Schedules another attempt after `delay`.
    public func retry(tenantID: UUID, id: UUID, after delay: Duration, error: String) async throws {
        let seconds = Double(delay.components.seconds)
        try await client.query("""
            UPDATE alert_notifications SET next_attempt_at = now() + \(seconds) * interval '1 second', claimed_until = NULL,
                last_error = \(String(error.prefix(1000)))
            WHERE tenant_id = \(tenantID) AND id = \(id)
            """, logger: logger)
    }

    /// Removes delivered and given-up notifications (of every tenant) made more than `days` ago — refreshes to an
    /// Alertmanager (one a minute per firing alert) after a day; the ones still due stay whatever their age.
    /// Returns how many went.
    public static func deleteFinished(olderThanDays days: Int, on client: PostgresClient, logger: Logger) async throws -> Int {
        let rows = try await client.query("""
            DELETE FROM alert_notifications
            WHERE (created_at < now() - \(days) * interval '1 day' OR (kind = 'refresh' AND created_at < now() - interval '1 day'))
              AND (delivered_at IS NOT NULL OR failed_at IS NOT NULL)
            RETURNING 1
            """, logger: logger)
        var count = 0
        for try await _ in rows.decode(Int.self) { count += 1 }
        return count
    }

    /// The tenant's newest notifications, optionally of one rule or one channel, newest first.
    public func history(tenantID: UUID, ruleID: UUID?, channelID: UUID?, limit: Int) async throws -> [AlertNotificationRecord] {
        let rows = try await client.query("""
            SELECT id, rule_id, channel_id, target_id, kind, payload::text, created_at, attempts, delivered_at, failed_at, last_error
            FROM alert_notifications
            WHERE tenant_id = \(tenantID) AND (\(ruleID)::uuid IS NULL OR rule_id = \(ruleID))
              AND (\(channelID)::uuid IS NULL OR channel_id = \(channelID))
            ORDER BY created_at DESC, id LIMIT \(limit)
            """, logger: logger)
        var records: [AlertNotificationRecord] = []
        for try await (id, ruleID, channelID, targetID, kind, payload, createdAt, attempts, deliveredAt, failedAt, lastError) in rows.decode(
            (UUID, UUID, UUID, String, String, String, Date, Int32, Date?, Date?, String).self) {
            records.append(AlertNotificationRecord(id: id, ruleID: ruleID, channelID: channelID, targetID: targetID, kind: kind,
                                                   payload: try JSONValue.parse(Data(payload.utf8)), createdAt: createdAt,
                                                   attempts: Int(attempts), deliveredAt: deliveredAt, failedAt: failedAt, lastError: lastError))
        }
        return records
    }
}
