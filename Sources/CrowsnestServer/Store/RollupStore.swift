import Foundation
import Logging
import PostgresNIO

/// SQL for `metric_rollups`, `rollup_progress` and `rollup_dirty`: rolling raw samples into 5-minute and 1-hour
/// buckets (avg, min, max, sample count), re-rolling the hours late data reached, and dropping old buckets.
public struct RollupStore: Sendable {
    /// The two rollup steps, in seconds.
    public static let steps = [300, 3600]
    /// Buckets are rolled once they ended this long ago (samples of a sweep arrive within a few seconds; later ones
    /// mark their hour dirty).
    public static let settleSeconds = 120
    /// Ingest marks the hours of samples older than this dirty: they may miss a bucket rolled while they were on
    /// their way (well inside `settleSeconds`, so nothing falls between).
    public static let lateAfterSeconds = 60
    /// A dirty hour is rolled again once no late sample has marked it for this long: an agent replaying its spool
    /// marks the same hour with every group it stores, and rolling the whole hour again on every tick of the job
    /// while that goes on kept a backend busy beside ingest.
    public static let dirtyQuietSeconds = 20
    /// …or once its mark is this old, so a replay that keeps marking one hour still has it rolled again this often.
    public static let dirtyLongestWaitSeconds = settleSeconds
    /// Most of one step rolled in one call, so a long backlog is caught up in bounded statements.
    public static let maximumSpanSeconds = [300: 6 * 3600, 3600: 2 * 86_400]

    let client: PostgresClient
    let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// Each figure (in `figures` order) as an expression over a `container_samples` row: what rollups and raw
    /// series both read, so the two agree.
    static let containerFigureExpressions = [
        "cpu_percent", "coalesce(memory_working_set_bytes, memory_usage_bytes)", "nullif(memory_limit_bytes, 0)",
        "net_rx_bytes_per_second", "net_tx_bytes_per_second", "block_read_bytes_per_second",
        "block_write_bytes_per_second", "pids", "NULL::float8",
    ]
    /// The same over a row of `hostSampleSource`.
    static let hostFigureExpressions = [
        "cpu_percent", "memory_total_bytes - memory_available_bytes", "memory_total_bytes", "net_rx_bytes_per_second",
        "net_tx_bytes_per_second", "NULL::float8", "NULL::float8", "NULL::float8", "d.disk_percent",
    ]
    /// `host_samples` with a host's disk figure `d.disk_percent`: its fullest filesystem, in percent.
    static let hostSampleSource = """
        host_samples CROSS JOIN LATERAL (
            SELECT max(((f->>'size_bytes')::float8 - (f->>'free_bytes')::float8) * 100 / nullif((f->>'size_bytes')::float8, 0))
                   AS disk_percent
            FROM jsonb_array_elements(CASE WHEN jsonb_typeof(filesystems) = 'array' THEN filesystems ELSE '[]'::jsonb END) f) d
        """

    /// The per-figure columns of a rollup, in the order `figures` lists them.
    static let figures = ["cpu", "memory", "memory_limit", "rx", "tx", "read", "write", "pids", "disk"]

    /// Rolls the settled buckets of `step` not rolled yet (at most `maximumSpanSeconds` of them); returns the new
    /// `rolled_through`, or nil when nothing was due. The first call starts at the oldest raw sample.
    @discardableResult
    public func rollForward(step: Int) async throws -> Date? {
        try await client.withTransaction(logger: logger) { connection in
            // One roller at a time per step; the row lock also serialises replicas that both think they hold the job.
            func progress() async throws -> (Date, Date)? {
                let rows = try await connection.query("""
                    SELECT rolled_through,
                           least(date_bin(make_interval(secs => \(step)), now() - \(Self.settleSeconds) * interval '1 second', 'epoch'),
                                 rolled_through + \(Self.maximumSpanSeconds[step] ?? 86_400) * interval '1 second')
                    FROM rollup_progress WHERE step_seconds = \(step) FOR UPDATE
                    """, logger: logger)
                var range: (Date, Date)?
                for try await row in rows.decode((Date, Date).self) { range = row }
                return range
            }
            var range = try await progress()
            if range == nil {
                // The first roll of this step starts at the oldest raw sample. Looked up only here: `min(ts)` reads
                // every partition of both tables (no index leads with `ts`), which on every tick of the job took a
                // backend away from ingest for seconds once the tables held millions of rows.
                try await connection.query("""
                    INSERT INTO rollup_progress (step_seconds, rolled_through)
                    SELECT \(step), coalesce(date_bin(make_interval(secs => \(step)), least(
                        (SELECT min(ts) FROM host_samples), (SELECT min(ts) FROM container_samples)), 'epoch'), now())
                    ON CONFLICT (step_seconds) DO NOTHING
                    """, logger: logger)
                range = try await progress()
            }
            guard let (from, through) = range, through > from else { return nil }
            try await Self.roll(step: step, from: from, to: through, agent: nil, on: connection, logger: logger)
            try await connection.query(
                "UPDATE rollup_progress SET rolled_through = \(through) WHERE step_seconds = \(step)", logger: logger)
            return through
        }
    }

