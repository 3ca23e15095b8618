import CrowsnestAgent
import Foundation
import Logging
import XCTest

/// The whole system as an operator runs it: real server and agent processes, embedded PostgreSQL, real dockerd.
final class EndToEndTests: XCTestCase {
    private var deployment: Deployment!
    private var containers: [String] = []
    private let prefix = "crowsnest-e2e-" + String(UUID().uuidString.prefix(6)).lowercased()

    override func setUpWithError() throws {
        try requireServices()
        continueAfterFailure = false
        deployment = try Deployment()
    }

    override func tearDown() {
        for name in containers { Shell.docker("rm", "-f", name) }
        if let deployment {
            if testRun?.hasSucceeded == false { print(deployment.logs) }
            deployment.tearDown()
        }
        super.tearDown()
    }

    private func startContainer(_ suffix: String, _ arguments: [String], command: String) throws -> String {
        let name = "\(prefix)-\(suffix)"
        containers.append(name)
        let result = Shell.run("/usr/bin/env", ["docker", "run", "-d", "--name", name] + arguments + [testImage, "sh", "-c", command])
        XCTAssertEqual(result.status, 0, "docker run \(name) failed: \(result.error)")
        return name
    }

    private func infrastructureContainers() throws -> [String: [String: Any]] {
        let hosts = try deployment.http("/api/v1/infrastructure").json["hosts"] as? [[String: Any]] ?? []
        var byName: [String: [String: Any]] = [:]
        for host in hosts {
            for container in host["containers"] as? [[String: Any]] ?? [] {
                if let name = container["name"] as? String { byName[name] = container }
            }
        }
        return byName
    }

    private func parseRFC3339(_ text: String?) -> Date? {
        guard let text else { return nil }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = formatter.date(from: text) { return date }
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.date(from: text)
    }

    /// Docker's own timestamp with nanoseconds, e.g. 2026-11-25T13:40:01.123456789Z.
    private func parseDockerTime(_ text: String) -> Date? {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard let dot = trimmed.firstIndex(of: ".") else { return parseRFC3339(trimmed) }
        let base = String(trimmed[..<dot]) + "Z"
        let fraction = trimmed[trimmed.index(after: dot)...].prefix { $0.isNumber }
        guard let date = parseRFC3339(base) else { return nil }
        return date.addingTimeInterval(Double("0." + fraction) ?? 0)
    }

    func testThreeContainersShowRealFiguresHealthAndExactStopTime() throws {
        let burner = try startContainer("burner", [], command: "while :; do :; done")
        let unhealthy = try startContainer("unhealthy", ["--health-cmd", "exit 1", "--health-interval", "1s", "--health-retries", "1"],
                                           command: "sleep 3600")
        let stopped = try startContainer("stopped", [], command: "trap 'exit 3' TERM; sleep 3600 & wait")
        try deployment.startServer()
        try deployment.provision()
        try deployment.startAgent(interval: 1)

        let seen = try eventually(timeout: 60, "all three containers in /infrastructure") { () -> [String: [String: Any]]? in
            let all = try infrastructureContainers()
            return [burner, unhealthy, stopped].allSatisfy { all[$0] != nil } ? all : nil
        }
        XCTAssertEqual(seen[burner]?["state"] as? String, "running")
        XCTAssertEqual(seen[burner]?["image"] as? String, testImage)
        XCTAssertEqual((seen[burner]?["docker_id"] as? String)?.count, 64)
        let burnerID = try XCTUnwrap(seen[burner]?["id"] as? String)
        let stoppedID = try XCTUnwrap(seen[stopped]?["id"] as? String)

        // CPU: the burner spins one core; the idle ones stay near zero.
        let burnerCPU = try eventually(timeout: 30, "burner cpu_percent") { () -> Double? in
            let metrics = try deployment.http("/api/v1/metrics/\(burnerID)")
            guard metrics.status == 200, let cpu = metrics.json["cpu_percent"] as? Double else { return nil }
            return cpu
        }
        XCTAssertGreaterThan(burnerCPU, 40, "a busy loop should use well over 40 % of a core")
        let idleID = try XCTUnwrap(seen[unhealthy]?["id"] as? String)
        let idle = try eventually(timeout: 30, "idle container metrics") { () -> [String: Any]? in
            let metrics = try deployment.http("/api/v1/metrics/\(idleID)")
            return metrics.status == 200 && metrics.json["cpu_percent"] is Double ? metrics.json : nil
        }
        XCTAssertLessThan(idle["cpu_percent"] as? Double ?? 100, 10)
        XCTAssertGreaterThan(idle["memory_bytes"] as? Double ?? 0, 0)
        XCTAssertGreaterThan(idle["pids"] as? Double ?? 0, 0)

        // Health: the failing HEALTHCHECK shows as unhealthy.
        _ = try eventually(timeout: 45, "unhealthy container reported unhealthy") { () -> Bool? in
            (try infrastructureContainers()[unhealthy]?["health"] as? String) == "unhealthy" ? true : nil
        }
        let health = try deployment.http("/api/v1/health/\(idleID)")
        XCTAssertEqual(health.status, 200)
        XCTAssertEqual(health.json["health"] as? String, "unhealthy")

        // Stop: exit code 3 from the trap, and the stop time within a second of Docker's own.
        let stop = Shell.docker("stop", "-t", "5", stopped)
        XCTAssertEqual(stop.status, 0, stop.error)
        let dockerFinished = try XCTUnwrap(parseDockerTime(Shell.docker("inspect", "-f", "{{.State.FinishedAt}}", stopped).output))
        let exited = try eventually(timeout: 30, "stopped container reported exited") { () -> [String: Any]? in
            let container = try infrastructureContainers()[stopped]
            return container?["state"] as? String == "exited" ? container : nil
        }
        XCTAssertEqual(exited["exit_code"] as? Int, 3)
        let reportedFinish = try XCTUnwrap(parseRFC3339(exited["finished_at"] as? String))
        XCTAssertEqual(reportedFinish.timeIntervalSince1970, dockerFinished.timeIntervalSince1970, accuracy: 1.0)

        // The status span recording the stop starts at Docker's event time, not at the next tick.
        let spanStart = try eventually(timeout: 20, "down span for the stopped container") { () -> Double? in
            let value = try deployment.sql("""
                SELECT extract(epoch FROM started_at) FROM status_spans
                WHERE target_id = '\(stoppedID)' AND state = 'down' ORDER BY started_at DESC LIMIT 1
                """)
            return Double(value)
        }
        XCTAssertEqual(spanStart, dockerFinished.timeIntervalSince1970, accuracy: 1.0)
        let cause = try deployment.sql("SELECT cause FROM status_spans WHERE target_id = '\(stoppedID)' AND state = 'down' ORDER BY started_at DESC LIMIT 1")
        XCTAssertTrue(cause.contains("exited with code 3"), "cause was: \(cause)")
    }

