import CrowsnestWire
import Foundation
import Logging
import PostgresNIO

/// A silence: no notification of one rule (or of every rule) for one target (or every target) until `endsAt`,
/// except the recovery of what was announced before it.
public struct AlertSilence: Sendable, Equatable {
    public var id: UUID
    /// nil: every rule.
    public var ruleID: UUID?
    /// nil: every target.
    public var targetID: String?
    public var endsAt: Date
    public var comment: String
    public var createdBy: String
    public var createdAt: Date

    /// Whether it covers `ruleID` and `targetID`.
    public func covers(ruleID: UUID, targetID: String) -> Bool {
        (self.ruleID == nil || self.ruleID == ruleID) && (self.targetID == nil || self.targetID == targetID)
    }
}

/// SQL for `alert_silences`. The evaluator reads the ones in force each round; the API makes, lists and ends them.
public struct AlertSilenceStore: Sendable {
    /// Silences in force at once per tenant.
    public static let maximumActive = 1000
    public static let maximumCommentLength = 500
    /// How far ahead a silence may end.
    public static let maximumDays = 90

    public let client: PostgresClient
    public let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// Stores a silence; `.invalid` when the tenant already has `maximumActive` in force.
    public func create(tenantID: UUID, ruleID: UUID?, targetID: String?, endsAt: Date, comment: String, createdBy: String) async throws -> AlertSilence {
        let rows = try await client.query("""
            INSERT INTO alert_silences (tenant_id, id, rule_id, target_id, ends_at, comment, created_by)
            SELECT \(tenantID), \(UUID()), \(ruleID), \(targetID), \(endsAt), \(comment), \(createdBy)
            WHERE (SELECT count(*) FROM alert_silences WHERE tenant_id = \(tenantID) AND ends_at > now()) < \(Self.maximumActive)
            RETURNING id, rule_id, target_id, ends_at, comment, created_by, created_at
            """, logger: logger)
        guard let silence = try await Self.decode(rows).first else {
            throw StoreError(.invalid, "the tenant already has \(Self.maximumActive) silences in force, the most it may have; end one first")
        }
        return silence
    }

    /// Silences in force now (by the database's clock), soonest to end first.
    public func active(tenantID: UUID) async throws -> [AlertSilence] {
        try await Self.decode(client.query("""
            SELECT id, rule_id, target_id, ends_at, comment, created_by, created_at FROM alert_silences
            WHERE tenant_id = \(tenantID) AND ends_at > now() ORDER BY ends_at, id
            """, logger: logger))
    }

    /// Silences in force and those that ended in the last `days` days, newest end first.
    public func list(tenantID: UUID, endedWithinDays days: Int = 7) async throws -> [AlertSilence] {
        try await Self.decode(client.query("""
            SELECT id, rule_id, target_id, ends_at, comment, created_by, created_at FROM alert_silences
            WHERE tenant_id = \(tenantID) AND ends_at > now() - \(days) * interval '1 day' ORDER BY ends_at DESC, id LIMIT 2000
            """, logger: logger))
    }

    /// Ends a silence now (it stays listed as ended); false when the tenant has no such silence in force.
    public func end(tenantID: UUID, id: UUID) async throws -> Bool {
        let rows = try await client.query("""
            UPDATE alert_silences SET ends_at = now() WHERE tenant_id = \(tenantID) AND id = \(id) AND ends_at > now() RETURNING id
            """, logger: logger)
        var found = false
        for try await _ in rows.decode(UUID.self) { found = true }
        return found
    }

    /// Removes silences of every tenant that ended more than `days` ago (housekeeping).
    public static func deleteEnded(olderThanDays days: Int, on client: PostgresClient, logger: Logger) async throws -> Int {
        let rows = try await client.query("""
            DELETE FROM alert_silences WHERE ends_at < now() - \(days) * interval '1 day' RETURNING 1
            """, logger: logger)
        var count = 0
        for try await _ in rows.decode(Int.self) { count += 1 }
        return count
    }

    private static func decode(_ rows: PostgresRowSequence) async throws -> [AlertSilence] {
        var silences: [AlertSilence] = []
        for try await (id, ruleID, targetID, endsAt, comment, createdBy, createdAt) in rows.decode(
            (UUID, UUID?, String?, Date, String, String, Date).self) {
            silences.append(AlertSilence(id: id, ruleID: ruleID, targetID: targetID, endsAt: endsAt, comment: comment,
                                         createdBy: createdBy, createdAt: createdAt))
        }
        return silences
    }
}
