import Foundation
import PostgresNIO
import XCTest

@testable import CrowsnestServer

/// The path past one primary (deploy/README.md): Citus distributes every tenant-owned table by `tenant_id` and
/// keeps the rest as reference tables. That works only while every key of a tenant-owned table leads with
/// `tenant_id`: its primary key, each unique constraint or unique index, and each foreign key (on both sides when
/// it points at another tenant-owned table). This reads the migrated schema from the catalog, so a migration
/// that breaks the rule fails here.
final class TenantKeyTests: XCTestCase {
    /// Tables carrying `tenant_id` that are looked up by a secret, or a sign-in name, before the tenant is known,
    /// so that key must be unique across tenants. They are small configuration (a row per key, token, user,
    /// session or check) and stay reference tables under Citus (copied to every node; the time series that point
    /// at them stay distributed, which Citus allows). Nothing else may join this list without the same reason.
    static let lookedUpBeforeTheTenantIsKnown: Set<String> = [
        "enrollment_tokens: enrollment_tokens_token_hash_key",  // an agent enrolling presents only its token
        "api_keys: api_keys_key_hash_key",                       // a program presents only its key
        "web_sessions: web_sessions_token_hash_key",             // a browser presents only its session cookie
        "users: users_username_unique",                          // a person signs in with a name and a password
        "checks: checks_push_token_unique",                      // a push URL carries only the check's token
    ]

    func testEveryKeyOfATenantOwnedTableLeadsWithTenantID() async throws {
        try await TestPostgres.withTestDatabase { client in
            let tenantOwned = try await Self.tenantOwnedTables(client)
            XCTAssertGreaterThan(tenantOwned.count, 20, "the catalog query found the tenant-owned tables: \(tenantOwned)")
            for table in ["container_samples", "status_spans", "checks", "alert_rules", "agents"] {
                XCTAssertTrue(tenantOwned.contains(table), "\(table) is tenant-owned")
            }
            let rows = try await client.query("""
                WITH owned AS (
                    SELECT c.oid, c.relname FROM pg_class c
                    JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
                    WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
                      AND EXISTS (SELECT 1 FROM pg_attribute a
                                  WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped))
                -- Primary keys and unique constraints, and unique indexes made without a constraint.
                SELECT o.relname, i.indexrelid::regclass::text,
                       (SELECT attname FROM pg_attribute WHERE attrelid = o.oid AND attnum = i.indkey[0])
                FROM owned o JOIN pg_index i ON i.indrelid = o.oid AND i.indisunique
                UNION ALL
                -- Foreign keys: the referencing columns, and the referenced ones when that table is tenant-owned.
                SELECT o.relname, f.conname,
                       (SELECT attname FROM pg_attribute WHERE attrelid = o.oid AND attnum = f.conkey[1])
                FROM owned o JOIN pg_constraint f ON f.conrelid = o.oid AND f.contype = 'f'
                UNION ALL
                SELECT o.relname, f.conname || ' (referenced side)',
                       (SELECT attname FROM pg_attribute WHERE attrelid = f.confrelid AND attnum = f.confkey[1])
                FROM owned o JOIN pg_constraint f ON f.conrelid = o.oid AND f.contype = 'f'
                WHERE f.confrelid IN (SELECT oid FROM owned)
                """)
            var keys = 0
            var offenders: [String] = []
            for try await (table, key, first) in rows.decode((String, String, String?).self) {
                keys += 1
                if first != "tenant_id" { offenders.append("\(table): \(key)") }
            }
            for exception in Self.lookedUpBeforeTheTenantIsKnown {
                XCTAssertTrue(offenders.contains(exception), "\(exception) no longer needs its exception: remove it from the list")
            }
            offenders.removeAll { Self.lookedUpBeforeTheTenantIsKnown.contains($0) }
            XCTAssertGreaterThan(keys, tenantOwned.count, "every tenant-owned table has at least a primary key")
            XCTAssertEqual(offenders, [], "keys of tenant-owned tables that do not lead with tenant_id")
            // And every tenant-owned table has a primary key at all (Citus needs one to distribute it).
            let withoutKey = try await client.query("""
                SELECT c.relname FROM pg_class c
                JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
                WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
                  AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id')
                  AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)
                ORDER BY 1
                """).collect().map { try $0.decode(String.self) }
            XCTAssertEqual(withoutKey, [], "tenant-owned tables without a primary key")
        }
    }

    private static func tenantOwnedTables(_ client: PostgresClient) async throws -> Set<String> {
        let rows = try await client.query("""
            SELECT c.relname FROM pg_class c
            JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
            JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
            WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
            """).collect()
        return Set(try rows.map { try $0.decode(String.self) })
    }
}