    /// Largest gap between consecutive host samples of the agent, and the sample count and distinct count.
    private func hostSampleContinuity(after start: Date? = nil) throws -> (maxGap: Double, count: Int, distinct: Int, first: Double, last: Double) {
        let since = start.map { "WHERE ts >= to_timestamp(\($0.timeIntervalSince1970))" } ?? ""
        let row = try deployment.sql("""
            SELECT coalesce(max(gap), 0), count(*), count(DISTINCT ts), extract(epoch FROM min(ts)), extract(epoch FROM max(ts))
            FROM (SELECT ts, extract(epoch FROM ts - lag(ts) OVER (ORDER BY ts)) AS gap FROM host_samples \(since)) s
            """)
        let parts = row.split(separator: "|").map(String.init)
        return (Double(parts[0]) ?? -1, Int(parts[1]) ?? -1, Int(parts[2]) ?? -1, Double(parts[3]) ?? 0, Double(parts[4]) ?? 0)
    }

    private func waitUntilCaughtUp(after date: Date) throws {
        _ = try eventually(timeout: 60, "samples caught up to \(date)") { () -> Bool? in
            let newest = Double(try deployment.sql("SELECT coalesce(extract(epoch FROM max(ts)), 0) FROM host_samples")) ?? 0
            return newest >= date.timeIntervalSince1970 ? true : nil
        }
    }

