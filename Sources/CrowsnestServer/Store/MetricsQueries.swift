import Foundation
import Logging
import PostgresNIO

/// One point of a target's figures: the latest sample, or one aggregated history bucket.
/// Every figure is optional because agents report what they can (nil = unknown or not applicable).
public struct MetricsPoint: Sendable, Equatable {
    /// Sample time, or the start of the history bucket.
    public var ts: Date
    /// CPU use in percent of one core (two full cores = 200).
    public var cpuPercent: Double?
    /// Memory in use: a container's working set (usage when unknown); a host's total − available.
    public var memoryBytes: Double?
    /// Memory limit: a container's cgroup limit (nil when unlimited); a host's total memory.
    public var memoryLimitBytes: Double?
    /// Network receive rate.
    public var netRxBytesPerSecond: Double?
    /// Network transmit rate.
    public var netTxBytesPerSecond: Double?
    /// Block device read rate (containers only).
    public var blockReadBytesPerSecond: Double?
    /// Block device write rate (containers only).
    public var blockWriteBytesPerSecond: Double?
    /// Number of processes (containers only).
    public var pids: Double?

    /// Creates a point.
    public init(
        ts: Date, cpuPercent: Double? = nil, memoryBytes: Double? = nil, memoryLimitBytes: Double? = nil,
        netRxBytesPerSecond: Double? = nil, netTxBytesPerSecond: Double? = nil,
        blockReadBytesPerSecond: Double? = nil, blockWriteBytesPerSecond: Double? = nil, pids: Double? = nil
    ) {
        self.ts = ts
        self.cpuPercent = cpuPercent
        self.memoryBytes = memoryBytes
        self.memoryLimitBytes = memoryLimitBytes
        self.netRxBytesPerSecond = netRxBytesPerSecond
        self.netTxBytesPerSecond = netTxBytesPerSecond
        self.blockReadBytesPerSecond = blockReadBytesPerSecond
        self.blockWriteBytesPerSecond = blockWriteBytesPerSecond
        self.pids = pids
    }
}

/// How samples inside one history bucket are combined.
public enum MetricsAggregation: String, Sendable, CaseIterable {
    /// Mean of the samples.
    case avg
    /// Smallest sample.
    case min
    /// Largest sample.
    case max

    /// The SQL aggregate function (a fixed whitelist: safe to splice into SQL).
    var sqlFunction: String {
        switch self {
        case .avg: return "avg"
        case .min: return "min"
        case .max: return "max"
        }
    }
}

/// Read-side queries over `container_samples` and `host_samples`; every query is confined to one tenant.
public struct MetricsQueries: Sendable {
    private let database: PostgresClient
    private let logger: Logger

    /// Creates the queries on a running `PostgresClient`.
    public init(database: PostgresClient, logger: Logger) {
        self.database = database
        self.logger = logger
    }

    /// The most recent sample of a host or container; nil when there is none (or the target is a check).
    public func latest(tenantID: UUID, target: TargetID) async throws -> MetricsPoint? {
        let query: PostgresQuery
        switch target {
        case .container(let agentID, let name):
            query = """
                SELECT ts, cpu_percent, coalesce(memory_working_set_bytes, memory_usage_bytes)::float8,
                       nullif(memory_limit_bytes, 0)::float8, net_rx_bytes_per_second, net_tx_bytes_per_second,
                       block_read_bytes_per_second, block_write_bytes_per_second, pids::float8
                FROM container_samples
                WHERE tenant_id = \(tenantID) AND agent_id = \(agentID) AND name = \(name)
                ORDER BY ts DESC LIMIT 1
                """
        case .host(let agentID):
            query = """
                SELECT ts, cpu_percent, (memory_total_bytes - memory_available_bytes)::float8,
                       memory_total_bytes::float8, net_rx_bytes_per_second, net_tx_bytes_per_second,
                       NULL::float8, NULL::float8, NULL::float8
                FROM host_samples
                WHERE tenant_id = \(tenantID) AND agent_id = \(agentID)
                ORDER BY ts DESC LIMIT 1
                """
        case .check:
            return nil
        }
        return try await self.points(query).first
    }

