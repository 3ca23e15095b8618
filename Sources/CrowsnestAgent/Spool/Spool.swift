import CrowsnestWire
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Logging
import Synchronization

/// The agent's bounded, crash-safe, on-disk queue of batches not yet acknowledged by
/// the server: a batch is appended (and fdatasync'd) before it is sent, resent after
/// a reconnect or restart, and dropped once the server acknowledges its sequence.
///
/// Layout of `directory`:
/// - `000000000001.seg`, `000000000002.seg`, …: append-only segment files of records
///   (see `SpoolRecordFormat`), rolled at `Configuration.segmentBytes`; a segment is
///   deleted whole when all its records are acknowledged or when the cap pushes it out.
/// - `spool.state`: the acknowledged position and the dropped-record counters, replaced
///   atomically (temp file, fsync, rename, fsync directory) on every change, so a restart
///   neither resends acknowledged records nor forgets drops not yet reported.
///
/// Recovery on open verifies every record's CRC-32C: a torn tail (an append cut short by
/// a crash) is truncated away and logged once; a corrupt record is skipped, counted as
/// dropped, logged, and the segment is rewritten without it; a corrupt header makes the
/// rest of that segment unreadable, so the rest is dropped (counted as one record).
///
/// All calls are serialized by a lock and do blocking file I/O (an fdatasync per append,
/// an atomic state write per acknowledgement); call from a thread that may block.
public final class Spool: Sendable {
    /// Size limits of a spool.
    public struct Configuration: Sendable, Equatable {
        /// Cap on the bytes of all segment files; the oldest segments are dropped to stay under it.
        public var maxTotalBytes: Int
        /// Size at which the active segment is closed and a new one started. Capped at a
        /// quarter of `maxTotalBytes` so dropping one segment never empties a small spool.
        public var segmentBytes: Int

        /// Default: 256 MiB total, 4 MiB segments.
        public init(maxTotalBytes: Int = 256 * 1024 * 1024, segmentBytes: Int = 4 * 1024 * 1024) {
            self.maxTotalBytes = maxTotalBytes
            self.segmentBytes = segmentBytes
        }
    }

    /// Largest payload a single record may carry (16 MiB).
    public static let maxPayloadBytes = SpoolRecordFormat.maxPayloadBytes

    /// The spool directory (created if missing).
    public let directory: String
    private let core: Mutex<SpoolCore>

    /// Opens (creating if needed) the spool in `directory`, recovering from any crash.
    /// Throws `SpoolError` when the directory or a file cannot be read or repaired.
    public init(directory: String, configuration: Configuration = Configuration(), logger: Logger) throws {
        self.directory = directory
        self.core = Mutex(try SpoolCore(directory: directory, configuration: configuration, logger: logger))
    }

    deinit {
        core.withLock { $0.close() }
    }

    /// Durably appends one batch: when this returns, the record is fdatasync'd to disk.
    /// `seq` must be above every sequence already spooled or acknowledged. Drops the
    /// oldest segments first if the record would not fit under the cap. Refuses payloads
    /// over 16 MiB or over the cap with `SpoolError.recordTooLarge`.
    public func append(seq: UInt64, payload: [UInt8]) throws {
        try core.withLock { try $0.append(seq: seq, payload: payload) }
    }

    /// Appends a record under the next sequence from `sequence`, taken while holding the spool, so writers that
    /// append concurrently (the sampler; the shipper renumbering after a restore) cannot interleave sequences.
    /// `payload` builds the record for its sequence. Returns the sequence.
    @discardableResult
    public func appendNext(sequence: SequenceStore, payload: (UInt64) throws -> [UInt8]) throws -> UInt64 {
        try core.withLock { core in
            let seq = try sequence.next()
            try core.append(seq: seq, payload: try payload(seq))
            return seq
        }
    }

    /// Appends `batch` as a frame under the next sequence (written into the batch); returns the sequence.
    @discardableResult
    public func appendBatch(_ batch: Crowsnest_V1_SampleBatch, sequence: SequenceStore) throws -> UInt64 {
        try appendNext(sequence: sequence) { seq in
            var numbered = batch
            numbered.seq = seq
            return try Crowsnest_V1_Frame.with(.batch(numbered)).serializedBytes()
        }
    }