    /// Hostile containers on the host: a NUL byte in a label (Docker accepts it through its API) and labels of
    /// 15,000 characters. They are stored cleaned and bounded, and the other containers keep fresh figures.
    func testPoisonousContainersDoNotBlindTheirHost() throws {
        let plain = try startContainer("plain", [], command: "sleep 3600")
        // Created through the Engine API, where a NUL in a label survives (the docker CLI cannot pass one).
        let nulName = "\(prefix)-nul"
        containers.append(nulName)
        let body = #"{"Image":"\#(testImage)","Cmd":["sleep","3600"],"Labels":{"a\u0000b":"c\u0000d","plain":"ok"}}"#
        let created = Shell.run("/usr/bin/env", ["curl", "-sS", "--unix-socket", "/var/run/docker.sock", "-H", "Content-Type: application/json",
                                                 "-d", body, "http://docker/containers/create?name=\(nulName)"])
        XCTAssertEqual(created.status, 0, created.error)
        XCTAssertTrue(created.output.contains("\"Id\""), created.output)
        XCTAssertEqual(Shell.docker("start", nulName).status, 0)
        var longLabels: [String] = []
        for index in 0..<20 { longLabels += ["--label", "long.\(index)=" + String(repeating: "v", count: 15_000)] }
        var long: [String] = []
        for index in 0..<10 { long.append(try startContainer("long-\(index)", longLabels, command: "sleep 3600")) }

        try deployment.startServer()
        try deployment.provision()
        try deployment.startAgent(interval: 1)
        let seen = try eventually(timeout: 60, "every container in /infrastructure") { () -> [String: [String: Any]]? in
            let all = try infrastructureContainers()
            return ([plain, nulName] + long).allSatisfy { all[$0] != nil } ? all : nil
        }
        XCTAssertEqual(seen[nulName]?["state"] as? String, "running")
        let labels = try deployment.sql("SELECT labels::text FROM containers WHERE name = '\(nulName)'")
        XCTAssertEqual(labels, #"{"ab": "cd", "plain": "ok"}"#)
        let longest = Int(try deployment.sql("SELECT max(octet_length(labels::text)) FROM containers")) ?? 0
        XCTAssertLessThanOrEqual(longest, 20_000, "labels are bounded")
        XCTAssertEqual(try deployment.sql("SELECT count(*) FROM ingest_rejections"), "0", "nothing needed refusing")
        // The plain container keeps getting fresh figures: the host's stream is not wedged.
        let plainID = try XCTUnwrap(seen[plain]?["id"] as? String)
        let first = try XCTUnwrap(try deployment.http("/api/v1/metrics/\(plainID)").json["ts"] as? String)
        let later = try eventually(timeout: 15, "a fresher figure for the plain container") { () -> String? in
            let ts = try deployment.http("/api/v1/metrics/\(plainID)").json["ts"] as? String
            return ts.flatMap { $0 > first ? $0 : nil }
        }
        XCTAssertGreaterThan(later, first)
        XCTAssertTrue(Int(try deployment.sql("SELECT truncated_values FROM agents")) ?? 0 > 0, "the shortened labels are counted")
        // And the agent stops promptly on SIGTERM.
        XCTAssertLessThan(try XCTUnwrap(deployment.agent).secondsToStop(), 5, "the agent did not stop within 5 s of SIGTERM")
    }

    /// A spooled batch the server cannot decode is refused three times, then set aside in the agent's dead-letter
    /// directory; everything behind it is delivered and the count reaches the server.
    func testAnUndecodableSpooledBatchIsSetAsideAfterThreeRefusals() throws {
        try deployment.startServer()
        try deployment.provision()
        // The oldest record of the agent's spool is garbage (a corrupted or foreign frame).
        let spool = try Spool(directory: deployment.stateDir + "/spool", logger: Logger(label: "e2e"))
        try spool.append(seq: 1, payload: [0xFF, 0xFF, 0xFF, 0xFF])
        spool.close()
        try deployment.startAgent(interval: 1)
        let deadLetter = deployment.stateDir + "/dead-letter/1.frame"
        _ = try eventually(timeout: 60, "the refused batch set aside") { () -> Bool? in
            FileManager.default.fileExists(atPath: deadLetter) ? true : nil
        }
        XCTAssertEqual(FileManager.default.contents(atPath: deadLetter), Data([0xFF, 0xFF, 0xFF, 0xFF]))
        _ = try eventually(timeout: 30, "batches behind it stored and the count reported") { () -> Bool? in
            let reported = try deployment.sql("SELECT dead_lettered_batches FROM agents")
            let samples = Int(try deployment.sql("SELECT count(*) FROM host_samples")) ?? 0
            return reported == "1" && samples >= 2 ? true : nil
        }
        XCTAssertTrue(deployment.agent?.log.contains("dead-letter") ?? false)
    }

    /// The agent's clock wrong, as libfaketime makes it: 5 s behind (stored, offset shown, one line blaming the
    /// clock), then three years ahead (refused by the time window, recorded, acked: the stream moves on), then
    /// right again: the host's containers get fresh figures within seconds and nothing from the future is stored.
    func testAgentClockFiveSecondsBehindThenThreeYearsAheadThenRight() throws {
        // libfaketime preloaded into the agent alone, as an operator tries it (the `faketime` wrapper forks and
        // exits, so the test could not stop the agent through it).
        let libfaketime = try XCTUnwrap(["/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
                                         "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1"]
            .first { FileManager.default.fileExists(atPath: $0) }, "libfaketime is not installed (scripts/ensure-packages.sh installs it)")
        let plain = try startContainer("clock", [], command: "sleep 3600")
        try deployment.startServer()
        try deployment.provision()
        func freshFigure(after date: Date, timeout: TimeInterval) throws {
            let limit = ISO8601DateFormatter().string(from: date)
            _ = try eventually(timeout: timeout, "a figure for \(plain) newer than \(limit)") { () -> Bool? in
                let newest = try deployment.sql(
                    "SELECT coalesce(extract(epoch FROM max(ts)), 0) FROM container_samples WHERE name = '\(plain)'")
                return (Double(newest) ?? 0) >= date.timeIntervalSince1970 ? true : nil
            }
        }
        func runAgent(fakeOffset: String?) throws {
            deployment.agentEnvironment = ProcessInfo.processInfo.environment
            if let fakeOffset {
                deployment.agentEnvironment["LD_PRELOAD"] = libfaketime
                deployment.agentEnvironment["FAKETIME"] = fakeOffset
            }
            try deployment.startAgent(interval: 1)
        }

        // 5 s behind: stored as sent, the offset visible per host, the agent blames its clock.
        try runAgent(fakeOffset: "-5s")
        try freshFigure(after: Date().addingTimeInterval(-5), timeout: 60)
        let offset = try eventually(timeout: 20, "the host's clock offset in /infrastructure") { () -> Int? in
            let hosts = try deployment.http("/api/v1/infrastructure").json["hosts"] as? [[String: Any]] ?? []
            return (hosts.first?["clock_offset_ms"] as? NSNumber)?.intValue
        }
        XCTAssertTrue((-7_000 ... -3_000).contains(offset), "clock offset \(offset) ms, expected about -5000")
        XCTAssertTrue(deployment.agent?.log.contains("this host's clock differs from the server's") ?? false)
        deployment.agent?.terminate()

        // Three years ahead: the agent still connects (its pinned CA's serving certificate looks expired to it),
        // and what it sends is refused by the time window, recorded and acknowledged.
        try runAgent(fakeOffset: "+1095d")
        _ = try eventually(timeout: 60, "batches from three years ahead recorded as refused") { () -> Bool? in
            (Int(try deployment.sql("SELECT count(*) FROM ingest_rejections")) ?? 0) >= 3 ? true : nil
        }
        let acked = try deployment.sql("SELECT committed_seq FROM agents")
        _ = try eventually(timeout: 20, "the refused batches acknowledged (the stream moves on)") { () -> Bool? in
            (Int(try deployment.sql("SELECT committed_seq FROM agents")) ?? 0) > (Int(acked) ?? 0) ? true : nil
        }
        let futureRows = try deployment.sql("""
            SELECT (SELECT count(*) FROM container_samples WHERE ts > now() + interval '1 day')
                 + (SELECT count(*) FROM host_samples WHERE ts > now() + interval '1 day')
            """)
        XCTAssertEqual(futureRows, "0", "nothing from the future is stored")
        let aheadLog = deployment.agent?.log ?? ""
        XCTAssertTrue(aheadLog.contains("not valid at this host's clock"), "the agent blames its clock: \(aheadLog.suffix(1500))")
        XCTAssertFalse(aheadLog.contains("asking the server to renew"), "renewal is judged by the server's time, not a clock years ahead")
        XCTAssertEqual(try deployment.sql(#"""
            SELECT count(*) FROM pg_class WHERE relname ~ '_samples_\d{8}$'
              AND to_date(right(relname, 8), 'YYYYMMDD') > current_date + 2
            """#), "0",
                       "no partitions created for the future")
        deployment.agent?.terminate()

        // Right again: fresh figures within seconds (its spool of future batches drained, refused and acked).
        let rightAgain = Date()
        try runAgent(fakeOffset: nil)
        try freshFigure(after: rightAgain, timeout: 20)
        XCTAssertEqual(try deployment.sql("SELECT count(*) FROM host_samples WHERE ts > now() + interval '1 minute'"), "0")
    }

    /// With a 30 s interval, a container's die reaches the server in an event-only batch long before the next
    /// sweep, and its span turns down at Docker's time.
    func testADieEventArrivesWithoutWaitingForTheNextSweep() throws {
        let web = try startContainer("urgent", [], command: "sleep 3600")
        try deployment.startServer()
        try deployment.provision()
        try deployment.startAgent(interval: 30)
        _ = try eventually(timeout: 60, "the first sweep stored") { () -> Bool? in
            (Int(try deployment.sql("SELECT count(*) FROM containers WHERE name = '\(web)'")) ?? 0) == 1 ? true : nil
        }
        let sweeps = try deployment.sql("SELECT count(*) FROM host_samples")
        XCTAssertEqual(Shell.docker("kill", web).status, 0)
        _ = try eventually(timeout: 10, "the die event stored ahead of the next sweep") { () -> Bool? in
            (Int(try deployment.sql("SELECT count(*) FROM container_events WHERE name = '\(web)' AND action = 'die'")) ?? 0) == 1 ? true : nil
        }
        XCTAssertEqual(try deployment.sql("SELECT count(*) FROM host_samples"), sweeps, "it came before the next sweep, not with it")
        XCTAssertEqual(try deployment.sql("SELECT count(*) FROM containers WHERE removed_at IS NOT NULL"), "0")
        let finished = parseDockerTime(Shell.docker("inspect", "--format", "{{.State.FinishedAt}}", web).output)
        let downSince = Double(try deployment.sql("""
            SELECT extract(epoch FROM started_at) FROM status_spans
            WHERE state = 'down' AND ended_at IS NULL AND target_id LIKE '%-\(web)'
            """)) ?? 0
        XCTAssertEqual(downSince, try XCTUnwrap(finished).timeIntervalSince1970, accuracy: 0.25,
                       "down from Docker's die event (a few ms after FinishedAt), not from a sweep")
    }

    func testServerKilledMidStreamLosesAndDuplicatesNothing() throws {
        try deployment.startServer()
        try deployment.provision()
        try deployment.startAgent(interval: 1)
        _ = try eventually(timeout: 30, "first batches committed") { () -> Bool? in
            (Int(try deployment.sql("SELECT count(*) FROM host_samples")) ?? 0) >= 3 ? true : nil
        }
        deployment.server?.kill9()
        let killedAt = Date()
        Thread.sleep(forTimeInterval: 5)  // the agent keeps sampling into its spool
        try deployment.startServer()
        try waitUntilCaughtUp(after: Date().addingTimeInterval(2))

        let continuity = try hostSampleContinuity()
        XCTAssertEqual(continuity.count, continuity.distinct, "a batch was stored twice")
        XCTAssertLessThanOrEqual(continuity.maxGap, 2.0, "ticks were lost around the server crash")
        XCTAssertLessThan(continuity.first, killedAt.timeIntervalSince1970 - 1)
        XCTAssertGreaterThan(continuity.last, killedAt.timeIntervalSince1970 + 5)
        let duplicates = try deployment.sql("SELECT count(*) - count(DISTINCT (name, ts)) FROM container_samples")
        XCTAssertEqual(duplicates, "0")
        let committed = try deployment.sql("SELECT committed_seq FROM agents")
        XCTAssertGreaterThanOrEqual(Int(committed) ?? 0, continuity.count, "every stored tick came with a committed sequence")
    }

    /// `backup` while the agent ingests every second, `restore` into a new data directory, a server started on it:
    /// the same history through the API, the same API key, and neither command overwrites what it must not.
    func testABackupTakenWhileIngestRunsRestoresIntoANewDataDirectoryServingTheSameHistory() throws {
        try deployment.startServer()
        try deployment.provision()
        try deployment.startAgent(interval: 1)
        let started = Date()
        _ = try eventually(timeout: 30, "first batches committed") { () -> Bool? in
            (Int(try deployment.sql("SELECT count(*) FROM host_samples")) ?? 0) >= 8 ? true : nil
        }
        let host = "h-" + (try deployment.sql("SELECT id FROM agents")).trimmingCharacters(in: .whitespacesAndNewlines)
        let backupDirectory = deployment.root + "/backup"
        // Every sample up to a few seconds before the backup starts was committed (ticks every second, acked
        // within one) before pg_dump's snapshot.
        let beforeBackup = Date()
        let backup = Shell.run(Binaries.server, ["backup", "--data-dir", deployment.dataDir, "--output", backupDirectory])
        XCTAssertEqual(backup.status, 0, backup.error)
        XCTAssertTrue(FileManager.default.fileExists(atPath: backupDirectory + "/secret.key"), "the key the CA is sealed with goes along")
        let again = Shell.run(Binaries.server, ["backup", "--data-dir", deployment.dataDir, "--output", backupDirectory])
        XCTAssertNotEqual(again.status, 0)
        XCTAssertTrue(again.error.contains("exists already"), again.error)
        Thread.sleep(forTimeInterval: 2)  // ingest goes on after the snapshot

        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let range = "from=\(formatter.string(from: started.addingTimeInterval(-60)))&to=\(formatter.string(from: beforeBackup.addingTimeInterval(-3)))&step=1s"
            .replacingOccurrences(of: "+", with: "%2B")
        let before = try deployment.http("/api/v1/metrics/\(host)/history?\(range)")
        XCTAssertEqual(before.status, 200, String(decoding: before.body, as: UTF8.self))
        let points = try XCTUnwrap(before.json["points"] as? [[String: Any]])
        XCTAssertGreaterThanOrEqual(points.count, 3, "history before the backup")
        deployment.agent?.terminate()
        deployment.server?.terminate()

        let restoredDirectory = deployment.root + "/restored"
        let restore = Shell.run(Binaries.server, ["restore", "--input", backupDirectory, "--data-dir", restoredDirectory])
        XCTAssertEqual(restore.status, 0, restore.error)
        let twice = Shell.run(Binaries.server, ["restore", "--input", backupDirectory, "--data-dir", restoredDirectory])
        XCTAssertNotEqual(twice.status, 0)
        XCTAssertTrue(twice.error.contains("the database is not empty"), twice.error)
        let (agentPort, httpPort) = (freePort(), freePort())
        _ = try deployment.start(Binaries.server, ["serve", "--data-dir", restoredDirectory, "--agent-listen", "127.0.0.1:\(agentPort)",
                                                   "--http-listen", "127.0.0.1:\(httpPort)"], log: "restored-server.log")
        _ = try eventually(timeout: 60, "the server on the restored data directory ready") { () -> Bool? in
            Shell.run("/usr/bin/env", ["curl", "-sf", "http://127.0.0.1:\(httpPort)/readyz"]).status == 0 ? true : nil
        }
        let after = try deployment.send("GET", "/api/v1/metrics/\(host)/history?\(range)", json: "", port: httpPort)
        XCTAssertEqual(after.status, 200, "the API key came along: \(String(decoding: after.body, as: UTF8.self))")
        XCTAssertEqual(after.json as NSDictionary, before.json as NSDictionary, "the same history")
    }

    func testAgentKilledWhileServerDownReplaysItsSpool() throws {
        try deployment.startServer()
        try deployment.provision()
        try deployment.startAgent(interval: 1)
        _ = try eventually(timeout: 30, "first batches committed") { () -> Bool? in
            (Int(try deployment.sql("SELECT count(*) FROM host_samples")) ?? 0) >= 2 ? true : nil
        }
        // Server down: batches pile up in the spool. Then the agent dies hard, too.
        deployment.server?.terminate()
        let outageStart = Date()
        Thread.sleep(forTimeInterval: 5)
        deployment.agent?.kill9()
        let spoolFiles = (try? FileManager.default.contentsOfDirectory(atPath: deployment.stateDir + "/spool")) ?? []
        XCTAssertFalse(spoolFiles.isEmpty, "the spool should hold the unacknowledged batches")
        try deployment.startServer()
        try deployment.startAgent(interval: 1)
        try waitUntilCaughtUp(after: Date().addingTimeInterval(2))

        // The ticks sampled during the outage, before the kill, arrived from the spool after the restart.
        let during = Int(try deployment.sql("""
            SELECT count(*) FROM host_samples WHERE ts > to_timestamp(\(outageStart.timeIntervalSince1970 + 0.5))
              AND ts < to_timestamp(\(outageStart.timeIntervalSince1970 + 4.5))
            """)) ?? 0
        XCTAssertGreaterThanOrEqual(during, 3, "spooled batches from the outage were not replayed")
        let continuity = try hostSampleContinuity()
        XCTAssertEqual(continuity.count, continuity.distinct)
    }

    /// The agent's state directory is restored from a copy made right after enrollment (a VM snapshot rolled
    /// back) while the server is down: the batches it then spools reuse sequence numbers the server already
    /// committed for other batches. They must be stored, not taken for already committed and dropped.
    func testARestoredStateDirectoryLosesNothing() throws {
        try deployment.startServer()
        try deployment.provision()
        let snapshot = deployment.root + "/agent-snapshot"
        XCTAssertEqual(Shell.run("/bin/cp", ["-a", deployment.stateDir, snapshot]).status, 0)
        try deployment.startAgent(interval: 1)
        _ = try eventually(timeout: 30, "batches committed before the restore") { () -> Bool? in
            (Int(try deployment.sql("SELECT committed_seq FROM agents")) ?? 0) >= 8 ? true : nil
        }
        deployment.agent?.terminate()
        deployment.server?.kill9()
        XCTAssertEqual(Shell.run("/bin/rm", ["-rf", deployment.stateDir]).status, 0)
        XCTAssertEqual(Shell.run("/bin/cp", ["-a", snapshot, deployment.stateDir]).status, 0)
        let restoredAt = Date()
        try deployment.startAgent(interval: 1)
        Thread.sleep(forTimeInterval: 5)  // the restored agent spools under sequences 1, 2, 3 ... again
        try deployment.startServer()
        try waitUntilCaughtUp(after: Date().addingTimeInterval(2))

        let during = Int(try deployment.sql("""
            SELECT count(*) FROM host_samples WHERE ts > to_timestamp(\(restoredAt.timeIntervalSince1970 + 1))
              AND ts < to_timestamp(\(restoredAt.timeIntervalSince1970 + 4.5))
            """)) ?? 0
        XCTAssertGreaterThanOrEqual(during, 3, "batches spooled after the restore were dropped as if committed")
        let continuity = try hostSampleContinuity(after: restoredAt.addingTimeInterval(1))
        XCTAssertEqual(continuity.count, continuity.distinct)
        XCTAssertLessThanOrEqual(continuity.maxGap, 2.0, "ticks after the restore are missing")
        let log = deployment.agent?.log ?? ""
        XCTAssertTrue(log.contains("restored copy"), "the agent says what happened: \(log.suffix(2000))")
    }

    /// With a short certificate lifetime the agent renews over its live session, saves the new certificate and
    /// reconnects with it as the same agent.
    func testTheAgentRenewsItsCertificateOverTheSessionAndKeepsItsIdentity() throws {
        // 0.0004 days = 34.56 s: renewal is due after about 23 s; the agent checks on every heartbeat (15 s).
        deployment.serverEnvironment["CROWSNEST_AGENT_CERTIFICATE_DAYS"] = "0.0004"
        try deployment.startServer()
        try deployment.provision()
        let before = try String(contentsOfFile: deployment.stateDir + "/agent.pem", encoding: .utf8)
        let agentID = try deployment.sql("SELECT id FROM agents")
        try deployment.startAgent(interval: 1)
        _ = try eventually(timeout: 60, "the agent renewed its certificate") { () -> Bool? in
            let now = (try? String(contentsOfFile: deployment.stateDir + "/agent.pem", encoding: .utf8)) ?? before
            return now != before ? true : nil
        }
        XCTAssertTrue(deployment.agent?.log.contains("certificate renewed") ?? false)
        // Force a reconnect after the first certificate expired: the renewed one is used.
        Thread.sleep(forTimeInterval: 14)
        deployment.server?.terminate()
        let reconnectAt = Date()
        try deployment.startServer()
        try waitUntilCaughtUp(after: reconnectAt.addingTimeInterval(2))
        XCTAssertEqual(try deployment.sql("SELECT id FROM agents"), agentID, "still one agent, the same one")
    }

    func testDatabaseOutageWithholdsAcksAndLosesNothing() throws {
        try deployment.startServer()
        try deployment.provision()
        try deployment.startAgent(interval: 1)
        _ = try eventually(timeout: 30, "first batches committed") { () -> Bool? in
            (Int(try deployment.sql("SELECT count(*) FROM host_samples")) ?? 0) >= 2 ? true : nil
        }
        let bin = try XCTUnwrap(((try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []).sorted().last)
        let pgCtl = "/usr/lib/postgresql/\(bin)/bin/pg_ctl"
        let pgData = deployment.dataDir + "/postgres/data"
        // pg_ctl start leaves a daemon that would inherit Foundation's internal descriptors and keep
        // Process.waitUntilExit from returning; python's subprocess closes them (close_fds) first.
        func pgctl(_ arguments: [String]) -> Shell.Result {
            let command = (getuid() == 0 ? ["/usr/sbin/runuser", "-u", "crowsnest-postgres", "--"] : []) + [pgCtl] + arguments
            return Shell.run("/usr/bin/env", ["python3", "-c",
                "import subprocess, sys; sys.exit(subprocess.run(sys.argv[1:], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode)"]
                + command)
        }
        let stop = pgctl(["-D", pgData, "stop", "-m", "fast", "-w"])
        XCTAssertEqual(stop.status, 0, stop.error)
        let outageStart = Date()
        Thread.sleep(forTimeInterval: 6)
        let spooled = (try? FileManager.default.contentsOfDirectory(atPath: deployment.stateDir + "/spool")) ?? []
        XCTAssertFalse(spooled.isEmpty, "without acks the batches stay in the spool")
        XCTAssertTrue(deployment.server?.isRunning ?? false, "the server must survive a database outage")
        let start = pgctl(["-D", pgData, "-l", deployment.dataDir + "/postgres/server.log", "start", "-w"])
        XCTAssertEqual(start.status, 0, start.error)
        try waitUntilCaughtUp(after: Date().addingTimeInterval(2))
        let continuity = try hostSampleContinuity()
        XCTAssertEqual(continuity.count, continuity.distinct)
        XCTAssertLessThanOrEqual(continuity.maxGap, 2.0, "ticks were lost during the database outage")
        XCTAssertLessThan(continuity.first, outageStart.timeIntervalSince1970)
    }

    func testReusedEnrollmentTokenIsRefusedWithAReasonAndStoresNothing() throws {
        try deployment.startServer()
        try deployment.provision()
        let agentsBefore = try deployment.sql("SELECT count(*) FROM agents")
        let second = Shell.run(Binaries.agent, ["enroll", "--server", "127.0.0.1:\(deployment.agentPort)",
                                                "--token", deployment.usedToken["token"]!, "--ca-pin", deployment.usedToken["ca_pin"]!,
                                                "--state-dir", deployment.root + "/second-agent"])
        XCTAssertNotEqual(second.status, 0)
        XCTAssertTrue(second.error.contains("already used"), "agent said: \(second.error)")
        XCTAssertEqual(try deployment.sql("SELECT count(*) FROM agents"), agentsBefore)
        XCTAssertFalse(FileManager.default.fileExists(atPath: deployment.root + "/second-agent/agent.pem"))

        // A pin for another CA: the agent refuses the server before sending its token.
        let wrongPin = "sha256:" + String(repeating: "ab", count: 32)
        let token = try deployment.admin(["token", "create", "--tenant", "e2e"])
        let pinned = Shell.run(Binaries.agent, ["enroll", "--server", "127.0.0.1:\(deployment.agentPort)", "--token", token["token"]!,
                                                "--ca-pin", wrongPin, "--state-dir", deployment.root + "/third-agent"])
        XCTAssertNotEqual(pinned.status, 0)
        XCTAssertTrue(pinned.error.contains("pin"), "agent said: \(pinned.error)")
        XCTAssertEqual(try deployment.sql("SELECT count(*) FROM enrollment_tokens WHERE used_at IS NULL"), "1", "the unused token stays unused")
        // The server stops promptly on SIGTERM.
        XCTAssertLessThan(try XCTUnwrap(deployment.server).secondsToStop(), 10, "the server did not stop within 10 s of SIGTERM")
    }

    func testAgentWithoutDockerKeepsSendingHostFiguresAndSaysWhy() throws {
        try deployment.startServer()
        try deployment.provision()
        deployment.agentEnvironment["DOCKER_HOST"] = "unix://\(deployment.root)/no-such-docker.sock"
        try deployment.startAgent(interval: 1)
        let host = try eventually(timeout: 30, "host with a reason for missing containers") { () -> [String: Any]? in
            let hosts = try deployment.http("/api/v1/infrastructure").json["hosts"] as? [[String: Any]] ?? []
            guard let host = hosts.first, let reason = host["containers_unavailable_reason"] as? String, !reason.isEmpty else { return nil }
            return host
        }
        XCTAssertTrue((host["containers_unavailable_reason"] as? String ?? "").contains("no-such-docker.sock"))
        XCTAssertEqual((host["containers"] as? [Any])?.count, 0)
        let hostID = try XCTUnwrap(host["id"] as? String)
        let metrics = try eventually(timeout: 20, "host metrics") { () -> [String: Any]? in
            let result = try deployment.http("/api/v1/metrics/\(hostID)")
            return result.status == 200 && result.json["cpu_percent"] is Double ? result.json : nil
        }
        XCTAssertGreaterThan(metrics["memory_limit_bytes"] as? Double ?? 0, 0)
        XCTAssertTrue(deployment.agent?.log.contains("Docker engine cannot be reached") ?? false, "the agent should say why containers are missing")
    }
}

/// Command-line behaviour of both executables; needs only the built binaries.
final class CommandLineTests: XCTestCase {
    private let root = "/tmp/cn-cli-" + String(UUID().uuidString.prefix(8)).lowercased()

    override func setUpWithError() throws {
        for binary in [Binaries.server, Binaries.agent] where !FileManager.default.isExecutableFile(atPath: binary) {
            if ProcessInfo.processInfo.environment["CI"] == "true" { XCTFail("\(binary) is missing: run swift build") }
            throw XCTSkip("\(binary) is missing: run swift build")
        }
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: root)
    }

    func testMalformedConfigurationPrintsOneClearLineAndExitsNonZero() throws {
        let config = root + "/bad.yaml"
        try "interval: often\n".write(toFile: config, atomically: true, encoding: .utf8)
        let agent = Shell.run(Binaries.agent, ["run", "--config", config, "--state-dir", root + "/agent"])
        XCTAssertNotEqual(agent.status, 0)
        let agentLines = agent.error.split(separator: "\n").filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
        XCTAssertTrue(agentLines.first?.contains("interval") ?? false, "agent said: \(agent.error)")
        XCTAssertTrue(agentLines.first?.contains("often") ?? false, "agent said: \(agent.error)")

        try "listen_everywhere: true\n".write(toFile: config, atomically: true, encoding: .utf8)
        let server = Shell.run(Binaries.server, ["serve", "--config", config, "--data-dir", root + "/server"])
        XCTAssertNotEqual(server.status, 0)
        XCTAssertTrue(server.error.contains("unknown setting 'listen_everywhere'"), "server said: \(server.error)")

        let token = Shell.run(Binaries.agent, ["enroll", "--server", "nowhere", "--token", "x", "--ca-pin", "sha256:00"])
        XCTAssertNotEqual(token.status, 0)
        XCTAssertTrue(token.error.contains("--server"), "agent said: \(token.error)")
    }
}

/// A second replica on `--database-url`, and administrative commands given nothing but the URL: one CA for all.
final class ReplicaEndToEndTests: XCTestCase {
    func testAdminCommandsWithOnlyADatabaseURLGiveAPinThatASecondReplicaServesAndEnrollmentAccepts() throws {
        try requireServices()
        let deployment = try Deployment()
        defer {
            if testRun?.hasSucceeded == false { print(deployment.logs) }
            deployment.tearDown()
        }
        try deployment.startServer()
        try deployment.provision()
        // The first server's cluster, reached as an external database over its unix socket.
        let url = deployment.databaseURL
        let replicaDir = deployment.root + "/replica"
        let replicaPort = freePort()
        let replica = try ChildProcess(
            executable: Binaries.server,
            arguments: ["serve", "--data-dir", replicaDir, "--database-url", url, "--agent-listen", "127.0.0.1:\(replicaPort)",
                        "--http-listen", "127.0.0.1:\(freePort())"],
            logPath: deployment.root + "/replica.log",
            environment: ProcessInfo.processInfo.environment.merging(
                ["CROWSNEST_SECRET_KEY_FILE": deployment.dataDir + "/secret.key"]) { _, new in new })
        defer { replica.terminate() }

        // From another directory, with nothing but the URL: the pin comes from the database.
        let token = Shell.run(Binaries.server, ["token", "create", "--tenant", "e2e", "--database-url", url, "--json"],
                              currentDirectory: "/")
        XCTAssertEqual(token.status, 0, token.error)
        XCTAssertFalse(token.error.contains("hasn't been called yet"), "no misleading client warning: \(token.error)")
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(token.output.utf8)) as? [String: String])
        XCTAssertEqual(object["ca_pin"], deployment.usedToken["ca_pin"], "every command sees the one CA")

        _ = try eventually(timeout: 60, "replica gateway listening") { () -> Bool? in
            guard replica.isRunning else { throw DeploymentError("replica exited: \(replica.log.suffix(2000))") }
            // The gateway's own line: the CA is ready a little earlier, before the socket is bound.
            return replica.log.contains("agent gateway listening") ? true : nil
        }
        let enroll = Shell.run(Binaries.agent, ["enroll", "--server", "127.0.0.1:\(replicaPort)", "--token", object["token"]!,
                                                "--ca-pin", object["ca_pin"]!, "--state-dir", deployment.root + "/agent-2"])
        XCTAssertEqual(enroll.status, 0, "enrolling through the replica with the printed pin: \(enroll.error)")

        // Without the secret key file, a replica on a URL refuses to start, in one line.
        let refused = Shell.run(Binaries.server, ["serve", "--data-dir", deployment.root + "/replica-3", "--database-url", url,
                                                  "--agent-listen", "127.0.0.1:\(freePort())", "--http-listen", "127.0.0.1:\(freePort())"])
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.error.contains("secret_key_file"), refused.error)
    }
}
