import CrowsnestWire
import Foundation
import Logging
import Metrics
import NIOCore
import PostgresNIO

/// What happened to one batch. Every outcome is acknowledged: only a failure to store (thrown) is not.
public enum IngestOutcome: Sendable, Equatable {
    /// Rows written and committed.
    case committed(containerSamples: Int)
    /// The batch's sequence was already committed: nothing written (a replay after a lost ack).
    case replay
    /// Stored what PostgreSQL accepted; the parts it refused because of their data are recorded as rejections.
    case partial(containerSamples: Int, rejected: [IngestRejection])
    /// Nothing stored (its time is outside what the server keeps); recorded as a rejection.
    case refused(IngestRejection)
}

/// Per-session memory of each container's last counters, so rates need no read-back from the database.
public struct CounterMemory: Sendable {
    var loaded = false
    var snapshots: [String: CounterSnapshot] = [:]
    /// The host's last counters (nil until the first host sample or the read-back at session start).
    var host: CounterSnapshot?
    /// Identity and state of each container as last written to `containers` in this session: unchanged
    /// containers are not rewritten on every batch (that rewrite was the largest cost of a batch).
    var written: [String: ContainerRowFields] = [:]
    /// The sweep whose parts are arriving (a sweep over the frame limit comes in several batches): its time, the
    /// parts seen and every container named so far. Only a complete sweep may mark containers removed.
    var sweep: (tsMillis: Int64, parts: Set<UInt32>, names: Set<String>)?
    public init() {}
}

/// Which batch times the server stores: from `maxAge` in the past (the raw retention) to `maxAhead` in the
/// future, by the server's clock. A batch outside is recorded and acknowledged, not stored: an agent whose clock
/// is years ahead must not create partitions for them nor block the stream.
public struct IngestTimeWindow: Sendable {
    public var maxAgeMillis: Int64
    public var maxAheadMillis: Int64
    /// The server's clock, unix ms (tests pass a fixed one).
    public var now: @Sendable () -> Int64

    public init(maxAgeMillis: Int64 = 30 * 86_400_000, maxAheadMillis: Int64 = 10 * 60_000,
                now: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1000) }) {
        self.maxAgeMillis = maxAgeMillis
        self.maxAheadMillis = maxAheadMillis
        self.now = now
    }

    /// Why a batch at `tsMillis` is not stored, or nil when it is inside the window.
    public func refusal(forMillis tsMillis: Int64, now: Int64) -> String? {
        let time = Self.format(tsMillis)
        if tsMillis > now &+ maxAheadMillis {
            return "batch time \(time) is more than \(maxAheadMillis / 60_000) minutes ahead of the server's clock "
                + "(\(Self.format(now))); the agent's clock is probably wrong"
        }
        if tsMillis < now &- maxAgeMillis {
            return "batch time \(time) is older than the \(maxAgeMillis / 86_400_000)-day retention "
                + "(server clock \(Self.format(now))); the agent's clock is probably wrong"
        }
        return nil
    }

    /// An RFC 3339 time for years 1–9999; outside that (an agent may send any integer), the raw number.
    static func format(_ millis: Int64) -> String {
        guard WireTextBounds.calendarMillis.contains(millis) else { return "\(millis) ms since 1970" }
        return RFC3339.string(from: Date(timeIntervalSince1970: Double(millis) / 1000))
    }
}

/// Tells data PostgreSQL refused (retrying the same batch cannot help) from a database that failed (retrying can).
enum IngestFailure {
    /// SQLSTATE classes that mean the data itself was refused: cardinality (21), data exception (22: bad
    /// characters, numbers or times out of range), integrity constraints (23), program limits (54: a value too
    /// wide to index).
    static let permanentClasses: Set<Substring> = ["21", "22", "23", "54"]

    /// The SQLSTATE when `error` is PostgreSQL refusing the data, else nil (connection loss, timeout,
    /// serialization failure, shutdown: transient).
    static func permanentSQLState(_ error: any Error) -> String? {
        if let transaction = error as? PostgresTransactionError {
            return transaction.closureError.flatMap(permanentSQLState) ?? transaction.commitError.flatMap(permanentSQLState)
        }
        guard let psql = error as? PSQLError, psql.code == .server, let state = psql.serverInfo?[.sqlState],
              permanentClasses.contains(state.prefix(2)) else { return nil }
        return state
    }

