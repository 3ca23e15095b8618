import CrowsnestAgent
import Foundation
import XCTest

final class EventCursorTests: XCTestCase {
    func testSavedCursorLoadsBackAndReplacesTheOldOne() throws {
        let cursor = EventCursor(stateDirectory: try scratchDirectory("cursor"))
        XCTAssertNil(cursor.load(), "no cursor before the first save")
        try cursor.save(1_764_500_000_123_456_789)
        XCTAssertEqual(cursor.load(), 1_764_500_000_123_456_789)
        try cursor.save(1_764_500_001_000_000_000)
        XCTAssertEqual(cursor.load(), 1_764_500_001_000_000_000)
        XCTAssertFalse(FileManager.default.fileExists(atPath: cursor.path + ".next"), "no temporary file left behind")
    }

    func testAGarbledCursorIsIgnored() throws {
        let cursor = EventCursor(stateDirectory: try scratchDirectory("cursor"))
        for garbage in ["", "abc", "-5", "0", "12 34", "99999999999999999999999"] {
            FileManager.default.createFile(atPath: cursor.path, contents: Data(garbage.utf8))
            XCTAssertNil(cursor.load(), "\(garbage) taken for a cursor")
        }
    }

    func testAnUnwritableDirectoryIsAnError() {
        let cursor = EventCursor(stateDirectory: "/proc/no-such-dir")
        XCTAssertThrowsError(try cursor.save(1))
    }
}
