import Foundation
import Logging
import XCTest

@testable import CrowsnestAgent

/// Kills a real process with SIGKILL in the middle of an append loop and checks that a
/// reopened spool holds every record whose append had returned, intact and in order.
///
/// The child is this same test binary running only `testChildAppendsUntilKilled`, told
/// where to write through an environment variable; run directly, that test skips.
final class SpoolCrashTests: XCTestCase {
    static let directoryVariable = "CROWSNEST_SPOOL_CRASH_CHILD_DIR"
    static let configuration = Spool.Configuration(maxTotalBytes: 64 * 1024 * 1024, segmentBytes: 64 * 1024)

    /// Payload whose size and bytes follow from its sequence, so the parent can verify it.
    static func payload(_ seq: UInt64) -> [UInt8] {
        spoolPayload(seq, size: 50 + Int(seq % 97) * 41)
    }

    func testChildAppendsUntilKilled() throws {
        guard let directory = ProcessInfo.processInfo.environment[Self.directoryVariable] else {
            throw XCTSkip("child half of testAppendsSurviveSIGKILLMidLoop; runs only when that test starts it")
        }
        let spool = try Spool(directory: directory, configuration: Self.configuration, logger: Logger(label: "crash-child"))
        var seq: UInt64 = 0
        while true {
            seq += 1
            try spool.append(seq: seq, payload: Self.payload(seq))
            if seq % 40 == 0 { try spool.acknowledge(upTo: seq - 20) }
            FileHandle.standardOutput.write(Data("appended \(seq)\n".utf8))
        }
    }

    func testAppendsSurviveSIGKILLMidLoop() throws {
        let directory = try makeSpoolTestDirectory(self) + "/spool"
        let child = Process()
        child.executableURL = URL(fileURLWithPath: try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
        child.arguments = ["CrowsnestAgentTests.SpoolCrashTests/testChildAppendsUntilKilled"]
        child.environment = ProcessInfo.processInfo.environment.merging([Self.directoryVariable: directory]) { $1 }
        let output = Pipe()
        child.standardOutput = output
        child.standardError = FileHandle.nullDevice

        let collected = LockedBuffer()
        output.fileHandleForReading.readabilityHandler = { handle in collected.append(handle.availableData) }
        try child.run()
        let deadline = Date().addingTimeInterval(30)
        while collected.appendedCount < 300 && Date() < deadline && child.isRunning {
            Thread.sleep(forTimeInterval: 0.01)
        }
        XCTAssertTrue(child.isRunning, "the child stopped on its own: \(collected.text.suffix(500))")
        kill(child.processIdentifier, SIGKILL)
        child.waitUntilExit()
        output.fileHandleForReading.readabilityHandler = nil
        collected.append(output.fileHandleForReading.readDataToEndOfFile())
        XCTAssertEqual(child.terminationReason, .uncaughtSignal)

        let lastReturned = collected.lastAppended
        XCTAssertGreaterThanOrEqual(lastReturned, 300)
        let spool = try Spool(directory: directory, configuration: Self.configuration, logger: SpoolLogCapture().logger)
        let records = try spool.pending(after: 0, limit: .max)
        let seqs = records.map(\.seq)
        XCTAssertFalse(seqs.isEmpty)
        // Everything whose append returned is there (one more may have been written before the kill).
        XCTAssertGreaterThanOrEqual(seqs.last ?? 0, lastReturned)
        XCTAssertLessThanOrEqual(seqs.last ?? 0, lastReturned + 1)
        XCTAssertEqual(seqs, Array((seqs.first ?? 1)...(seqs.last ?? 0)), "no gap, in order")
        // Only acknowledged records are gone: the child acknowledges up to seq - 20 every 40 appends.
        XCTAssertEqual(seqs.first, spool.acknowledgedSeq + 1)
        XCTAssertGreaterThanOrEqual(spool.acknowledgedSeq, lastReturned / 40 * 40 - 20)
        XCTAssertLessThanOrEqual(spool.acknowledgedSeq, lastReturned + 1 - 20)
        for record in records { XCTAssertEqual(record.payload, Self.payload(record.seq), "seq \(record.seq)") }
        XCTAssertEqual(spool.droppedRecords, 0)
        try spool.append(seq: (seqs.last ?? 0) + 1, payload: [1, 2, 3])
    }
}

/// Child stdout collected from the pipe's reader thread.
private final class LockedBuffer: @unchecked Sendable {
    private let lock = NSLock()
    private var data = Data()

    func append(_ chunk: Data) { lock.withLock { data.append(chunk) } }
    var text: String { lock.withLock { String(decoding: data, as: UTF8.self) } }
    var appendedCount: Int { text.split(separator: "\n").filter { $0.hasPrefix("appended ") }.count }
    var lastAppended: UInt64 {
        text.split(separator: "\n").last { $0.hasPrefix("appended ") && !$0.hasSuffix(" ") }
            .flatMap { UInt64($0.dropFirst("appended ".count)) } ?? 0
    }
}
