import CrowsnestWire
import Foundation
import Hummingbird
import HummingbirdTesting
import PostgresNIO
import XCTest

@testable import CrowsnestServer

final class MetricsRouteTests: XCTestCase {
    private static let figureKeys: Set<String> = [
        "ts", "cpu_percent", "memory_bytes", "memory_limit_bytes", "net_rx_bytes_per_second", "net_tx_bytes_per_second",
        "block_read_bytes_per_second", "block_write_bytes_per_second", "pids",
    ]

    func testLatestContainerMetricsComeFromTheNewestSample() async throws {
        try await APITestHarness.withAPI { seed, client in
            let tenant = try await seed.tenant()
            let key = try await seed.apiKey(tenant: tenant)
            let agent = try await seed.agent(tenant: tenant, hostname: "web-1", lastSeenSecondsAgo: 1)
            try await seed.container(tenant: tenant, agent: agent, name: "web")
            try await seed.containerSample(
                tenant: tenant, agent: agent, name: "web", ts: instant("2025-03-01T10:00:00Z"), cpuPercent: 5,
                workingSet: 1, usage: 1, limit: 1
            )
            try await seed.containerSample(
                tenant: tenant, agent: agent, name: "web", ts: instant("2025-03-01T10:00:30.250Z"), cpuPercent: 150.5,
                workingSet: 104_857_600, usage: 209_715_200, limit: 536_870_912, rx: 1024.5, tx: 2048,
                blockRead: 4096, blockWrite: 8192, pids: 12
            )
            let target = "c-\(agent.uuidString.lowercased())-web"
            let response = try await client.execute(uri: "/api/v1/metrics/\(target)", method: .get, headers: bearer(key.secret))
            XCTAssertEqual(response.status, .ok)
            let body = try response.jsonObject()
            XCTAssertEqual(Set(body.keys), Self.figureKeys.union(["target"]))
            XCTAssertEqual(body["target"] as? NSDictionary, ["id": target, "kind": "container", "name": "web"])
            XCTAssertEqual(body["ts"] as? String, "2025-03-01T10:00:30.250Z")
            XCTAssertEqual(body["cpu_percent"] as? Double, 150.5)
            XCTAssertEqual(body["memory_bytes"] as? Double, 104_857_600, "the working set, not usage")
            XCTAssertEqual(body["memory_limit_bytes"] as? Double, 536_870_912)
            XCTAssertEqual(body["net_rx_bytes_per_second"] as? Double, 1024.5)
            XCTAssertEqual(body["net_tx_bytes_per_second"] as? Double, 2048)
            XCTAssertEqual(body["block_read_bytes_per_second"] as? Double, 4096)
            XCTAssertEqual(body["block_write_bytes_per_second"] as? Double, 8192)
            XCTAssertEqual(body["pids"] as? Double, 12)
            XCTAssertTrue(String(buffer: response.body).contains("\"memory_bytes\":104857600"), "whole numbers print without a fraction")
        }
    }

    func testContainerMemoryFallsBackToUsageAndUnknownFiguresAreNull() async throws {
        try await APITestHarness.withAPI { seed, client in
            let tenant = try await seed.tenant()
            let key = try await seed.apiKey(tenant: tenant)
            let agent = try await seed.agent(tenant: tenant, hostname: "web-1", lastSeenSecondsAgo: 1)
            try await seed.container(tenant: tenant, agent: agent, name: "job")
            try await seed.containerSample(
                tenant: tenant, agent: agent, name: "job", ts: instant("2025-03-01T10:00:00Z"), cpuPercent: nil,
                workingSet: nil, usage: 300, limit: nil
            )
            let response = try await client.execute(
                uri: "/api/v1/metrics/c-\(agent.uuidString.lowercased())-job", method: .get, headers: bearer(key.secret)
            )
            XCTAssertEqual(response.status, .ok)
            let body = try response.jsonObject()
            XCTAssertEqual(body["memory_bytes"] as? Double, 300)
            for key in ["cpu_percent", "memory_limit_bytes", "net_rx_bytes_per_second", "block_write_bytes_per_second", "pids"] {
                XCTAssertTrue(body[key] is NSNull, "\(key) should be null, is \(String(describing: body[key]))")
            }
        }
    }

