import CrowsnestWire
import Foundation
import Hummingbird
import HummingbirdTesting
import XCTest

@testable import CrowsnestServer

/// Threshold rules: the series-to-spans step with its hysteresis on hand-made points, and every metric from rows
/// in PostgreSQL through the evaluator (container CPU and memory, host disk, restarts and OOM kills from Docker
/// events, certificate days and replication lag from check results).
final class AlertThresholdTests: XCTestCase {
    private static let second: Int64 = 1_000_000
    private static let now: Int64 = 1_800_000_000 * second

    private func threshold(_ body: [String: JSONValue]) throws -> AlertRuleDefinition.Threshold {
        var object: [String: JSONValue] = ["name": .string("t"), "kind": .string("threshold"),
                                           "targets": .array([.string("c-0c0ffee0-0000-4000-8000-000000000001-api")]),
                                           "channels": .array([.string("n-0c0ffee0-0000-4000-8000-000000000002")])]
        object.merge(body) { $1 }
        return try XCTUnwrap(try AlertRuleDefinition.parse(.object(object)).threshold)
    }

    private func points(_ values: [(Int64, Double)]) -> [MetricPoint] {
        values.map { MetricPoint(micros: Self.now - $0.0 * Self.second, value: $0.1) }
    }

    func testASeriesBreachesAboveItsBoundAndClearsOnlyBelowTheResolveBound() throws {
        let cpu = try threshold(["metric": .string("cpu_percent"), "above": .integer(90), "resolve_below": .integer(70)])
        let series = points([(120, 50), (90, 95), (60, 80), (30, 75), (0, 60)])
        let spans = ThresholdSeries.spans(series, threshold: cpu, breachingBefore: false, nowMicros: Self.now)
        XCTAssertEqual(spans.map(\.state), [.up, .down, .up], "80 and 75 are inside the band: still breaching until 60")
        XCTAssertEqual(spans[1].startMicros, Self.now - 90 * Self.second)
        XCTAssertEqual(spans[1].endMicros, Self.now)
        XCTAssertEqual(spans[1].cause, "cpu_percent 75 above 90 (% of one core)", "the newest breaching value")
        XCTAssertNil(spans[2].endMicros)
        let inBand = points([(60, 80), (30, 85)])
        XCTAssertEqual(ThresholdSeries.spans(inBand, threshold: cpu, breachingBefore: false, nowMicros: Self.now).map(\.state), [.up],
                       "in the band, not firing before: clear")
        XCTAssertEqual(ThresholdSeries.spans(inBand, threshold: cpu, breachingBefore: true, nowMicros: Self.now).map(\.state), [.down],
                       "in the band, firing before: still breaching")

        let days = try threshold(["metric": .string("certificate_days"), "below": .integer(14), "resolve_above": .integer(20),
                                  "targets": .array([.string("k-0c0ffee0-0000-4000-8000-000000000003")])])
        XCTAssertEqual(ThresholdSeries.spans(points([(60, 30), (30, 13), (0, 18)]), threshold: days, breachingBefore: false,
                                             nowMicros: Self.now).map(\.state), [.up, .down])
        XCTAssertEqual(ThresholdSeries.spans(points([(60, 13), (0, 21)]), threshold: days, breachingBefore: false,
                                             nowMicros: Self.now).map(\.state), [.down, .up])
    }

    func testAStaleSeriesEndsInUnknownAndCountsSlideOverTheirWindow() throws {
        let memory = try threshold(["metric": .string("memory_percent_of_limit"), "above": .integer(90)])
        let stale = ThresholdSeries.spans(points([(1000, 95), (970, 96)]), threshold: memory, breachingBefore: false, nowMicros: Self.now)
        XCTAssertEqual(stale.map(\.state), [.down, .unknown], "nothing for 970 s: no longer judged (a stopped container)")
        XCTAssertEqual(stale[1].startMicros, Self.now - 970 * Self.second + ThresholdSeries.minimumStaleness)

        let events = [Self.now - 500 * Self.second, Self.now - 200 * Self.second, Self.now - 100 * Self.second]
        let counts = ThresholdSeries.counts(of: events, windowMicros: 300 * Self.second, fromMicros: Self.now - 600 * Self.second, nowMicros: Self.now)
        XCTAssertEqual(counts.first, MetricPoint(micros: Self.now - 600 * Self.second, value: 0))
        XCTAssertEqual(counts.last, MetricPoint(micros: Self.now, value: 2), "the one 500 s ago left the 300 s window")
        XCTAssertEqual(counts.map(\.value).max(), 2)
        XCTAssertTrue(counts.contains(MetricPoint(micros: Self.now - 500 * Self.second, value: 1)))
        XCTAssertTrue(counts.contains(MetricPoint(micros: Self.now - 200 * Self.second, value: 1)),
                      "the one 500 s ago leaves the window as the one 200 s ago enters it")
        XCTAssertTrue(counts.contains(MetricPoint(micros: Self.now - 100 * Self.second, value: 2)))
        let restarts = try threshold(["metric": .string("restarts"), "above": .integer(1), "window_minutes": .integer(5)])
        XCTAssertEqual(restarts.windowMinutes, 5)
        XCTAssertEqual(ThresholdSeries.spans(counts, threshold: restarts, breachingBefore: false, nowMicros: Self.now).last?.state, .down)
    }

