import Crypto
import Foundation
import Logging
import NIOCore
import PostgresNIO

/// SQL for the `enrollment_tokens` table: expiring tokens that let new agents get a certificate, once (the default)
/// or up to a number of times (one token for a fleet).
public struct EnrollmentTokenStore: Sendable {
    public let client: PostgresClient
    public let logger: Logger

    /// Default lifetime of a new token.
    public static let defaultLifetime: Duration = .seconds(24 * 3600)
    /// The longest a token may live.
    public static let maximumLifetime: Duration = .seconds(365 * 24 * 3600)
    /// How many agents one token may enroll at most.
    public static let usesRange = 1...100_000

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// Creates a token for `tenantID` that enrolls up to `uses` agents; only its hash is stored. Returns the token
    /// (shown once).
    public func create(tenantID: UUID, lifetime: Duration = defaultLifetime, uses: Int = 1) async throws -> String {
        guard Self.usesRange.contains(uses) else {
            throw StoreError(.invalid, "a token enrolls 1 to \(Self.usesRange.upperBound) agents; got \(uses)")
        }
        let token = "cne_" + SecretGenerator.hex(byteCount: 24)
        let hash = ByteBuffer(bytes: SHA256.hash(data: Array(token.utf8)))
        let seconds = Double(lifetime.components.seconds)
        try await client.query("""
            INSERT INTO enrollment_tokens (tenant_id, id, token_hash, expires_at, uses_allowed)
            VALUES (\(tenantID), \(UUID()), \(hash), now() + make_interval(secs => \(seconds)), \(uses))
            """, logger: logger)
        return token
    }

    /// Counts one use of the token by `agentID` inside the caller's transaction, returning its tenant.
    ///
    /// Throws `tokenRejected` when the token is unknown, expired or used as often as it allows; the caller's
    /// transaction then rolls back, so a refused enrollment leaves nothing behind (and uses nothing up). Two
    /// enrollments racing for a token's last use: the row lock lets one through.
    public static func consume(token: String, agentID: UUID, on connection: PostgresConnection, logger: Logger) async throws -> UUID {
        let hash = ByteBuffer(bytes: SHA256.hash(data: Array(token.utf8)))
        let rows = try await connection.query("""
            UPDATE enrollment_tokens SET used_at = now(), used_by = \(agentID), uses = uses + 1
            WHERE token_hash = \(hash) AND uses < uses_allowed AND expires_at > now()
            RETURNING tenant_id
            """, logger: logger)
        for try await tenantID in rows.decode(UUID.self) { return tenantID }
        throw StoreError(.tokenRejected, "enrollment token is unknown, expired or already used (as many times as it allows)")
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

/// A token lifetime as operators write it: a whole number and `m`, `h` or `d` (`30m`, `12h`, `7d`), from one
/// minute to `EnrollmentTokenStore.maximumLifetime`.
public enum TokenLifetime {
    public static func parse(_ text: String) -> Duration? {
        guard let unit = text.last, text.count <= 12, let number = Int(text.dropLast()), number > 0 else { return nil }
        let multiplier: Int
        switch unit {
        case "m": multiplier = 60
        case "h": multiplier = 3600
        case "d": multiplier = 86_400
        default: return nil
        }
        let (seconds, overflow) = number.multipliedReportingOverflow(by: multiplier)
        guard !overflow, seconds <= Int(EnrollmentTokenStore.maximumLifetime.components.seconds) else { return nil }
        return .seconds(seconds)
    }
}
