import CrowsnestWire
import Foundation
import Logging
import NIOCore
import PostgresNIO

/// What happened to one batch.
public enum IngestOutcome: Sendable, Equatable {
    /// Rows written and committed.
    case committed(containerSamples: Int)
    /// The batch's sequence was already committed: nothing written (a replay after a lost ack).
    case replay
}

/// Per-session memory of each container's last counters, so rates need no read-back from the database.
public struct CounterMemory: Sendable {
    var loaded = false
    var snapshots: [String: CounterSnapshot] = [:]
    /// Identity and state of each container as last written to `containers` in this session: unchanged
    /// containers are not rewritten on every batch (that rewrite was the largest cost of a batch).
    var written: [String: Crowsnest_V1_ContainerSample] = [:]
    public init() {}
}

/// Writes one agent batch to PostgreSQL in one transaction, idempotently.
///
/// The batch's sequence is recorded on the agent's row in the same transaction as its rows, so a replayed
/// batch is recognised and skipped whole; samples go in with COPY. The caller acknowledges only after this
/// returns, i.e. after COMMIT.
public struct IngestWriter: Sendable {
    public let client: PostgresClient
    public let partitions: PartitionStore
    public let logger: Logger

    public init(client: PostgresClient, partitions: PartitionStore, logger: Logger) {
        self.client = client
        self.partitions = partitions
        self.logger = logger
    }

    /// The `container_samples` columns the writer COPYs, in order.
    public static let sampleColumns = [
        "tenant_id", "agent_id", "name", "ts", "docker_id", "state", "cpu_usage_ns", "cpu_throttled_periods",
        "cpu_throttled_ns", "memory_usage_bytes", "memory_working_set_bytes", "memory_limit_bytes", "net_rx_bytes",
        "net_tx_bytes", "net_rx_packets", "net_tx_packets", "net_rx_errors", "net_tx_errors", "net_rx_dropped",
        "net_tx_dropped", "block_read_bytes", "block_write_bytes", "block_read_ops", "block_write_ops", "pids",
        "cpu_percent", "net_rx_bytes_per_second", "net_tx_bytes_per_second", "block_read_bytes_per_second",
        "block_write_bytes_per_second",
    ]

    /// Writes `batch` for the agent; `memory` carries counters between batches of one session.
    public func write(_ batch: Crowsnest_V1_SampleBatch, tenantID: UUID, agentID: UUID,
                      memory: inout CounterMemory) async throws -> IngestOutcome {
        try await write(group: [batch], tenantID: tenantID, agentID: agentID, memory: &memory)[0]
    }

