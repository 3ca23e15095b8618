import Foundation
import Logging
import PostgresNIO

/// A person who signs in to the web pages: their tenant, name and role.
public struct WebUser: Sendable, Equatable {
    public var tenantID: UUID
    public var id: UUID
    public var username: String
    public var role: APIKeyRole
}

/// SQL for the `users` table: people of a tenant who sign in to the web pages, with a bcrypt hash of their
/// password (hashing is `PasswordHasher`'s, never done here).
public struct UserStore: Sendable {
    /// Longest user name accepted (the table's check says the same).
    public static let maximumUsernameLength = 128

    private let client: PostgresClient
    private let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// Why `username` cannot name a user, or nil when it can: 1–128 printable characters, no spaces at either end.
    public static func problem(username: String) -> String? {
        if username.isEmpty { return "the user name is empty" }
        if username.count > maximumUsernameLength { return "the user name is longer than \(maximumUsernameLength) characters" }
        if username != username.trimmingCharacters(in: .whitespaces) { return "the user name starts or ends with a space" }
        if username.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
            return "the user name contains a control character"
        }
        return nil
    }

    /// Creates a user; a taken name (in any tenant, compared without case) is `alreadyExists`.
    public func create(tenantID: UUID, username: String, role: APIKeyRole, passwordHash: String) async throws -> WebUser {
        if let problem = Self.problem(username: username) { throw StoreError(.invalid, problem) }
        let id = UUID()
        do {
            try await client.query("""
                INSERT INTO users (tenant_id, id, username, role, password_hash)
                VALUES (\(tenantID), \(id), \(username), \(role.rawValue), \(passwordHash))
                """, logger: logger)
        } catch let error as PSQLError where error.serverInfo?[.sqlState] == "23505" {
            throw StoreError(.alreadyExists, "a user named \"\(username)\" already exists; choose another name")
        }
        logger.info("user created", metadata: ["tenant.id": "\(tenantID)", "user.id": "\(id)", "user.role": "\(role.rawValue)"])
        return WebUser(tenantID: tenantID, id: id, username: username, role: role)
    }

    /// The enabled user named `username` (without case) and their password hash, or nil.
    public func credentials(username: String) async throws -> (user: WebUser, passwordHash: String)? {
        guard Self.problem(username: username) == nil else { return nil }
        let rows = try await client.query("""
            SELECT tenant_id, id, username, role, password_hash FROM users
            WHERE lower(username) = lower(\(username)) AND disabled_at IS NULL
            """, logger: logger)
        for try await (tenantID, id, name, role, hash) in rows.decode((UUID, UUID, String, String, String).self) {
            guard let role = APIKeyRole(rawValue: role) else { return nil }
            return (WebUser(tenantID: tenantID, id: id, username: name, role: role), hash)
        }
        return nil
    }

    /// The tenant's users by name, with when they were created.
    public func list(tenantID: UUID) async throws -> [(user: WebUser, createdAt: Date, disabled: Bool)] {
        let rows = try await client.query("""
            SELECT id, username, role, created_at, disabled_at IS NOT NULL FROM users WHERE tenant_id = \(tenantID)
            ORDER BY lower(username)
            """, logger: logger)
        var users: [(user: WebUser, createdAt: Date, disabled: Bool)] = []
        for try await (id, name, role, created, disabled) in rows.decode((UUID, String, String, Date, Bool).self) {
            users.append((WebUser(tenantID: tenantID, id: id, username: name, role: APIKeyRole(rawValue: role) ?? .read), created, disabled))
        }
        return users
    }
}