    func testLatestHostMetricsDeriveMemoryFromTotalAndAvailable() async throws {
        try await APITestHarness.withAPI { seed, client in
            let tenant = try await seed.tenant()
            let key = try await seed.apiKey(tenant: tenant)
            let agent = try await seed.agent(tenant: tenant, hostname: "web-1", lastSeenSecondsAgo: 1)
            try await seed.hostSample(
                tenant: tenant, agent: agent, ts: instant("2025-03-01T10:00:00Z"), cpuPercent: 37.5,
                memoryTotal: 8_000_000_000, memoryAvailable: 6_000_000_000, rx: 10, tx: 20
            )
            let target = "h-\(agent.uuidString.lowercased())"
            let response = try await client.execute(uri: "/api/v1/metrics/\(target)", method: .get, headers: bearer(key.secret))
            XCTAssertEqual(response.status, .ok)
            let body = try response.jsonObject()
            XCTAssertEqual(body["target"] as? NSDictionary, ["id": target, "kind": "host", "name": "web-1"])
            XCTAssertEqual(body["cpu_percent"] as? Double, 37.5)
            XCTAssertEqual(body["memory_bytes"] as? Double, 2_000_000_000)
            XCTAssertEqual(body["memory_limit_bytes"] as? Double, 8_000_000_000)
            XCTAssertEqual(body["net_rx_bytes_per_second"] as? Double, 10)
            XCTAssertEqual(body["net_tx_bytes_per_second"] as? Double, 20)
            XCTAssertTrue(body["block_read_bytes_per_second"] is NSNull)
            XCTAssertTrue(body["block_write_bytes_per_second"] is NSNull)
            XCTAssertTrue(body["pids"] is NSNull)
        }
    }

    func testUnknownTargetsAndTargetsWithoutSamplesAre404() async throws {
        try await APITestHarness.withAPI { seed, client in
            let tenant = try await seed.tenant()
            let key = try await seed.apiKey(tenant: tenant)
            let agent = try await seed.agent(tenant: tenant, hostname: "quiet", lastSeenSecondsAgo: nil)
            for target in ["nonsense", "h-\(UUID().uuidString.lowercased())", "c-\(agent.uuidString.lowercased())-missing", "k-\(UUID().uuidString)"] {
                let response = try await client.execute(uri: "/api/v1/metrics/\(target)", method: .get, headers: bearer(key.secret))
                XCTAssertEqual(response.status, .notFound, target)
                let error = try response.apiError()
                XCTAssertEqual(error.code, "not_found", target)
                XCTAssertEqual(error.message, "no target with id \(target)")
            }
            let quiet = "h-\(agent.uuidString.lowercased())"
            let response = try await client.execute(uri: "/api/v1/metrics/\(quiet)", method: .get, headers: bearer(key.secret))
            XCTAssertEqual(response.status, .notFound)
            XCTAssertEqual(try response.apiError().message, "target \(quiet) has no samples yet")
        }
    }

    func testAnotherTenantsTargetIs404() async throws {
        try await APITestHarness.withAPI { seed, client in
            let tenantA = try await seed.tenant("a")
            let tenantB = try await seed.tenant("b")
            let keyB = try await seed.apiKey(tenant: tenantB)
            let agentA = try await seed.agent(tenant: tenantA, hostname: "a-host", lastSeenSecondsAgo: 1)
            try await seed.container(tenant: tenantA, agent: agentA, name: "web")
            let ts = instant("2025-03-01T10:00:00Z")
            try await seed.hostSample(tenant: tenantA, agent: agentA, ts: ts, cpuPercent: 1, memoryTotal: 2, memoryAvailable: 1)
            try await seed.containerSample(tenant: tenantA, agent: agentA, name: "web", ts: ts, cpuPercent: 1, workingSet: 1, usage: 1, limit: 1)
            for target in ["h-\(agentA.uuidString.lowercased())", "c-\(agentA.uuidString.lowercased())-web"] {
                for uri in ["/api/v1/metrics/\(target)", "/api/v1/metrics/\(target)/history?from=2025-03-01T09:00:00Z&to=2025-03-01T11:00:00Z"] {
                    let response = try await client.execute(uri: uri, method: .get, headers: bearer(keyB.secret))
                    XCTAssertEqual(response.status, .notFound, uri)
                    XCTAssertEqual(try response.apiError().code, "not_found")
                }
            }
        }
    }

