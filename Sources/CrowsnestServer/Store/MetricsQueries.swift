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
/// A host's newest figures as the overview shows them.
public struct HostFigures: Sendable, Equatable {
    public var ts: Date
    /// Percent of one core (a host using two full cores shows 200).
    public var cpuPercent: Double?
    public var cpuCount: Int?
    public var memoryUsedBytes: Double?
    public var memoryTotalBytes: Double?
    /// The fullest filesystem's use, in percent.
    public var diskPercent: Double?
}

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

    /// The newest sample of every host of the tenant within the last `withinSeconds`, by agent: CPU (percent of
    /// one core), memory used and total, and the fullest filesystem's use in percent. One query for a whole fleet.
    public func latestHostFigures(tenantID: UUID, withinSeconds: Int = 600) async throws -> [UUID: HostFigures] {
        let rows = try await database.query("""
            SELECT DISTINCT ON (agent_id) agent_id, ts, cpu_percent, cpu_count,
                   (memory_total_bytes - memory_available_bytes)::float8, memory_total_bytes::float8, d.disk_percent
            FROM \(unescaped: RollupStore.hostSampleSource)
            WHERE tenant_id = \(tenantID) AND ts > now() - \(withinSeconds) * interval '1 second'
            ORDER BY agent_id, ts DESC
            """, logger: logger)
        var figures: [UUID: HostFigures] = [:]
        for try await (agentID, ts, cpu, cores, used, total, disk) in rows.decode((UUID, Date, Double?, Int32?, Double?, Double?, Double?).self) {
            figures[agentID] = HostFigures(ts: ts, cpuPercent: cpu, cpuCount: cores.map(Int.init), memoryUsedBytes: used,
                                           memoryTotalBytes: total, diskPercent: disk)
        }
        return figures
    }

    /// The newest sample (within `withinSeconds`) of every container of one host, by name: CPU (percent of one
    /// core), memory and its limit.
    public func latestContainerFigures(tenantID: UUID, agentID: UUID, withinSeconds: Int = 600) async throws
        -> [String: (cpuPercent: Double?, memoryBytes: Double?, memoryLimitBytes: Double?)] {
        let rows = try await database.query("""
            SELECT DISTINCT ON (name) name, cpu_percent, coalesce(memory_working_set_bytes, memory_usage_bytes)::float8,
                   nullif(memory_limit_bytes, 0)::float8
            FROM container_samples
            WHERE tenant_id = \(tenantID) AND agent_id = \(agentID) AND ts > now() - \(withinSeconds) * interval '1 second'
            ORDER BY name, ts DESC
            """, logger: logger)
        var figures: [String: (cpuPercent: Double?, memoryBytes: Double?, memoryLimitBytes: Double?)] = [:]
        for try await (name, cpu, memory, limit) in rows.decode((String, Double?, Double?, Double?).self) {
            figures[name] = (cpu, memory, limit)
        }
        return figures
    }

    /// CPU of every container of one host since `from`, averaged per `stepSeconds`, by name, oldest first: the
    /// sparklines of a host page, in one query.
    public func containerCPUSparklines(tenantID: UUID, agentID: UUID, from: Date, stepSeconds: Int) async throws -> [String: [(Date, Double?)]] {
        let rows = try await database.query("""
            SELECT name, date_bin(make_interval(secs => \(Double(stepSeconds))), ts, 'epoch') AS bucket, avg(cpu_percent)::float8
            FROM container_samples
            WHERE tenant_id = \(tenantID) AND agent_id = \(agentID) AND ts >= \(from)
            GROUP BY name, bucket ORDER BY name, bucket
            """, logger: logger)
        var lines: [String: [(Date, Double?)]] = [:]
        for try await (name, bucket, cpu) in rows.decode((String, Date, Double?).self) { lines[name, default: []].append((bucket, cpu)) }
        return lines
    }

    /// A host's load (1-minute average) and swap in use over `[from, to)`, averaged per `stepSeconds`, oldest first.
    /// Read from raw samples (rollups do not keep them), so ranges are as long as raw retention.
    public func hostLoadAndSwap(tenantID: UUID, agentID: UUID, from: Date, to: Date, stepSeconds: Int) async throws
        -> [(ts: Date, load1: Double?, swapUsedBytes: Double?)] {
        let rows = try await database.query("""
            SELECT date_bin(make_interval(secs => \(Double(stepSeconds))), ts, 'epoch') AS bucket, avg(load1)::float8,
                   avg(swap_total_bytes - swap_free_bytes)::float8
            FROM host_samples
            WHERE tenant_id = \(tenantID) AND agent_id = \(agentID) AND ts >= \(from) AND ts < \(to)
            GROUP BY bucket ORDER BY bucket
            """, logger: logger)
        var points: [(ts: Date, load1: Double?, swapUsedBytes: Double?)] = []
        for try await (bucket, load, swap) in rows.decode((Date, Double?, Double?).self) { points.append((bucket, load, swap)) }
        return points
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

/// One bucket of a chart series: each figure's average, minimum and maximum over the bucket.
public struct MetricsSeriesPoint: Sendable, Equatable {
    public var ts: Date
    public var samples: Int
    /// Per figure (`MetricsQueries.seriesFigures`): avg, min, max; nil when unknown.
    public var figures: [(avg: Double?, min: Double?, max: Double?)]

    public static func == (lhs: MetricsSeriesPoint, rhs: MetricsSeriesPoint) -> Bool {
        lhs.ts == rhs.ts && lhs.samples == rhs.samples && lhs.figures.count == rhs.figures.count
            && zip(lhs.figures, rhs.figures).allSatisfy { $0.avg == $1.avg && $0.min == $1.min && $0.max == $1.max }
    }
}

extension MetricsQueries {
    /// The figures of a chart series, in order (API names); a container has no disk figure, a host no block I/O or pids.
    public static let seriesFigures = ["cpu_percent", "memory_bytes", "memory_limit_bytes", "net_rx_bytes_per_second",
                                       "net_tx_bytes_per_second", "block_read_bytes_per_second",
                                       "block_write_bytes_per_second", "pids", "disk_used_percent"]

    /// The target's figures over `[from, to)` in `step`-second buckets (aligned to the epoch), oldest first.
    /// With `rollupStep` (300 or 3600, dividing `step`) the rolled buckets are read from `metric_rollups` and only
    /// the time after the rollups' progress from raw samples; without it everything comes from raw samples.
    /// Averages are weighted by sample count, so a bucket's average is the same whichever way it is read.
    public func series(tenantID: UUID, target: TargetID, from: Date, to: Date, step: Int, rollupStep: Int?) async throws -> [MetricsSeriesPoint] {
        let raw: String
        var binds = PostgresBindings()
        binds.append(tenantID)
        binds.append(from)
        binds.append(to)
        binds.append(target.description)
        func rawColumns(_ expressions: [String]) -> String {
            expressions.map { "\($0)::float8, \($0)::float8, \($0)::float8" }.joined(separator: ", ")
        }
        switch target {
        case .container(let agentID, let name):
            binds.append(agentID)
            binds.append(name)
            raw = """
                SELECT ts, 1 AS w, \(rawColumns(RollupStore.containerFigureExpressions))
                FROM container_samples WHERE tenant_id = $1 AND agent_id = $5 AND name = $6 AND ts >= greatest($2, $7) AND ts < $3
                """
        case .host(let agentID):
            binds.append(agentID)
            binds.append("")
            raw = """
                SELECT ts, 1 AS w, \(rawColumns(RollupStore.hostFigureExpressions))
                FROM \(RollupStore.hostSampleSource)
                WHERE tenant_id = $1 AND agent_id = $5 AND $6 = '' AND ts >= greatest($2, $7) AND ts < $3
                """
        case .check:
            return []
        }
        let rolled: String
        // $7 is unused (the raw start is spliced in below); $8 the rollup step.
        binds.append(Date(timeIntervalSince1970: 0))
        if let rollupStep {
            binds.append(rollupStep)
            let columns = RollupStore.figures.map { "\($0)_avg, \($0)_min, \($0)_max" }.joined(separator: ", ")
            rolled = """
                SELECT bucket AS ts, samples AS w, \(columns)
                FROM metric_rollups
                WHERE tenant_id = $1 AND target_id = $4 AND step_seconds = $8 AND bucket >= $2 AND bucket < $3
                  AND bucket + $8 * interval '1 second' <= (SELECT rolled_through FROM rollup_progress WHERE step_seconds = $8)
                UNION ALL
                """
        } else {
            binds.append(0)
            rolled = ""
        }
        // $7, the raw start: after the rollups' progress when they are read, else the range's start.
        let rawStart = rollupStep == nil ? "$2" : "coalesce((SELECT rolled_through FROM rollup_progress WHERE step_seconds = $8), $2)"
        var columns: [String] = []
        for (index, _) in RollupStore.figures.enumerated() {
            let avg = "v\(index * 3)", min = "v\(index * 3 + 1)", max = "v\(index * 3 + 2)"
            columns.append("(sum(\(avg) * w) / nullif(sum(w) FILTER (WHERE \(avg) IS NOT NULL), 0))::float8, min(\(min))::float8, max(\(max))::float8")
        }
        let names = (0..<(RollupStore.figures.count * 3)).map { "v\($0)" }.joined(separator: ", ")
        let sql = """
            SELECT date_bin(make_interval(secs => \(step)), ts, 'epoch') AS bucket, sum(w)::int8, \(columns.joined(separator: ", "))
            FROM (\(rolled) \(raw.replacingOccurrences(of: "$7", with: rawStart))) AS series(ts, w, \(names))
            GROUP BY bucket ORDER BY bucket
            """
        let rows = try await database.query(PostgresQuery(unsafeSQL: sql, binds: binds), logger: logger)
        var points: [MetricsSeriesPoint] = []
        for try await row in rows {
            var cells = row.makeRandomAccess()
            let ts = try cells[0].decode(Date.self)
            let samples = try cells[1].decode(Int64.self)
            var figures: [(avg: Double?, min: Double?, max: Double?)] = []
            for index in 0..<RollupStore.figures.count {
                figures.append((try cells[2 + index * 3].decode(Double?.self), try cells[3 + index * 3].decode(Double?.self),
                                try cells[4 + index * 3].decode(Double?.self)))
            }
            points.append(MetricsSeriesPoint(ts: ts, samples: Int(samples), figures: figures))
        }
        return points
    }
}