    /// Marks the hours of `timestamps` (unix ms) dirty for one agent; called by ingest, in the transaction that
    /// stores them, for samples older than `lateAfterSeconds` (those may land in buckets already rolled).
    public static func markLate(tenantID: UUID, agentID: UUID, timestampsMillis: [Int64], on connection: PostgresConnection,
                                logger: Logger) async throws {
        let hours = Array(Set(timestampsMillis.map { $0 / 3_600_000 * 3_600_000 }))
        guard !hours.isEmpty else { return }
        try await connection.query("""
            INSERT INTO rollup_dirty (tenant_id, agent_id, hour)
            SELECT \(tenantID), \(agentID), to_timestamp(h / 1000.0) FROM unnest(\(hours)::int8[]) AS h
            ON CONFLICT (tenant_id, agent_id, hour) DO UPDATE SET version = rollup_dirty.version + 1, raised_at = now()
            """, logger: logger)
    }

    /// Rolls again the dirty hours (both steps) that are due, oldest first, at most `limit` of them; returns how
    /// many. An hour is due when no late sample has marked it for `quietSeconds`, or when it was first marked (or
    /// last rolled while still being marked) `longestWaitSeconds` ago.
    ///
    /// The marks are read without locking them and each hour is rolled in its own transaction, which removes the
    /// hour's mark at its end only if the mark still has the version read: ingest marking the same hour meanwhile
    /// (`markLate` raises the version) neither waits for the roll nor loses its mark, and the hour is rolled again
    /// with what it stored once it is due again. `beforeRolling` runs between reading the marks and rolling (tests).
    @discardableResult
    public func rollDirty(limit: Int = 100, quietSeconds: Int = dirtyQuietSeconds,
                          longestWaitSeconds: Int = dirtyLongestWaitSeconds,
                          beforeRolling: (@Sendable () async throws -> Void)? = nil) async throws -> Int {
        let rows = try await client.query("""
            SELECT tenant_id, agent_id, hour, version FROM rollup_dirty
            WHERE raised_at <= now() - \(quietSeconds) * interval '1 second'
               OR marked_at <= now() - \(longestWaitSeconds) * interval '1 second'
            ORDER BY hour LIMIT \(limit)
            """, logger: logger)
        var marks: [(UUID, UUID, Date, Int64)] = []
        for try await row in rows.decode((UUID, UUID, Date, Int64).self) { marks.append(row) }
        try await beforeRolling?()
        for (tenantID, agentID, hour, version) in marks {
            try await client.withTransaction(logger: logger) { connection in
                for step in Self.steps {
                    try await Self.roll(step: step, from: hour, to: hour.addingTimeInterval(3600), agent: (tenantID, agentID),
                                        on: connection, logger: logger)
                }
                try await connection.query("""
                    DELETE FROM rollup_dirty
                    WHERE tenant_id = \(tenantID) AND agent_id = \(agentID) AND hour = \(hour) AND version = \(version)
                    """, logger: logger)
                // Marked again during the roll: the mark stays, and waits its full time again from now. This locks
                // the mark until the roll commits (its last statement): ingest marking the same hour meanwhile waits
                // that one round trip and COMMIT, not the roll.
                try await connection.query("""
                    UPDATE rollup_dirty SET marked_at = now()
                    WHERE tenant_id = \(tenantID) AND agent_id = \(agentID) AND hour = \(hour) AND version <> \(version)
                    """, logger: logger)
            }
        }
        return marks.count
    }

    /// Removes buckets older than `days`; returns how many went.
    public func deleteOlderThan(days: Int) async throws -> Int {
        let rows = try await client.query(
            "DELETE FROM metric_rollups WHERE bucket < now() - \(days) * interval '1 day' RETURNING 1", logger: logger)
        var count = 0
        for try await _ in rows.decode(Int.self) { count += 1 }
        return count
    }

    /// Rolls `[from, to)` of every target (or of one agent's host and containers) into `step` buckets, replacing
    /// what was rolled there before.
    static func roll(step: Int, from: Date, to: Date, agent: (tenantID: UUID, agentID: UUID)?, on connection: PostgresConnection,
                     logger: Logger) async throws {
        let assignments = figures.flatMap { ["\($0)_avg", "\($0)_min", "\($0)_max"] }
            .map { "\($0) = EXCLUDED.\($0)" }.joined(separator: ", ")
        let columns = "tenant_id, target_id, step_seconds, bucket, samples, " + figures.flatMap { ["\($0)_avg", "\($0)_min", "\($0)_max"] }.joined(separator: ", ")
        func aggregates(_ expressions: [String]) -> String {
            expressions.map { "avg(\($0))::float8, min(\($0))::float8, max(\($0))::float8" }.joined(separator: ", ")
        }
        let containerFigures = aggregates(containerFigureExpressions)
        let hostFigures = aggregates(hostFigureExpressions)
        for (table, target, figureSQL, groupBy) in [
            ("container_samples", "'c-' || agent_id::text || '-' || name", containerFigures, "tenant_id, agent_id, name"),
            (hostSampleSource, "'h-' || agent_id::text", hostFigures, "tenant_id, agent_id"),
        ] {
            var query = PostgresQuery(unsafeSQL: """
                INSERT INTO metric_rollups (\(columns))
                SELECT tenant_id, \(target), \(step), date_bin(make_interval(secs => \(step)), ts, 'epoch') AS b, count(*)::int,
                          \(figureSQL)
                FROM \(table)
                WHERE ts >= $1 AND ts < $2
                """)
            query.binds.append(from)
            query.binds.append(to)
            if let agent {
                query.sql += " AND tenant_id = $3 AND agent_id = $4"
                query.binds.append(agent.tenantID)
                query.binds.append(agent.agentID)
            }
            query.sql += " GROUP BY \(groupBy), b ON CONFLICT (tenant_id, target_id, step_seconds, bucket) DO UPDATE SET samples = EXCLUDED.samples, \(assignments)"
            try await connection.query(query, logger: logger)
        }
    }
}
