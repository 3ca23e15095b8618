import ArgumentParser
import CrowsnestAgent
import CrowsnestServer
import CrowsnestWire
import Foundation
import Logging
import NIOCore
import PostgresNIO
import Prometheus
import Synchronization
import UnixSignals

/// Server ingest benchmark: container samples per second end to end (mTLS, frame decode, ingest transaction,
/// COMMIT, ack) from simulated agents on loopback, beside the same number of rows written with plain COPY
/// into the same database as the ceiling, in one run.
@main
struct IngestBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "crowsnest-bench",
        abstract: "Measures server ingest end to end against plain COPY into the same database.")

    @Option(help: "Simulated agents, each with its own mTLS session.") var agents = 8
    @Option(help: "Container samples per batch (one sweep of that many containers).") var batchSize = 100
    @Option(help: "Unacknowledged batches each agent keeps in flight (the server caps it at its ack window).") var window = 32
    @Option(help: "Seconds of load before measuring.") var warmup = 5.0
    @Option(help: "Seconds measured.") var duration = 20.0
    @Option(help: "Measurement rounds; each round runs every phase once.") var runs = 3
    @Option(help: "Parallel connections for the COPY ceiling.") var copyConnections = 4
    @Option(help: "Rows per COPY statement (one transaction each), comma-separated; one ceiling per value.") var copyRows = "100,10000"
    @Flag(help: "Skip the phase that calls IngestWriter directly (no network, no TLS).") var skipDirect = false
    @Flag(help: "Simulated agents build and serialize every batch with SwiftProtobuf (as the real agent does) instead of writing its bytes directly; their CPU then competes more with the server's on this machine.")
    var agentsUseSwiftProtobuf = false
    @Option(help: "Batches for the per-statement timing of one ingest transaction at the end (0: skip).") var profileBatches = 300
    @Option(help: "Server data directory (default: a fresh /tmp/cn-bench-XXXX, removed afterwards).") var dataDir: String?
    @Option(help: "External PostgreSQL URL instead of the embedded cluster.") var databaseURL: String?
    @Flag(help: "Measure check coordination instead of ingest: lease acquire/renew latency, then check runs dispatched and recorded per second by two coordinators (two replicas) with a no-op probe.")
    var coordination = false
    @Option(help: "Measure HTTP probes instead: probe this URL (a new connection each) at --probe-rate per second for --duration seconds and report this process's CPU per 1,000 probes.")
    var probeTarget: String?
    @Option(help: "Probes per second for --probe-target.") var probeRate = 50.0
    @Option(help: "What paces the probes of --probe-target: a timer of the thread the runs wait on (prober), or of an event loop (loop), as the agent's runs are started from the frames its event loop reads.")
    var probePacing = "prober"
    @Option(help: "Check type for --probe-target (http; a type the prober does not run, such as none, fails at once and measures what the harness and a run's set-up cost without a probe).")
    var probeType = "http"
    @Option(help: "Checks for --coordination (interval 5 s each: checks / 5 runs per second are due).") var checks = 6000
    @Flag(help: "Measure the uptime and dashboard API instead: a tenant with 1,000 targets and 90 days of spans and rollups, each route's p50/p99 over HTTP.")
    var uptime = false
    @Option(help: "Requests per route for --uptime.") var uptimeRequests = 100
    @Flag(help: "Measure the web overview page instead: a tenant with 200 hosts and 5,000 containers, server time p50/p99 over HTTP, then full loads in headless Chromium.")
    var web = false
    @Option(help: "Page requests for --web.") var webRequests = 100
    @Option(help: "Chromium loads for --web (0: none).") var webBrowserRuns = 30
    @Flag(help: "Measure alert evaluation instead: a tenant with 1,000 targets and 2,000 rules, the time of one evaluation of every rule, then the latency from a target going down to its webhook request.")
    var alerts = false
    @Option(help: "Evaluations timed for --alerts.") var alertRounds = 20
    @Option(help: "Waves of 20 targets switched down for --alerts.") var alertWaves = 5
    @Option(help: "With --coordination: make the checks http checks of this URL, run by the agents' real prober (16 at a time per agent) instead of answered at once.")
    var coordinationProbeTarget: String?

    func run() async throws {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .error
            return handler
        }
        let logger = Logger(label: "crowsnest-bench")
        if let probeTarget {
            guard ["prober", "loop"].contains(probePacing) else {
                throw ValidationError("--probe-pacing is prober or loop, not \(probePacing)")
            }
            try await ProbeBenchmark(type: probeType, target: probeTarget, rate: probeRate, duration: duration, warmup: warmup,
                                     paceOnEventLoop: probePacing == "loop").measure()
            return
        }
        let copySizes = copyRows.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        let directory = dataDir ?? "/tmp/cn-bench-" + String(UUID().uuidString.prefix(8)).lowercased()
        let removeDirectory = dataDir == nil
        defer { if removeDirectory { try? FileManager.default.removeItem(atPath: directory) } }

        var flags: [String: String?] = ["data_dir": directory]
        if let databaseURL { flags["database_url"] = databaseURL }
        var configuration = try ServerConfiguration.load(file: nil, environment: [:], flags: flags)
        configuration.agentListen = ("127.0.0.1", 0)
        configuration.httpListen = ("127.0.0.1", 0)
        configuration.logLevel = .error
        // All simulated agents enroll from 127.0.0.1 within a second.
        configuration.enrollmentsPerMinutePerAddress = 10_000
        configuration.apiRequestsPerMinute = 10_000_000
        if databaseURL != nil {
            // A database URL needs a secret key file; the benchmark's own, in its data directory.
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            configuration.secretKeyFile = directory + "/" + SecretKey.defaultFileName
            _ = try SecretKey.loadOrCreate(path: directory + "/" + SecretKey.defaultFileName)
        }

        var runner = ServerRunner(configuration: configuration, logger: logger, metricsRegistry: PrometheusCollectorRegistry())
        // Stopped at the end as SIGTERM stops a real server (graceful shutdown, then its embedded PostgreSQL): a
        // cancelled server task could take minutes to return and left its cluster running, whose autovacuum then
        // shared the machine with the next benchmark. SIGUSR2, so that SIGTERM and ^C still end the process at once.
        runner.shutdownSignals = [.sigusr2]
        let (ready, readyContinuation) = AsyncStream.makeStream(of: Int.self)
        let httpPort = LockedBox(0)
        runner.onReady = { address, http in
            httpPort.lock.withLock { $0 = http }
            readyContinuation.yield(address.port ?? 0)
            readyContinuation.finish()
        }
        let server = Task { [runner] in try await runner.run() }
        defer { server.cancel() }
        var port = 0
        for await value in ready { port = value }
        guard port > 0 else {
            _ = try await server.value
            throw BenchmarkError("server stopped before listening")
        }
        print("server up: agents on 127.0.0.1:\(port), data in \(directory)")

        let client: PostgresClient
        if let databaseURL {
            client = try DatabaseConnection.makeClient(url: databaseURL, logger: logger)
        } else {
            client = try DatabaseConnection.makeClient(embedded: EmbeddedPostgres(dataDirectory: directory, logger: logger), logger: logger)
        }
        let options = self
        // Not a child task: twice in six runs on 2026-12-02 the cancelled `client.run()` never returned once every
        // round was done (the process idle, no connection of its left open, the server shutdown below never reached),
        // and a task group waiting for it kept the server and its cluster running. Cancelled here, not awaited.
        let clientRun = Task { await client.run() }
        defer { clientRun.cancel() }
        do {
            if options.alerts {
                try await AlertBenchmark(rounds: options.alertRounds, waves: options.alertWaves)
                    .measure(client: client, directory: directory, logger: logger)
            } else if options.web {
                try await WebBenchmark(requests: options.webRequests, browserRuns: options.webBrowserRuns)
                    .measure(client: client, httpPort: httpPort.lock.withLock { $0 }, logger: logger)
            } else if options.uptime {
                try await UptimeBenchmark(requests: options.uptimeRequests)
                    .measure(client: client, httpPort: httpPort.lock.withLock { $0 }, logger: logger)
            } else if options.coordination {
                try await CoordinationBenchmark(checks: options.checks, duration: options.duration, warmup: options.warmup,
                                                probeTarget: options.coordinationProbeTarget)
                    .measure(client: client, logger: logger)
            } else {
                try await options.measure(client: client, port: port, directory: directory, copySizes: copySizes, logger: logger)
            }
        }
        clientRun.cancel()
        kill(getpid(), SIGUSR2)
        let stopped = LockedBox(false)
        Task { [server] in
            _ = try? await server.value
            stopped.lock.withLock { $0 = true }
        }
        let giveUp = ContinuousClock.now + .seconds(60)
        while !stopped.lock.withLock({ $0 }) && ContinuousClock.now < giveUp { try await Task.sleep(for: .milliseconds(100)) }
        if !stopped.lock.withLock({ $0 }) && databaseURL == nil {
            print("the server did not stop within 60 s; stopping its embedded PostgreSQL")
            try? await EmbeddedPostgres(dataDirectory: directory, logger: logger).stop()
        }
    }

    struct Round {
        var endToEnd = 0.0
        var latencyP50 = 0.0
        var latencyP99 = 0.0
        var direct: Double?
        var copy: [Int: Double] = [:]
        var rows = 0
    }

    func measure(client: PostgresClient, port: Int, directory: String, copySizes: [Int], logger: Logger) async throws {
        let administration = ServerAdministration(client: client, logger: logger)
        let tenantID = try await administration.createTenant(name: "bench")
        let start = (Int64(Date().timeIntervalSince1970) - 6 * 3600) * 1000
        func enroll(_ index: Int) async throws -> SimulatedAgent {
            let (token, pin) = try await administration.createEnrollmentToken(tenant: "bench")
            var facts = Crowsnest_V1_HostFacts()
            facts.hostname = "bench-host-\(index)"
            let credentials = try await Enroller(
                servers: [ServerAddress(host: "127.0.0.1", port: port)], token: token, pin: try CAPin.parse(pin),
                stateDirectory: directory + "/agents/\(index)", logger: logger
            ).enroll(host: facts, agentVersion: "crowsnest-bench")
            let agent = try SimulatedAgent(index: index, credentials: credentials, containerCount: batchSize, startMillis: start)
            try agent.checkFrameEncoding()
            return agent
        }
        var wireAgents: [SimulatedAgent] = []
        var directAgents: [SimulatedAgent] = []
        for index in 0..<agents { wireAgents.append(try await enroll(index)) }
        if !skipDirect { for index in agents..<(2 * agents) { directAgents.append(try await enroll(index)) } }
        let profileAgent = profileBatches > 0 ? try await enroll(2 * agents) : nil
        print("enrolled \(wireAgents.count + directAgents.count + (profileAgent == nil ? 0 : 1)) agents through the gateway; \(agents) agents x \(batchSize) samples per batch, window \(window)")

        var rounds: [Round] = []
        let window = self.window
        for round in 1...runs {
            var result = Round()
            // 1. End to end over mTLS.
            let counters = AckCounters()
            let (samples, seconds, latencies) = try await withThrowingTaskGroup(of: [Double].self) { group in
                for agent in wireAgents {
                    group.addTask { try await runSession(agent: agent, port: port, window: window, counters: counters,
                                                           encodeWithSwiftProtobuf: agentsUseSwiftProtobuf) }
                }
                let (samples, seconds) = try await Self.window(counters: counters, warmup: warmup, duration: duration)
                counters.stop.store(true, ordering: .relaxed)
                var latencies: [Double] = []
                for try await part in group { latencies += part }
                return (samples, seconds, latencies)
            }
            result.endToEnd = Double(samples) / seconds
            result.rows = samples
            let sorted = latencies.sorted()
            result.latencyP50 = sorted.isEmpty ? 0 : sorted[sorted.count / 2]
            result.latencyP99 = sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, sorted.count * 99 / 100)]
            print(String(format: "round %d  end to end: %8.0f samples/s  (%d samples in %.1f s; ack latency p50 %.0f ms, p99 %.0f ms)",
                         round, result.endToEnd, samples, seconds, result.latencyP50 * 1000, result.latencyP99 * 1000))

            // 2. The same writer the gateway uses, called directly: no TLS, no frames.
            if !skipDirect {
                let writer = IngestWriter(client: client, partitions: PartitionStore(client: client, logger: logger), logger: logger)
                let counters = AckCounters()
                let (samples, seconds) = try await withThrowingTaskGroup(of: Void.self) { group in
                    for agent in directAgents {
                        group.addTask {
                            var memory = CounterMemory()
                            let identity = agent.credentials.identity
                            while !counters.stop.load(ordering: .relaxed) {
                                let batch = agent.makeBatch()
                                _ = try await writer.write(batch, tenantID: identity.tenantID, agentID: identity.agentID, memory: &memory)
                                counters.samples.add(batch.containers.count, ordering: .relaxed)
                            }
                        }
                    }
                    let measured = try await Self.window(counters: counters, warmup: warmup, duration: duration)
                    counters.stop.store(true, ordering: .relaxed)
                    try await group.waitForAll()
                    return measured
                }
                result.direct = Double(samples) / seconds
                print(String(format: "round %d  IngestWriter.write directly (%d tasks): %8.0f samples/s", round, agents, result.direct!))
            }

            // 3. The ceiling: the same number of rows with plain COPY.
            for size in copySizes {
                let rate = try await copyCeiling(client: client, tenantID: tenantID, rows: result.rows, rowsPerStatement: size,
                                                 startMillis: start, logger: logger)
                result.copy[size] = rate
                print(String(format: "round %d  COPY %5d rows/statement, %d connections: %8.0f rows/s  (end to end = %.1f%%)",
                              round, size, copyConnections, rate, 100 * result.endToEnd / rate))
            }
            rounds.append(result)
        }

        // Consistency: everything acknowledged is in the table.
        let wireIDs = wireAgents.map { $0.credentials.identity.agentID }
        var stored = 0
        for try await count in try await client.query(
            "SELECT count(*) FROM container_samples WHERE agent_id = ANY(\(wireIDs))", logger: logger).decode(Int64.self) {
            stored = Int(count)
        }
        let sent = wireAgents.reduce(0) { $0 + Int($1.seq) } * batchSize
        print("check: \(stored) rows stored for the simulated agents, \(sent) samples acknowledged in total\(stored == sent ? "" : "  MISMATCH")")

        if let profileAgent {
            let steps = try await profileTransaction(agent: profileAgent, client: client, batches: profileBatches, logger: logger)
            print("\none ingest transaction of \(batchSize) samples, steps timed from one task (mean of \(profileBatches) batches):")
            for (name, ms) in steps { print("  " + name.padding(toLength: 45, withPad: " ", startingAt: 0) + String(format: "%7.2f ms", ms)) }
        }

        func median(_ values: [Double]) -> Double {
            let sorted = values.sorted()
            guard !sorted.isEmpty else { return 0 }
            return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
        }
        let endToEnd = median(rounds.map(\.endToEnd))
        print("\nmedians over \(rounds.count) rounds:")
        print(String(format: "  end to end (mTLS, decode, transaction, COMMIT, ack): %8.0f samples/s  (ack latency p50 %.0f ms)",
                     endToEnd, median(rounds.map(\.latencyP50)) * 1000))
        if !skipDirect {
            let direct = median(rounds.compactMap(\.direct))
            print(String(format: "  IngestWriter.write directly:                         %8.0f samples/s  (end to end = %.1f%%)",
                         direct, 100 * endToEnd / direct))
        }
        for size in copySizes {
            let copy = median(rounds.compactMap { $0.copy[size] })
            print(String(format: "  COPY, %5d rows per statement:                       %8.0f rows/s     (end to end = %.1f%%, ratio %.2f)",
                         size, copy, 100 * endToEnd / copy, endToEnd / copy))
        }
    }

    /// Waits `warmup`, then counts acknowledged samples for `duration`; returns the count and the exact seconds.
    static func window(counters: AckCounters, warmup: Double, duration: Double) async throws -> (Int, Double) {
        try await Task.sleep(for: .milliseconds(Int(warmup * 1000)))
        let clock = ContinuousClock()
        let begin = clock.now
        let before = counters.samples.load(ordering: .relaxed)
        try await Task.sleep(for: .milliseconds(Int(duration * 1000)))
        let after = counters.samples.load(ordering: .relaxed)
        let elapsed = clock.now - begin
        return (after - before, Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
    }


    /// Writes `rows` container rows with `COPY container_samples FROM STDIN` (text format, one autocommitted
    /// statement per `rowsPerStatement` rows) over `copyConnections` connections; returns rows per second.
    /// The rows are formatted before the clock starts, so only PostgreSQL and the client library are measured.
    func copyCeiling(client: PostgresClient, tenantID: UUID, rows: Int, rowsPerStatement: Int, startMillis: Int64,
                     logger: Logger) async throws -> Double {
        let connections = max(1, copyConnections)
        let perConnection = (rows + connections - 1) / connections
        let ticks = (perConnection + batchSize - 1) / batchSize
        try await PartitionStore(client: client, logger: logger)
            .ensurePartitions(forMillis: [startMillis, startMillis + Int64(ticks) * 1000])
        var plans: [[ByteBuffer]] = []
        for _ in 0..<connections {
            let agent = UUID().uuidString.lowercased()
            let tenant = tenantID.uuidString.lowercased()
            var statements: [ByteBuffer] = []
            var buffer = ByteBuffer()
            var inStatement = 0
            var tsText = ""
            for row in 0..<perConnection {
                let container = row % batchSize
                if container == 0 || tsText.isEmpty {
                    let ts = startMillis + Int64(row / batchSize) * 1000
                    tsText = Self.timestamp(Date(timeIntervalSince1970: Double(ts) / 1000))
                }
                let counter = UInt64(row) * 1_000_003
                var fields: [String] = [tenant, agent, "copy-svc\(container)", tsText,
                                        String(repeating: "ab12cd34", count: 8), "running"]
                fields += [counter, 0, 0, 104_857_600, 94_371_840, 536_870_912, counter * 3, counter * 2, counter / 100,
                           counter / 120, 0, 0, 0, 0, 0, counter * 4, 12, counter / 4096, 9].map { String($0) }
                fields += ["1.5", "2048.0", "1024.0", "0.0", "4096.0"]
                buffer.writeString(fields.joined(separator: "\t"))
                buffer.writeString("\n")
                inStatement += 1
                if inStatement == rowsPerStatement {
                    statements.append(buffer)
                    buffer = ByteBuffer()
                    inStatement = 0
                }
            }
            if inStatement > 0 { statements.append(buffer) }
            plans.append(statements)
        }
        let clock = ContinuousClock()
        let begin = clock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for statements in plans {
                group.addTask {
                    try await client.withConnection { connection in
                        for statement in statements {
                            try await connection.copyFrom(table: "container_samples", columns: SampleStore.containerSampleColumns, logger: logger) { writer in
                                try await writer.write(statement)
                            }
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        let elapsed = clock.now - begin
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return Double(perConnection * connections) / seconds
    }

    static func timestamp(_ date: Date) -> String {
        let c = Calendar(identifier: .gregorian).dateComponents(in: TimeZone(identifier: "UTC")!, from: date)
        return String(format: "%04d-%02d-%02d %02d:%02d:%02d.%03d+00", c.year!, c.month!, c.day!, c.hour!, c.minute!, c.second!,
                      (c.nanosecond ?? 0) / 1_000_000)
    }
}
