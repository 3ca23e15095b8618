import Foundation
import Logging
import PostgresNIO

/// Creates the daily range partitions of the time-series tables ahead of the rows that need them.
public actor PartitionStore {
    /// The day-partitioned tables (samples by `ts`, check results by `slot_at`).
    public static let tables = ["container_samples", "host_samples", "check_results"]

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
