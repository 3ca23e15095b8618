import Foundation
import XCTest

/// Uptime measured to the second on the real system: a container stopped twice (17 s, then 35 s) while the agent
/// samples every 30 s; the timeline's outages and availability are compared with Docker's own event times.
final class UptimeEndToEndTests: XCTestCase {
    private var deployment: Deployment!
    private let containerName = "crowsnest-e2e-uptime-" + String(UUID().uuidString.prefix(6)).lowercased()

    override func setUpWithError() throws {
        try requireServices()
        continueAfterFailure = false
        deployment = try Deployment()
    }

    override func tearDown() {
        Shell.docker("rm", "-f", containerName)
        if let deployment {
            if testRun?.hasSucceeded == false { print(deployment.logs) }
            deployment.tearDown()
        }
        super.tearDown()
    }

    private static func rfc3339(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: date)
    }

    private static func parse(_ text: String?) -> Date? {
        guard let text else { return nil }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = formatter.date(from: text) { return date }
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.date(from: text)
    }

    func testOutagesAndAvailabilityMatchDockersEventTimes() throws {
        try deployment.startServer()
        try deployment.provision()
        try deployment.startAgent(interval: 30)
        let run = Shell.run("/usr/bin/env", ["docker", "run", "-d", "--name", containerName, testImage, "sh", "-c",
                                             "trap 'exit 0' TERM; while true; do sleep 0.2; done"])
        XCTAssertEqual(run.status, 0, run.error)
        let began = Date()
        let hosts = try eventually(timeout: 60, "the container reported") { () -> [[String: Any]]? in
            let hosts = try deployment.http("/api/v1/infrastructure").json["hosts"] as? [[String: Any]] ?? []
            let found = hosts.flatMap { $0["containers"] as? [[String: Any]] ?? [] }.contains { $0["name"] as? String == containerName }
            return found ? hosts : nil
        }
        let container = try XCTUnwrap(hosts.flatMap { $0["containers"] as? [[String: Any]] ?? [] }.first { $0["name"] as? String == containerName })
        let target = try XCTUnwrap(container["id"] as? String)

        // Down 17 s, up 10 s, down 35 s (longer than the 30 s sweep interval: the outage spans a sweep), then up.
        for downSeconds in [17.0, 35.0] {
            let stop = Shell.docker("stop", "-t", "2", containerName)
            XCTAssertEqual(stop.status, 0, stop.error)
            Thread.sleep(forTimeInterval: downSeconds)
            let start = Shell.docker("start", containerName)
            XCTAssertEqual(start.status, 0, start.error)
            Thread.sleep(forTimeInterval: 10)
        }
        let windowEnd = Date()

        // Docker's own times of every start and die of the container.
        let events = Shell.docker("events", "--since", "\(Int(began.timeIntervalSince1970) - 120)",
                                  "--until", "\(Int(windowEnd.timeIntervalSince1970) + 1)", "--filter", "container=\(containerName)",
                                  "--filter", "event=start", "--filter", "event=die", "--format", "{{.TimeNano}} {{.Action}}")
        XCTAssertEqual(events.status, 0, events.error)
        let times = events.output.split(separator: "\n").compactMap { line -> (Double, String)? in
            let parts = line.split(separator: " ")
            guard parts.count == 2, let nanos = Double(parts[0]) else { return nil }
            return (nanos / 1e9, String(parts[1]))
        }
        XCTAssertEqual(times.map(\.1), ["start", "die", "start", "die", "start"], events.output)
        let outages = [(times[1].0, times[2].0), (times[3].0, times[4].0)]
        let windowStart = Date(timeIntervalSince1970: times[0].0)
        let expectedDown = outages.reduce(0) { $0 + ($1.1 - $1.0) }
        let windowLength = windowEnd.timeIntervalSince(windowStart)
        let expectedAvailability = (windowLength - expectedDown) / windowLength * 100

        let query = "from=\(Self.rfc3339(windowStart))&to=\(Self.rfc3339(windowEnd))"
            .replacingOccurrences(of: "+", with: "%2B")
        let timeline = try eventually(timeout: 30, "both outages in the timeline") { () -> [String: Any]? in
            let response = try deployment.http("/api/v1/uptime/\(target)/timeline?\(query)")
            guard response.status == 200 else { return nil }
            let incidents = response.json["incidents"] as? [[String: Any]] ?? []
            return incidents.count == 2 && incidents.allSatisfy({ $0["ended_at"] is String }) ? response.json : nil
        }
        let incidents = try XCTUnwrap(timeline["incidents"] as? [[String: Any]])
        for (incident, outage) in zip(incidents, outages) {
            let start = try XCTUnwrap(Self.parse(incident["started_at"] as? String))
            let end = try XCTUnwrap(Self.parse(incident["ended_at"] as? String))
            XCTAssertEqual(start.timeIntervalSince1970, outage.0, accuracy: 1.0, "the outage starts at Docker's die event")
            XCTAssertEqual(end.timeIntervalSince1970, outage.1, accuracy: 1.0, "and ends at Docker's start event")
        }
        let availability = try XCTUnwrap(timeline["availability_percent"] as? Double)
        XCTAssertEqual(availability, expectedAvailability, accuracy: 0.01,
                       "availability from Docker's own event times: \(expectedAvailability) %")
        let seconds = try XCTUnwrap(timeline["seconds"] as? [String: Double])
        XCTAssertEqual(seconds["down"] ?? 0, expectedDown, accuracy: 2)
        XCTAssertEqual(seconds["unknown"] ?? -1, 0, accuracy: 0.5, "the window starts at the container's start: no time without data")
    }

    /// A check's target switched off for 17 s, then 25 s: each outage runs from the first failed run to the first
    /// successful one (to the second of their results), lasts what the target was off to within one interval, and
    /// the availability equals the one computed from the results' own times.
    func testACheckTargetSwitchedOffTwiceGivesTwoOutagesFromItsResults() throws {
        let port = freePort()
        var server: ChildProcess? = try deployment.startHTTPTarget(port: port)
        defer { server?.terminate() }
        try deployment.startServer()
        try deployment.provision()
        let admin = try XCTUnwrap(try deployment.admin(["apikey", "create", "--tenant", "e2e", "--role", "admin"])["key"])
        let created = try deployment.send("POST", "/api/v1/checks", json: #"{"name":"web","type":"http","target":"http://127.0.0.1:\#(port)/health","interval_seconds":5}"#, key: admin)
        XCTAssertEqual(created.status, 201, String(decoding: created.body, as: UTF8.self))
        let check = try XCTUnwrap(created.json["id"] as? String)
        try deployment.startAgent(interval: 5)
        _ = try eventually(timeout: 60, "the check up") { () -> Bool? in
            try deployment.http("/api/v1/checks/\(check)").json["state"] as? String == "up" ? true : nil
        }
        let windowStart = Date()
        var switchedOff: [(Double, Double)] = []
        for downSeconds in [17.0, 25.0] {
            server?.terminate()
            server = nil
            let off = Date().timeIntervalSince1970
            Thread.sleep(forTimeInterval: downSeconds)
            server = try deployment.startHTTPTarget(port: port)
            switchedOff.append((off, Date().timeIntervalSince1970))
            Thread.sleep(forTimeInterval: 12)
        }
        let windowEnd = Date()

        let query = "from=\(Self.rfc3339(windowStart))&to=\(Self.rfc3339(windowEnd))".replacingOccurrences(of: "+", with: "%2B")
        let timeline = try eventually(timeout: 30, "both outages in the check's timeline") { () -> [String: Any]? in
            let response = try deployment.http("/api/v1/uptime/\(check)/timeline?\(query)")
            guard response.status == 200 else { return nil }
            let incidents = response.json["incidents"] as? [[String: Any]] ?? []
            return incidents.count == 2 && incidents.allSatisfy({ $0["ended_at"] is String }) ? response.json : nil
        }
        // The results, oldest first, with the time each ran.
        let results = (try deployment.http("/api/v1/checks/\(check)/results?limit=500").json["results"] as? [[String: Any]] ?? [])
            .compactMap { result -> (Double, Bool)? in
                guard let ts = Self.parse(result["ts"] as? String), let ok = result["ok"] as? Bool else { return nil }
                return (ts.timeIntervalSince1970, ok)
            }
            .sorted { $0.0 < $1.0 }
        // Outages from the results alone: from each first failure to the next success.
        var expected: [(Double, Double)] = []
        var openedAt: Double?
        for (ts, ok) in results where ts <= windowEnd.timeIntervalSince1970 {
            if !ok, openedAt == nil { openedAt = ts }
            if ok, let opened = openedAt { expected.append((opened, ts)); openedAt = nil }
        }
        XCTAssertEqual(expected.count, 2, "two outages in the results: \(results)")
        let incidents = try XCTUnwrap(timeline["incidents"] as? [[String: Any]])
        for ((incident, outage), off) in zip(zip(incidents, expected), switchedOff) {
            let start = try XCTUnwrap(Self.parse(incident["started_at"] as? String)).timeIntervalSince1970
            let end = try XCTUnwrap(Self.parse(incident["ended_at"] as? String)).timeIntervalSince1970
            XCTAssertEqual(start, outage.0, accuracy: 1.0, "the outage starts at the first failed run")
            XCTAssertEqual(end, outage.1, accuracy: 1.0, "and ends at the first successful run")
            XCTAssertEqual(end - start, off.1 - off.0, accuracy: 5 + 1, "as long as the target was off, to one interval")
            XCTAssertGreaterThan(start, off.0 - 1, "not before the target went off")
        }
        let down = expected.reduce(0) { $0 + ($1.1 - $1.0) }
        let length = windowEnd.timeIntervalSince(windowStart)
        let availability = try XCTUnwrap(timeline["availability_percent"] as? Double)
        XCTAssertEqual(availability, (length - down) / length * 100, accuracy: 0.01, "availability from the results' own times")
    }

    /// Waits until the only host's state is `state`.
    private func waitForHost(_ state: String, timeout: TimeInterval, _ what: String) throws {
        _ = try eventually(timeout: timeout, what) { () -> Bool? in
            let hosts = try deployment.http("/api/v1/infrastructure").json["hosts"] as? [[String: Any]] ?? []
            return hosts.first?["state"] as? String == state ? true : nil
        }
    }

    /// The host's spans over the last `seconds`, as (state, start, end) with times in unix seconds.
    private func hostSpans(since: Date) throws -> [(state: String, start: Double, end: Double?)] {
        let hosts = try deployment.http("/api/v1/infrastructure").json["hosts"] as? [[String: Any]] ?? []
        let host = try XCTUnwrap(hosts.first?["id"] as? String)
        let query = "from=\(Self.rfc3339(since))"
        let response = try deployment.http("/api/v1/uptime/\(host)/timeline?\(query)")
        XCTAssertEqual(response.status, 200)
        return (response.json["spans"] as? [[String: Any]] ?? []).map { span in
            (span["state"] as? String ?? "", Self.parse(span["started_at"] as? String)?.timeIntervalSince1970 ?? 0,
             Self.parse(span["ended_at"] as? String)?.timeIntervalSince1970)
        }
    }

    func testAnAgentKilledForHalfAMinuteLeavesItsHostUnknownForThatTimeNeverDown() throws {
        try deployment.startServer()
        try deployment.provision()
        try deployment.startAgent(interval: 2)
        let began = Date()
        try waitForHost("up", timeout: 30, "the host up")
        Thread.sleep(forTimeInterval: 4)
        deployment.agent?.kill9()
        let killedAt = Date()
        // Two intervals plus 10 s of grace (14 s) later the housekeeping job (every 5 s) calls it unknown.
        try waitForHost("unknown", timeout: 40, "the host unknown")
        Thread.sleep(forTimeInterval: max(0, 30 - Date().timeIntervalSince(killedAt)))
        try deployment.startAgent(interval: 2)
        let restartedAt = Date()
        try waitForHost("up", timeout: 30, "the host up again")
        let spans = try hostSpans(since: began)
        XCTAssertFalse(spans.contains { $0.state == "down" }, "a silent agent never makes its host down: \(spans)")
        // The window starts before the agent's first batch: that stretch is unknown "no data" too; skip it.
        let unknown = spans.filter { $0.state == "unknown" && $0.start > began.timeIntervalSince1970 + 1 }
        XCTAssertEqual(unknown.count, 1, "\(spans)")
        let gap = try XCTUnwrap(unknown.first)
        // From the last batch before the kill (at most one interval before it) to the first after the restart.
        XCTAssertEqual(gap.start, killedAt.timeIntervalSince1970, accuracy: 3, "\(spans)")
        XCTAssertEqual(try XCTUnwrap(gap.end), restartedAt.timeIntervalSince1970, accuracy: 5, "\(spans)")
    }

    func testAServerStoppedForHalfAMinuteLeavesNoUnknownOnceTheSpoolIsReplayed() throws {
        try deployment.startServer()
        try deployment.provision()
        try deployment.startAgent(interval: 2)
        let began = Date()
        try waitForHost("up", timeout: 30, "the host up")
        deployment.server?.terminate()
        // Longer than two intervals plus the 10 s grace (14 s): once back, the liveness job may call the host
        // unknown before the agent's spool has replayed the gap.
        Thread.sleep(forTimeInterval: 30)
        try deployment.startServer()
        // The job may call the host unknown before the agent is back; the replayed spool takes that back.
        var observed: [(state: String, start: Double, end: Double?)] = []
        let spans: [(state: String, start: Double, end: Double?)]
        do {
            spans = try eventually(timeout: 90, "the outage covered by replayed batches") { () -> [(state: String, start: Double, end: Double?)]? in
                observed = try hostSpans(since: began)
                let caughtUp = try deployment.sql("SELECT extract(epoch FROM max(ts)) FROM host_samples")
                guard let last = Double(caughtUp), last > Date().timeIntervalSince1970 - 5 else { return nil }
                return observed.contains(where: { $0.state == "unknown" && $0.start > began.timeIntervalSince1970 + 1 }) ? nil : observed
            }
        } catch {
            // What the ingest and the liveness job left, to tell a slow replay from a span that was not taken back.
            let rows = (try? deployment.sql("""
                SELECT string_agg(state || ' ' || started_at || ' .. ' || coalesce(ended_at::text, 'open') || ' ' || cause, E'\n'
                                  ORDER BY started_at) FROM status_spans WHERE target_id LIKE 'h-%'
                """)) ?? "?"
            let batches = (try? deployment.sql("""
                SELECT string_agg(to_char(ts, 'HH24:MI:SS'), ' ' ORDER BY ts) FROM host_samples
                WHERE ts > now() - interval '3 minutes'
                """)) ?? "?"
            XCTFail("host spans after the outage: \(observed)\nstatus_spans:\n\(rows)\nhost samples: \(batches)")
            throw error
        }
        XCTAssertFalse(spans.contains { $0.state == "down" })
        XCTAssertEqual(spans.filter { $0.state == "up" }.count, 1, "one up span through the server's outage: \(spans)")
    }
}