    /// Whether `error` is a container sample already stored for its container and time: a unique violation
    /// (23505) reported by a day partition of `container_samples`, the one refusal that the COPY skipping such
    /// samples repairs. Any other unique violation (a race on a status span, say) is a refusal of its own part.
    static func isDuplicateContainerSample(_ error: any Error) -> Bool {
        guard permanentSQLState(error) == "23505", let table = serverError(error)?.serverInfo?[.tableName] else { return false }
        return table.hasPrefix("container_samples_") && PartitionStore.dayEnd(ofPartition: table) != nil
    }

    /// The error PostgreSQL sent, unwrapped from a failed transaction.
    private static func serverError(_ error: any Error) -> PSQLError? {
        if let transaction = error as? PostgresTransactionError {
            return transaction.closureError.flatMap(serverError) ?? transaction.commitError.flatMap(serverError)
        }
        return error as? PSQLError
    }

    /// PostgreSQL's own message for a refusal, for the rejection log.
    static func message(_ error: any Error) -> String {
        if let transaction = error as? PostgresTransactionError, let inner = transaction.closureError ?? transaction.commitError {
            return message(inner)
        }
        if let psql = error as? PSQLError, let text = psql.serverInfo?[.message] {
            let detail = psql.serverInfo?[.detail].map { " (\($0))" } ?? ""
            return text + detail
        }
        return String(describing: error)
    }
}

/// Writes agent batches to PostgreSQL, several in one transaction, idempotently, and never lets one batch's data
/// block the agent's stream.
///
/// The batch's sequence is recorded on the agent's row in the same transaction as its rows, so a replayed batch is
/// recognised and skipped whole; samples go in with COPY. Strings are cleaned and bounded (`WireTextCleaner`)
/// before anything is written. A sample already stored for its container and time fails the group's plain COPY, and
/// the group is written again with the COPY that skips such samples (counted on the agent's row). When PostgreSQL
/// refuses a group for another reason in its data, each batch is written again
/// alone, part by part (host, containers, events, spans, samples) inside savepoints: what is accepted is stored,
/// what is refused is recorded in `ingest_rejections`, and the batch counts as committed. The caller acknowledges
/// only after this returns, i.e. after COMMIT.
public struct IngestWriter: Sendable {
    public let client: PostgresClient
    public let partitions: PartitionStore
    public let logger: Logger
    public var timeWindow: IngestTimeWindow

    private let rejectionsCounter = Counter(label: "crowsnest_ingest_rejections_total")
    private let truncatedCounter = Counter(label: "crowsnest_ingest_truncated_values_total")
    private let duplicatesCounter = Counter(label: "crowsnest_ingest_duplicate_samples_total")

    public init(client: PostgresClient, partitions: PartitionStore, logger: Logger,
                timeWindow: IngestTimeWindow = IngestTimeWindow()) {
        self.client = client
        self.partitions = partitions
        self.logger = logger
        self.timeWindow = timeWindow
    }

    /// Writes `batch` for the agent; `memory` carries counters between batches of one session.
    public func write(_ batch: Crowsnest_V1_SampleBatch, tenantID: UUID, agentID: UUID,
                      memory: inout CounterMemory) async throws -> IngestOutcome {
        try await write(group: [batch], tenantID: tenantID, agentID: agentID, memory: &memory)[0]
    }

