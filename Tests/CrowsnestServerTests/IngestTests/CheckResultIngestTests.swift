import CrowsnestWire
import Foundation
import Logging
import PostgresNIO
import XCTest

@testable import CrowsnestServer

/// Check results in an agent's batch count only under the token last issued to that agent for their slot, once.
final class CheckResultIngestTests: XCTestCase {
    private static let logger = IngestFixtures.logger
    /// A slot start inside the fixtures' time window, on a whole minute.
    private static let slot0: Int64 = (IngestFixtures.serverNowMillis - 600_000) / 60_000 * 60_000

    private static func result(_ checkID: UUID, slot: Int64, token: Int64, ok: Bool = true) -> Crowsnest_V1_CheckResult {
        var result = Crowsnest_V1_CheckResult()
        result.checkID = checkID.uuidString.lowercased()
        result.slotUnixMs = slot
        result.tsUnixMs = slot + 1_250
        result.fencingToken = UInt64(token)
        result.ok = ok
        result.latencyMs = 12.5
        result.httpStatus = ok ? 200 : 503
        result.error = ok ? "" : "HTTP 503"
        result.figures = ["bytes": 5120]
        result.details = ["server": "nginx"]
        return result
    }

    func testOnlyTheLastTokenIssuedToThisAgentForTheSlotCountsAndOnlyOnce() async throws {
        let logger = Self.logger, slot0 = Self.slot0
        func result(_ checkID: UUID, slot: Int64, token: Int64, ok: Bool = true) -> Crowsnest_V1_CheckResult {
            Self.result(checkID, slot: slot, token: token, ok: ok)
        }
        try await IngestFixtures.withWriter { client, writer, tenantID, agentID in
            let checkID = UUID()
            try await client.query("""
                INSERT INTO checks (tenant_id, id, name, type, target, interval_seconds, timeout_ms)
                VALUES (\(tenantID), \(checkID), 'home', 'http', 'https://example.com/', 60, 48000)
                """, logger: logger)
            let otherAgent = UUID()
            try await client.query(
                "INSERT INTO agents (tenant_id, id, hostname) VALUES (\(tenantID), \(otherAgent), 'host-2')", logger: logger)
            try await client.withConnection { connection in
                func assign(_ slot: Int64, _ token: Int64, _ agent: UUID) async throws -> Bool {
                    try await CheckSlotStore.assign(tenantID: tenantID, checkID: checkID,
                                                    slotAt: Date(timeIntervalSince1970: Double(slot) / 1000), token: token,
                                                    agentID: agent, runner: "host", on: connection, logger: logger)
                }
                let first = try await assign(slot0, 100, agentID)
                XCTAssertTrue(first)
                let other = try await assign(slot0 + 60_000, 101, otherAgent)
                XCTAssertTrue(other)
                let before = try await assign(slot0 + 120_000, 102, otherAgent)
                XCTAssertTrue(before)
                let reassigned = try await assign(slot0 + 120_000, 103, agentID)   // its runner died: reassigned here
                XCTAssertTrue(reassigned)
                let stale = try await assign(slot0 + 120_000, 102, otherAgent)     // a stale coordinator
                XCTAssertFalse(stale, "a slot never goes back to an older token")
            }
            var batch = IngestFixtures.batch(seq: 1, tsMillis: slot0 + 5_000, containers: [])
            batch.eventsOnly = true
            batch.checkResults = [
                result(checkID, slot: slot0, token: 100),                       // counts
                result(checkID, slot: slot0, token: 100, ok: false),            // the same slot again: ignored
                result(checkID, slot: slot0 + 60_000, token: 101),              // another agent's slot
                result(checkID, slot: slot0 + 120_000, token: 102),             // the slot's older token
                result(checkID, slot: slot0 + 120_000, token: 103, ok: false),  // the reassigned slot: counts
                result(UUID(), slot: slot0, token: 100),                        // no such check
                result(checkID, slot: slot0 + 400 * 86_400_000, token: 100),    // a slot years ahead
            ]
            // Hostile times on the reassigned slot's result: a run time and an expiry no timestamp can hold.
            batch.checkResults[4].tsUnixMs = Int64.max
            batch.checkResults[4].certNotAfterUnixMs = Int64.min
            var memory = CounterMemory()
            let outcome = try await writer.write(batch, tenantID: tenantID, agentID: agentID, memory: &memory)
            XCTAssertEqual(outcome, .committed(containerSamples: 0))

            let rows = try await client.query("""
                SELECT (extract(epoch FROM slot_at) * 1000)::int8, token, ok, http_status, figures::text, agent_id
                FROM check_results WHERE tenant_id = \(tenantID) ORDER BY slot_at
                """, logger: logger)
            var stored: [(Int64, Int64, Bool, Int32?, String, UUID?)] = []
            for try await row in rows.decode((Int64, Int64, Bool, Int32?, String, UUID?).self) { stored.append(row) }
            XCTAssertEqual(stored.map(\.0), [slot0, slot0 + 120_000])
            XCTAssertEqual(stored.map(\.1), [100, 103])
            XCTAssertEqual(stored.map(\.2), [true, false], "the first result of a slot stays")
            XCTAssertEqual(stored.first?.3, 200)
            XCTAssertEqual(stored.first?.4, #"{"bytes": 5120, "server": "nginx"}"#)
            XCTAssertEqual(stored.first?.5, agentID)
            let hostileRow = try await IngestFixtures.integer(client, """
                SELECT count(*) FROM check_results WHERE token = 103 AND ts = slot_at AND cert_not_after IS NULL
                """)
            XCTAssertEqual(hostileRow, 1, "an untrusted run time falls back to the slot, an impossible expiry to none")
            let ahead = try await IngestFixtures.integer(client, """
                SELECT count(*) FROM pg_class WHERE relname LIKE 'check_results_2%' AND relname >= 'check_results_2025'
                """)
            XCTAssertEqual(ahead, 0, "no partition for the slot years ahead")
        }
    }
}