    /// Writes several batches of one agent in one transaction (one sequence check, one COPY, one COMMIT) and
    /// returns one outcome per batch, in order. Batches whose sequence is not above the committed one (or above
    /// an earlier batch of the group) are replays and write nothing. Nothing is written when it throws.
    public func write(group batches: [Crowsnest_V1_SampleBatch], tenantID: UUID, agentID: UUID,
                      memory: inout CounterMemory) async throws -> [IngestOutcome] {
        guard !batches.isEmpty else { return [] }
        let batches = batches.map(Self.withoutNulBytes)
        try await partitions.ensurePartitions(forMillis: batches.map(\.tsUnixMs))
        let before = memory
        let result: ([IngestOutcome], CounterMemory)? = try await client.withTransaction(logger: logger) { connection in
            guard let committed = try await AgentStore.lockCommittedSeq(tenantID: tenantID, agentID: agentID,
                                                                        on: connection, logger: logger)
            else { return nil }
            var memory = before
            var highest = committed
            var accepted: [Crowsnest_V1_SampleBatch] = []
            var outcomes: [IngestOutcome] = []
            var rows = ByteBufferAllocator().buffer(capacity: batches.reduce(0) { $0 + $1.containers.count } * 400)
            for batch in batches {
                guard batch.seq > highest else {
                    outcomes.append(.replay)
                    continue
                }
                highest = batch.seq
                accepted.append(batch)
                if !memory.loaded {
                    memory.snapshots = try await Self.latestCounters(tenantID: tenantID, agentID: agentID,
                                                                     before: batch.tsUnixMs, on: connection, logger: logger)
                }
                let samples = Self.appendSampleRows(batch, tenantID: tenantID, agentID: agentID,
                                                    previous: &memory.snapshots, to: &rows)
                try await writeHostSample(batch, tenantID: tenantID, agentID: agentID, on: connection)
                try await writeContainerState(batch, tenantID: tenantID, agentID: agentID, memory: &memory, on: connection)
                outcomes.append(.committed(containerSamples: samples))
            }
            guard let last = accepted.last else { return (outcomes, before) }
            if rows.readableBytes > 0 {
                let copied = rows
                try await connection.copyFrom(table: "container_samples", columns: Self.sampleColumns, logger: logger) { writer in
                    try await writer.write(copied)
                }
            }
            try await AgentStore.recordCommitted(
                tenantID: tenantID, agentID: agentID, seq: highest,
                spoolDroppedBatches: accepted.reduce(UInt64(0)) { $0 &+ $1.spoolDroppedBatches },
                containersUnavailableReason: last.containersUnavailableReason, intervalSeconds: last.intervalSeconds,
                on: connection, logger: logger)
            return (outcomes, memory)
        }
        guard let (outcomes, after) = result else {
            throw StoreError(.notFound, "agent \(agentID) of tenant \(tenantID) is not registered; its batches cannot be stored")
        }
        memory = after
        return outcomes
    }

    /// Writes what changed in the `containers` rows, events and status spans for one batch, and remembers
    /// what was written so the next batch of the session writes only changes.
    private func writeContainerState(_ batch: Crowsnest_V1_SampleBatch, tenantID: UUID, agentID: UUID,
                                     memory: inout CounterMemory, on connection: PostgresConnection) async throws {
        let loaded = memory.loaded
        let written = memory.written
        let current = Dictionary(batch.containers.filter { !$0.name.isEmpty }.map { ($0.name, Self.identityAndState(of: $0)) },
                                 uniquingKeysWith: { _, last in last })
        // First batch of a session: write everything (the table may hold anything). Afterwards only changes.
        let changed = batch.containers.filter { !$0.name.isEmpty && (!loaded || written[$0.name] != current[$0.name]) }
        let membershipChanged = !loaded || Set(written.keys) != Set(current.keys)
        try await ContainerStore.upsert(changed, tsMillis: batch.tsUnixMs, tenantID: tenantID, agentID: agentID,
                                        on: connection, logger: logger)
        // A batch made without Docker says nothing about which containers exist.
        if membershipChanged && batch.containersUnavailableReason.isEmpty {
            try await ContainerStore.markRemoved(exceptNames: Array(current.keys), tsMillis: batch.tsUnixMs,
                                                 tenantID: tenantID, agentID: agentID, on: connection, logger: logger)
        }
        try await ContainerEventStore.insert(batch.events, tenantID: tenantID, agentID: agentID,
                                             on: connection, logger: logger)
        // A container whose state did not change and that had no events cannot change span.
        try await recordTransitions(batch, only: loaded ? Set(changed.map(\.name)) : nil,
                                    tenantID: tenantID, agentID: agentID, on: connection)
        memory.loaded = true
        if batch.containersUnavailableReason.isEmpty {
            memory.written = current
        } else {
            memory.written.merge(current) { _, new in new }
        }
    }

    /// The fields of a sample that the `containers` row holds (everything but the counters).
    static func identityAndState(of sample: Crowsnest_V1_ContainerSample) -> Crowsnest_V1_ContainerSample {
        var row = Crowsnest_V1_ContainerSample()
        row.dockerID = sample.dockerID
        row.name = sample.name
        row.image = sample.image
        row.labels = sample.labels
        row.state = sample.state
        row.health = sample.health
        row.healthOutput = sample.healthOutput
        row.restartCount = sample.restartCount
        row.exitCode = sample.exitCode
        row.oomKilled = sample.oomKilled
        row.startedAtUnixMs = sample.startedAtUnixMs
        row.finishedAtUnixMs = sample.finishedAtUnixMs
        row.cpuLimitCores = sample.cpuLimitCores
        row.memoryLimitBytes = sample.memoryLimitBytes
        return row
    }

