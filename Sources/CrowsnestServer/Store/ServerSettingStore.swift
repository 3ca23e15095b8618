import Foundation
import Logging
import PostgresNIO

/// Server-wide settings kept in the database (`server_settings`), so every replica and every administrative
/// command reads the same value: where new hosts download `install.sh`, and that script's SHA-256.
public struct ServerSettingStore: Sendable {
    /// The names in use.
    public enum Name: String, Sendable, CaseIterable {
        /// The server's `public_url`, as configured on the replica that started last.
        case publicURL = "public_url"
        /// SHA-256 (hex) of the `install.sh` served at `public_url`.
        case installScriptSHA256 = "install_script_sha256"
    }

    public let client: PostgresClient
    public let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// Sets (or, with nil, removes) several settings in one transaction, so a reader never sees a new URL with
    /// an old checksum.
    public func set(_ values: [Name: String?]) async throws {
        try await client.withTransaction(logger: logger) { connection in
            for (name, value) in values.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
                if let value {
                    try await connection.query("""
                        INSERT INTO server_settings (name, value) VALUES (\(name.rawValue), \(value))
                        ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value, updated_at = now()
                        """, logger: logger)
                } else {
                    try await connection.query("DELETE FROM server_settings WHERE name = \(name.rawValue)", logger: logger)
                }
            }
        }
    }

    /// Every setting that is set.
    public func all() async throws -> [Name: String] {
        let rows = try await client.query("SELECT name, value FROM server_settings", logger: logger)
        var values: [Name: String] = [:]
        for try await (name, value) in rows.decode((String, String).self) {
            if let known = Name(rawValue: name) { values[known] = value }
        }
        return values
    }
}