    /// Writes several batches of one agent in one transaction (one sequence check, one COPY, one COMMIT) and
    /// returns one outcome per batch, in order. Batches whose sequence is not above the committed one (or above
    /// an earlier batch of the group) are replays and write nothing. Throws only when storing failed for a reason
    /// other than the data (database unavailable, timeout): then nothing is written and nothing must be acked.
    public func write(group batches: [Crowsnest_V1_SampleBatch], tenantID: UUID, agentID: UUID,
                      memory: inout CounterMemory) async throws -> [IngestOutcome] {
        guard !batches.isEmpty else { return [] }
        let now = timeWindow.now()
        var prepared: [PreparedBatch] = []
        for batch in batches {
            var clean = batch
            if clean.eventsOnly {
                // An event-only batch carries events and nothing else: figures sent with it are not a sweep's (no
                // host row, no samples, no container marked missing) and are dropped here.
                clean.clearHost()
                clean.containers = []
                clean.missing = []
            }
            let truncated = clean.sanitize()
            let refusal = timeWindow.refusal(forMillis: batch.tsUnixMs, now: now).map {
                IngestRejection(batchSeq: batch.seq, batchTsMillis: batch.tsUnixMs, part: .batch, reason: $0)
            }
            // A result for a slot outside the time window is refused like a batch would be (its slot could not
            // have been assigned, and must not create partitions).
            let windowed = clean.checkResults.filter { timeWindow.refusal(forMillis: $0.slotUnixMs, now: now) == nil }
            let outsideWindow = clean.checkResults.count - windowed.count
            if outsideWindow > 0 { clean.checkResults = windowed }
            // Events are kept in day partitions too: one dated outside the window (a wrong clock, a hostile agent)
            // is dropped and counted rather than creating partitions or failing the batch.
            let events = clean.events.filter { timeWindow.refusal(forMillis: $0.timeUnixNano / 1_000_000, now: now) == nil }
            if events.count < clean.events.count {
                logger.notice("dropped container events dated outside the accepted time window (check the agent's clock)",
                              metadata: ["batch.seq": "\(batch.seq)", "events.dropped": "\(clean.events.count - events.count)"])
                clean.events = events
            }
            prepared.append(PreparedBatch(batch: clean, truncatedByServer: truncated, refusal: refusal,
                                          resultsOutsideWindow: outsideWindow))
        }
        let accepted = prepared.filter { $0.refusal == nil }
        try await partitions.ensurePartitions(
            forMillis: accepted.map(\.batch.tsUnixMs) + accepted.flatMap { $0.batch.checkResults.map(\.slotUnixMs) }
                + accepted.flatMap { $0.batch.events.map { $0.timeUnixNano / 1_000_000 } })
        do {
            do {
                return try await writeGroup(prepared, salvage: false, skippingDuplicates: false, tenantID: tenantID,
                                            agentID: agentID, memory: &memory)
            } catch let error where IngestFailure.isDuplicateContainerSample(error) {
                // A sample for a container and time already stored (a clock stepped back, a cloned VM, two batches of
                // the group with the same tick): the group again, with the COPY that skips such rows.
                return try await writeGroup(prepared, salvage: false, skippingDuplicates: true, tenantID: tenantID,
                                            agentID: agentID, memory: &memory)
            }
        } catch {
            guard let state = IngestFailure.permanentSQLState(error) else { throw error }
            logger.warning("PostgreSQL refused a batch's data; storing each batch of the group part by part",
                           metadata: ["sqlstate": "\(state)", "error": "\(IngestFailure.message(error))",
                                      "batch.seq": "\(batches[0].seq)–\(batches[batches.count - 1].seq)"])
        }
        var outcomes: [IngestOutcome] = []
        for batch in prepared {
            outcomes += try await writeGroup([batch], salvage: true, skippingDuplicates: true, tenantID: tenantID,
                                             agentID: agentID, memory: &memory)
        }
        return outcomes
    }

    /// What one committed group transaction wrote, for the caller to count and log after COMMIT.
    struct GroupWrite: Sendable {
        /// Check results of one batch that were not recorded (stale token, never assigned, outside the window).
        struct RefusedResults: Sendable {
            var batchSeq: UInt64
            var refused: Int
            var recorded: Int
        }
        var outcomes: [IngestOutcome]
        var memory: CounterMemory
        var rejections: [IngestRejection] = []
        var duplicates = 0
        var refusedResults: [RefusedResults] = []
    }

    /// A batch cleaned and checked, ready to write.
    struct PreparedBatch: Sendable {
        var batch: Crowsnest_V1_SampleBatch
        var truncatedByServer: UInt64
        var refusal: IngestRejection?
        /// Check results dropped because their slot lies outside the time window.
        var resultsOutsideWindow = 0
    }

