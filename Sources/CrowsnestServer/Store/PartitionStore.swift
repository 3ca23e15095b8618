import Foundation
import Logging
import PostgresNIO

/// Creates the daily range partitions of the time-series tables ahead of the rows that need them.
public actor PartitionStore {
    /// The day-partitioned tables (samples and events by `ts`, check results by `slot_at`).
    public static let tables = ["container_samples", "host_samples", "check_results", "container_events"]

    private let client: PostgresClient
    private let logger: Logger
    private var knownDays: Set<Int64> = []

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// Ensures every table has a partition for each UTC day containing one of `timestamps` (unix ms).
    public func ensurePartitions(forMillis timestamps: [Int64]) async throws {
        let days = Set(timestamps.map { Int64(floor(Double($0) / 86_400_000)) })
        for day in days.subtracting(knownDays).sorted() {
            try await create(day: day)
            knownDays.insert(day)
        }
    }

    private func create(day: Int64) async throws {
        let start = Date(timeIntervalSince1970: Double(day) * 86_400)
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let parts = calendar.dateComponents([.year, .month, .day], from: start)
        let suffix = String(format: "%04d%02d%02d", parts.year!, parts.month!, parts.day!)
        let from = "\(suffix.prefix(4))-\(suffix.dropFirst(4).prefix(2))-\(suffix.suffix(2)) 00:00:00+00"
        let next = Date(timeIntervalSince1970: Double(day + 1) * 86_400)
        let nextParts = calendar.dateComponents([.year, .month, .day], from: next)
        let to = String(format: "%04d-%02d-%02d 00:00:00+00", nextParts.year!, nextParts.month!, nextParts.day!)
        try await client.withConnection { connection in
            // Serialise creators across replicas; IF NOT EXISTS alone races.
            try await connection.query("SELECT pg_advisory_lock(7001001)", logger: logger)
            do {
                for table in Self.tables {
                    // Names and bounds come from integers formatted above, never from input.
                    try await connection.query(PostgresQuery(unsafeSQL: """
                        CREATE TABLE IF NOT EXISTS \(table)_\(suffix) PARTITION OF \(table)
                        FOR VALUES FROM ('\(from)') TO ('\(to)')
                        """), logger: logger)
                }
            } catch {
                try? await connection.query("SELECT pg_advisory_unlock(7001001)", logger: logger)
                throw error
            }
            try await connection.query("SELECT pg_advisory_unlock(7001001)", logger: logger)
        }
        logger.debug("partitions ready", metadata: ["partition.day": "\(suffix)"])
    }
}

extension PartitionStore {
    /// Drops the day partitions of the time-series tables whose whole day ended more than `retentionDays` ago
    /// (by the database clock): old data leaves a whole day at a time, without a DELETE. Returns the tables dropped.
    public func dropPartitions(olderThanDays retentionDays: Int) async throws -> [String] {
        let cutoff = Date().addingTimeInterval(-Double(retentionDays) * 86_400)
        let rows = try await client.query("""
            SELECT c.relname FROM pg_inherits i
            JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
            WHERE p.relname = ANY(\(Self.tables)) ORDER BY c.relname
            """, logger: logger)
        var names: [String] = []
        for try await name in rows.decode(String.self) { names.append(name) }
        var dropped: [String] = []
        for name in names {
            guard let dayEnd = Self.dayEnd(ofPartition: name), dayEnd < cutoff else { continue }
            // The name matched `<table>_YYYYMMDD` of a known table: no input reaches this statement.
            try await client.query(PostgresQuery(unsafeSQL: "DROP TABLE IF EXISTS \(name)"), logger: logger)
            dropped.append(name)
        }
        if !dropped.isEmpty {
            knownDays = knownDays.filter { Double($0 + 1) * 86_400 > cutoff.timeIntervalSince1970 }
            logger.info("dropped day partitions past the retention", metadata: ["partitions": "\(dropped.joined(separator: ", "))",
                                                                               "retention_days": "\(retentionDays)"])
        }
        return dropped
    }

    /// The end of the UTC day a partition named `<table>_YYYYMMDD` holds; nil for any other name.
    static func dayEnd(ofPartition name: String) -> Date? {
        guard let table = tables.first(where: { name.hasPrefix($0 + "_") }) else { return nil }
        let suffix = name.dropFirst(table.count + 1)
        guard suffix.count == 8, suffix.allSatisfy({ $0.isASCII && $0.isNumber }),
              let year = Int(suffix.prefix(4)), let month = Int(suffix.dropFirst(4).prefix(2)), let day = Int(suffix.suffix(2))
        else { return nil }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        guard let start = calendar.date(from: DateComponents(year: year, month: month, day: day)),
              calendar.component(.day, from: start) == day else { return nil }
        return start.addingTimeInterval(86_400)
    }
}
