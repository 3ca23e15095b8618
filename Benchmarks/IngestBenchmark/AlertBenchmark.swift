import CrowsnestServer
import CrowsnestWire
import Foundation
import Logging
import PostgresNIO

/// `crowsnest-bench --alerts`: alert evaluation on a tenant with 1,000 targets (hosts with an open `up` span each and
/// 5 minutes of samples every 30 s) and 2,000 rules (two per target: down for 0 s; then down or unknown for 60 s
/// with reminders every 5 minutes on even hosts, CPU above 90 % for 60 s — a threshold rule — on odd ones), one
/// webhook channel to `scripts/webhook-receiver.py` on loopback. First the time of one evaluation of every rule
/// (`AlertJob.plan`, which reads what a round reads and writes nothing), `rounds` times; then, with the server's
/// own job and delivery running, `waves` waves of 20 targets switched down at once: the time from each switch to
/// its webhook request, p50/p99.
struct AlertBenchmark {
    var rounds: Int
    var waves: Int

    static let targets = 1000
    static let perWave = 20

    func measure(client: PostgresClient, directory: String, logger: Logger) async throws {
        let administration = ServerAdministration(client: client, logger: logger)
        let tenant = "alerts-" + String(UUID().uuidString.prefix(6)).lowercased()
        let tenantID = try await administration.createTenant(name: tenant)
        try await client.query("""
            INSERT INTO agents (tenant_id, id, hostname, last_seen, interval_seconds)
            SELECT \(tenantID), gen_random_uuid(), 'host-' || lpad(h::text, 4, '0'), now(), 30 FROM generate_series(1, \(Self.targets)) h
            """, logger: logger)
        try await client.query("""
            INSERT INTO status_spans (tenant_id, target_id, state, started_at)
            SELECT tenant_id, 'h-' || id::text, 'up', now() - interval '1 day' FROM agents WHERE tenant_id = \(tenantID)
            """, logger: logger)
        // Host samples, so the threshold rules read real series.
        let nowMillis = Int64(Date().timeIntervalSince1970 * 1000)
        try await PartitionStore(client: client, logger: logger).ensurePartitions(forMillis: [nowMillis - 300_000, nowMillis])
        try await client.query("""
            INSERT INTO host_samples (tenant_id, agent_id, ts, cpu_percent, cpu_count, memory_total_bytes, memory_available_bytes)
            SELECT tenant_id, id, now() - s * interval '30 seconds', 20, 4, 8000000000, 6000000000
            FROM agents, generate_series(0, 9) s WHERE tenant_id = \(tenantID)
            """, logger: logger)
        var hosts: [String] = []
        for try await id in try await client.query("SELECT id FROM agents WHERE tenant_id = \(tenantID) ORDER BY hostname", logger: logger)
            .decode(UUID.self) { hosts.append("h-" + id.uuidString.lowercased()) }

        // The receiver, and a channel to it (the tenant allows loopback, which the SSRF guard refuses otherwise).
        let hookPort = Int.random(in: 20_000...29_999)
        let hookLog = directory + "/alert-hooks.jsonl"
        let receiver = Process()
        receiver.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        receiver.arguments = [Self.repositoryRoot + "/scripts/webhook-receiver.py", "--port", "\(hookPort)", "--log", hookLog]
        // Not this process's output: a pipe reading it would wait for the receiver too.
        receiver.standardOutput = FileHandle.nullDevice
        receiver.standardError = FileHandle.nullDevice
        try receiver.run()
        // SIGKILL: the server in this process has SIGTERM ignored (service-lifecycle's handler), and the receiver
        // inherits that.
        defer {
            kill(receiver.processIdentifier, SIGKILL)
            receiver.waitUntilExit()
        }
        try await TenantStore(client: client, logger: logger).allowNetwork(tenantID: tenantID, network: IPNetwork("127.0.0.0/8")!)
        let secretKey = try SecretKey.loadOrCreate(path: directory + "/" + SecretKey.defaultFileName)
        let (channelDefinition, _) = try AlertChannelDefinition.parse(.object([
            "name": .string("bench"), "type": .string("webhook"), "url": .string("http://127.0.0.1:\(hookPort)/hook"),
        ]))
        let channel = try await AlertChannelStore(client: client, logger: logger).create(tenantID: tenantID, definition: channelDefinition,
                                                                                        secretKey: secretKey)
        let channelID = AlertChannelID(uuid: channel.id).description
        let rules = DefinitionStore(.alertRules, client: client, logger: logger)
        let creating = ContinuousClock.now
        for (index, host) in hosts.enumerated() {
            let second: (String, [String: JSONValue]) = index % 2 == 0
                ? ("down or unknown", ["for_seconds": .integer(60), "states": .array([.string("down"), .string("unknown")]),
                                       "reminder_minutes": .integer(5)])
                : ("cpu", ["kind": .string("threshold"), "metric": .string("cpu_percent"), "above": .integer(90), "for_seconds": .integer(60)])
            for (suffix, extra) in [("down", ["for_seconds": JSONValue.integer(0)]), second] {
                var body: [String: JSONValue] = ["name": .string("host \(index) \(suffix)"), "targets": .array([.string(host)]),
                                                 "channels": .array([.string(channelID)])]
                body.merge(extra) { $1 }
                let rule = try AlertRuleDefinition.parse(.object(body))
                _ = try await rules.create(tenantID: tenantID, name: rule.name, definition: rule.json)
            }
        }
        print(String(format: "generated %d targets and %d rules in %.1f s", Self.targets, 2 * Self.targets,
                     (ContinuousClock.now - creating).benchMilliseconds / 1000))
        fflush(nil)  // shown as measured, also into a file

        // 1. One evaluation of every rule (nothing changes, so a round writes nothing: this is a round's cost).
        let job = AlertJob(client: client, logger: logger)
        var durations: [Double] = []
        for index in 0..<(rounds + 1) {
            let started = ContinuousClock.now
            let plan = try await job.plan(tenantID: tenantID, now: Date())
            if index > 0 { durations.append((ContinuousClock.now - started).benchMilliseconds) }
            guard plan.rules == 2 * Self.targets, plan.targets == 2 * Self.targets, plan.drafts.isEmpty else {
                throw BenchmarkError("evaluation saw \(plan.rules) rules, \(plan.targets) targets, \(plan.drafts.count) notifications")
            }
        }
        let p50 = durations.benchPercentile(0.5)
        print(String(format: "evaluation of 2,000 rules over 1,000 targets: p50 %.0f ms, p99 %.0f ms (%d rounds): %.0f rules/s",
                     p50, durations.benchPercentile(0.99), rounds, 2000 / (p50 / 1000)))
        fflush(nil)  // shown as measured, also into a file

        // 2. Notification latency with the server's job (a round every 5 s) and delivery (polling every second).
        var latencies: [Double] = []
        for wave in 0..<waves {
            let chosen = Array(hosts[(wave * Self.perWave)..<((wave + 1) * Self.perWave)])
            var switched: [String: Double] = [:]
            for host in chosen {
                // Two statements: a data-modifying CTE's update is not visible to the insert beside it, and the
                // insert would meet the open span it closes.
                try await client.query("""
                    UPDATE status_spans SET ended_at = now() WHERE tenant_id = \(tenantID) AND target_id = \(host) AND ended_at IS NULL
                    """, logger: logger)
                try await client.query("""
                    INSERT INTO status_spans (tenant_id, target_id, state, started_at, cause) VALUES (\(tenantID), \(host), 'down', now(), 'bench')
                    """, logger: logger)
                switched[host] = Date().timeIntervalSince1970
            }
            let deadline = ContinuousClock.now + .seconds(60)
            var received: [String: Double] = [:]
            while received.count < chosen.count {
                guard ContinuousClock.now < deadline else { throw BenchmarkError("wave \(wave): \(received.count) of \(chosen.count) notified in 60 s") }
                try await Task.sleep(for: .milliseconds(200))
                received = Self.firstFiring(hookLog, targets: Set(chosen))
            }
            for (host, at) in received { latencies.append((at - switched[host]!) * 1000) }
            // The next wave starts off the evaluator's beat.
            try await Task.sleep(for: .milliseconds(Int.random(in: 500...4500)))
        }
        print(String(format: "notification latency, span switched down to webhook request: p50 %.0f ms, p99 %.0f ms (%d notifications, round every 5 s)",
                     latencies.benchPercentile(0.5), latencies.benchPercentile(0.99), latencies.count))
        fflush(nil)  // shown as measured, also into a file
    }

    /// When each of `targets` first got a `firing` request, from the receiver's log.
    static func firstFiring(_ log: String, targets: Set<String>) -> [String: Double] {
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        var found: [String: Double] = [:]
        for line in text.split(separator: "\n") {
            guard case .object(let entry)? = try? JSONValue.parse(Data(line.utf8)),
                  case .string(let body)? = entry["body"], case .object(let payload)? = try? JSONValue.parse(Data(body.utf8)),
                  case .string("firing")? = payload["kind"], case .object(let target)? = payload["target"],
                  case .string(let id)? = target["id"], targets.contains(id), found[id] == nil else { continue }
            switch entry["received_at"] {
            case .number(let at)?: found[id] = at
            case .integer(let at)?: found[id] = Double(at)
            default: continue
            }
        }
        return found
    }

    static var repositoryRoot: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    }
}