    /// One transaction for `batches`. With `salvage`, each part of each batch runs in a savepoint and a part that
    /// PostgreSQL refuses for its data is rolled back and recorded instead of failing the transaction. Without
    /// `skippingDuplicates` the samples go in with one plain COPY, and a sample already stored fails the
    /// transaction (23505); with it, such samples are skipped and counted (`SampleStore.copyContainerSamples`).
    private func writeGroup(_ batches: [PreparedBatch], salvage: Bool, skippingDuplicates: Bool, tenantID: UUID, agentID: UUID,
                            memory: inout CounterMemory) async throws -> [IngestOutcome] {
        let before = memory
        let logger = self.logger
        let result: GroupWrite? = try await client.withTransaction(logger: logger) { connection in
            guard let committed = try await AgentStore.lockCommittedSeq(tenantID: tenantID, agentID: agentID,
                                                                        on: connection, logger: logger)
            else { return nil }
            var memory = before
            var highest = committed
            var stored: [PreparedBatch] = []
            var outcomes: [IngestOutcome] = []
            var rejections: [IngestRejection] = []
            var rows = ByteBufferAllocator().buffer(capacity: batches.reduce(0) { $0 + $1.batch.containers.count } * 400)
            var rowCount = 0
            var duplicates = 0
            var refusedResults: [GroupWrite.RefusedResults] = []
            var hostRows: [HostSampleRow] = []
            for prepared in batches {
                let batch = prepared.batch
                guard batch.seq > highest else {
                    outcomes.append(.replay)
                    continue
                }
                highest = batch.seq
                stored.append(prepared)
                if let refusal = prepared.refusal {
                    rejections.append(refusal)
                    outcomes.append(.refused(refusal))
                    continue
                }
                if !memory.loaded {
                    memory.snapshots = try await SampleStore.latestContainerCounters(
                        tenantID: tenantID, agentID: agentID, before: batch.tsUnixMs, on: connection, logger: logger)
                    memory.host = try await SampleStore.latestHostCounters(
                        tenantID: tenantID, agentID: agentID, before: batch.tsUnixMs, on: connection, logger: logger)
                }
                var batchRejections: [IngestRejection] = []
                let part = PartWriter(batch: batch, salvage: salvage, connection: connection, logger: logger)
                if batch.hasHost {
                    let snapshot = CounterSnapshot.host(batch.host, tsMillis: batch.tsUnixMs)
                    let row = HostSampleRow(host: batch.host, tsMillis: batch.tsUnixMs,
                                            rates: CounterRates.between(memory.host, snapshot))
                    if salvage {
                        try await part.run(.host, &batchRejections) {
                            try await SampleStore.insertHostSamples([row], tenantID: tenantID, agentID: agentID,
                                                                    on: connection, logger: logger)
                        }
                    } else {
                        hostRows.append(row)  // all of the group's in one statement, below
                    }
                    memory.host = snapshot
                }
                try await writeContainerState(batch, part: part, rejections: &batchRejections, tenantID: tenantID,
                                              agentID: agentID, memory: &memory, on: connection)
                if !batch.checkResults.isEmpty || prepared.resultsOutsideWindow > 0 {
                    try await part.run(.checkResults, &batchRejections) {
                        let recorded = try await CheckStore.recordRunResults(
                            batch.checkResults, tenantID: tenantID, agentID: agentID, on: connection, logger: logger)
                        let refused = batch.checkResults.count - recorded + prepared.resultsOutsideWindow
                        if refused > 0 {
                            refusedResults.append(.init(batchSeq: batch.seq, refused: refused, recorded: recorded))
                        }
                    }
                }
                let samples = Self.appendSampleRows(batch, tenantID: tenantID, agentID: agentID,
                                                    previous: &memory.snapshots, to: &rows)
                rowCount += samples
                var storedSamples = samples
                if salvage {
                    // One batch per transaction here: its samples go in now, inside their own savepoint.
                    let batchRows = rows
                    rows.clear()
                    rowCount = 0
                    let ok = try await part.run(.samples, &batchRejections) {
                        let skipped = try await SampleStore.copyContainerSamples(batchRows, rowCount: samples, skippingDuplicates: true,
                                                                                 on: connection, logger: logger)
                        storedSamples -= skipped
                        duplicates += skipped
                    }
                    if !ok { storedSamples = 0 }
                }
                rejections += batchRejections
                outcomes.append(batchRejections.isEmpty ? .committed(containerSamples: storedSamples)
                                                        : .partial(containerSamples: storedSamples, rejected: batchRejections))
            }
            guard let last = stored.last else { return GroupWrite(outcomes: outcomes, memory: before) }
            try await SampleStore.insertHostSamples(hostRows, tenantID: tenantID, agentID: agentID, on: connection, logger: logger)
            duplicates += try await SampleStore.copyContainerSamples(rows, rowCount: rowCount, skippingDuplicates: skippingDuplicates,
                                                                     on: connection, logger: logger)
            if duplicates > 0 {
                // Which batch the duplicates belonged to is not known on this path: the outcome counts stay as built.
                logger.info("skipped samples already stored for the same container and time",
                            metadata: ["samples.duplicate": "\(duplicates)"])
            }
            try await IngestRejectionStore.record(rejections, tenantID: tenantID, agentID: agentID,
                                                  on: connection, logger: logger)
            let lastWritten = stored.last { $0.refusal == nil }?.batch ?? last.batch
            try await AgentStore.recordCommitted(
                tenantID: tenantID, agentID: agentID, seq: highest, batchTsMillis: last.batch.tsUnixMs,
                spoolDroppedBatches: stored.reduce(UInt64(0)) { $0 &+ $1.batch.spoolDroppedBatches },
                containersUnavailableReason: lastWritten.containersUnavailableReason,
                intervalSeconds: lastWritten.intervalSeconds,
                truncatedValues: stored.reduce(UInt64(0)) { $0 &+ $1.truncatedByServer &+ $1.batch.truncatedValues },
                duplicateSamples: UInt64(duplicates),
                deadLetteredBatches: stored.reduce(UInt64(0)) { $0 &+ $1.batch.deadLetteredBatches },
                on: connection, logger: logger)
            let lateBefore = Int64(Date().timeIntervalSince1970 * 1000) - Int64(RollupStore.lateAfterSeconds) * 1000
            let late = stored.filter { $0.refusal == nil && $0.batch.tsUnixMs < lateBefore }.map(\.batch.tsUnixMs)
            if !late.isEmpty {
                // Spooled samples may belong to buckets already rolled up: those hours are rolled again.
                try await RollupStore.markLate(tenantID: tenantID, agentID: agentID, timestampsMillis: late,
                                               on: connection, logger: logger)
            }
            if let first = stored.first(where: { $0.refusal == nil })?.batch {
                // The host is up from its first batch on; a gap the liveness job called unknown is closed (or,
                // when spooled batches fill it, taken back).
                let interval = Int64(min(3600, max(1, lastWritten.intervalSeconds)))
                try await StatusSpanStore.recordHostEvidence(
                    tenantID: tenantID, agentID: agentID, firstBatchMicros: first.tsUnixMs * 1000,
                    toleranceMicros: (2 * interval + Int64(HostLiveness.graceSeconds)) * 1_000_000,
                    on: connection, logger: logger)
            }
            return GroupWrite(outcomes: outcomes, memory: memory, rejections: rejections, duplicates: duplicates,
                              refusedResults: refusedResults)
        }
        guard let result else {
            throw StoreError(.notFound, "agent \(agentID) of tenant \(tenantID) is not registered; its batches cannot be stored")
        }
        memory = result.memory
        let (outcomes, rejections, duplicates) = (result.outcomes, result.rejections, result.duplicates)
        for refusal in result.refusedResults {
            // Late (the slot was reassigned or already has its result) or never assigned to this agent: acknowledged
            // and dropped, as the fencing promises. Logged once committed, so a group written twice logs it once.
            logger.info("check results refused: not the token last issued to this agent for their slot",
                        metadata: ["batch.seq": "\(refusal.batchSeq)", "results.refused": "\(refusal.refused)",
                                   "results.recorded": "\(refusal.recorded)"])
        }
        if !rejections.isEmpty {
            rejectionsCounter.increment(by: rejections.count)
            for rejection in rejections {
                logger.warning("ingest refused part of a batch; recorded and acknowledged",
                               metadata: ["batch.seq": "\(rejection.batchSeq)", "part": "\(rejection.part.rawValue)",
                                          "sqlstate": "\(rejection.sqlState)", "reason": "\(rejection.reason)"])
            }
        }
        let truncated = batches.reduce(UInt64(0)) { $0 &+ $1.truncatedByServer &+ $1.batch.truncatedValues }
        if truncated > 0 { truncatedCounter.increment(by: Int(clamping: truncated)) }
        if duplicates > 0 { duplicatesCounter.increment(by: duplicates) }
        return outcomes
    }

