import Foundation
import XCTest

@testable import CrowsnestAgent

final class SequenceStoreTests: XCTestCase {
    func testFirstSequenceIsOneAndEachCallIsHigher() throws {
        let store = try SequenceStore(stateDirectory: try makeSpoolTestDirectory(self))
        XCTAssertEqual(try store.next(), 1)
        XCTAssertEqual(try store.next(), 2)
        XCTAssertEqual(try store.next(), 3)
    }

    func testCleanReopenContinuesWithoutRepeatOrGap() throws {
        let directory = try makeSpoolTestDirectory(self)
        let store = try SequenceStore(stateDirectory: directory)
        for _ in 1...5 { _ = try store.next() }
        try store.close()
        let reopened = try SequenceStore(stateDirectory: directory)
        XCTAssertEqual(try reopened.next(), 6)
    }

    func testReopenAfterCrashNeverRepeatsASequence() throws {
        let directory = try makeSpoolTestDirectory(self)
        var handedOut = Set<UInt64>()
        // Several "crashes" (no close) at different points inside and across reserved blocks.
        for callsBeforeCrash in [1, 3, 4, 7, 2, 9] {
            let store = try SequenceStore(stateDirectory: directory, reservationBlock: 3)
            for _ in 0..<callsBeforeCrash {
                let value = try store.next()
                XCTAssertFalse(handedOut.contains(value), "sequence \(value) repeated")
                XCTAssertGreaterThan(value, handedOut.max() ?? 0)
                handedOut.insert(value)
            }
        }
        XCTAssertEqual(handedOut.count, 26)
    }

    func testRaiseMovesTheCounterForwardDurablyAndNeverBack() throws {
        let directory = try makeSpoolTestDirectory(self)
        let store = try SequenceStore(stateDirectory: directory)
        XCTAssertEqual(try store.next(), 1)
        try store.raise(toAtLeast: 5000)
        XCTAssertEqual(store.peekNext, 5000)
        try store.raise(toAtLeast: 10)
        XCTAssertEqual(try store.next(), 5000)
        // Without close: the raised floor was persisted.
        let reopened = try SequenceStore(stateDirectory: directory)
        XCTAssertGreaterThan(try reopened.next(), 5000)
        try reopened.raise(above: 9000)
        XCTAssertEqual(try reopened.next(), 9001)
    }

    func testCorruptFileIsReportedWithItsPath() throws {
        let directory = try makeSpoolTestDirectory(self)
        XCTAssertTrue(FileManager.default.createFile(atPath: directory + "/sequence", contents: Data("12x".utf8)))
        XCTAssertThrowsError(try SequenceStore(stateDirectory: directory)) { error in
            XCTAssertTrue("\(error)".contains(directory + "/sequence"), "\(error)")
        }
    }
}