    func testHistoryBucketsContainerSamplesWithAvgMinMax() async throws {
        try await APITestHarness.withAPI { seed, client in
            let tenant = try await seed.tenant()
            let key = try await seed.apiKey(tenant: tenant)
            let agent = try await seed.agent(tenant: tenant, hostname: "web-1", lastSeenSecondsAgo: 1)
            try await seed.container(tenant: tenant, agent: agent, name: "web")
            // Bucket 10:00 (cpu 10, 20, 30; memory 100, 200, 600), bucket 10:01 (cpu 40, 60; memory 1000, 3000);
            // 09:59:50 and 10:02:00 fall outside the range and must not count.
            let samples: [(String, Double, Int64)] = [
                ("2025-03-01T09:59:50Z", 999, 999_999),
                ("2025-03-01T10:00:00Z", 10, 100), ("2025-03-01T10:00:20Z", 20, 200), ("2025-03-01T10:00:40Z", 30, 600),
                ("2025-03-01T10:01:00Z", 40, 1000), ("2025-03-01T10:01:30Z", 60, 3000),
                ("2025-03-01T10:02:00Z", 999, 999_999),
            ]
            for (ts, cpu, memory) in samples {
                try await seed.containerSample(
                    tenant: tenant, agent: agent, name: "web", ts: instant(ts), cpuPercent: cpu, workingSet: memory,
                    usage: nil, limit: 4096, pids: Int64(cpu)
                )
            }
            let target = "c-\(agent.uuidString.lowercased())-web"
            let range = "from=2025-03-01T10:00:00Z&to=2025-03-01T10:01:59Z&step=60"
            let expectations: [(String, [Double], [Double])] = [
                ("avg", [20, 50], [300, 2000]), ("min", [10, 40], [100, 1000]), ("max", [30, 60], [600, 3000]),
            ]
            for (agg, cpu, memory) in expectations {
                let response = try await client.execute(
                    uri: "/api/v1/metrics/\(target)/history?\(range)&agg=\(agg)", method: .get, headers: bearer(key.secret)
                )
                XCTAssertEqual(response.status, .ok, agg)
                let body = try response.jsonObject()
                XCTAssertEqual(Set(body.keys), ["target", "step_seconds", "points"])
                XCTAssertEqual(body["target"] as? NSDictionary, ["id": target, "kind": "container", "name": "web"])
                XCTAssertEqual(body["step_seconds"] as? Int, 60)
                let points = try XCTUnwrap(body["points"] as? [[String: Any]])
                XCTAssertEqual(points.map { $0["ts"] as? String }, ["2025-03-01T10:00:00Z", "2025-03-01T10:01:00Z"], agg)
                XCTAssertEqual(points.map { $0["cpu_percent"] as? Double }, cpu, agg)
                XCTAssertEqual(points.map { $0["memory_bytes"] as? Double }, memory, agg)
                XCTAssertEqual(points.map { $0["pids"] as? Double }, cpu, agg)
                XCTAssertEqual(points.map { $0["memory_limit_bytes"] as? Double }, [4096, 4096], agg)
                XCTAssertTrue(points.allSatisfy { Set($0.keys) == Self.figureKeys })
                XCTAssertTrue(points.allSatisfy { $0["net_rx_bytes_per_second"] is NSNull })
            }
        }
    }

    func testHostHistoryUsesTheDefaultRangeAndAStepOfAtLeastTheSamplingInterval() async throws {
        try await APITestHarness.withAPI { seed, client in
            let tenant = try await seed.tenant()
            let key = try await seed.apiKey(tenant: tenant)
            let agent = try await seed.agent(tenant: tenant, hostname: "web-1", lastSeenSecondsAgo: 1, intervalSeconds: 30)
            let now = Date()
            // Two hours ago is outside the default one-hour range; the other two are inside it.
            for (secondsAgo, available) in [(7200.0, Int64(0)), (600, 6_000), (300, 4_000)] {
                try await seed.hostSample(
                    tenant: tenant, agent: agent, ts: now.addingTimeInterval(-secondsAgo), cpuPercent: 50,
                    memoryTotal: 10_000, memoryAvailable: available
                )
            }
            let response = try await client.execute(
                uri: "/api/v1/metrics/h-\(agent.uuidString.lowercased())/history", method: .get, headers: bearer(key.secret)
            )
            XCTAssertEqual(response.status, .ok)
            let body = try response.jsonObject()
            XCTAssertEqual(body["step_seconds"] as? Int, 30)
            let points = try XCTUnwrap(body["points"] as? [[String: Any]])
            XCTAssertEqual(points.map { $0["memory_bytes"] as? Double }, [4_000, 6_000])
            XCTAssertEqual(points.map { $0["memory_limit_bytes"] as? Double }, [10_000, 10_000])
            XCTAssertTrue(points.allSatisfy { $0["block_read_bytes_per_second"] is NSNull && $0["pids"] is NSNull })
            let stamps = try points.map { try XCTUnwrap(RFC3339.date(from: try XCTUnwrap($0["ts"] as? String))) }
            XCTAssertEqual(stamps, stamps.sorted(), "oldest first")
            XCTAssertTrue(stamps.allSatisfy { Int($0.timeIntervalSince1970) % 30 == 0 }, "buckets aligned to the step")
        }
    }