    /// Moves every unacknowledged record with a sequence at or below `limit` above every sequence in use (new
    /// sequences from `sequence`, each record rewritten by `rewrite` for its new sequence), then drops the
    /// originals; returns how many moved. For batches the server never stored under their numbers (it holds
    /// other batches under them: this state directory is a restored copy). Reads in chunks, so memory stays
    /// bounded by the chunk, not the spool.
    /// Records `keep` refuses are dropped with the originals.
    public func renumber(upTo limit: UInt64, sequence: SequenceStore, keep: (SpoolRecord) -> Bool = { _ in true },
                         rewrite: (SpoolRecord, UInt64) throws -> [UInt8]) throws -> Int {
        try core.withLock { core in
            try sequence.raise(above: max(limit, core.highest))
            var moved = 0
            var cursor = core.acked
            while true {
                let chunk = try core.pending(after: cursor, limit: 64, maxBytes: 16 * 1024 * 1024).filter { $0.seq <= limit }
                guard let last = chunk.last else { break }
                for record in chunk where keep(record) {
                    let seq = try sequence.next()
                    try core.append(seq: seq, payload: try rewrite(record, seq))
                    moved += 1
                }
                cursor = last.seq
            }
            if limit > core.acked { try core.acknowledge(upTo: limit) }
            return moved
        }
    }

    /// Unacknowledged records with a sequence above `seq` (and above the acknowledged
    /// position), oldest first, at most `limit` records and, beyond the first record,
    /// at most `maxBytes` payload bytes. Used to (re)send after connecting.
    public func pending(after seq: UInt64, limit: Int, maxBytes: Int = .max) throws -> [SpoolRecord] {
        try core.withLock { try $0.pending(after: seq, limit: limit, maxBytes: maxBytes) }
    }

    /// Marks every record with a sequence `<= seq` as delivered: whole segments of
    /// delivered records are deleted and the position is persisted, so a restart does
    /// not resend them. A lower or equal position than the current one is ignored.
    public func acknowledge(upTo seq: UInt64) throws {
        try core.withLock { try $0.acknowledge(upTo: seq) }
    }

    /// Returns the number of records dropped (cap reached or corruption) since the last
    /// call and resets it durably; the agent puts this number in its next batch.
    public func takeDroppedSinceLastReport() throws -> UInt64 {
        try core.withLock { try $0.takeDroppedSinceLastReport() }
    }

    /// Records dropped since the last `takeDroppedSinceLastReport()`, without resetting.
    public var droppedSinceLastReport: UInt64 { core.withLock { $0.droppedUnreported } }
    /// Records ever dropped by this spool directory (persisted across restarts).
    public var droppedRecords: UInt64 { core.withLock { $0.droppedTotal } }
    /// Number of records not yet acknowledged.
    public var pendingCount: Int { core.withLock { $0.pendingCount } }
    /// On-disk bytes (headers included) of the records not yet acknowledged.
    public var pendingBytes: Int { core.withLock { $0.pendingBytes } }
    /// Sequence of the oldest record not yet acknowledged, `nil` when all are delivered.
    public var oldestPendingSeq: UInt64? { core.withLock { $0.oldestPendingSeq } }
    /// Highest sequence ever appended or acknowledged; a new append must be above it.
    public var highestSeq: UInt64 { core.withLock { $0.highest } }
    /// The persisted acknowledged position: records up to it are never returned again.
    public var acknowledgedSeq: UInt64 { core.withLock { $0.acked } }
    /// Bytes of all segment files, which the cap applies to.
    public var totalBytes: Int { core.withLock { $0.totalBytes } }

    /// Closes the active segment file; later calls throw `SpoolError.closed`.
    public func close() {
        core.withLock { $0.close() }
    }
}

/// Metadata kept in memory for one segment file; the records themselves stay on disk.
struct SpoolSegment {
    var id: UInt64
    var path: String
    /// File size in bytes (all records, acknowledged or not).
    var size: Int = 0
    var recordCount = 0
    var lastSeq: UInt64 = 0
    /// Records with a sequence above the acknowledged position.
    var pendingCount = 0
    var pendingBytes = 0
    /// Offset of the first pending record, or `size` when none is pending.
    var firstPendingOffset = 0
    var firstPendingSeq: UInt64 = 0
}

/// The spool's state and logic, always used under `Spool`'s lock.
struct SpoolCore {
    static let stateFileName = "spool.state"
    static let segmentSuffix = ".seg"

