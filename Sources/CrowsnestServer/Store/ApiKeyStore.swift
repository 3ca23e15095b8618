import Crypto
import Foundation
import Logging
import PostgresNIO

/// A freshly created API key. The secret is shown once (by `apikey create`) and never stored:
/// the database keeps only its SHA-256.
public struct IssuedAPIKey: Sendable, Equatable {
    /// The key's id (for listing and revoking; not a secret).
    public var id: UUID
    /// The tenant the key belongs to.
    public var tenantID: UUID
    /// What the key may do.
    public var role: APIKeyRole
    /// The bearer secret, `cnk_` followed by 43 base64url characters (32 random bytes).
    public var secret: String
}

/// An API key as `apikey list` shows it.
public struct APIKeyListing: Sendable, Equatable {
    public var id: UUID
    public var role: String
    public var createdAt: Date
    public var expiresAt: Date?
    public var revokedAt: Date?
}

/// Why an API key operation failed.
public enum APIKeyStoreError: Error, CustomStringConvertible, Sendable {
    /// `create` was given a tenant id that has no row in `tenants`.
    case unknownTenant(UUID)

    /// One line for the operator.
    public var description: String {
        switch self {
        case .unknownTenant(let id): return "cannot create API key: no tenant with id \(id.uuidString.lowercased())"
        }
    }
}

/// API keys in PostgreSQL (`api_keys`): issuing, authenticating by the secret's hash, revoking.
public struct APIKeyStore: Sendable {
    /// Prefix of every secret, so a leaked key is recognisable (e.g. by secret scanners).
    public static let secretPrefix = "cnk_"

    private let database: PostgresClient
    private let logger: Logger

    /// Creates a store on a running `PostgresClient`.
    public init(database: PostgresClient, logger: Logger) {
        self.database = database
        self.logger = logger
    }

    /// Issues a new key for `tenantID` with `role` and returns it with its secret (the only time the
    /// secret exists outside the caller's hands). Throws `APIKeyStoreError.unknownTenant` for a missing tenant.
    public func create(tenantID: UUID, role: APIKeyRole, expiresAt: Date? = nil) async throws -> IssuedAPIKey {
        let secret = Self.generateSecret()
        let id = UUID()
        let hash = Self.hash(secret: secret)
        do {
            try await self.database.query(
                """
                INSERT INTO api_keys (tenant_id, id, key_hash, role, expires_at)
                VALUES (\(tenantID), \(id), \(hash), \(role.rawValue), \(expiresAt))
                """,
                logger: self.logger
            )
        } catch let error as PSQLError where error.serverInfo?[.sqlState] == "23503" {
            throw APIKeyStoreError.unknownTenant(tenantID)
        }
        self.logger.info(
            "API key created",
            metadata: ["tenant.id": "\(tenantID)", "api_key.id": "\(id)", "api_key.role": "\(role.rawValue)"]
        )
        return IssuedAPIKey(id: id, tenantID: tenantID, role: role, secret: secret)
    }

    /// The caller a bearer secret stands for, or nil when the secret is malformed, unknown or revoked.
    public func authenticate(secret: String) async throws -> APICaller? {
        guard Self.looksLikeSecret(secret) else { return nil }
        let rows = try await self.database.query(
            """
            SELECT tenant_id, id, role FROM api_keys
            WHERE key_hash = \(Self.hash(secret: secret)) AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())
            """,
            logger: self.logger
        )
        for try await (tenantID, keyID, roleText) in rows.decode((UUID, UUID, String).self) {
            guard let role = APIKeyRole(rawValue: roleText) else { return nil }
            return APICaller(tenantID: tenantID, keyID: keyID, role: role)
        }
        return nil
    }

    /// Revokes a key of `tenantID`; returns false when the tenant has no such unrevoked key.
    @discardableResult
    public func revoke(tenantID: UUID, keyID: UUID) async throws -> Bool {
        let rows = try await self.database.query(
            """
            UPDATE api_keys SET revoked_at = now()
            WHERE tenant_id = \(tenantID) AND id = \(keyID) AND revoked_at IS NULL
            RETURNING id
            """,
            logger: self.logger
        )
        var revoked = false
        for try await _ in rows.decode(UUID.self) { revoked = true }
        if revoked {
            self.logger.info("API key revoked", metadata: ["tenant.id": "\(tenantID)", "api_key.id": "\(keyID)"])
        }
        return revoked
    }

    /// The tenant's keys, newest first (secrets are never stored, so never listed).
    public func list(tenantID: UUID) async throws -> [APIKeyListing] {
        let rows = try await self.database.query(
            """
            SELECT id, role, created_at, expires_at, revoked_at FROM api_keys
            WHERE tenant_id = \(tenantID) ORDER BY created_at DESC, id
            """,
            logger: self.logger
        )
        var result: [APIKeyListing] = []
        for try await (id, role, created, expires, revoked) in rows.decode((UUID, String, Date, Date?, Date?).self) {
            result.append(APIKeyListing(id: id, role: role, createdAt: created, expiresAt: expires, revokedAt: revoked))
        }
        return result
    }

    /// A new random secret: `cnk_` + base64url (no padding) of 32 bytes from the system CSPRNG.
    static func generateSecret() -> String {
        secretPrefix + RandomSecret.base64URL()
    }

    /// SHA-256 of the secret's UTF-8 bytes, as stored in `api_keys.key_hash`.
    static func hash(secret: String) -> Data {
        Data(SHA256.hash(data: Data(secret.utf8)))
    }

    /// Cheap shape check so junk never reaches the database.
    static func looksLikeSecret(_ secret: String) -> Bool {
        secret.hasPrefix(secretPrefix) && RandomSecret.isBase64URL(secret.utf8.dropFirst(secretPrefix.utf8.count), count: 43)
    }
}
