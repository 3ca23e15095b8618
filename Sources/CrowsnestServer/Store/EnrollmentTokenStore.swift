import Crypto
import Foundation
import Logging
import NIOCore
import PostgresNIO

/// SQL for the `enrollment_tokens` table: single-use, expiring tokens that let a new agent get a certificate.
public struct EnrollmentTokenStore: Sendable {
    public let client: PostgresClient
    public let logger: Logger

    /// Default lifetime of a new token.
    public static let defaultLifetime: Duration = .seconds(24 * 3600)

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// Creates a token for `tenantID`; only its hash is stored. Returns the token (shown once).
    public func create(tenantID: UUID, lifetime: Duration = defaultLifetime) async throws -> String {
        let token = "cne_" + SecretGenerator.hex(byteCount: 24)
        let hash = ByteBuffer(bytes: SHA256.hash(data: Array(token.utf8)))
        let seconds = Double(lifetime.components.seconds)
        try await client.query("""
            INSERT INTO enrollment_tokens (tenant_id, id, token_hash, expires_at)
            VALUES (\(tenantID), \(UUID()), \(hash), now() + make_interval(secs => \(seconds)))
            """, logger: logger)
        return token
    }

    /// Marks the token used by `agentID` inside the caller's transaction, returning its tenant.
    ///
    /// Throws `tokenRejected` when the token is unknown, expired or already used; the caller's transaction
    /// then rolls back, so a refused enrollment leaves nothing behind.
    public static func consume(token: String, agentID: UUID, on connection: PostgresConnection, logger: Logger) async throws -> UUID {
        let hash = ByteBuffer(bytes: SHA256.hash(data: Array(token.utf8)))
        let rows = try await connection.query("""
            UPDATE enrollment_tokens SET used_at = now(), used_by = \(agentID)
            WHERE token_hash = \(hash) AND used_at IS NULL AND expires_at > now()
            RETURNING tenant_id
            """, logger: logger)
        for try await tenantID in rows.decode(UUID.self) { return tenantID }
        throw StoreError(.tokenRejected, "enrollment token is unknown, expired or already used")
    }
}

/// Random secrets for tokens and API keys.
public enum SecretGenerator {
    /// `byteCount` random bytes from the system CSPRNG, as lowercase hex.
    public static func hex(byteCount: Int) -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<byteCount).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
    }
}
