import Foundation
import Logging
import PostgresNIO

/// The administration page (admin users only): the tenant's users, API keys and enrollment tokens (with the line
/// that joins a host), and the status page settings. A secret made here (an API key, a token) is shown once, in
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

    /// A secret just made, shown once.
    struct Notice {
        let heading: String
        let lines: [String]
    }

    let session: SessionView
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
        let now = Date()
        return AdminPage(
            session: SessionView(session),
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
