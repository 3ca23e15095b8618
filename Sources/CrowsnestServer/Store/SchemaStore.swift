import Logging
import PostgresNIO

/// SQL about the schema itself, for `/readyz`.
public enum SchemaStore {
    /// True when the database answers and at least one migration is recorded.
    public static func isMigrated(_ client: PostgresClient, logger: Logger) async throws -> Bool {
        let rows = try await client.query("SELECT count(*) FROM schema_migrations", logger: logger)
        for try await count in rows.decode(Int64.self) { return count > 0 }
        return false
    }
}
