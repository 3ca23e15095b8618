import Crypto
import Foundation
import Logging
import PostgresNIO

/// A signed-in browser's session: who it is and the CSRF token its forms carry.
public struct WebSession: Sendable, Equatable {
    public var user: WebUser
    public var csrfToken: String
    /// The user's tenant's name, shown beside the user's ('' in the session a sign-in returns).
    public var tenantName: String = ""
}

/// SQL for the `web_sessions` table. The browser holds a random token in a cookie; only its SHA-256 is stored,
/// so a copy of the database signs nobody in.
public struct WebSessionStore: Sendable {
    /// How long a session lasts after sign-in.
    public static let lifetime: Duration = .seconds(12 * 3600)

    private let client: PostgresClient
    private let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// Opens a session for `user`; returns the cookie token (shown once, never stored) and the session.
    public func create(for user: WebUser) async throws -> (token: String, session: WebSession) {
        let token = RandomSecret.base64URL()
        let csrf = RandomSecret.base64URL()
        let seconds = Self.lifetime.components.seconds
        try await client.query("""
            INSERT INTO web_sessions (tenant_id, token_hash, user_id, csrf_token, expires_at)
            VALUES (\(user.tenantID), \(Self.hash(token)), \(user.id), \(csrf), now() + \(seconds) * interval '1 second')
            """, logger: logger)
        return (token, WebSession(user: user, csrfToken: csrf))
    }

    /// The live session of a cookie token whose user is still enabled, or nil.
    public func session(token: String) async throws -> WebSession? {
        guard Self.looksLikeToken(token) else { return nil }
        let rows = try await client.query("""
            SELECT u.tenant_id, u.id, u.username, u.role, s.csrf_token, t.name
            FROM web_sessions s JOIN users u ON u.tenant_id = s.tenant_id AND u.id = s.user_id
            JOIN tenants t ON t.id = u.tenant_id
            WHERE s.token_hash = \(Self.hash(token)) AND s.expires_at > now() AND u.disabled_at IS NULL
            """, logger: logger)
        for try await (tenantID, id, username, role, csrf, tenantName) in rows.decode((UUID, UUID, String, String, String, String).self) {
            guard let role = APIKeyRole(rawValue: role) else { return nil }
            return WebSession(user: WebUser(tenantID: tenantID, id: id, username: username, role: role), csrfToken: csrf,
                              tenantName: tenantName)
        }
        return nil
    }

    /// Ends the session of a cookie token (sign-out).
    public func delete(token: String) async throws {
        guard Self.looksLikeToken(token) else { return }
        try await client.query("DELETE FROM web_sessions WHERE token_hash = \(Self.hash(token))", logger: logger)
    }

    /// Removes expired sessions of every tenant; returns how many went.
    public func deleteExpired() async throws -> Int {
        let rows = try await client.query("DELETE FROM web_sessions WHERE expires_at <= now() RETURNING 1", logger: logger)
        var count = 0
        for try await _ in rows { count += 1 }
        return count
    }

    static func hash(_ token: String) -> Data {
        Data(SHA256.hash(data: Data(token.utf8)))
    }

    /// 43 base64url characters: anything else never reaches the database.
    static func looksLikeToken(_ token: String) -> Bool {
        RandomSecret.isBase64URL(token.utf8, count: 43)
    }
}
