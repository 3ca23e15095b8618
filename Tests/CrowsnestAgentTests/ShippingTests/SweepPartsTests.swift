import CrowsnestWire
import XCTest

@testable import CrowsnestAgent

/// A sweep over the frame limit goes out as parts that each fit, with every container in exactly one part.
final class SweepPartsTests: XCTestCase {
    private func sweep(containers: Int, labelBytes: Int) -> Crowsnest_V1_SampleBatch {
        var batch = Crowsnest_V1_SampleBatch()
        batch.tsUnixMs = 1_710_072_000_000
        batch.intervalSeconds = 30
        batch.host.cpuCount = 4
        var event = Crowsnest_V1_ContainerEvent()
        event.name = "c-0"
        event.action = "start"
        batch.events = [event]
        batch.spoolDroppedBatches = 2
        var missing = Crowsnest_V1_MissingContainer()
        missing.name = "flaky"
        missing.reason = "inspect failed"
        batch.missing = [missing]
        batch.containers = (0..<containers).map { index in
            var sample = Crowsnest_V1_ContainerSample()
            sample.name = "c-\(index)"
            sample.labels = ["big": String(repeating: "x", count: labelBytes)]
            return sample
        }
        return batch
    }

    func testASweepThatFitsIsOnePartOfOne() {
        let parts = SweepParts.split(sweep(containers: 3, labelBytes: 10), maxBytes: 64 * 1024)
        XCTAssertEqual(parts.count, 1)
        XCTAssertEqual(parts[0].part, 1)
        XCTAssertEqual(parts[0].partCount, 1)
        XCTAssertEqual(parts[0].containers.count, 3)
        XCTAssertEqual(parts[0].missing.count, 1)
    }

    func testALargeSweepIsSplitIntoPartsThatEachFit() throws {
        let limit = 64 * 1024
        let whole = sweep(containers: 300, labelBytes: 1_000)
        let parts = SweepParts.split(whole, maxBytes: limit)
        XCTAssertGreaterThan(parts.count, 4)
        for (index, part) in parts.enumerated() {
            let bytes: [UInt8] = try Crowsnest_V1_Frame.with(.batch(part)).serializedBytes()
            XCTAssertLessThanOrEqual(bytes.count + 32, limit, "part \(index + 1) must fit with its sequence set")
            XCTAssertEqual(part.part, UInt32(index + 1))
            XCTAssertEqual(part.partCount, UInt32(parts.count))
            XCTAssertEqual(part.tsUnixMs, whole.tsUnixMs)
            XCTAssertEqual(part.intervalSeconds, 30)
        }
        XCTAssertEqual(parts.flatMap(\.containers).map(\.name), whole.containers.map(\.name), "each container once, in order")
        XCTAssertTrue(parts[0].hasHost)
        XCTAssertEqual(parts[0].events.count, 1)
        XCTAssertEqual(parts[0].spoolDroppedBatches, 2)
        XCTAssertTrue(parts.dropFirst().allSatisfy { !$0.hasHost && $0.events.isEmpty && $0.spoolDroppedBatches == 0 })
        XCTAssertEqual(parts.last?.missing.map(\.name), ["flaky"])
        XCTAssertTrue(parts.dropLast().allSatisfy(\.missing.isEmpty))
    }
}