    /// Appends the batch's container samples, with rates against `previous`, as COPY text rows; returns how many.
    static func appendSampleRows(_ batch: Crowsnest_V1_SampleBatch, tenantID: UUID, agentID: UUID,
                                 previous: inout [String: CounterSnapshot], to buffer: inout ByteBuffer) -> Int {
        let samples = batch.containers.filter { !$0.name.isEmpty }
        guard !samples.isEmpty else { return 0 }
        let tenant = tenantID.uuidString
        let agent = agentID.uuidString
        let timestamp = CopyTextRow.format(millis: batch.tsUnixMs)
        for sample in samples {
            var rates = CounterRates.unknown
            if sample.hasStats_p {
                let snapshot = CounterSnapshot(
                    tsMillis: batch.tsUnixMs, dockerID: sample.dockerID, startedAtMillis: sample.startedAtUnixMs,
                    cpuUsageNanos: sample.cpuUsageNs, netRxBytes: sample.netRxBytes, netTxBytes: sample.netTxBytes,
                    blockReadBytes: sample.blockReadBytes, blockWriteBytes: sample.blockWriteBytes)
                rates = CounterRates.between(previous[sample.name], snapshot)
                previous[sample.name] = snapshot
            }
            let stats = sample.hasStats_p
            func counter(_ value: UInt64) -> Int64? { stats ? Int64(clamping: value) : nil }
            CopyTextRow.append(to: &buffer) { row in
                row.text(tenant)
                row.text(agent)
                row.text(sample.name)
                row.text(timestamp)
                row.text(sample.dockerID)
                row.text(sample.state)
                row.integer(counter(sample.cpuUsageNs))
                row.integer(counter(sample.cpuThrottledPeriods))
                row.integer(counter(sample.cpuThrottledNs))
                row.integer(counter(sample.memoryUsageBytes))
                row.integer(counter(sample.memoryWorkingSetBytes))
                row.integer(sample.memoryLimitBytes > 0 ? Int64(clamping: sample.memoryLimitBytes) : nil)
                row.integer(counter(sample.netRxBytes))
                row.integer(counter(sample.netTxBytes))
                row.integer(counter(sample.netRxPackets))
                row.integer(counter(sample.netTxPackets))
                row.integer(counter(sample.netRxErrors))
                row.integer(counter(sample.netTxErrors))
                row.integer(counter(sample.netRxDropped))
                row.integer(counter(sample.netTxDropped))
                row.integer(counter(sample.blockReadBytes))
                row.integer(counter(sample.blockWriteBytes))
                row.integer(counter(sample.blockReadOps))
                row.integer(counter(sample.blockWriteOps))
                row.integer(counter(sample.pids))
                row.double(rates.cpuPercent)
                row.double(rates.netRxBytesPerSecond)
                row.double(rates.netTxBytesPerSecond)
                row.double(rates.blockReadBytesPerSecond)
                row.double(rates.blockWriteBytesPerSecond)
            }
        }
        return samples.count
    }

