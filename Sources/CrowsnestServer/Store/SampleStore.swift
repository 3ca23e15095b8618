import CrowsnestWire
import Foundation
import Logging
import NIOCore
import PostgresNIO

/// SQL for the time-series tables `container_samples` and `host_samples`: writing a tick's rows and reading back
/// the newest counters that rates continue from.
public enum SampleStore {
    /// The `container_samples` columns that COPY rows carry, in order (`IngestRows` builds rows in this order).
    public static let containerSampleColumns = [
        "tenant_id", "agent_id", "name", "ts", "docker_id", "state", "cpu_usage_ns", "cpu_throttled_periods",
        "cpu_throttled_ns", "memory_usage_bytes", "memory_working_set_bytes", "memory_limit_bytes", "net_rx_bytes",
        "net_tx_bytes", "net_rx_packets", "net_tx_packets", "net_rx_errors", "net_tx_errors", "net_rx_dropped",
        "net_tx_dropped", "block_read_bytes", "block_write_bytes", "block_read_ops", "block_write_ops", "pids",
        "cpu_percent", "net_rx_bytes_per_second", "net_tx_bytes_per_second", "block_read_bytes_per_second",
        "block_write_bytes_per_second",
    ]

    /// Inside the caller's transaction: COPYs `rows` (COPY text, `containerSampleColumns`) into `container_samples`
    /// and returns how many rows were skipped because a row for the same container and time already existed
    /// (a clock stepped back, a cloned VM, a replay the sequence check could not see).
    ///
    /// Without `skippingDuplicates` this is one plain COPY, and a duplicate fails it (23505) and with it the
    /// caller's transaction: ingest's common path, which then writes the group again skipping duplicates. With it,
    /// the COPY runs inside a savepoint, and only when it hits a duplicate does the same data go again through a
    /// temporary table and `INSERT … ON CONFLICT DO NOTHING`, which is slower but keeps every row that is new.
    public static func copyContainerSamples(_ rows: ByteBuffer, rowCount: Int, skippingDuplicates: Bool,
                                            on connection: PostgresConnection, logger: Logger) async throws -> Int {
        guard rows.readableBytes > 0 else { return 0 }
        let columns = containerSampleColumns
        guard skippingDuplicates else {
            try await connection.copyFrom(table: "container_samples", columns: columns, logger: logger) { writer in
                try await writer.write(rows)
            }
            return 0
        }
        try await connection.query("SAVEPOINT container_samples_copy", logger: logger)
        do {
            try await connection.copyFrom(table: "container_samples", columns: columns, logger: logger) { writer in
                try await writer.write(rows)
            }
            return 0
        } catch let error as PSQLError where error.serverInfo?[.sqlState] == "23505" {
            try await connection.query("ROLLBACK TO SAVEPOINT container_samples_copy", logger: logger)
        }
        // Session-local table; ON COMMIT DELETE ROWS empties it for the next transaction on this connection.
        try await connection.query("""
            CREATE TEMP TABLE IF NOT EXISTS container_samples_incoming
                (LIKE container_samples INCLUDING DEFAULTS) ON COMMIT DELETE ROWS
            """, logger: logger)
        try await connection.query("DELETE FROM container_samples_incoming", logger: logger)
        try await connection.copyFrom(table: "container_samples_incoming", columns: columns, logger: logger) { writer in
            try await writer.write(rows)
        }
        let list = columns.joined(separator: ", ")
        let inserted = try await connection.query(PostgresQuery(unsafeSQL: """
            WITH inserted AS (
                INSERT INTO container_samples (\(list)) SELECT \(list) FROM container_samples_incoming
                ON CONFLICT DO NOTHING RETURNING 1
            ) SELECT count(*) FROM inserted
            """), logger: logger)
        var stored: Int64 = 0
        for try await count in inserted.decode(Int64.self) { stored = count }
        try await connection.query("DELETE FROM container_samples_incoming", logger: logger)
        return max(0, rowCount - Int(stored))
    }

