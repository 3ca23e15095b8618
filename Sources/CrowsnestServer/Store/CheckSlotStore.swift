import Foundation
import Logging
import PostgresNIO

/// SQL for `check_slots`: which fencing token and runner each slot of a check was assigned.
public enum CheckSlotStore {
    /// Records that `slotAt` of the check runs on `agentID` (nil: a server replica) under `token`. A slot assigned
    /// again (its runner died) takes the new runner only with a larger token; returns false when the stored token is
    /// already as large (a stale coordinator), leaving the row as it was.
    @discardableResult
    public static func assign(tenantID: UUID, checkID: UUID, slotAt: Date, token: Int64, agentID: UUID?, runner: String,
                              on connection: PostgresConnection, logger: Logger) async throws -> Bool {
        let rows = try await connection.query("""
            INSERT INTO check_slots AS s (tenant_id, check_id, slot_at, token, agent_id, runner)
            VALUES (\(tenantID), \(checkID), \(slotAt), \(token), \(agentID), \(runner))
            ON CONFLICT (tenant_id, check_id, slot_at) DO UPDATE
                SET token = EXCLUDED.token, agent_id = EXCLUDED.agent_id, runner = EXCLUDED.runner,
                    assigned_at = now()
                WHERE s.token < EXCLUDED.token
            RETURNING token
            """, logger: logger)
        var assigned = false
        for try await _ in rows.decode(Int64.self) { assigned = true }
        return assigned
    }
}