    func testHistoryRejectsBadParametersWithAClearMessage() async throws {
        try await APITestHarness.withAPI { seed, client in
            let tenant = try await seed.tenant()
            let key = try await seed.apiKey(tenant: tenant)
            let agent = try await seed.agent(tenant: tenant, hostname: "web-1", lastSeenSecondsAgo: 1)
            let base = "/api/v1/metrics/h-\(agent.uuidString.lowercased())/history"
            let cases: [(String, String)] = [
                ("from=yesterday", "from must be an RFC 3339 timestamp"),
                ("to=2025-02-30T00:00:00Z", "to must be an RFC 3339 timestamp"),
                ("from=2025-03-01T10:00:00Z&to=2025-03-01T09:00:00Z", "must be before to"),
                ("from=2023-01-01T00:00:00Z&to=2025-01-01T00:00:00Z", "at most 400 days"),
                ("from=2025-03-01T00:00:00Z&to=2025-03-01T02:00:00Z&step=1", "at most 5000 points"),
                ("step=0", "step must be at least 1 second"),
                ("step=fast", "step must be a whole number of seconds"),
                ("agg=median", "agg must be one of avg, min, max"),
                ("from=2025-03-01T10:00:00%2B02:00&to=2025-03-01T12:00:00Z&step=-1", "step must be a whole number of seconds"),
            ]
            for (query, expected) in cases {
                let response = try await client.execute(uri: "\(base)?\(query)", method: .get, headers: bearer(key.secret))
                XCTAssertEqual(response.status, .badRequest, query)
                let error = try response.apiError()
                XCTAssertEqual(error.code, "bad_request", query)
                XCTAssertTrue(error.message.contains(expected), "\(query): \(error.message)")
            }
        }
    }

    func testHistoryOfATargetWithoutSamplesInRangeIsEmpty() async throws {
        try await APITestHarness.withAPI { seed, client in
            let tenant = try await seed.tenant()
            let key = try await seed.apiKey(tenant: tenant)
            let agent = try await seed.agent(tenant: tenant, hostname: "web-1", lastSeenSecondsAgo: nil)
            try await seed.partitions(for: [Date()])
            let response = try await client.execute(
                uri: "/api/v1/metrics/h-\(agent.uuidString.lowercased())/history", method: .get, headers: bearer(key.secret)
            )
            XCTAssertEqual(response.status, .ok)
            XCTAssertEqual((try response.jsonObject()["points"] as? [Any])?.count, 0)
        }
    }

    func testHistoryQueryScansOnlyThePartitionsOfItsRange() async throws {
        try await APITestHarness.withAPI { seed, _ in
            try await seed.partitions(for: [instant("2025-03-01T12:00:00Z"), instant("2025-03-02T12:00:00Z"), instant("2025-03-03T12:00:00Z")])
            for (target, table) in [(TargetID.container(agentID: UUID(), name: "web"), "container_samples"), (.host(agentID: UUID()), "host_samples")] {
                let query = try XCTUnwrap(
                    MetricsQueries.historyQuery(
                        tenantID: UUID(), target: target, from: instant("2025-03-02T01:00:00Z"), to: instant("2025-03-02T02:00:00Z"),
                        stepSeconds: 60, aggregation: .max
                    )
                )
                let rows = try await seed.database.query(
                    PostgresQuery(unsafeSQL: "EXPLAIN " + query.sql, binds: query.binds), logger: APITestHarness.logger
                )
                var plan = ""
                for try await line in rows.decode(String.self) { plan += line + "\n" }
                XCTAssertTrue(plan.contains("\(table)_20250302"), plan)
                XCTAssertFalse(plan.contains("\(table)_20250301"), plan)
                XCTAssertFalse(plan.contains("\(table)_20250303"), plan)
            }
        }
    }
}