    /// Inside the caller's transaction: the host rows of a group of batches in one statement (one round trip, not
    /// one per batch); a row whose time is already stored is skipped. Unknown rates travel as NaN (arrays carry no
    /// NULL here) and are stored as NULL.
    public static func insertHostSamples(_ rows: [HostSampleRow], tenantID: UUID, agentID: UUID,
                                         on connection: PostgresConnection, logger: Logger) async throws {
        guard !rows.isEmpty else { return }
        func column<T>(_ value: (HostSampleRow) -> T) -> [T] { rows.map(value) }
        try await connection.query("""
            INSERT INTO host_samples (tenant_id, agent_id, ts, cpu_total_ns, cpu_idle_ns, cpu_iowait_ns, cpu_count, load1, load5,
                load15, memory_total_bytes, memory_available_bytes, swap_total_bytes, swap_free_bytes, net_rx_bytes,
                net_tx_bytes, uptime_seconds, filesystems, cpu_percent, net_rx_bytes_per_second, net_tx_bytes_per_second)
            SELECT \(tenantID), \(agentID), 'epoch'::timestamptz + u.ts_ms * interval '1 millisecond', u.cpu_total, u.cpu_idle,
                u.cpu_iowait, u.cpu_count, u.load1, u.load5, u.load15, u.memory_total, u.memory_available, u.swap_total,
                u.swap_free, u.rx, u.tx, u.uptime, u.filesystems::jsonb,
                NULLIF(u.cpu_percent, 'NaN'), NULLIF(u.rx_rate, 'NaN'), NULLIF(u.tx_rate, 'NaN')
            FROM unnest(\(column { $0.tsMillis })::bigint[], \(column { Int64(clamping: $0.host.cpuTotalNs) })::bigint[],
                        \(column { Int64(clamping: $0.host.cpuIdleNs) })::bigint[], \(column { Int64(clamping: $0.host.cpuIowaitNs) })::bigint[],
                        \(column { Int32(clamping: $0.host.cpuCount) })::integer[], \(column { $0.host.load1 })::float8[],
                        \(column { $0.host.load5 })::float8[], \(column { $0.host.load15 })::float8[],
                        \(column { Int64(clamping: $0.host.memoryTotalBytes) })::bigint[],
                        \(column { Int64(clamping: $0.host.memoryAvailableBytes) })::bigint[],
                        \(column { Int64(clamping: $0.host.swapTotalBytes) })::bigint[],
                        \(column { Int64(clamping: $0.host.swapFreeBytes) })::bigint[], \(column { $0.rxBytes })::bigint[],
                        \(column { $0.txBytes })::bigint[], \(column { Int64(clamping: $0.host.uptimeSeconds) })::bigint[],
                        \(column { $0.filesystemsJSON })::text[], \(column { $0.rates.cpuPercent ?? .nan })::float8[],
                        \(column { $0.rates.netRxBytesPerSecond ?? .nan })::float8[],
                        \(column { $0.rates.netTxBytesPerSecond ?? .nan })::float8[])
                AS u(ts_ms, cpu_total, cpu_idle, cpu_iowait, cpu_count, load1, load5, load15, memory_total, memory_available,
                     swap_total, swap_free, rx, tx, uptime, filesystems, cpu_percent, rx_rate, tx_rate)
            ON CONFLICT (tenant_id, agent_id, ts) DO NOTHING
            """, logger: logger)
    }