    let directory: String
    let maxTotalBytes: Int
    let segmentBytes: Int
    let logger: Logger
    var segments: [SpoolSegment] = []
    /// Open for appending to `segments.last` when not nil.
    var activeFD: Int32?
    var nextSegmentID: UInt64 = 1
    var acked: UInt64 = 0
    var highest: UInt64 = 0
    var droppedTotal: UInt64 = 0
    var droppedUnreported: UInt64 = 0
    var totalBytes = 0
    var isClosed = false

    var statePath: String { directory + "/" + Self.stateFileName }

    init(directory: String, configuration: Spool.Configuration, logger: Logger) throws {
        guard configuration.maxTotalBytes > SpoolRecordFormat.headerSize else {
            throw SpoolError.invalidConfiguration("maxTotalBytes must be above \(SpoolRecordFormat.headerSize), got \(configuration.maxTotalBytes)")
        }
        guard configuration.segmentBytes > 0 else {
            throw SpoolError.invalidConfiguration("segmentBytes must be positive, got \(configuration.segmentBytes)")
        }
        self.directory = directory
        self.maxTotalBytes = configuration.maxTotalBytes
        self.segmentBytes = min(configuration.segmentBytes, max(configuration.maxTotalBytes / 4, 1))
        var logger = logger
        logger[metadataKey: "spool"] = "\(directory)"
        self.logger = logger
        try SpoolFileSystem.makeDirectories(directory)
        try readState()
        try recover()
    }

    // MARK: state file

