import CrowsnestWire
import Foundation
import Logging
import PostgresNIO
import XCTest

@testable import CrowsnestServer

/// CheckStore against the real schema: tenant confinement, names, push tokens, pause, delete, results and state.
final class CheckStoreTests: XCTestCase {
    private let logger = APITestHarness.logger

    private func submission(_ json: String) throws -> CheckSubmission {
        try CheckDefinition.parse(JSONValue.parse(Data(json.utf8)))
    }

    private func httpCheck(_ name: String, _ extra: String = "") throws -> CheckSubmission {
        try submission(#"{"name":"\#(name)","type":"http","target":"https://example.com/"\#(extra)}"#)
    }

    private func withStore(_ body: (CheckStore, APISeed) async throws -> Void) async throws {
        try await TestPostgres.withTestDatabase { client in
            try await body(CheckStore(client: client, logger: self.logger), APISeed(database: client))
        }
    }

    private func count(_ sql: String, _ client: PostgresClient) async throws -> Int64 {
        let rows = try await client.query(PostgresQuery(unsafeSQL: sql), logger: logger)
        for try await count in rows.decode(Int64.self) { return count }
        return -1
    }

    func testCreateStoresTheDefinitionAndReadsItBack() async throws {
        try await withStore { store, seed in
            let tenant = try await seed.tenant()
            let created = try await store.create(tenantID: tenant, submission: try httpCheck("home", #","interval_seconds":60,"retries":2,"run_on":{"mode":"labels","labels":["env=prod"]},"options":{"keyword":"Welcome"}"#))
            XCTAssertEqual(created.name, "home")
            XCTAssertEqual(created.type, .http)
            XCTAssertEqual(created.target, "https://example.com/")
            XCTAssertEqual(created.intervalSeconds, 60)
            XCTAssertEqual(created.timeoutMs, 48_000)
            XCTAssertEqual(created.retries, 2)
            XCTAssertEqual(created.runOn, .object(["mode": .string("labels"), "labels": .array([.string("env=prod")])]))
            XCTAssertEqual(created.options["keyword"], .string("Welcome"))
            XCTAssertEqual(created.options["keyword_absent"], .bool(false))
            XCTAssertFalse(created.paused)
            XCTAssertNil(created.pushToken)
            XCTAssertEqual(created.state, .unknown)
            XCTAssertNil(created.lastResultAt)
            XCTAssertEqual(created.createdAt.timeIntervalSinceNow, 0, accuracy: 10)

            let read = try await store.get(tenantID: tenant, id: created.id)
            XCTAssertEqual(read, created)
        }
    }

    func testEveryOperationIsConfinedToTheTenant() async throws {
        try await withStore { store, seed in
            let owner = try await seed.tenant()
            let other = try await seed.tenant()
            let check = try await store.create(tenantID: owner, submission: try httpCheck("mine"))
            try await seed.checkResult(tenant: owner, check: check.id, slotAt: Date(), ok: true)

            let otherList = try await store.list(tenantID: other)
            let otherGet = try await store.get(tenantID: other, id: check.id)
            let otherUpdate = try await store.update(tenantID: other, id: check.id, submission: try httpCheck("taken over"))
            let otherPause = try await store.setPaused(tenantID: other, id: check.id, paused: true)
            let otherResults = try await store.results(tenantID: other, checkID: check.id, limit: 10, from: nil, to: nil)
            let otherDelete = try await store.delete(tenantID: other, id: check.id)
            XCTAssertEqual(otherList, [])
            XCTAssertNil(otherGet)
            XCTAssertNil(otherUpdate)
            XCTAssertNil(otherPause)
            XCTAssertNil(otherResults)
            XCTAssertFalse(otherDelete)

            let unchanged = try await store.get(tenantID: owner, id: check.id)
            XCTAssertEqual(unchanged?.name, "mine")
            XCTAssertEqual(unchanged?.paused, false)
            let results = try await store.results(tenantID: owner, checkID: check.id, limit: 10, from: nil, to: nil)
            XCTAssertEqual(results?.count, 1)
        }
    }

    func testNamesAreUniquePerTenant() async throws {
        try await withStore { store, seed in
            let tenant = try await seed.tenant()
            let other = try await seed.tenant()
            _ = try await store.create(tenantID: tenant, submission: try httpCheck("api"))
            let second = try await store.create(tenantID: tenant, submission: try httpCheck("web"))
            _ = try await store.create(tenantID: other, submission: try httpCheck("api"))

            do {
                _ = try await store.create(tenantID: tenant, submission: try httpCheck("api"))
                XCTFail("a second check named api was stored")
            } catch let error as StoreError {
                XCTAssertEqual(error.code, .alreadyExists)
                XCTAssertTrue(error.message.contains("\"api\" already exists"), error.message)
            }
            do {
                _ = try await store.update(tenantID: tenant, id: second.id, submission: try httpCheck("api"))
                XCTFail("a rename onto a taken name was stored")
            } catch let error as StoreError {
                XCTAssertEqual(error.code, .alreadyExists)
            }
            let names = try await store.list(tenantID: tenant).map(\.name)
            XCTAssertEqual(names, ["api", "web"])
        }
    }

    func testPushTokensAreKeptAcrossUpdatesAndDroppedWithTheType() async throws {
        try await withStore { store, seed in
            let tenant = try await seed.tenant()
            let push = try await store.create(tenantID: tenant, submission: try submission(#"{"name":"backup","type":"push"}"#))
            let token = try XCTUnwrap(push.pushToken)
            XCTAssertTrue(token.hasPrefix("cnp_"), token)
            XCTAssertEqual(token.count, 4 + 43)
            XCTAssertEqual(push.runOn, .object(["mode": .string("server")]))

            let another = try await store.create(tenantID: tenant, submission: try submission(#"{"name":"cron","type":"push"}"#))
            XCTAssertNotEqual(another.pushToken, token)

            let renamed = try await store.update(tenantID: tenant, id: push.id,
                                                 submission: try submission(#"{"name":"backup2","type":"push","interval_seconds":3600}"#))
            XCTAssertEqual(renamed?.pushToken, token, "its callers keep working")
            let http = try await store.update(tenantID: tenant, id: push.id, submission: try httpCheck("backup2"))
            XCTAssertNil(http?.pushToken)
            let pushAgain = try await store.update(tenantID: tenant, id: push.id, submission: try submission(#"{"name":"backup2","type":"push"}"#))
            XCTAssertNotNil(pushAgain?.pushToken)
            XCTAssertNotEqual(pushAgain?.pushToken, token, "a new push check gets a new secret")
        }
    }

    func testUpdateReplacesTheDefinitionAndKeepsPausedUnlessGiven() async throws {
        try await withStore { store, seed in
            let tenant = try await seed.tenant()
            let check = try await store.create(tenantID: tenant, submission: try httpCheck("api", #","paused":true,"retries":3"#))
            XCTAssertTrue(check.paused)
            let replaced = try await store.update(
                tenantID: tenant, id: check.id,
                submission: try submission(#"{"name":"db","type":"tcp","target":"db.internal:5432","interval_seconds":10}"#))
            XCTAssertEqual(replaced?.name, "db")
            XCTAssertEqual(replaced?.type, .tcp)
            XCTAssertEqual(replaced?.target, "db.internal:5432")
            XCTAssertEqual(replaced?.intervalSeconds, 10)
            XCTAssertEqual(replaced?.timeoutMs, 8000)
            XCTAssertEqual(replaced?.retries, 0, "full replace: left-out fields take their defaults")
            XCTAssertEqual(replaced?.options, .object([:]))
            XCTAssertEqual(replaced?.paused, true, "paused is left as it was when the body does not say")
            XCTAssertEqual(replaced?.createdAt, check.createdAt)
            XCTAssertGreaterThanOrEqual(try XCTUnwrap(replaced?.updatedAt), check.updatedAt)

            let resumed = try await store.update(tenantID: tenant, id: check.id, submission: try httpCheck("db", #","paused":false"#))
            XCTAssertEqual(resumed?.paused, false)
        }
    }

    func testPauseAndResume() async throws {
        try await withStore { store, seed in
            let tenant = try await seed.tenant()
            let check = try await store.create(tenantID: tenant, submission: try httpCheck("api"))
            try await seed.checkResult(tenant: tenant, check: check.id, slotAt: Date(), ok: true)
            let paused = try await store.setPaused(tenantID: tenant, id: check.id, paused: true)
            XCTAssertEqual(paused?.paused, true)
            XCTAssertEqual(paused?.state, .paused)
            let again = try await store.setPaused(tenantID: tenant, id: check.id, paused: true)
            XCTAssertEqual(again?.updatedAt, paused?.updatedAt, "pausing a paused check changes nothing")
            let resumed = try await store.setPaused(tenantID: tenant, id: check.id, paused: false)
            XCTAssertEqual(resumed?.paused, false)
            XCTAssertEqual(resumed?.state, .up)
        }
    }

    func testDeleteRemovesTheCheckAndItsResults() async throws {
        try await withStore { store, seed in
            let tenant = try await seed.tenant()
            let check = try await store.create(tenantID: tenant, submission: try httpCheck("api"))
            let kept = try await store.create(tenantID: tenant, submission: try httpCheck("kept"))
            let now = Date()
            for i in 0..<3 {
                try await seed.checkResult(tenant: tenant, check: check.id, slotAt: now.addingTimeInterval(Double(-30 * i)), ok: true)
            }
            try await seed.checkResult(tenant: tenant, check: kept.id, slotAt: now, ok: true)

            let deleted = try await store.delete(tenantID: tenant, id: check.id)
            XCTAssertTrue(deleted)
            let deletedAgain = try await store.delete(tenantID: tenant, id: check.id)
            XCTAssertFalse(deletedAgain)
            let gone = try await store.get(tenantID: tenant, id: check.id)
            XCTAssertNil(gone)
            let deletedResults = try await count("SELECT count(*) FROM check_results WHERE check_id = '\(check.id)'", store.client)
            let keptResults = try await count("SELECT count(*) FROM check_results WHERE check_id = '\(kept.id)'", store.client)
            XCTAssertEqual(deletedResults, 0)
            XCTAssertEqual(keptResults, 1)
        }
    }

    func testSpansFollowPushCallsPausesAndGoWithTheCheck() async throws {
        try await withStore { store, seed in
            let tenant = try await seed.tenant()
            let check = try await store.create(tenantID: tenant, submission: try submission(#"{"name":"backup","type":"push"}"#))
            let token = try XCTUnwrap(check.pushToken)
            try await PartitionStore(client: store.client, logger: logger)
                .ensurePartitions(forMillis: [Int64(Date().timeIntervalSince1970 * 1000)])
            let target = TargetID.check(checkID: check.id).description
            func spans() async throws -> [String] {
                let rows = try await store.client.query("""
                    SELECT state || CASE WHEN ended_at IS NULL THEN ' open' ELSE '' END || CASE WHEN cause = '' THEN '' ELSE ': ' || cause END
                    FROM status_spans WHERE tenant_id = \(tenant) AND target_id = \(target) ORDER BY started_at
                    """, logger: logger)
                var result: [String] = []
                for try await text in rows.decode(String.self) { result.append(text) }
                return result
            }
            var current = try await spans()
            XCTAssertEqual(current, [], "no span before the first result")
            let failed = try await store.recordPush(token: token, ok: false, message: "disk full", latencyMs: nil)
            guard case .recorded = failed else { return XCTFail("\(failed)") }
            current = try await spans()
            XCTAssertEqual(current, ["down open: disk full"], "retries 0: the first failure is an outage")
            _ = try await store.recordPush(token: token, ok: true, message: "", latencyMs: nil)
            current = try await spans()
            XCTAssertEqual(current, ["down: disk full", "up open"])
            _ = try await store.setPaused(tenantID: tenant, id: check.id, paused: true)
            current = try await spans()
            XCTAssertEqual(current, ["down: disk full", "up", "unknown open: \(CheckSpanRule.pausedCause)"])
            _ = try await store.setPaused(tenantID: tenant, id: check.id, paused: true)
            let unchanged = try await spans()
            XCTAssertEqual(unchanged, current, "pausing a paused check changes nothing")

            let deleted = try await store.delete(tenantID: tenant, id: check.id)
            XCTAssertTrue(deleted)
            let left = try await count("SELECT count(*) FROM status_spans WHERE target_id = '\(target)'", store.client)
            XCTAssertEqual(left, 0, "a deleted check's spans go with it")
        }
    }

    func testResultsAreNewestFirstWithinBoundsAndLimit() async throws {
        try await withStore { store, seed in
            let tenant = try await seed.tenant()
            let check = try await store.create(tenantID: tenant, submission: try httpCheck("api"))
            let agent = try await seed.agent(tenant: tenant, hostname: "probe-1", lastSeenSecondsAgo: 1)
            // Slots 30 s apart across a UTC midnight, so two partitions hold them; inserted out of order.
            let base = instant("2025-03-01T23:58:00Z")
            let slots = (0..<8).map { base.addingTimeInterval(Double($0) * 30) }
            for (i, slot) in slots.enumerated().shuffled() {
                try await seed.checkResult(tenant: tenant, check: check.id, slotAt: slot, ok: i % 3 != 0,
                                           agent: i == 7 ? agent : nil, latencyMs: Double(i), error: i % 3 == 0 ? "timeout" : "",
                                           httpStatus: i % 3 == 0 ? nil : 200,
                                           certNotAfter: i == 7 ? instant("2026-01-01T00:00:00Z") : nil,
                                           figures: i == 7 ? #"{"answers":["1.2.3.4"]}"# : "{}")
            }
            let listed = try await store.results(tenantID: tenant, checkID: check.id, limit: 100, from: nil, to: nil)
            let all = try XCTUnwrap(listed)
            XCTAssertEqual(all.map(\.slotAt), slots.reversed())
            let newest = all[0]
            XCTAssertEqual(newest.agentID, agent)
            XCTAssertEqual(newest.ok, true)
            XCTAssertEqual(newest.latencyMs, 7)
            XCTAssertEqual(newest.httpStatus, 200)
            XCTAssertEqual(newest.certificateNotAfter, instant("2026-01-01T00:00:00Z"))
            XCTAssertEqual(newest.figures, .object(["answers": .array([.string("1.2.3.4")])]))
            XCTAssertEqual(newest.runner, "replica-1")
            XCTAssertEqual(all[1].agentID, nil)
            XCTAssertEqual(all[1].error, "timeout")
            XCTAssertEqual(all[1].ok, false)

            let limited = try await store.results(tenantID: tenant, checkID: check.id, limit: 3, from: nil, to: nil)
            XCTAssertEqual(limited?.map(\.slotAt), Array(slots.reversed().prefix(3)))
            let bounded = try await store.results(tenantID: tenant, checkID: check.id, limit: 100, from: slots[2], to: slots[4])
            XCTAssertEqual(bounded?.map(\.slotAt), [slots[4], slots[3], slots[2]], "both bounds are inclusive")
            let fromOnly = try await store.results(tenantID: tenant, checkID: check.id, limit: 100, from: slots[6], to: nil)
            XCTAssertEqual(fromOnly?.map(\.slotAt), [slots[7], slots[6]])
        }
    }

    func testStateComesFromTheNewestResultsAndRetries() async throws {
        try await withStore { store, seed in
            let tenant = try await seed.tenant()
            let check = try await store.create(tenantID: tenant, submission: try httpCheck("api", #","retries":2"#))
            let base = Date().addingTimeInterval(-3600)
            var slot = 0
            func record(_ ok: Bool) async throws {
                try await seed.checkResult(tenant: tenant, check: check.id, slotAt: base.addingTimeInterval(Double(slot * 30)), ok: ok)
                slot += 1
            }
            func expect(_ state: CheckState, _ message: String = "", line: UInt = #line) async throws {
                let current = try await store.get(tenantID: tenant, id: check.id)?.state
                XCTAssertEqual(current, state, message, line: line)
            }

            try await record(false)
            try await expect(.unknown, "one failure, never a success: not down yet")
            try await record(true)
            try await expect(.up)
            try await record(false)
            try await record(false)
            try await expect(.up, "two failures are within retries 2")
            try await record(false)
            try await expect(.down, "the third consecutive failure")
            let listed = try await store.list(tenantID: tenant)
            XCTAssertEqual(listed.first?.state, .down)
            XCTAssertEqual(listed.first?.recentResults, [false, false, false])
            XCTAssertEqual(listed.first?.lastResultAt?.timeIntervalSince1970 ?? 0,
                           base.addingTimeInterval(4 * 30 + 0.25).timeIntervalSince1970, accuracy: 0.001)
            try await record(true)
            try await expect(.up)
        }
    }

    func testPartitionStoreCreatesCheckResultPartitions() async throws {
        try await TestPostgres.withTestDatabase { client in
            let day = instant("2031-05-17T12:00:00Z")
            try await PartitionStore(client: client, logger: self.logger)
                .ensurePartitions(forMillis: [Int64(day.timeIntervalSince1970 * 1000)])
            try await client.query("""
                INSERT INTO check_results (tenant_id, check_id, slot_at, ts, token, ok)
                VALUES (gen_random_uuid(), gen_random_uuid(), '2031-05-17T23:59:59.999Z', now(), 1, true)
                """, logger: self.logger)
            let rows = try await client.query("SELECT tableoid::regclass::text FROM check_results", logger: self.logger)
            var partitions: [String] = []
            for try await name in rows.decode(String.self) { partitions.append(name) }
            XCTAssertEqual(partitions, ["check_results_20310517"])
        }
    }
}

private extension JSONValue {
    subscript(key: String) -> JSONValue? {
        guard case .object(let object) = self else { return nil }
        return object[key]
    }
}