    /// Runs one part of a batch: directly, or (salvaging) inside a savepoint, recording a data refusal instead
    /// of failing the transaction.
    struct PartWriter {
        let batch: Crowsnest_V1_SampleBatch
        let salvage: Bool
        let connection: PostgresConnection
        let logger: Logger

        /// Returns false when the part was refused and rolled back.
        @discardableResult
        func run(_ part: IngestRejection.Part, _ rejections: inout [IngestRejection],
                 _ body: () async throws -> Void) async throws -> Bool {
            guard salvage else {
                try await body()
                return true
            }
            try await connection.query("SAVEPOINT ingest_part", logger: logger)
            do {
                try await body()
                try await connection.query("RELEASE SAVEPOINT ingest_part", logger: logger)
                return true
            } catch {
                guard let state = IngestFailure.permanentSQLState(error) else { throw error }
                try await connection.query("ROLLBACK TO SAVEPOINT ingest_part", logger: logger)
                rejections.append(IngestRejection(batchSeq: batch.seq, batchTsMillis: batch.tsUnixMs, part: part,
                                                  sqlState: state, reason: IngestFailure.message(error)))
                return false
            }
        }
    }

    /// Writes what changed in the `containers` rows, events and status spans for one batch (three parts), and
    /// remembers what was written so the next batch of the session writes only changes.
    private func writeContainerState(_ batch: Crowsnest_V1_SampleBatch, part: PartWriter, rejections: inout [IngestRejection],
                                     tenantID: UUID, agentID: UUID, memory: inout CounterMemory,
                                     on connection: PostgresConnection) async throws {
        let logger = self.logger
        if batch.eventsOnly {
            // Events sent ahead of the next sweep: they and the span changes they imply, nothing else. No sweep,
            // so no container is marked removed and what this session wrote of the rows stays as it was.
            try await part.run(.events, &rejections) {
                try await ContainerEventStore.insert(batch.events, tenantID: tenantID, agentID: agentID,
                                                     on: connection, logger: logger)
            }
            try await part.run(.spans, &rejections) {
                try await recordTransitions(batch, only: [], tenantID: tenantID, agentID: agentID, on: connection)
            }
            return
        }
        let loaded = memory.loaded
        let written = memory.written
        var current: [String: ContainerRowFields] = [:]
        current.reserveCapacity(batch.containers.count)
        for sample in batch.containers where !sample.name.isEmpty { current[sample.name] = ContainerRowFields(sample) }
        // First batch of a session: write everything (the table may hold anything). Afterwards only changes, found
        // in one pass (one lookup per container; the names are the same set as before when each is known and the
        // counts match).
        var changedNames: Set<String> = []
        var allKnown = true
        if loaded {
            for (name, fields) in current {
                guard let before = written[name] else {
                    allKnown = false
                    changedNames.insert(name)
                    continue
                }
                if before != fields { changedNames.insert(name) }
            }
        }
        let changed = !loaded ? batch.containers.filter { !$0.name.isEmpty }
            : changedNames.isEmpty ? [] : batch.containers.filter { changedNames.contains($0.name) }
        let membershipChanged = !loaded || !allKnown || written.count != current.count
        let missing = Set(batch.missing.map(\.name).filter { !$0.isEmpty })
        // Which names exist, when this batch completes a sweep that says so: nil when it cannot tell (Docker was
        // unreachable, or parts of the sweep are still to come).
        var present: Set<String>?
        let partCount = max(1, batch.partCount)
        var sweep = memory.sweep
        if !batch.containersUnavailableReason.isEmpty {
            present = nil
        } else if partCount == 1 {
            present = membershipChanged || !missing.isEmpty ? Set(current.keys).union(missing) : nil
        } else {
            var assembly: (tsMillis: Int64, parts: Set<UInt32>, names: Set<String>) =
                sweep?.tsMillis == batch.tsUnixMs ? sweep! : (batch.tsUnixMs, [], [])
            assembly.parts.insert(min(batch.part, partCount))
            assembly.names.formUnion(current.keys)
            assembly.names.formUnion(missing)
            if assembly.parts.count >= Int(partCount) {
                present = assembly.names
                sweep = nil
            } else {
                sweep = assembly
            }
        }
        let containersStored = try await part.run(.containers, &rejections) {
            try await ContainerStore.upsert(changed, tsMillis: batch.tsUnixMs, tenantID: tenantID, agentID: agentID,
                                            on: connection, logger: logger)
            // Only a whole sweep made with Docker says which containers exist; one listed as missing still does.
            if let present {
                try await ContainerStore.markRemoved(exceptNames: Array(present), tsMillis: batch.tsUnixMs,
                                                     tenantID: tenantID, agentID: agentID, on: connection, logger: logger)
            }
        }
        try await part.run(.events, &rejections) {
            try await ContainerEventStore.insert(batch.events, tenantID: tenantID, agentID: agentID,
                                                 on: connection, logger: logger)
        }
        // A container whose state did not change and that had no events cannot change span.
        try await part.run(.spans, &rejections) {
            try await recordTransitions(batch, only: loaded ? changedNames : nil,
                                        tenantID: tenantID, agentID: agentID, on: connection)
        }
        guard containersStored else {
            // Nothing of this batch's container rows is known to be written: the next batch writes them all again.
            memory.loaded = false
            memory.written = [:]
            return
        }
        memory.loaded = true
        memory.sweep = sweep
        if batch.containersUnavailableReason.isEmpty && partCount == 1 && missing.isEmpty {
            memory.written = current
        } else {
            memory.written.merge(current) { _, new in new }
            if let present { memory.written = memory.written.filter { present.contains($0.key) } }
        }
    }