    /// The target's samples in `[from, to]` combined per `stepSeconds`-long bucket (aligned to the Unix
    /// epoch, so equal steps give equal buckets across requests), oldest first; empty buckets are left out.
    /// The ts range predicate lets PostgreSQL prune the day partitions outside the range.
    public func history(
        tenantID: UUID, target: TargetID, from: Date, to: Date, stepSeconds: Int, aggregation: MetricsAggregation
    ) async throws -> [MetricsPoint] {
        guard let query = Self.historyQuery(
            tenantID: tenantID, target: target, from: from, to: to, stepSeconds: stepSeconds, aggregation: aggregation
        ) else { return [] }
        return try await self.points(query)
    }

    /// The SQL of `history` (nil for checks, which have no samples here); separate so tests can EXPLAIN it.
    static func historyQuery(
        tenantID: UUID, target: TargetID, from: Date, to: Date, stepSeconds: Int, aggregation: MetricsAggregation
    ) -> PostgresQuery? {
        let f = aggregation.sqlFunction
        let step = Double(stepSeconds)
        switch target {
        case .container(let agentID, let name):
            return """
                SELECT date_bin(make_interval(secs => \(step)), ts, timestamptz '1970-01-01 00:00:00+00') AS bucket,
                       \(unescaped: f)(cpu_percent)::float8,
                       \(unescaped: f)(coalesce(memory_working_set_bytes, memory_usage_bytes))::float8,
                       \(unescaped: f)(nullif(memory_limit_bytes, 0))::float8,
                       \(unescaped: f)(net_rx_bytes_per_second)::float8,
                       \(unescaped: f)(net_tx_bytes_per_second)::float8,
                       \(unescaped: f)(block_read_bytes_per_second)::float8,
                       \(unescaped: f)(block_write_bytes_per_second)::float8,
                       \(unescaped: f)(pids)::float8
                FROM container_samples
                WHERE tenant_id = \(tenantID) AND agent_id = \(agentID) AND name = \(name)
                  AND ts >= \(from) AND ts <= \(to)
                GROUP BY bucket ORDER BY bucket
                """
        case .host(let agentID):
            return """
                SELECT date_bin(make_interval(secs => \(step)), ts, timestamptz '1970-01-01 00:00:00+00') AS bucket,
                       \(unescaped: f)(cpu_percent)::float8,
                       \(unescaped: f)(memory_total_bytes - memory_available_bytes)::float8,
                       \(unescaped: f)(memory_total_bytes)::float8,
                       \(unescaped: f)(net_rx_bytes_per_second)::float8,
                       \(unescaped: f)(net_tx_bytes_per_second)::float8,
                       NULL::float8, NULL::float8, NULL::float8
                FROM host_samples
                WHERE tenant_id = \(tenantID) AND agent_id = \(agentID)
                  AND ts >= \(from) AND ts <= \(to)
                GROUP BY bucket ORDER BY bucket
                """
        case .check:
            return nil
        }
    }

    private func points(_ query: PostgresQuery) async throws -> [MetricsPoint] {
        let rows = try await self.database.query(query, logger: self.logger)
        var points: [MetricsPoint] = []
        for try await (ts, cpu, memory, limit, rx, tx, blockRead, blockWrite, pids) in rows.decode(
            (Date, Double?, Double?, Double?, Double?, Double?, Double?, Double?, Double?).self
        ) {
            points.append(
                MetricsPoint(
                    ts: ts, cpuPercent: cpu, memoryBytes: memory, memoryLimitBytes: limit,
                    netRxBytesPerSecond: rx, netTxBytesPerSecond: tx,
                    blockReadBytesPerSecond: blockRead, blockWriteBytesPerSecond: blockWrite, pids: pids
                )
            )
        }
        return points
    }
}
