import Foundation
import Logging
import PostgresNIO

/// The administration page (admin users only): the tenant's users, API keys and enrollment tokens (with the line
/// that joins a host), checks, services, maintenance windows and the status page settings. A secret made here (an API key, a token) is shown once, in
/// the answer to the form that made it.
struct AdminPage {
    struct UserRow {
        let username: String
        let role: String
        let created: String
        let disabled: Bool
    }

    struct KeyRow {
        let id: String
        let role: String
        let created: String
        let state: String
        let revocable: Bool
    }

    /// What a form did; with a secret just made, shown once.
    struct Notice {
        let heading: String
        let lines: [String]
        let isSecret: Bool

        init(heading: String, lines: [String], isSecret: Bool = false) {
            self.heading = heading
            self.lines = lines
            self.isSecret = isSecret
        }
    }

    struct DefinitionRow {
        let id: String
        let name: String
        let summary: String
    }

    /// An alert that fires now, with what may be done about it.
    struct FiringRow {
        let ruleID: String
        let rule: String
        let targetID: String
        let status: String
        let since: String
        let acknowledged: String
        let isAcknowledged: Bool
        let silenced: Bool
    }

    struct SilenceRow {
        let id: String
        let covers: String
        let until: String
        let comment: String
        let active: Bool
    }

    struct CheckRow {
        let id: String
        let name: String
        let type: String
        let target: String
        let state: String
        let paused: Bool
        let isPublic: Bool
        let publicTarget: Bool
    }

    let session: SessionView
    let checks: [CheckRow]
    let hasChecks: Bool
    let checkExample: String
    let services: [DefinitionRow]
    let windows: [DefinitionRow]
    let alertRules: [DefinitionRow]
    let alertChannels: [DefinitionRow]
    let hasAlertChannels: Bool
    let alertRuleExample: String
    let firing: [FiringRow]
    let hasFiring: Bool
    let silences: [SilenceRow]
    let hasSilences: Bool
    let users: [UserRow]
    let keys: [KeyRow]
    let hasKeys: Bool
    let statusSlug: String
    let statusTitle: String
    let notice: Notice?
    let error: String?

    static func build(session: WebSession, database: PostgresClient, logger: Logger, notice: Notice? = nil,
                      error: String? = nil) async throws -> AdminPage {
        let tenantID = session.user.tenantID
        let users = try await UserStore(client: database, logger: logger).list(tenantID: tenantID)
        let keys = try await APIKeyStore(database: database, logger: logger).list(tenantID: tenantID)
        let status = try await TenantStore(client: database, logger: logger).statusPage(tenantID: tenantID)
        let services = try await DefinitionStore(.services, client: database, logger: logger).list(tenantID: tenantID)
        let checks = try await CheckStore(client: database, logger: logger).list(tenantID: tenantID)
        let rules = try await DefinitionStore(.alertRules, client: database, logger: logger).list(tenantID: tenantID)
        let channels = try await AlertChannelStore(client: database, logger: logger).list(tenantID: tenantID)
        let windows = try await DefinitionStore(.maintenanceWindows, client: database, logger: logger).list(tenantID: tenantID)
        let active = try await AlertStore(client: database, logger: logger).active(tenantID: tenantID)
        let silences = try await AlertSilenceStore(client: database, logger: logger).list(tenantID: tenantID)
        let ruleNames = Dictionary(rules.map { ($0.id, $0.name) }, uniquingKeysWith: { first, _ in first })
        let now = Date()
        return AdminPage(
            session: SessionView(session),
            checks: checks.map { check in
                CheckRow(id: TargetID.check(checkID: check.id).description, name: check.name, type: check.type.rawValue,
                         target: check.pushToken.map { _ in "push URL" } ?? check.target, state: check.state.rawValue,
                         paused: check.paused, isPublic: check.isPublic, publicTarget: check.publicTarget)
            },
            hasChecks: !checks.isEmpty, checkExample: AdminRoutes.checkExample,
            services: services.map { DefinitionRow(id: "s-" + $0.id.uuidString.lowercased(), name: $0.name, summary: $0.definition.jsonText) },
            windows: windows.map { DefinitionRow(id: "m-" + $0.id.uuidString.lowercased(), name: $0.name, summary: $0.definition.jsonText) },
            alertRules: rules.map { DefinitionRow(id: "a-" + $0.id.uuidString.lowercased(), name: $0.name, summary: $0.definition.jsonText) },
            alertChannels: channels.map { DefinitionRow(id: AlertChannelID(uuid: $0.id).description, name: $0.name,
                                                        summary: "\($0.type) to \($0.destination)") },
            hasAlertChannels: !channels.isEmpty,
            alertRuleExample: channels.first.map {
                #"{"name":"container down","labels":["com.docker.compose.project=shop"],"for_seconds":60,"channels":[""# + "\"" + AlertChannelID(uuid: $0.id).description + #""]}"#
            } ?? "",
            firing: active.prefix(500).map { alert in
                FiringRow(ruleID: "a-" + alert.ruleID.uuidString.lowercased(), rule: ruleNames[alert.ruleID] ?? "a deleted rule",
                          targetID: alert.targetID, status: alert.announcedAt == nil ? "\(alert.status) (held back)" : alert.status,
                          since: alert.activeSince.map(WebFormat.timestamp) ?? "",
                          acknowledged: alert.acknowledgedAt.map { "by \(alert.acknowledgedBy ?? "") at \(WebFormat.timestamp($0))" } ?? "",
                          isAcknowledged: alert.acknowledgedAt != nil,
                          silenced: silences.contains { $0.endsAt > now && $0.covers(ruleID: alert.ruleID, targetID: alert.targetID) })
            },
            hasFiring: !active.isEmpty,
            silences: silences.prefix(200).map { silence in
                let rule = silence.ruleID.map { ruleNames[$0] ?? "a deleted rule" } ?? "every rule"
                return SilenceRow(id: "q-" + silence.id.uuidString.lowercased(), covers: "\(rule), \(silence.targetID ?? "every target")",
                                  until: WebFormat.timestamp(silence.endsAt), comment: silence.comment, active: silence.endsAt > now)
            },
            hasSilences: !silences.isEmpty,
            users: users.map { UserRow(username: $0.user.username, role: $0.user.role.rawValue, created: WebFormat.timestamp($0.createdAt),
                                       disabled: $0.disabled) },
            keys: keys.map { key in
                let state = key.revokedAt != nil ? "revoked" : (key.expiresAt.map { $0 <= now } == true ? "expired" : "active")
                return KeyRow(id: key.id.uuidString.lowercased(), role: key.role, created: WebFormat.timestamp(key.createdAt),
                              state: state, revocable: state == "active")
            },
            hasKeys: !keys.isEmpty, statusSlug: status.slug ?? "", statusTitle: status.title, notice: notice, error: error)
    }
}
