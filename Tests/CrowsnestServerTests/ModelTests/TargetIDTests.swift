import CrowsnestWire
import Foundation
import XCTest

@testable import CrowsnestServer

/// Target ids come from URLs: anything that is not exactly one of the three shapes is refused before a query.
final class TargetIDTests: XCTestCase {
    private let agent = "0c0ffee0-0000-4000-8000-000000000001"

    func testTheThreeShapesRoundTrip() {
        for text in ["h-\(agent)", "k-\(agent)", "c-\(agent)-web", "c-\(agent)-a-b.c_d"] {
            XCTAssertEqual(TargetID(text)?.description, text)
        }
    }

    func testNulBytesTrailingGarbageAndOverlongNamesAreNotIds() {
        XCTAssertNil(TargetID("h-\(agent)\u{0}garbage"), "UUID parsing must not stop at a NUL")
        XCTAssertNil(TargetID("h-\(agent)x"))
        XCTAssertNil(TargetID("k-\(agent)\u{0}"))
        XCTAssertNil(TargetID("c-\(agent)-a\u{0}b"))
        XCTAssertNil(TargetID("c-\(agent)-"))
        XCTAssertNil(TargetID("c-\(agent)-" + String(repeating: "x", count: WireTextBounds.nameBytes + 1)))
        XCTAssertNotNil(TargetID("c-\(agent)-" + String(repeating: "x", count: WireTextBounds.nameBytes)))
        XCTAssertNil(TargetID("x-\(agent)"))
    }
}
