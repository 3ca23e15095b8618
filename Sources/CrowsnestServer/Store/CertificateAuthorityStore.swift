import Foundation
import Logging
import PostgresNIO

/// SQL for the `certificate_authority` table: the installation's one CA, its private key sealed with the
/// server's secret key.
public enum CertificateAuthorityStore {
    /// The CA as stored.
    public struct Row: Sendable, Equatable {
        public var certificatePEM: String
        public var sealedPrivateKey: [UInt8]
        public var secretFingerprint: String
        public var pin: String
    }

    /// Inside the caller's transaction: serialises replicas that create or import the CA at the same moment.
    static func lock(on connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query("SELECT pg_advisory_xact_lock(7001002)", logger: logger)
    }

    static func load(on connection: PostgresConnection, logger: Logger) async throws -> Row? {
        let rows = try await connection.query("""
            SELECT certificate_pem, sealed_private_key, secret_fingerprint, pin FROM certificate_authority WHERE id = 1
            """, logger: logger)
        for try await (certificate, sealed, fingerprint, pin) in rows.decode((String, ByteBuffer, String, String).self) {
            return Row(certificatePEM: certificate, sealedPrivateKey: Array(buffer: sealed), secretFingerprint: fingerprint, pin: pin)
        }
        return nil
    }

    static func insert(_ row: Row, on connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query("""
            INSERT INTO certificate_authority (id, certificate_pem, sealed_private_key, secret_fingerprint, pin)
            VALUES (1, \(row.certificatePEM), \(ByteBuffer(bytes: row.sealedPrivateKey)), \(row.secretFingerprint), \(row.pin))
            """, logger: logger)
    }

    /// The pin agents must trust, or nil when no server has created the CA yet.
    public static func pin(client: PostgresClient, logger: Logger) async throws -> String? {
        let rows = try await client.query("SELECT pin FROM certificate_authority WHERE id = 1", logger: logger)
        for try await pin in rows.decode(String.self) { return pin }
        return nil
    }
}
