import Foundation
import Logging
import XCTest

@testable import CrowsnestAgent

/// Collects log events in memory so tests can assert what the spool reported.
final class SpoolLogCapture: @unchecked Sendable {
    struct Entry {
        var level: Logger.Level
        var message: String
        var metadata: Logger.Metadata
    }

    private let lock = NSLock()
    private var storage: [Entry] = []

    var entries: [Entry] { lock.withLock { storage } }

    func record(_ entry: Entry) { lock.withLock { storage.append(entry) } }

    func entries(containing text: String) -> [Entry] { entries.filter { $0.message.contains(text) } }

    var logger: Logger {
        Logger(label: "test.spool") { _ in SpoolCaptureHandler(capture: self) }
    }
}

struct SpoolCaptureHandler: LogHandler {
    let capture: SpoolLogCapture
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        capture.record(.init(level: event.level, message: event.message.description,
                             metadata: metadata.merging(event.metadata ?? [:]) { $1 }))
    }
}

/// A fresh directory under the system temp dir, removed after the test.
func makeSpoolTestDirectory(_ testCase: XCTestCase) throws -> String {
    let url = FileManager.default.temporaryDirectory
        .appendingPathComponent("crowsnest-spool-\(UUID().uuidString)", isDirectory: true)
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    testCase.addTeardownBlock { try? FileManager.default.removeItem(at: url) }
    return url.path
}

/// Deterministic payload for a sequence so a replayed record can be checked byte for byte.
func spoolPayload(_ seq: UInt64, size: Int = 100) -> [UInt8] {
    (0..<size).map { UInt8(truncatingIfNeeded: Int(seq) &* 31 &+ $0 &* 7) }
}

/// Segment file names in a spool directory, sorted.
func segmentFiles(in directory: String) throws -> [String] {
    try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".seg") }.sorted()
}

/// A SplitMix64 generator: deterministic randomness for tests.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