    private mutating func readState() throws {
        guard let bytes = try SpoolFileSystem.readIfExists(statePath) else { return }
        let text = String(decoding: bytes, as: UTF8.self)
        var sawHeader = false
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count == 2 else {
                throw SpoolError.corruptStateFile(path: statePath, reason: "malformed line \"\(line)\"")
            }
            if fields[0] == "crowsnest-spool-state" { sawHeader = true; continue }
            guard let value = UInt64(fields[1]) else {
                throw SpoolError.corruptStateFile(path: statePath, reason: "value of \(fields[0]) is not a number")
            }
            switch fields[0] {
            case "acknowledged": acked = value
            case "dropped-total": droppedTotal = value
            case "dropped-unreported": droppedUnreported = value
            default: break  // written by a newer version: ignore
            }
        }
        guard sawHeader else {
            throw SpoolError.corruptStateFile(path: statePath, reason: "missing crowsnest-spool-state header")
        }
        highest = acked
    }

    private func writeState() throws {
        let text = """
            crowsnest-spool-state 1
            acknowledged \(acked)
            dropped-total \(droppedTotal)
            dropped-unreported \(droppedUnreported)

            """
        try SpoolFileSystem.atomicReplace(statePath, with: Array(text.utf8))
    }

    // MARK: recovery

    private func segmentPath(_ id: UInt64) -> String {
        var digits = String(id)
        if digits.count < 12 { digits = String(repeating: "0", count: 12 - digits.count) + digits }
        return directory + "/" + digits + Self.segmentSuffix
    }

    private mutating func recover() throws {
        var ids: [UInt64] = []
        for name in try SpoolFileSystem.list(directory) {
            if name.hasSuffix(".tmp") {
                try SpoolFileSystem.remove(directory + "/" + name)  // an interrupted atomic write
            } else if name.hasSuffix(Self.segmentSuffix), let id = UInt64(name.dropLast(Self.segmentSuffix.count)) {
                ids.append(id)
            }
        }
        ids.sort()
        let droppedBefore = droppedTotal
        var highestSeen: UInt64 = 0
        for (index, id) in ids.enumerated() {
            let segment = try recoverSegment(id: id, isLast: index == ids.count - 1, afterSeq: highestSeen)
            nextSegmentID = id + 1
            highestSeen = max(highestSeen, segment.lastSeq)
            if segment.pendingCount == 0 {
                try SpoolFileSystem.remove(segment.path)  // fully acknowledged or empty
                continue
            }
            segments.append(segment)
            totalBytes += segment.size
            highest = max(highest, segment.lastSeq)
        }
        if droppedTotal != droppedBefore || ids.count != segments.count {
            try writeState()  // also makes any deletions above durable (directory fsync)
        }
        if let last = segments.last, last.size < segmentBytes {
            activeFD = try SpoolFileSystem.open(last.path, O_WRONLY | O_APPEND)
        }
        if !segments.isEmpty {
            logger.info("spool reopened with pending records", metadata: [
                "pending_records": "\(pendingCount)", "pending_bytes": "\(pendingBytes)",
                "oldest_pending_seq": "\(oldestPendingSeq.map(String.init) ?? "none")",
            ])
        }
    }

    /// Scans one segment, verifying every record, and repairs it on disk if needed.
    /// `afterSeq` is the highest sequence of the earlier segments: sequences only rise.
    private mutating func recoverSegment(id: UInt64, isLast: Bool, afterSeq: UInt64) throws -> SpoolSegment {
        let path = segmentPath(id)
        let fd = try SpoolFileSystem.open(path, O_RDWR)
        defer { SpoolFileSystem.close(fd) }
        let fileSize = try SpoolFileSystem.size(fd, path: path)

        var segment = SpoolSegment(id: id, path: path)
        var goodRanges: [Range<Int>] = []
        var offset = 0
        var previousSeq = afterSeq
        var damaged = false

        func markDropped(_ count: UInt64) {
            droppedTotal += count
            droppedUnreported += count
        }

        while offset < fileSize {
            let remaining = fileSize - offset
            if remaining < SpoolRecordFormat.headerSize {
                damaged = true
                if !isLast { markDropped(1) }
                logger.warning("spool segment has a torn tail; truncating", metadata: [
                    "file": "\(path)", "offset": "\(offset)", "tail_bytes": "\(remaining)",
                ])
                break
            }
            let headerBytes = try SpoolFileSystem.pread(fd, count: SpoolRecordFormat.headerSize, offset: offset, path: path)
            let header = SpoolRecordFormat.decodeHeader(headerBytes[...])
            if header.magic != SpoolRecordFormat.magic || header.payloadLength > SpoolRecordFormat.maxPayloadBytes {
                damaged = true
                markDropped(1)
                logger.error("spool segment has a corrupt record header; dropping the rest of the segment", metadata: [
                    "file": "\(path)", "offset": "\(offset)", "lost_bytes": "\(remaining)",
                ])
                break
            }
            if header.recordSize > remaining {
                damaged = true
                if !isLast { markDropped(1) }
                logger.warning("spool segment has a torn tail; truncating", metadata: [
                    "file": "\(path)", "offset": "\(offset)", "tail_bytes": "\(remaining)",
                ])
                break
            }
            let payload = try SpoolFileSystem.pread(fd, count: header.payloadLength, offset: offset + SpoolRecordFormat.headerSize, path: path)
            let valid = SpoolRecordFormat.checksum(seq: header.seq, payload: payload) == header.checksum
            if !valid || header.seq <= previousSeq {
                damaged = true
                markDropped(1)
                logger.error("spool record is corrupt; dropping it", metadata: [
                    "file": "\(path)", "offset": "\(offset)", "seq": "\(header.seq)",
                    "reason": "\(valid ? "sequence out of order" : "checksum mismatch")",
                ])
                offset += header.recordSize
                continue
            }
            if let last = goodRanges.last, last.upperBound == offset {
                goodRanges[goodRanges.count - 1] = last.lowerBound..<(offset + header.recordSize)
            } else {
                goodRanges.append(offset..<(offset + header.recordSize))
            }
            previousSeq = header.seq
            offset += header.recordSize
        }

        if !damaged {
            try index(&segment, fd: fd, size: fileSize)
            return segment
        }
        if goodRanges.isEmpty || (goodRanges.count == 1 && goodRanges[0].lowerBound == 0) {
            // Good records form a prefix: cut the rest off in place.
            let keep = goodRanges.first?.upperBound ?? 0
            try SpoolFileSystem.truncate(fd, to: keep, path: path)
            try SpoolFileSystem.sync(fd, path: path)
            try index(&segment, fd: fd, size: keep)
            return segment
        }
        // Good records with holes between them: copy them to a new file and swap it in.
        let temporary = path + ".tmp"
        let out = try SpoolFileSystem.open(temporary, O_WRONLY | O_CREAT | O_TRUNC)
        var written = 0
        do {
            for range in goodRanges {
                var position = range.lowerBound
                while position < range.upperBound {
                    let chunk = try SpoolFileSystem.pread(fd, count: min(1 << 20, range.upperBound - position), offset: position, path: path)
                    try SpoolFileSystem.writeAll(out, chunk, path: temporary)
                    position += chunk.count
                }
                written += range.count
            }
            try SpoolFileSystem.sync(out, path: temporary)
        } catch {
            SpoolFileSystem.close(out)
            throw error
        }
        SpoolFileSystem.close(out)
        try SpoolFileSystem.rename(temporary, path)
        try SpoolFileSystem.syncDirectory(directory)
        logger.notice("spool segment rewritten without its corrupt records", metadata: [
            "file": "\(path)", "kept_bytes": "\(written)", "previous_bytes": "\(fileSize)",
        ])
        let clean = try SpoolFileSystem.open(path, O_RDONLY)
        defer { SpoolFileSystem.close(clean) }
        try index(&segment, fd: clean, size: written)
        return segment
    }

    /// Fills a segment's counters from a file already known to hold only valid records.
    private func index(_ segment: inout SpoolSegment, fd: Int32, size: Int) throws {
        segment.size = size
        segment.firstPendingOffset = size
        var offset = 0
        while offset < size {
            let header = SpoolRecordFormat.decodeHeader(
                try SpoolFileSystem.pread(fd, count: SpoolRecordFormat.headerSize, offset: offset, path: segment.path)[...])
            segment.recordCount += 1
            segment.lastSeq = header.seq
            if header.seq > acked {
                if segment.pendingCount == 0 {
                    segment.firstPendingOffset = offset
                    segment.firstPendingSeq = header.seq
                }
                segment.pendingCount += 1
                segment.pendingBytes += header.recordSize
            }
            offset += header.recordSize
        }
    }

    // MARK: operations

    private func checkOpen() throws {
        if isClosed { throw SpoolError.closed(directory: directory) }
    }

    mutating func append(seq: UInt64, payload: [UInt8]) throws {
        try checkOpen()
        guard payload.count <= SpoolRecordFormat.maxPayloadBytes else {
            throw SpoolError.recordTooLarge(payloadBytes: payload.count, limitBytes: SpoolRecordFormat.maxPayloadBytes)
        }
        let recordSize = SpoolRecordFormat.headerSize + payload.count
        guard recordSize <= maxTotalBytes else {
            throw SpoolError.recordTooLarge(payloadBytes: payload.count, limitBytes: maxTotalBytes - SpoolRecordFormat.headerSize)
        }
        guard seq > highest else {
            throw SpoolError.sequenceNotIncreasing(seq: seq, highest: highest)
        }

        // Make room under the cap by dropping the oldest whole segments.
        var droppedNow: UInt64 = 0
        while totalBytes + recordSize > maxTotalBytes, !segments.isEmpty {
            let oldest = segments.removeFirst()
            if segments.isEmpty, let fd = activeFD {
                SpoolFileSystem.close(fd)
                activeFD = nil
            }
            try SpoolFileSystem.remove(oldest.path)
            totalBytes -= oldest.size
            droppedNow += UInt64(oldest.pendingCount)
            logger.warning("spool full; dropped the oldest segment", metadata: [
                "file": "\(oldest.path)", "dropped_records": "\(oldest.pendingCount)",
                "dropped_bytes": "\(oldest.size)", "max_total_bytes": "\(maxTotalBytes)",
            ])
        }
        if droppedNow > 0 {
            droppedTotal += droppedNow
            droppedUnreported += droppedNow
            try writeState()
        }

        // Roll to a new segment when there is none open or the record would overflow it.
        if activeFD == nil || (segments[segments.count - 1].size > 0 && segments[segments.count - 1].size + recordSize > segmentBytes) {
            if let fd = activeFD {
                SpoolFileSystem.close(fd)
                activeFD = nil
            }
            let path = segmentPath(nextSegmentID)
            let fd = try SpoolFileSystem.open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND)
            segments.append(SpoolSegment(id: nextSegmentID, path: path))
            nextSegmentID += 1
            activeFD = fd
            try SpoolFileSystem.syncDirectory(directory)
        }

        let fd = activeFD!
        let index = segments.count - 1
        let path = segments[index].path
        let offset = segments[index].size
        do {
            try SpoolFileSystem.writeAll(fd, SpoolRecordFormat.encode(seq: seq, payload: payload), path: path)
            try SpoolFileSystem.syncData(fd, path: path)
        } catch {
            // Leave no partial record behind for the next append to follow.
            _ = ftruncate(fd, off_t(offset))
            throw error
        }
        if segments[index].pendingCount == 0 {
            segments[index].firstPendingOffset = offset
            segments[index].firstPendingSeq = seq
        }
        segments[index].size += recordSize
        segments[index].recordCount += 1
        segments[index].lastSeq = seq
        segments[index].pendingCount += 1
        segments[index].pendingBytes += recordSize
        totalBytes += recordSize
        highest = seq
    }

    func pending(after seq: UInt64, limit: Int, maxBytes: Int) throws -> [SpoolRecord] {
        try checkOpen()
        let after = max(seq, acked)
        var records: [SpoolRecord] = []
        var bytes = 0
        for segment in segments where segment.pendingCount > 0 && segment.lastSeq > after {
            guard records.count < limit else { break }
            let fd = try SpoolFileSystem.open(segment.path, O_RDONLY)
            defer { SpoolFileSystem.close(fd) }
            var offset = segment.firstPendingOffset
            while offset < segment.size, records.count < limit {
                let headerBytes = try SpoolFileSystem.pread(fd, count: SpoolRecordFormat.headerSize, offset: offset, path: segment.path)
                guard headerBytes.count == SpoolRecordFormat.headerSize else { break }
                let header = SpoolRecordFormat.decodeHeader(headerBytes[...])
                guard header.magic == SpoolRecordFormat.magic, header.payloadLength <= SpoolRecordFormat.maxPayloadBytes else {
                    logger.error("spool record header became unreadable after it was verified", metadata: [
                        "file": "\(segment.path)", "offset": "\(offset)",
                    ])
                    break
                }
                defer { offset += header.recordSize }
                if header.seq <= after { continue }
                if !records.isEmpty && bytes + header.payloadLength > maxBytes { return records }
                let payload = try SpoolFileSystem.pread(fd, count: header.payloadLength, offset: offset + SpoolRecordFormat.headerSize, path: segment.path)
                guard SpoolRecordFormat.checksum(seq: header.seq, payload: payload) == header.checksum else {
                    logger.error("spool record checksum mismatch on read; skipping it", metadata: [
                        "file": "\(segment.path)", "offset": "\(offset)", "seq": "\(header.seq)",
                    ])
                    continue
                }
                records.append(SpoolRecord(seq: header.seq, payload: payload))
                bytes += payload.count
            }
        }
        return records
    }

    mutating func acknowledge(upTo seq: UInt64) throws {
        try checkOpen()
        guard seq > acked else { return }
        acked = seq
        highest = max(highest, seq)
        // Persist the acknowledgement before deleting anything: a crash in between must leave the files
        // agreeing with the recorded position (recovery then removes the fully acknowledged segments).
        try writeState()
        var removedAny = false
        while let oldest = segments.first, oldest.recordCount == 0 || oldest.lastSeq <= seq {
            removedAny = true
            segments.removeFirst()
            if segments.isEmpty, let fd = activeFD {
                SpoolFileSystem.close(fd)
                activeFD = nil
            }
            try SpoolFileSystem.remove(oldest.path)
            totalBytes -= oldest.size
        }
        // Sequences rise across segments, so only the oldest remaining one can be partly acknowledged.
        if !segments.isEmpty, segments[0].pendingCount > 0, segments[0].firstPendingSeq <= seq {
            var segment = segments[0]
            let fd = try SpoolFileSystem.open(segment.path, O_RDONLY)
            defer { SpoolFileSystem.close(fd) }
            var offset = segment.firstPendingOffset
            while offset < segment.size {
                let header = SpoolRecordFormat.decodeHeader(
                    try SpoolFileSystem.pread(fd, count: SpoolRecordFormat.headerSize, offset: offset, path: segment.path)[...])
                if header.seq > seq {
                    segment.firstPendingSeq = header.seq
                    break
                }
                segment.pendingCount -= 1
                segment.pendingBytes -= header.recordSize
                offset += header.recordSize
            }
            segment.firstPendingOffset = offset
            segments[0] = segment
        }
        if removedAny { try SpoolFileSystem.syncDirectory(directory) }
    }

    mutating func takeDroppedSinceLastReport() throws -> UInt64 {
        try checkOpen()
        let count = droppedUnreported
        guard count > 0 else { return 0 }
        droppedUnreported = 0
        try writeState()
        return count
    }

    var pendingCount: Int { segments.reduce(0) { $0 + $1.pendingCount } }
    var pendingBytes: Int { segments.reduce(0) { $0 + $1.pendingBytes } }
    var oldestPendingSeq: UInt64? { segments.first { $0.pendingCount > 0 }?.firstPendingSeq }

    mutating func close() {
        if let fd = activeFD {
            SpoolFileSystem.close(fd)
            activeFD = nil
        }
        isClosed = true
    }
}
