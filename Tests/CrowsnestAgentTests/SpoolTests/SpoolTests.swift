import Foundation
import Logging
import XCTest

@testable import CrowsnestAgent

final class SpoolTests: XCTestCase {
    /// Records of 100 payload bytes take 120 bytes on disk; 600-byte segments hold 5.
    let recordSize = 120
    let smallSegments = Spool.Configuration(maxTotalBytes: 1 << 20, segmentBytes: 600)

    private func open(_ directory: String, _ configuration: Spool.Configuration = .init(),
                      logs: SpoolLogCapture = SpoolLogCapture()) throws -> Spool {
        try Spool(directory: directory, configuration: configuration, logger: logs.logger)
    }

    private func appendRange(_ spool: Spool, _ range: ClosedRange<UInt64>) throws {
        for seq in range { try spool.append(seq: seq, payload: spoolPayload(seq)) }
    }

    private func pendingSeqs(_ spool: Spool, after: UInt64 = 0) throws -> [UInt64] {
        try spool.pending(after: after, limit: .max).map(\.seq)
    }

    /// Flips every bit of one byte in a file.
    private func flipByte(_ path: String, at offset: Int) throws {
        let handle = try XCTUnwrap(FileHandle(forUpdatingAtPath: path))
        defer { try? handle.close() }
        try handle.seek(toOffset: UInt64(offset))
        let byte = try XCTUnwrap(handle.read(upToCount: 1)).first!
        try handle.seek(toOffset: UInt64(offset))
        try handle.write(contentsOf: [~byte])
    }

