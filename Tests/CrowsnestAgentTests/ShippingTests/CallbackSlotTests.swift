@testable import CrowsnestAgent
import CrowsnestWire
import Synchronization
import XCTest

/// A callback read on every event must not grow with the number of reads: a closure kept straight in a `Mutex`
/// gained a reabstraction thunk per read, and the agent's stacks and heap grew with every check assignment.
final class CallbackSlotTests: XCTestCase {
    /// The address of a local in the callee: how deep the call went.
    @inline(never)
    private static func stackAddress() -> Int {
        var local = 0
        return withUnsafeMutablePointer(to: &local) { Int(bitPattern: $0) }
    }

    func testAnAssignmentHandlerIsCalledAtTheSameDepthAfterTwentyThousandCalls() {
        let slot = CallbackSlot<Crowsnest_V1_Assign>()
        let depths = Mutex<[Int]>([])
        XCTAssertFalse(slot.call(Crowsnest_V1_Assign()), "nothing installed: nothing runs")
        slot.set { _ in
            let address = Self.stackAddress()
            depths.withLock { $0.append(address) }
        }
        for _ in 0..<20_000 { slot.call(Crowsnest_V1_Assign()) }
        let seen = depths.withLock { $0 }
        XCTAssertEqual(seen.count, 20_000)
        XCTAssertEqual(Set(seen).count, 1, "every call at one depth; the last went \(seen[0] - seen[seen.count - 1]) bytes deeper than the first")
        slot.set(nil)
        XCTAssertFalse(slot.call(Crowsnest_V1_Assign()))
    }

    func testTheDoorbellRingsAtTheSameDepthAfterTwentyThousandRings() {
        let doorbell = Doorbell()
        let depths = Mutex<[Int]>([])
        doorbell.attach {
            let address = Self.stackAddress()
            depths.withLock { $0.append(address) }
        }
        for _ in 0..<20_000 { doorbell.ring() }
        let seen = depths.withLock { $0 }
        XCTAssertEqual(seen.count, 20_000)
        XCTAssertEqual(Set(seen).count, 1, "the last ring went \(seen[0] - seen[seen.count - 1]) bytes deeper than the first")
        doorbell.attach(nil)
        doorbell.ring()
        XCTAssertEqual(depths.withLock { $0.count }, 20_000, "detached: a ring runs nothing")
    }
}