    func testThresholdRulesAreValidatedWithTheFieldNamed() async throws {
        try await APITestHarness.withAPI { seed, client in
            let tenant = try await seed.tenant()
            let admin = try await seed.apiKey(tenant: tenant, role: .admin)
            try await TenantStore(client: seed.database, logger: APITestHarness.logger).allowNetwork(tenantID: tenant, network: IPNetwork("127.0.0.0/8")!)
            let channel = try await AlertDeliveryTests.post(client, "/api/v1/alert-channels", admin.secret,
                                                            #"{"name":"ops","type":"webhook","url":"http://127.0.0.1:9/"}"#)
            let channelID = try XCTUnwrap(try channel.jsonObject()["id"] as? String)
            let host = try await seed.agent(tenant: tenant, hostname: "web-1", lastSeenSecondsAgo: 1)
            try await seed.container(tenant: tenant, agent: host, name: "api")
            let hostID = TargetID.host(agentID: host).description, apiID = TargetID.container(agentID: host, name: "api").description
            let base = #""name":"t","kind":"threshold","channels":["\#(channelID)"]"#
            for (bad, message) in [
                (#"{\#(base),"targets":["\#(apiID)"],"metric":"memory_percent_of_limit","above":120}"#, "above must be a number from 0 to 100"),
                (#"{\#(base),"targets":["\#(apiID)"],"metric":"load","above":1}"#, "metric must be one of cpu_percent"),
                (#"{\#(base),"targets":["\#(apiID)"],"metric":"cpu_percent"}"#, "above or below (exactly one) is required"),
                (#"{\#(base),"targets":["\#(apiID)"],"metric":"cpu_percent","above":90,"below":10}"#, "above or below (exactly one)"),
                (#"{\#(base),"targets":["\#(apiID)"],"metric":"cpu_percent","above":90,"resolve_below":95}"#, "resolve_below must be at most above"),
                (#"{\#(base),"targets":["\#(apiID)"],"metric":"cpu_percent","above":90,"resolve_above":95}"#, "resolve_above goes with below"),
                (#"{\#(base),"targets":["\#(apiID)"],"metric":"cpu_percent","above":90,"window_minutes":5}"#, "window_minutes applies to counted metrics only"),
                (#"{\#(base),"targets":["\#(apiID)"],"metric":"restarts","above":3,"window_minutes":0}"#, "window_minutes must be an integer from 1 to 1440"),
                (#"{\#(base),"targets":["\#(hostID)"],"metric":"restarts","above":3}"#, "targets[0] is a host; restarts is a figure of containers"),
                (#"{\#(base),"targets":["\#(apiID)"],"metric":"certificate_days","below":14}"#, "targets[0] is a container; certificate_days is a figure of checks"),
                (#"{\#(base),"targets":["\#(apiID)"],"metric":"cpu_percent","above":90,"states":["down"]}"#, "states is not a known field: a threshold rule takes"),
                (#"{\#(base),"targets":["\#(apiID)"],"metric":"cpu_percent","above":-1}"#, "above must be a number from 0"),
            ] {
                let response = try await AlertDeliveryTests.post(client, "/api/v1/alert-rules", admin.secret, bad)
                XCTAssertEqual(response.status, .badRequest, bad)
                XCTAssertTrue(try response.apiError().message.contains(message), "\(bad): \(String(buffer: response.body))")
            }
            let good = try await AlertDeliveryTests.post(client, "/api/v1/alert-rules", admin.secret,
                                                         #"{\#(base),"targets":["\#(apiID)"],"metric":"memory_percent_of_limit","above":90,"resolve_below":80,"for_seconds":120}"#)
            XCTAssertEqual(good.status, .created, String(buffer: good.body))
            let rule = try good.jsonObject()
            XCTAssertEqual(rule["kind"] as? String, "threshold")
            XCTAssertEqual(rule["above"] as? Double, 90)
            XCTAssertEqual(rule["resolve_below"] as? Double, 80)
            XCTAssertNil(rule["states"])
        }
    }

    func testEveryMetricFiresFromItsRowsAndRecoversPastItsHysteresis() async throws {
        let receiver = try await TestWebhookReceiver.start()
        defer { Task { await receiver.stop() } }
        try await APITestHarness.withAPI { seed, client in
            let tenant = try await seed.tenant()
            let admin = try await seed.apiKey(tenant: tenant, role: .admin)
            try await TenantStore(client: seed.database, logger: APITestHarness.logger).allowNetwork(tenantID: tenant, network: IPNetwork("127.0.0.0/8")!)
            let channel = try await AlertDeliveryTests.post(client, "/api/v1/alert-channels", admin.secret,
                                                            #"{"name":"ops","type":"webhook","url":"\#(receiver.url)"}"#)
            let channelID = try XCTUnwrap(try channel.jsonObject()["id"] as? String)
            let host = try await seed.agent(tenant: tenant, hostname: "web-1", lastSeenSecondsAgo: 1)
            for name in ["hot", "cool", "loop", "oom"] { try await seed.container(tenant: tenant, agent: host, name: name) }
            let check = try await AlertDeliveryTests.post(client, "/api/v1/checks", admin.secret,
                                                          #"{"name":"db","type":"tls","target":"db.example.com:5432","interval_seconds":60}"#)
            XCTAssertEqual(check.status, .created, String(buffer: check.body))
            let checkTarget = try XCTUnwrap(try check.jsonObject()["id"] as? String)
            let checkID = try XCTUnwrap(UUID(uuidString: String(checkTarget.dropFirst(2))))
            let now = Date()
            // 5 minutes of samples every 30 s: "hot" at 95 % of its memory limit throughout, "cool" at 50 %; the
            // host's disk 97 % full; the check's certificate 10 days from expiry and a replication lag of 40 s.
            for step in 0...10 {
                let ts = now.addingTimeInterval(Double(-300 + step * 30))
                try await seed.containerSample(tenant: tenant, agent: host, name: "hot", ts: ts, cpuPercent: 12, workingSet: 950, usage: 990, limit: 1000)
                try await seed.containerSample(tenant: tenant, agent: host, name: "cool", ts: ts, cpuPercent: 180, workingSet: 500, usage: 600, limit: 1000)
                try await seed.hostSample(tenant: tenant, agent: host, ts: ts, cpuPercent: 20, memoryTotal: 100, memoryAvailable: 50)
                try await seed.checkResult(tenant: tenant, check: checkID, slotAt: ts, ok: true, certNotAfter: ts.addingTimeInterval(10 * 86400),
                                           figures: #"{"replication_lag_seconds": 40}"#)
            }
            try await seed.database.query("""
                UPDATE host_samples SET filesystems = '[{"mount":"/","size_bytes":1000,"free_bytes":30},{"mount":"/boot","size_bytes":100,"free_bytes":90}]'
                WHERE tenant_id = \(tenant)
                """, logger: APITestHarness.logger)
            for seconds in [250, 180, 120, 60] {
                try await seed.containerEvent(tenant: tenant, agent: host, name: "loop", ts: now.addingTimeInterval(Double(-seconds)), action: "start")
            }
            try await seed.containerEvent(tenant: tenant, agent: host, name: "oom", ts: now.addingTimeInterval(-20), action: "oom")
            try await seed.containerEvent(tenant: tenant, agent: host, name: "oom", ts: now.addingTimeInterval(-19), action: "die",
                                          exitCode: 137, detail: "OOMKilled")

            let container = { (name: String) in TargetID.container(agentID: host, name: name).description }
            let rules: [(String, String)] = [
                ("memory", #""targets":["\#(container("hot"))","\#(container("cool"))"],"metric":"memory_percent_of_limit","above":90,"resolve_below":80,"for_seconds":120"#),
                ("cpu", #""targets":["\#(container("hot"))","\#(container("cool"))"],"metric":"cpu_percent","above":150,"for_seconds":60"#),
                ("disk", #""targets":["\#(TargetID.host(agentID: host).description)"],"metric":"disk_percent","above":95,"for_seconds":60"#),
                ("restarts", #""targets":["\#(container("loop"))","\#(container("hot"))"],"metric":"restarts","above":3,"window_minutes":5"#),
                ("oom", #""targets":["\#(container("oom"))"],"metric":"oom_kills","above":0,"window_minutes":10"#),
                ("cert", #""targets":["\#(checkTarget)"],"metric":"certificate_days","below":14,"resolve_above":20,"for_seconds":0"#),
                ("lag", #""targets":["\#(checkTarget)"],"metric":"replication_lag_seconds","above":30,"for_seconds":60"#),
            ]
            for (name, body) in rules {
                let created = try await AlertDeliveryTests.post(client, "/api/v1/alert-rules", admin.secret,
                                                                #"{"name":"\#(name)","kind":"threshold","channels":["\#(channelID)"],\#(body)}"#)
                XCTAssertEqual(created.status, .created, "\(name): \(String(buffer: created.body))")
            }
            let job = AlertJob(client: seed.database, logger: APITestHarness.logger)
            let round = try await job.round(now: now)
            XCTAssertEqual(round.rules, 7)
            let delivery = AlertDelivery(client: seed.database, secretKey: APITestHarness.secretKey, logger: APITestHarness.logger)
            while try await delivery.deliverDue() > 0 {}
            var payloads = try await receiver.requests.map { try XCTUnwrap(try JSONSerialization.jsonObject(with: Data($0.body.utf8)) as? [String: Any]) }
            func fired(_ payloads: [[String: Any]]) -> [String: String] {
                var result: [String: String] = [:]
                for payload in payloads {
                    let rule = (payload["rule"] as? [String: Any])?["name"] as? String ?? ""
                    let target = (payload["target"] as? [String: Any])?["name"] as? String ?? ""
                    result["\(rule)/\(target)"] = "\(payload["kind"] as? String ?? ""): \(payload["summary"] as? String ?? "")"
                }
                return result
            }
            let first = fired(payloads)
            XCTAssertEqual(Set(first.keys), ["memory/hot", "cpu/cool", "disk/web-1", "restarts/loop", "oom/oom", "cert/db", "lag/db"],
                           "each metric past its bound fires, nothing else: \(first)")
            XCTAssertEqual(first["memory/hot"], "firing: container hot: memory_percent_of_limit 95 above 90 (%)")
            XCTAssertEqual(first["disk/web-1"], "firing: host web-1: disk_percent 97 above 95 (%)", "the fullest filesystem")
            XCTAssertEqual(first["restarts/loop"], "firing: container loop: restarts 4 above 3 (starts in the window)")
            XCTAssertEqual(first["oom/oom"], "firing: container oom: oom_kills 1 above 0 (OOM kills in the window)",
                           "an oom event and its die are one kill")
            XCTAssertEqual(first["cert/db"], "firing: check db: certificate_days 10 below 14 (days)")
            XCTAssertEqual(first["lag/db"], "firing: check db: replication_lag_seconds 40 above 30 (seconds)")
            XCTAssertEqual(payloads.first { ($0["rule"] as? [String: Any])?["name"] as? String == "memory" }?["state"] as? String, "breaching")

            // "hot" drops to 85 %: inside the band, still firing; then to 70 %: recovered.
            for (offset, workingSet) in [(30, 850), (60, 700)] {
                try await seed.containerSample(tenant: tenant, agent: host, name: "hot", ts: now.addingTimeInterval(Double(offset)), cpuPercent: 12,
                                               workingSet: Int64(workingSet), usage: 990, limit: 1000)
                _ = try await job.round(now: now.addingTimeInterval(Double(offset) + 1))
            }
            while try await delivery.deliverDue() > 0 {}
            payloads = try await receiver.requests.map { try XCTUnwrap(try JSONSerialization.jsonObject(with: Data($0.body.utf8)) as? [String: Any]) }
            let memory = payloads.filter { ($0["rule"] as? [String: Any])?["name"] as? String == "memory" }
            XCTAssertEqual(memory.map { $0["kind"] as? String }, ["firing", "resolved"], "85 % kept it firing; 70 % cleared it")
            XCTAssertEqual(memory.last?["summary"] as? String, "container hot recovered: memory_percent_of_limit 70, clear of 80 (%)")
        }
    }
}