    private func writeHostSample(_ batch: Crowsnest_V1_SampleBatch, tenantID: UUID, agentID: UUID,
                                 on connection: PostgresConnection) async throws {
        guard batch.hasHost else { return }
        let host = batch.host
        let rx = host.interfaces.reduce(UInt64(0)) { $0 &+ $1.rxBytes }
        let tx = host.interfaces.reduce(UInt64(0)) { $0 &+ $1.txBytes }
        let filesystems = host.filesystems.map {
            ["mountpoint": $0.mountpoint, "device": $0.device, "fstype": $0.fstype, "size_bytes": $0.sizeBytes,
             "free_bytes": $0.freeBytes, "available_bytes": $0.availableBytes] as [String: Any]
        }
        let fsJSON = String(decoding: try JSONSerialization.data(withJSONObject: filesystems, options: [.sortedKeys]), as: UTF8.self)
        // Rates against the previous host row of this agent (host counters live in the row itself).
        try await connection.query("""
            WITH previous AS (
                SELECT ts, cpu_total_ns, cpu_idle_ns, cpu_iowait_ns, net_rx_bytes, net_tx_bytes, uptime_seconds
                FROM host_samples
                WHERE tenant_id = \(tenantID) AND agent_id = \(agentID)
                  AND ts < to_timestamp(\(Double(batch.tsUnixMs) / 1000)) AND ts > to_timestamp(\(Double(batch.tsUnixMs) / 1000)) - interval '1 hour'
                ORDER BY ts DESC LIMIT 1
            ), current AS (
                SELECT to_timestamp(\(Double(batch.tsUnixMs) / 1000)) AS ts, \(Int64(clamping: host.cpuTotalNs))::bigint AS cpu_total_ns,
                       \(Int64(clamping: host.cpuIdleNs))::bigint AS cpu_idle_ns, \(Int64(clamping: host.cpuIowaitNs))::bigint AS cpu_iowait_ns,
                       \(Int64(clamping: rx))::bigint AS net_rx_bytes, \(Int64(clamping: tx))::bigint AS net_tx_bytes,
                       \(Int64(clamping: host.uptimeSeconds))::bigint AS uptime_seconds
            )
            INSERT INTO host_samples (tenant_id, agent_id, ts, cpu_total_ns, cpu_idle_ns, cpu_iowait_ns, cpu_count, load1, load5,
                load15, memory_total_bytes, memory_available_bytes, swap_total_bytes, swap_free_bytes, net_rx_bytes,
                net_tx_bytes, uptime_seconds, filesystems, cpu_percent, net_rx_bytes_per_second, net_tx_bytes_per_second)
            SELECT \(tenantID), \(agentID), c.ts, c.cpu_total_ns, c.cpu_idle_ns, c.cpu_iowait_ns, \(Int32(clamping: host.cpuCount)),
                \(host.load1), \(host.load5), \(host.load15), \(Int64(clamping: host.memoryTotalBytes)),
                \(Int64(clamping: host.memoryAvailableBytes)), \(Int64(clamping: host.swapTotalBytes)),
                \(Int64(clamping: host.swapFreeBytes)), c.net_rx_bytes, c.net_tx_bytes, c.uptime_seconds, \(fsJSON)::jsonb,
                CASE WHEN p.ts IS NULL OR c.cpu_total_ns <= p.cpu_total_ns OR c.uptime_seconds < p.uptime_seconds THEN NULL
                     ELSE 100.0 * ((c.cpu_total_ns - p.cpu_total_ns) - (c.cpu_idle_ns - p.cpu_idle_ns) - (c.cpu_iowait_ns - p.cpu_iowait_ns))
                          / extract(epoch FROM c.ts - p.ts) / 1e9 END,
                CASE WHEN p.ts IS NULL OR c.net_rx_bytes < p.net_rx_bytes THEN NULL
                     ELSE (c.net_rx_bytes - p.net_rx_bytes) / extract(epoch FROM c.ts - p.ts) END,
                CASE WHEN p.ts IS NULL OR c.net_tx_bytes < p.net_tx_bytes THEN NULL
                     ELSE (c.net_tx_bytes - p.net_tx_bytes) / extract(epoch FROM c.ts - p.ts) END
            FROM current c LEFT JOIN previous p ON true
            ON CONFLICT (tenant_id, agent_id, ts) DO NOTHING
            """, logger: logger)
    }