    /// Appends the batch's container samples, with rates against `previous`, as COPY text rows; returns how many.
    static func appendSampleRows(_ batch: Crowsnest_V1_SampleBatch, tenantID: UUID, agentID: UUID,
                                 previous: inout [String: CounterSnapshot], to buffer: inout ByteBuffer) -> Int {
        guard batch.containers.contains(where: { !$0.name.isEmpty }) else { return 0 }
        // What every row of the batch shares, escaped once.
        let owner = CopyTextRow.escaped([tenantID.uuidString, agentID.uuidString])
        let timestamp = CopyTextRow.escaped([CopyTextRow.format(millis: batch.tsUnixMs)])
        var count = 0
        for sample in batch.containers where !sample.name.isEmpty {
            count += 1
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
                row.fields(owner)
                row.text(sample.name)
                row.fields(timestamp)
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
        return count
    }

    /// Applies the span transitions the batch implies; `only` limits the containers looked at (plus those with
    /// events), nil means all of them.
    private func recordTransitions(_ batch: Crowsnest_V1_SampleBatch, only: Set<String>?, tenantID: UUID, agentID: UUID,
                                   on connection: PostgresConnection) async throws {
        // The common steady-state batch: nothing changed and no events, so no container can change span.
        if let only, only.isEmpty, batch.events.isEmpty { return }
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
}

/// What a `containers` row holds of a sample (everything but the counters), as plain values: compared on every
/// batch to find the containers whose row must be rewritten. A value type, so the comparison reads each field of
/// the decoded message once instead of building a second message (heap storage and a checked access per field).
struct ContainerRowFields: Equatable, Sendable {
    var dockerID: String
    var name: String
    var image: String
    var labels: [String: String]
    var state: String
    var health: String
    var healthOutput: String
    var restartCount: UInt32
    var exitCode: Int32
    var oomKilled: Bool
    var startedAtUnixMs: Int64
    var finishedAtUnixMs: Int64
    var cpuLimitCores: Double
    var memoryLimitBytes: UInt64

    init(_ sample: Crowsnest_V1_ContainerSample) {
        dockerID = sample.dockerID
        name = sample.name
        image = sample.image
        labels = sample.labels
        state = sample.state
        health = sample.health
        healthOutput = sample.healthOutput
        restartCount = sample.restartCount
        exitCode = sample.exitCode
        oomKilled = sample.oomKilled
        startedAtUnixMs = sample.startedAtUnixMs
        finishedAtUnixMs = sample.finishedAtUnixMs
        cpuLimitCores = sample.cpuLimitCores
        memoryLimitBytes = sample.memoryLimitBytes
    }
}
