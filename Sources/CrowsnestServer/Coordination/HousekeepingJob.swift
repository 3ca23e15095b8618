import CrowsnestWire
import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// Singleton upkeep under the `job:housekeeping` lease: whichever replica holds it creates today's and tomorrow's
/// partitions, records missed push checks and turns silent hosts `unknown` every tick, and now and then removes expired leases, old slot rows, spent rate-limit counters, day partitions past the raw
/// retention and spans past theirs. A replica that
/// dies stops renewing; another takes the job over after one ttl.
public final class HousekeepingJob: Service, Sendable {
    public struct Configuration: Sendable {
        public var tick: Duration = .seconds(5)
        public var leaseTTL: Duration = .seconds(30)
        /// How often the cleanup runs (on the holder).
        public var cleanupEvery: Duration = .seconds(600)
        /// Slot rows older than this go (results stay in `check_results`).
        public var slotRetention: Duration = .seconds(2 * 86_400)
        /// Raw samples and check results are kept this many days (whole UTC days: their partitions are dropped).
        public var rawRetentionDays = 30
        /// Status spans that ended longer ago than this many days go, and rollup buckets and delivered (or given-up)
        /// alert notifications older than that.
        public var spanRetentionDays = 400
        /// Leases expired for longer than this go. It covers the longest a spooled result may take to arrive.
        public var expiredLeaseRetention: Duration = .seconds(86_400)
        public var replicaID = UUID()
        public init() {}
    }

    public static let leaseKey = "job:housekeeping"

    /// What one round did.
    public struct Round: Sendable, Equatable {
        public var holder = false
        public var missedPushes = 0
        /// Hosts that turned `unknown` this round.
        public var silentHosts = 0
        public var cleanedUp = false
        /// Hours rolled up again because late samples reached them.
        public var rerolledHours = 0
        /// Day partitions dropped this round.
        public var droppedPartitions: [String] = []
    }

    public let configuration: Configuration
    private let client: PostgresClient
    private let singleton: SingletonLease
    /// Remembers the days it made, so a round does not ask the database again.
    private let partitions: PartitionStore
    private let logger: Logger
    private let lastCleanup = Mutex<ContinuousClock.Instant?>(nil)

    public init(configuration: Configuration = .init(), client: PostgresClient, logger: Logger) {
        self.configuration = configuration
        self.client = client
        self.singleton = SingletonLease(key: Self.leaseKey, replicaID: configuration.replicaID, ttl: configuration.leaseTTL,
                                        job: "housekeeping", leases: LeaseStore(client: client, logger: logger), logger: logger)
        self.partitions = PartitionStore(client: client, logger: logger)
        self.logger = logger
    }

    public func run() async throws {
        await singleton.runRounds(tick: configuration.tick) { try await self.round() }
    }

    /// Holds (or takes) the job's lease and, when holding it, does the job's work.
    @discardableResult
    public func round(now: ContinuousClock.Instant = .now) async throws -> Round {
        var round = Round()
        guard try await singleton.hold() != nil else { return round }
        round.holder = true

        // Today's and tomorrow's day partitions exist before anything is written into them at midnight.
        let nowMillis = Int64(Date().timeIntervalSince1970 * 1000)
        try await partitions.ensurePartitions(forMillis: [nowMillis, nowMillis + 86_400_000])
        round.missedPushes = try await CheckStore(client: client, logger: logger).recordMissedPushes()
        round.silentHosts = try await StatusSpanStore.markSilentHostsUnknown(graceSeconds: HostLiveness.graceSeconds,
                                                                             on: client, logger: logger)
        if round.silentHosts > 0 {
            logger.info("hosts turned unknown: their agents sent nothing for two sampling intervals plus grace",
                        metadata: ["hosts": "\(round.silentHosts)"])
        }
        // Rollups: settled buckets rolled forward, hours that late samples reached rolled again.
        let rollups = RollupStore(client: client, logger: logger)
        for step in RollupStore.steps { try await rollups.rollForward(step: step) }
        round.rerolledHours = try await rollups.rollDirty()
        let last = lastCleanup.withLock { $0 }
        if last.map({ now - $0 >= configuration.cleanupEvery }) ?? true {
            let leasesGone = try await LeaseStore(client: client, logger: logger).deleteExpired(leasesExpiredFor: configuration.expiredLeaseRetention)
            let slotsGone = try await CheckSlotStore.deleteOlderThan(configuration.slotRetention, on: client, logger: logger)
            round.droppedPartitions = try await partitions.dropPartitions(olderThanDays: configuration.rawRetentionDays)
            let spansGone = try await StatusSpanStore.deleteEnded(olderThanDays: configuration.spanRetentionDays, on: client, logger: logger)
            _ = try await AlertStore.deleteFinished(olderThanDays: configuration.spanRetentionDays, on: client, logger: logger)
            _ = try await AlertSilenceStore.deleteEnded(olderThanDays: configuration.spanRetentionDays, on: client, logger: logger)
            _ = try await rollups.deleteOlderThan(days: configuration.spanRetentionDays)
            if spansGone > 0 {
                logger.info("removed status spans past their retention", metadata: ["spans": "\(spansGone)",
                                                                                  "retention_days": "\(configuration.spanRetentionDays)"])
            }
            lastCleanup.withLock { $0 = now }
            round.cleanedUp = true
            if leasesGone + slotsGone > 0 {
                logger.debug("housekeeping removed old rows", metadata: ["leases": "\(leasesGone)", "slots": "\(slotsGone)"])
            }
        }
        return round
    }
}