    /// Applies the span transitions the batch implies; `only` limits the containers looked at (plus those with
    /// events), nil means all of them.
    private func recordTransitions(_ batch: Crowsnest_V1_SampleBatch, only: Set<String>?, tenantID: UUID, agentID: UUID,
                                   on connection: PostgresConnection) async throws {
        var eventsByName: [String: [Crowsnest_V1_ContainerEvent]] = [:]
        for event in batch.events where !event.name.isEmpty { eventsByName[event.name, default: []].append(event) }
        var samplesByName: [String: Crowsnest_V1_ContainerSample] = [:]
        for sample in batch.containers
        where !sample.name.isEmpty && ((only?.contains(sample.name) ?? true) || eventsByName[sample.name] != nil) {
            samplesByName[sample.name] = sample
        }
        let names = Set(eventsByName.keys).union(samplesByName.keys).sorted()
        guard !names.isEmpty else { return }
        let targets = names.map { TargetID.container(agentID: agentID, name: $0).description }
        let open = try await StatusSpanStore.openSpans(tenantID: tenantID, targetIDs: targets, on: connection, logger: logger)
        for (name, target) in zip(names, targets) {
            let transitions = ContainerStatus.transitions(
                current: open[target]?.state, currentSince: open[target]?.sinceMicros, events: eventsByName[name] ?? [],
                sample: samplesByName[name], tickMicros: batch.tsUnixMs * 1000)
            for transition in transitions {
                try await StatusSpanStore.apply(tenantID: tenantID, targetID: target, transition: transition,
                                                on: connection, logger: logger)
            }
        }
    }

    /// PostgreSQL text cannot hold NUL: a health check printing one would make the batch fail forever and block
    /// the agent's spool, so NUL bytes are dropped from the free-text fields.
    static func withoutNulBytes(_ batch: Crowsnest_V1_SampleBatch) -> Crowsnest_V1_SampleBatch {
        func clean(_ text: String) -> String { text.contains("\u{0}") ? String(text.unicodeScalars.filter { $0 != "\u{0}" }) : text }
        var batch = batch
        for index in batch.containers.indices where batch.containers[index].healthOutput.contains("\u{0}") {
            batch.containers[index].healthOutput = clean(batch.containers[index].healthOutput)
        }
        for index in batch.events.indices where batch.events[index].detail.contains("\u{0}") {
            batch.events[index].detail = clean(batch.events[index].detail)
        }
        return batch
    }

    /// The newest counters of each of the agent's containers in the day before `before`.
    static func latestCounters(tenantID: UUID, agentID: UUID, before: Int64, on connection: PostgresConnection,
                               logger: Logger) async throws -> [String: CounterSnapshot] {
        let rows = try await connection.query("""
            SELECT DISTINCT ON (name) name, (extract(epoch FROM ts) * 1000)::bigint, docker_id, cpu_usage_ns,
                   net_rx_bytes, net_tx_bytes, block_read_bytes, block_write_bytes
            FROM container_samples
            WHERE tenant_id = \(tenantID) AND agent_id = \(agentID) AND cpu_usage_ns IS NOT NULL
              AND ts < to_timestamp(\(Double(before) / 1000)) AND ts > to_timestamp(\(Double(before) / 1000)) - interval '1 day'
            ORDER BY name, ts DESC
            """, logger: logger)
        var result: [String: CounterSnapshot] = [:]
        for try await (name, ts, dockerID, cpu, rx, tx, read, write) in rows.decode(
            (String, Int64, String, Int64, Int64?, Int64?, Int64?, Int64?).self) {
            result[name] = CounterSnapshot(
                tsMillis: ts, dockerID: dockerID, startedAtMillis: 0, cpuUsageNanos: UInt64(max(0, cpu)),
                netRxBytes: UInt64(max(0, rx ?? 0)), netTxBytes: UInt64(max(0, tx ?? 0)),
                blockReadBytes: UInt64(max(0, read ?? 0)), blockWriteBytes: UInt64(max(0, write ?? 0)))
        }
        return result
    }
}
