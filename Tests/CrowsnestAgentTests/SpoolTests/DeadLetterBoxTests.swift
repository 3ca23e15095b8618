import XCTest

@testable import CrowsnestAgent

/// A batch the server cannot decode is set aside after three refusals in a row, durably.
final class DeadLetterBoxTests: XCTestCase {
    func testRefusalsAreCountedPerRecordAndSurviveARestart() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("deadletter-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let box = try DeadLetterBox(stateDirectory: directory)
        XCTAssertEqual(try box.countRefusal(of: 7), 1)
        XCTAssertEqual(try box.countRefusal(of: 7), 2)
        let reopened = try DeadLetterBox(stateDirectory: directory)
        XCTAssertEqual(try reopened.countRefusal(of: 7), 3, "the count survives a restart")
        XCTAssertEqual(try reopened.countRefusal(of: 8), 1, "another record starts again")

        try reopened.setAside(seq: 7, payload: [1, 2, 3])
        XCTAssertEqual(FileManager.default.contents(atPath: directory + "/dead-letter/7.frame"), Data([1, 2, 3]))
        let attributes = try FileManager.default.attributesOfItem(atPath: directory + "/dead-letter/7.frame")
        XCTAssertEqual((attributes[.posixPermissions] as? NSNumber)?.intValue, 0o600)
        XCTAssertEqual(try DeadLetterBox(stateDirectory: directory).takeUnreported(), 1)
        XCTAssertEqual(try DeadLetterBox(stateDirectory: directory).takeUnreported(), 0, "reported once")
    }
}
