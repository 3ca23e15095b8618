import CrowsnestWire
import Foundation
import Logging
import PostgresNIO
import XCTest

@testable import CrowsnestServer

/// Batches, seeded agents and row counts for the ingest and gateway tests.
enum IngestFixtures {
    static let logger: Logger = {
        var logger = Logger(label: "crowsnest.tests.ingest")
        logger.logLevel = .warning
        return logger
    }()

    /// The server clock the ingest tests run at: an hour after the fixtures' batch times (March 2024), so those
    /// batches are inside the accepted time window.
    static let serverNowMillis: Int64 = 1_710_072_000_000 + 3_600_000
    static let timeWindow = IngestTimeWindow(now: { serverNowMillis })

    /// Inserts a tenant and an agent row; returns their ids.
    static func seedAgent(_ client: PostgresClient, tenantName: String = "acme") async throws -> (tenantID: UUID, agentID: UUID) {
        let tenantID = UUID()
        let agentID = UUID()
        try await client.query("INSERT INTO tenants (id, name) VALUES (\(tenantID), \(tenantName))", logger: logger)
        try await client.query(
            "INSERT INTO agents (tenant_id, id, hostname) VALUES (\(tenantID), \(agentID), 'host-1')", logger: logger)
        return (tenantID, agentID)
    }

    /// Runs `body` against a fresh test database holding one tenant and one agent, with an ingest writer on it.
    static func withWriter(_ body: (PostgresClient, IngestWriter, _ tenantID: UUID, _ agentID: UUID) async throws -> Void) async throws {
        try await TestPostgres.withTestDatabase { client in
            let (tenantID, agentID) = try await seedAgent(client)
            let writer = IngestWriter(client: client, partitions: PartitionStore(client: client, logger: logger), logger: logger,
                                      timeWindow: timeWindow)
            try await body(client, writer, tenantID, agentID)
        }
    }

    /// A running container sample with counters.
    static func container(_ name: String, dockerID: String? = nil, state: String = "running", health: String = "none",
                          startedAtMillis: Int64 = 1_600_000_000_000, finishedAtMillis: Int64 = 0, exitCode: Int32 = 0,
                          cpuNanos: UInt64 = 0, rx: UInt64 = 0, tx: UInt64 = 0, read: UInt64 = 0,
                          write: UInt64 = 0) -> Crowsnest_V1_ContainerSample {
        var sample = Crowsnest_V1_ContainerSample()
        sample.name = name
        sample.dockerID = dockerID ?? "id-\(name)"
        sample.image = "example/\(name):1"
        sample.labels = ["com.docker.compose.service": name]
        sample.state = state
        sample.health = health
        sample.startedAtUnixMs = startedAtMillis
        sample.finishedAtUnixMs = finishedAtMillis
        sample.exitCode = exitCode
        sample.hasStats_p = true
        sample.cpuUsageNs = cpuNanos
        sample.netRxBytes = rx
        sample.netTxBytes = tx
        sample.blockReadBytes = read
        sample.blockWriteBytes = write
        sample.memoryUsageBytes = 64 << 20
        sample.memoryLimitBytes = 512 << 20
        sample.pids = 4
        return sample
    }

    static func event(_ name: String, _ action: String, atMicros: Int64, exitCode: Int32 = -1,
                      detail: String = "") -> Crowsnest_V1_ContainerEvent {
        var event = Crowsnest_V1_ContainerEvent()
        event.name = name
        event.dockerID = "id-\(name)"
        event.action = action
        event.timeUnixNano = atMicros * 1000
        event.exitCode = exitCode
        event.detail = detail
        return event
    }

    static func host(cpuTotalNanos: UInt64 = 1_000_000_000_000, idleNanos: UInt64 = 800_000_000_000,
                     rx: UInt64 = 1_000, tx: UInt64 = 2_000, uptime: UInt64 = 10_000) -> Crowsnest_V1_HostSample {
        var host = Crowsnest_V1_HostSample()
        host.cpuTotalNs = cpuTotalNanos
        host.cpuIdleNs = idleNanos
        host.cpuCount = 4
        host.load1 = 0.5
        host.memoryTotalBytes = 8 << 30
        host.memoryAvailableBytes = 4 << 30
        host.uptimeSeconds = uptime
        var interface = Crowsnest_V1_NetInterface()
        interface.name = "eth0"
        interface.rxBytes = rx
        interface.txBytes = tx
        host.interfaces = [interface]
        var filesystem = Crowsnest_V1_Filesystem()
        filesystem.mountpoint = "/"
        filesystem.sizeBytes = 100 << 30
        filesystem.freeBytes = 50 << 30
        host.filesystems = [filesystem]
        return host
    }

    static func batch(seq: UInt64, tsMillis: Int64, containers: [Crowsnest_V1_ContainerSample] = [],
                      events: [Crowsnest_V1_ContainerEvent] = [], host: Crowsnest_V1_HostSample? = nil,
                      unavailableReason: String = "") -> Crowsnest_V1_SampleBatch {
        var batch = Crowsnest_V1_SampleBatch()
        batch.seq = seq
        batch.tsUnixMs = tsMillis
        batch.intervalSeconds = 30
        batch.containers = containers
        batch.events = events
        if let host { batch.host = host }
        batch.containersUnavailableReason = unavailableReason
        return batch
    }

    /// One integer from a query such as `SELECT count(*) ...`.
    static func integer(_ client: PostgresClient, _ query: PostgresQuery) async throws -> Int64 {
        let rows = try await client.query(query, logger: logger)
        for try await value in rows.decode(Int64.self) { return value }
        throw TestPostgresUnavailable(description: "query returned no row")
    }

    /// Row counts of the tables a batch writes, for "nothing changed" assertions. `status_spans` counts the
    /// containers' spans; the host's own liveness spans are left out here and tested in `HostLivenessTests`.
    static func counts(_ client: PostgresClient) async throws -> [String: Int64] {
        var result: [String: Int64] = [:]
        for table in ["container_samples", "host_samples", "containers", "container_events"] {
            result[table] = try await integer(client, PostgresQuery(unsafeSQL: "SELECT count(*) FROM \(table)"))
        }
        result["status_spans"] = try await integer(client, "SELECT count(*) FROM status_spans WHERE target_id NOT LIKE 'h-%'")
        return result
    }
}

/// Collects the messages an ingest writer logs, so a test can count what an operator would read.
final class IngestLogCapture: @unchecked Sendable {
    private let lock = NSLock()
    private var messages: [String] = []

    /// How many logged messages contain `text`.
    func count(containing text: String) -> Int { lock.withLock { messages.filter { $0.contains(text) }.count } }

    var logger: Logger {
        Logger(label: "crowsnest.tests.ingest.capture") { _ in Handler(capture: self) }
    }

    private struct Handler: LogHandler {
        let capture: IngestLogCapture
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            capture.lock.withLock { capture.messages.append(event.message.description) }
        }
    }
}