    private func fileSize(_ path: String) throws -> Int {
        try XCTUnwrap(FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
    }

    // MARK: append, pending, acknowledge

    func testAppendedRecordsComeBackOldestFirstWithTheirPayloads() throws {
        let spool = try open(try makeSpoolTestDirectory(self))
        try appendRange(spool, 1...5)
        let records = try spool.pending(after: 0, limit: 10)
        XCTAssertEqual(records.map(\.seq), [1, 2, 3, 4, 5])
        for record in records { XCTAssertEqual(record.payload, spoolPayload(record.seq)) }
        XCTAssertEqual(spool.pendingCount, 5)
        XCTAssertEqual(spool.pendingBytes, 5 * recordSize)
        XCTAssertEqual(spool.oldestPendingSeq, 1)
        XCTAssertEqual(spool.highestSeq, 5)
    }

    func testPendingAfterSkipsSentRecordsAndHonoursLimitAndByteBudget() throws {
        let spool = try open(try makeSpoolTestDirectory(self), smallSegments)
        try appendRange(spool, 1...12)
        XCTAssertEqual(try spool.pending(after: 3, limit: 4).map(\.seq), [4, 5, 6, 7])
        XCTAssertEqual(try spool.pending(after: 9, limit: 100).map(\.seq), [10, 11, 12])
        XCTAssertEqual(try spool.pending(after: 12, limit: 100).map(\.seq), [])
        // 250 bytes allow two 100-byte payloads; the first record always comes even if alone it is over.
        XCTAssertEqual(try spool.pending(after: 0, limit: 100, maxBytes: 250).map(\.seq), [1, 2])
        XCTAssertEqual(try spool.pending(after: 0, limit: 100, maxBytes: 10).map(\.seq), [1])
    }

    func testAcknowledgeHidesRecordsUpToTheSequenceEvenWithinASegment() throws {
        let spool = try open(try makeSpoolTestDirectory(self), smallSegments)
        try appendRange(spool, 1...12)
        try spool.acknowledge(upTo: 7)
        XCTAssertEqual(try pendingSeqs(spool), [8, 9, 10, 11, 12])
        XCTAssertEqual(spool.pendingCount, 5)
        XCTAssertEqual(spool.pendingBytes, 5 * recordSize)
        XCTAssertEqual(spool.oldestPendingSeq, 8)
        XCTAssertEqual(spool.acknowledgedSeq, 7)
        try spool.acknowledge(upTo: 3)  // an older ack changes nothing
        XCTAssertEqual(try pendingSeqs(spool), [8, 9, 10, 11, 12])
    }

    func testAcknowledgeDeletesFullyAcknowledgedSegmentFiles() throws {
        let directory = try makeSpoolTestDirectory(self)
        let spool = try open(directory, smallSegments)
        try appendRange(spool, 1...12)
        XCTAssertEqual(try segmentFiles(in: directory), ["000000000001.seg", "000000000002.seg", "000000000003.seg"])
        try spool.acknowledge(upTo: 7)
        XCTAssertEqual(try segmentFiles(in: directory), ["000000000002.seg", "000000000003.seg"])
        try spool.acknowledge(upTo: 12)
        XCTAssertEqual(try segmentFiles(in: directory), [])
        XCTAssertEqual(spool.pendingCount, 0)
        XCTAssertEqual(spool.totalBytes, 0)
        XCTAssertNil(spool.oldestPendingSeq)
        try spool.append(seq: 13, payload: spoolPayload(13))
        XCTAssertEqual(try segmentFiles(in: directory), ["000000000004.seg"])
        XCTAssertEqual(try pendingSeqs(spool), [13])
    }

    func testSegmentsRollAtTheConfiguredSize() throws {
        let directory = try makeSpoolTestDirectory(self)
        let spool = try open(directory, smallSegments)
        try appendRange(spool, 1...11)
        let files = try segmentFiles(in: directory)
        XCTAssertEqual(files.count, 3)
        XCTAssertEqual(try files.map { try fileSize(directory + "/" + $0) }, [600, 600, 120])
        XCTAssertEqual(spool.totalBytes, 11 * recordSize)
    }

    func testAppendRefusesASequenceNotAboveEveryEarlierOne() throws {
        let spool = try open(try makeSpoolTestDirectory(self))
        try spool.append(seq: 5, payload: spoolPayload(5))
        XCTAssertThrowsError(try spool.append(seq: 5, payload: [1])) { error in
            XCTAssertEqual(error as? SpoolError, .sequenceNotIncreasing(seq: 5, highest: 5))
        }
        XCTAssertThrowsError(try spool.append(seq: 3, payload: [1]))
        try spool.acknowledge(upTo: 10)
        XCTAssertThrowsError(try spool.append(seq: 8, payload: [1])) { error in
            XCTAssertEqual(error as? SpoolError, .sequenceNotIncreasing(seq: 8, highest: 10))
        }
        try spool.append(seq: 11, payload: spoolPayload(11))
        XCTAssertEqual(try pendingSeqs(spool), [11])
    }

    // MARK: limits

    func testRecordOverSixteenMiBIsRefusedWithAClearError() throws {
        let spool = try open(try makeSpoolTestDirectory(self))
        let payload = [UInt8](repeating: 0, count: 16 * 1024 * 1024 + 1)
        XCTAssertThrowsError(try spool.append(seq: 1, payload: payload)) { error in
            XCTAssertEqual(error as? SpoolError, .recordTooLarge(payloadBytes: payload.count, limitBytes: 16 * 1024 * 1024))
            XCTAssertTrue("\(error)".contains("refused"), "\(error)")
        }
        XCTAssertEqual(spool.pendingCount, 0)
        XCTAssertEqual(spool.totalBytes, 0)
    }

    func testRecordLargerThanTheCapIsRefused() throws {
        let spool = try open(try makeSpoolTestDirectory(self), .init(maxTotalBytes: 1000, segmentBytes: 600))
        try appendRange(spool, 1...2)
        XCTAssertThrowsError(try spool.append(seq: 3, payload: [UInt8](repeating: 1, count: 1000))) { error in
            XCTAssertEqual(error as? SpoolError, .recordTooLarge(payloadBytes: 1000, limitBytes: 980))
        }
        // Nothing was dropped to make room for a record that can never fit.
        XCTAssertEqual(try pendingSeqs(spool), [1, 2])
        XCTAssertEqual(spool.droppedRecords, 0)
    }

    func testFullSpoolDropsOldestRecordsFirstCountsThemAndKeepsTheNewest() throws {
        let directory = try makeSpoolTestDirectory(self)
        let configuration = Spool.Configuration(maxTotalBytes: 2400, segmentBytes: 600)  // 20 records, 5 per segment
        let spool = try open(directory, configuration)
        for seq in UInt64(1)...50 {
            try spool.append(seq: seq, payload: spoolPayload(seq))
            XCTAssertLessThanOrEqual(spool.totalBytes, 2400)
        }
        let pending = try pendingSeqs(spool)
        XCTAssertGreaterThanOrEqual(pending.count, 15)
        XCTAssertEqual(pending.last, 50, "the newest record is kept")
        XCTAssertEqual(pending, Array(pending.first!...50), "what is kept is the newest contiguous run")
        XCTAssertEqual(spool.droppedRecords, UInt64(50 - pending.count))
        XCTAssertLessThanOrEqual(try segmentFiles(in: directory).count, 4)
        spool.close()

        // The unreported count survives a restart and is reset once taken.
        let reopened = try open(directory, configuration)
        XCTAssertEqual(reopened.droppedSinceLastReport, UInt64(50 - pending.count))
        XCTAssertEqual(try reopened.takeDroppedSinceLastReport(), UInt64(50 - pending.count))
        XCTAssertEqual(try reopened.takeDroppedSinceLastReport(), 0)
        reopened.close()
        let again = try open(directory, configuration)
        XCTAssertEqual(again.droppedSinceLastReport, 0)
        XCTAssertEqual(again.droppedRecords, UInt64(50 - pending.count), "the lifetime total is kept")
    }

    func testFullSpoolDoesNotCountAlreadyAcknowledgedRecordsAsDropped() throws {
        let spool = try open(try makeSpoolTestDirectory(self), .init(maxTotalBytes: 2400, segmentBytes: 600))
        try appendRange(spool, 1...20)   // exactly full
        try spool.acknowledge(upTo: 3)   // segment 1 still holds 4 and 5
        try spool.append(seq: 21, payload: spoolPayload(21))
        XCTAssertEqual(spool.droppedRecords, 2, "only records 4 and 5 were lost")
        XCTAssertEqual(try pendingSeqs(spool), Array(6...21))
    }

    // MARK: restart and recovery

    func testReopenAfterCloseReplaysPendingRecordsInOrderButNotAcknowledgedOnes() throws {
        let directory = try makeSpoolTestDirectory(self)
        let spool = try open(directory, smallSegments)
        try appendRange(spool, 1...12)
        try spool.acknowledge(upTo: 7)
        spool.close()
        XCTAssertThrowsError(try spool.append(seq: 13, payload: [1]))

        let reopened = try open(directory, smallSegments)
        let records = try reopened.pending(after: 0, limit: .max)
        XCTAssertEqual(records.map(\.seq), [8, 9, 10, 11, 12])
        for record in records { XCTAssertEqual(record.payload, spoolPayload(record.seq)) }
        XCTAssertEqual(reopened.acknowledgedSeq, 7)
        XCTAssertEqual(reopened.highestSeq, 12)
        XCTAssertEqual(reopened.pendingCount, 5)
        XCTAssertEqual(reopened.oldestPendingSeq, 8)
        try appendRange(reopened, 13...14)
        XCTAssertEqual(try pendingSeqs(reopened), [8, 9, 10, 11, 12, 13, 14])
    }

    func testReopenWithoutCloseReplaysEverythingAppended() throws {
        let directory = try makeSpoolTestDirectory(self)
        var crashed: Spool? = try open(directory, smallSegments)
        try appendRange(crashed!, 1...7)
        // A second process-like open while the first never closed: what a restart after kill -9 sees.
        let reopened = try open(directory, smallSegments)
        XCTAssertEqual(try pendingSeqs(reopened), Array(1...7))
        crashed = nil
        XCTAssertNil(crashed)
    }

    func testTornTailIsTruncatedLoggedOnceAndCompleteRecordsSurvive() throws {
        let directory = try makeSpoolTestDirectory(self)
        let spool = try open(directory)
        try appendRange(spool, 1...5)
        spool.close()
        let segment = directory + "/000000000001.seg"
        XCTAssertEqual(truncate(segment, off_t(5 * recordSize - 7)), 0)  // record 5 cut short

        let logs = SpoolLogCapture()
        let reopened = try open(directory, logs: logs)
        XCTAssertEqual(try pendingSeqs(reopened), [1, 2, 3, 4])
        XCTAssertEqual(try fileSize(segment), 4 * recordSize, "the torn bytes are cut off on disk")
        XCTAssertEqual(reopened.droppedRecords, 0, "a write that never completed is not a dropped record")
        let torn = logs.entries(containing: "torn tail")
        XCTAssertEqual(torn.count, 1)
        XCTAssertEqual(torn.first?.metadata["file"], .string(segment))
        XCTAssertEqual(torn.first?.metadata["offset"], .string("\(4 * recordSize)"))

        try reopened.append(seq: 6, payload: spoolPayload(6))
        reopened.close()
        let logsAgain = SpoolLogCapture()
        let again = try open(directory, logs: logsAgain)
        XCTAssertEqual(try pendingSeqs(again), [1, 2, 3, 4, 6])
        XCTAssertTrue(logsAgain.entries(containing: "torn").isEmpty, "the repair is durable: logged once only")
    }

    func testPartialHeaderAtTheEndIsTruncated() throws {
        let directory = try makeSpoolTestDirectory(self)
        let spool = try open(directory)
        try appendRange(spool, 1...3)
        spool.close()
        let segment = directory + "/000000000001.seg"
        XCTAssertEqual(truncate(segment, off_t(2 * recordSize + 9)), 0)
        let reopened = try open(directory)
        XCTAssertEqual(try pendingSeqs(reopened), [1, 2])
        XCTAssertEqual(try fileSize(segment), 2 * recordSize)
    }

    func testGarbageAfterATornRecordIsCutAwayAndCompleteRecordsSurvive() throws {
        let directory = try makeSpoolTestDirectory(self)
        let spool = try open(directory)
        try appendRange(spool, 1...5)
        spool.close()
        let segment = directory + "/000000000001.seg"
        XCTAssertEqual(truncate(segment, off_t(5 * recordSize - 30)), 0)
        var random = SeededGenerator(state: 42)
        let garbage = (0..<300).map { _ in UInt8.random(in: 0...255, using: &random) }
        let handle = try XCTUnwrap(FileHandle(forWritingAtPath: segment))
        try handle.seekToEnd()
        try handle.write(contentsOf: garbage)
        try handle.close()

        let reopened = try open(directory)
        let records = try reopened.pending(after: 0, limit: .max)
        XCTAssertEqual(records.map(\.seq), [1, 2, 3, 4])
        for record in records { XCTAssertEqual(record.payload, spoolPayload(record.seq)) }
        XCTAssertEqual(try fileSize(segment), 4 * recordSize)
        try reopened.append(seq: 6, payload: spoolPayload(6))
        reopened.close()
        XCTAssertEqual(try pendingSeqs(try open(directory)), [1, 2, 3, 4, 6])
    }

    func testCorruptByteInAMiddleRecordDropsOnlyThatRecordAndCountsIt() throws {
        let directory = try makeSpoolTestDirectory(self)
        let spool = try open(directory, smallSegments)
        try appendRange(spool, 1...15)  // three full segments
        spool.close()
        let first = directory + "/000000000001.seg"
        try flipByte(first, at: recordSize + 20 + 10)  // a payload byte of record 2

        let logs = SpoolLogCapture()
        let reopened = try open(directory, smallSegments, logs: logs)
        let records = try reopened.pending(after: 0, limit: .max)
        XCTAssertEqual(records.map(\.seq), [1] + Array(3...15))
        for record in records { XCTAssertEqual(record.payload, spoolPayload(record.seq)) }
        XCTAssertEqual(reopened.droppedRecords, 1)
        XCTAssertEqual(reopened.droppedSinceLastReport, 1)
        let corrupt = logs.entries(containing: "corrupt")
        XCTAssertEqual(corrupt.first?.metadata["file"], .string(first))
        XCTAssertEqual(corrupt.first?.metadata["offset"], .string("\(recordSize)"))
        XCTAssertEqual(try fileSize(first), 4 * recordSize, "the segment was rewritten without the bad record")
        XCTAssertEqual(try fileSize(directory + "/000000000002.seg"), 5 * recordSize)
        XCTAssertEqual(try fileSize(directory + "/000000000003.seg"), 5 * recordSize)
        reopened.close()

        // Counted once: a second restart finds a clean segment.
        let again = try open(directory, smallSegments)
        XCTAssertEqual(again.droppedRecords, 1)
        XCTAssertEqual(try pendingSeqs(again), [1] + Array(3...15))
        XCTAssertEqual(try again.takeDroppedSinceLastReport(), 1)
    }

    func testCorruptRecordHeaderDropsTheRestOfItsSegmentOnly() throws {
        let directory = try makeSpoolTestDirectory(self)
        let spool = try open(directory, smallSegments)
        try appendRange(spool, 1...15)
        spool.close()
        try flipByte(directory + "/000000000001.seg", at: recordSize)  // magic of record 2

        let logs = SpoolLogCapture()
        let reopened = try open(directory, smallSegments, logs: logs)
        XCTAssertEqual(try pendingSeqs(reopened), [1] + Array(6...15))
        XCTAssertEqual(reopened.droppedRecords, 1)
        XCTAssertEqual(logs.entries(containing: "corrupt record header").count, 1)
        try appendRange(reopened, 16...16)
        XCTAssertEqual(try pendingSeqs(reopened).last, 16)
    }

    func testLeftoverTemporaryFilesAreRemovedOnOpen() throws {
        let directory = try makeSpoolTestDirectory(self)
        XCTAssertTrue(FileManager.default.createFile(atPath: directory + "/spool.state.tmp", contents: Data([1, 2, 3])))
        _ = try open(directory)
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory + "/spool.state.tmp"))
    }

    func testCorruptStateFileIsReportedWithItsPath() throws {
        let directory = try makeSpoolTestDirectory(self)
        XCTAssertTrue(FileManager.default.createFile(atPath: directory + "/spool.state", contents: Data("nonsense".utf8)))
        XCTAssertThrowsError(try open(directory)) { error in
            XCTAssertTrue("\(error)".contains(directory + "/spool.state"), "\(error)")
        }
    }

    func testChecksumIsCRC32C() {
        XCTAssertEqual(SpoolChecksum.crc32c(Array("123456789".utf8)), 0xE306_9283)
        XCTAssertEqual(SpoolChecksum.crc32c([UInt8]()), 0)
    }
}