    /// The newest counters of each of the agent's containers in the day before `before` (unix ms).
    ///
    /// One index probe per container the agent has a `containers` row for (the primary key's backward scan from
    /// `before`), not a sort of every sample of the day: this runs at the start of every session, and a fleet
    /// reconnecting after a server restart starts them all at once (sorting a day of 100 containers' samples per
    /// session stalled ingest for seconds).
    public static func latestContainerCounters(tenantID: UUID, agentID: UUID, before: Int64, on connection: PostgresConnection,
                                               logger: Logger) async throws -> [String: CounterSnapshot] {
        let rows = try await connection.query("""
            SELECT c.name, s.ts_ms, s.docker_id, s.cpu_usage_ns,
                   s.net_rx_bytes, s.net_tx_bytes, s.block_read_bytes, s.block_write_bytes
            FROM containers c
            CROSS JOIN LATERAL (
                SELECT (extract(epoch FROM ts) * 1000)::bigint AS ts_ms, docker_id, cpu_usage_ns,
                       net_rx_bytes, net_tx_bytes, block_read_bytes, block_write_bytes
                FROM container_samples
                WHERE tenant_id = c.tenant_id AND agent_id = c.agent_id AND name = c.name AND cpu_usage_ns IS NOT NULL
                  AND ts < to_timestamp(\(Double(before) / 1000))
                  AND ts > to_timestamp(\(Double(before) / 1000)) - interval '1 day'
                ORDER BY ts DESC
                LIMIT 1
            ) s
            WHERE c.tenant_id = \(tenantID) AND c.agent_id = \(agentID)
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

    /// The newest host counters of the agent in the hour before `before` (unix ms), as a snapshot for
    /// `CounterSnapshot.host`; nil when there is none.
    public static func latestHostCounters(tenantID: UUID, agentID: UUID, before: Int64, on connection: PostgresConnection,
                                          logger: Logger) async throws -> CounterSnapshot? {
        let rows = try await connection.query("""
            SELECT (extract(epoch FROM ts) * 1000)::bigint, cpu_total_ns, cpu_idle_ns, cpu_iowait_ns, net_rx_bytes,
                   net_tx_bytes, uptime_seconds
            FROM host_samples
            WHERE tenant_id = \(tenantID) AND agent_id = \(agentID)
              AND ts < to_timestamp(\(Double(before) / 1000)) AND ts > to_timestamp(\(Double(before) / 1000)) - interval '1 hour'
            ORDER BY ts DESC LIMIT 1
            """, logger: logger)
        for try await (ts, total, idle, iowait, rx, tx, uptime) in rows.decode(
            (Int64, Int64?, Int64?, Int64?, Int64?, Int64?, Int64?).self) {
            var host = Crowsnest_V1_HostSample()
            host.cpuTotalNs = UInt64(max(0, total ?? 0))
            host.cpuIdleNs = UInt64(max(0, idle ?? 0))
            host.cpuIowaitNs = UInt64(max(0, iowait ?? 0))
            host.uptimeSeconds = UInt64(max(0, uptime ?? 0))
            var interface = Crowsnest_V1_NetInterface()
            interface.rxBytes = UInt64(max(0, rx ?? 0))
            interface.txBytes = UInt64(max(0, tx ?? 0))
            host.interfaces = [interface]
            return CounterSnapshot.host(host, tsMillis: ts)
        }
        return nil
    }
}

/// One host row ready to insert: the sample, its time and the rates against the previous one.
public struct HostSampleRow: Sendable {
    public var host: Crowsnest_V1_HostSample
    public var tsMillis: Int64
    public var rates: CounterRates

    public init(host: Crowsnest_V1_HostSample, tsMillis: Int64, rates: CounterRates) {
        self.host = host
        self.tsMillis = tsMillis
        self.rates = rates
    }

    /// Bytes received and sent, summed over the interfaces.
    var rxBytes: Int64 { Int64(clamping: host.interfaces.reduce(UInt64(0)) { $0 &+ $1.rxBytes }) }
    var txBytes: Int64 { Int64(clamping: host.interfaces.reduce(UInt64(0)) { $0 &+ $1.txBytes }) }

    /// The filesystems as the JSON array the `filesystems` column holds (keys sorted, as before).
    var filesystemsJSON: String {
        var json = "["
        for (index, fs) in host.filesystems.enumerated() {
            if index > 0 { json += "," }
            json += #"{"available_bytes":\#(fs.availableBytes),"device":\#(Self.quoted(fs.device)),"fstype":\#(Self.quoted(fs.fstype)),"#
            json += #""free_bytes":\#(fs.freeBytes),"mountpoint":\#(Self.quoted(fs.mountpoint)),"size_bytes":\#(fs.sizeBytes)}"#
        }
        return json + "]"
    }

    /// A JSON string literal: quotes, backslashes and control characters escaped.
    static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
