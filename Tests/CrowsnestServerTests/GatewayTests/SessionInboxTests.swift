import CrowsnestWire
import XCTest

@testable import CrowsnestServer

/// The queue between a session's reader and its writer: grouping limits, order, the end of a session, and the bound.
final class SessionInboxTests: XCTestCase {
    private func batch(_ seq: UInt64, samples: Int = 10) -> SessionInbox.Item {
        var batch = Crowsnest_V1_SampleBatch()
        batch.seq = seq
        batch.containers = Array(repeating: Crowsnest_V1_ContainerSample(), count: samples)
        return .batch(batch)
    }

    private func describe(_ items: [SessionInbox.Item]) -> [String] {
        items.map {
            switch $0 {
            case .batch(let batch): return "\(batch.seq)"
            case .closed: return "closed"
            case .failed(let error): return "failed \(error)"
            }
        }
    }

    func testTakeGroupsWhatWaitsUpToTheBatchLimit() async {
        let inbox = SessionInbox(capacity: 32)
        for seq in 1...5 { await inbox.push(batch(UInt64(seq))) }
        let first = await inbox.take(maxBatches: 3, maxSamples: 1_000)
        XCTAssertEqual(describe(first), ["1", "2", "3"])
        let second = await inbox.take(maxBatches: 3, maxSamples: 1_000)
        XCTAssertEqual(describe(second), ["4", "5"])
    }

    func testTakeStopsBeforeTheSampleLimitButAlwaysTakesOneBatch() async {
        let inbox = SessionInbox(capacity: 32)
        await inbox.push(batch(1, samples: 5_000))
        await inbox.push(batch(2, samples: 60))
        await inbox.push(batch(3, samples: 50))
        let oversized = await inbox.take(maxBatches: 16, maxSamples: 100)
        XCTAssertEqual(describe(oversized), ["1"], "a batch above the sample limit still goes alone")
        let rest = await inbox.take(maxBatches: 16, maxSamples: 100)
        XCTAssertEqual(describe(rest), ["2"], "60 + 50 would exceed 100 samples")
        let last = await inbox.take(maxBatches: 16, maxSamples: 100)
        XCTAssertEqual(describe(last), ["3"])
    }

    func testTheEndOfTheSessionComesAfterTheBatchesBeforeItAndNothingAfter() async {
        let inbox = SessionInbox(capacity: 32)
        await inbox.push(batch(1))
        await inbox.push(batch(2))
        await inbox.push(.closed)
        let items = await inbox.take(maxBatches: 16, maxSamples: 1_000)
        XCTAssertEqual(describe(items), ["1", "2", "closed"])
    }

    func testTakeWaitsForTheFirstItem() async {
        let inbox = SessionInbox(capacity: 4)
        async let taken = inbox.take(maxBatches: 16, maxSamples: 1_000)
        try? await Task.sleep(for: .milliseconds(50))
        await inbox.push(batch(9))
        let items = await taken
        XCTAssertEqual(describe(items), ["9"])
    }

    func testAFullInboxHoldsTheReaderUntilTheWriterTakes() async {
        let inbox = SessionInbox(capacity: 2)
        await inbox.push(batch(1))
        await inbox.push(batch(2))
        let third = batch(3)
        let reader = Task { () -> ContinuousClock.Instant in
            await inbox.push(third)
            return ContinuousClock.now
        }
        try? await Task.sleep(for: .milliseconds(100))
        let takenAt = ContinuousClock.now
        let waiting = await inbox.take(maxBatches: 1, maxSamples: 1_000)
        XCTAssertEqual(describe(waiting), ["1"])
        let pushedAt = await reader.value
        XCTAssertGreaterThan(pushedAt, takenAt, "the third push returned before the writer made room")
        let rest = await inbox.take(maxBatches: 16, maxSamples: 1_000)
        XCTAssertEqual(describe(rest), ["2", "3"])
    }

    func testTheInboxIsBoundedInBytesTooButAlwaysLetsOneBatchIn() async {
        let inbox = SessionInbox(capacity: 32, maxBytes: 1_000)
        await inbox.push(batch(1), bytes: 600)
        let second = batch(2)
        let reader = Task { () -> ContinuousClock.Instant in
            await inbox.push(second, bytes: 600)
            return ContinuousClock.now
        }
        try? await Task.sleep(for: .milliseconds(100))
        let takenAt = ContinuousClock.now
        let first = await inbox.take(maxBatches: 16, maxSamples: 1_000)
        XCTAssertEqual(describe(first), ["1"])
        let pushedAt = await reader.value
        XCTAssertGreaterThan(pushedAt, takenAt, "1,200 bytes may not wait at once with a 1,000-byte bound")
        // A single batch larger than the bound still gets in (nothing else waits), so a session never wedges.
        _ = await inbox.take(maxBatches: 16, maxSamples: 1_000)
        await inbox.push(batch(3), bytes: 5_000)
        let big = await inbox.take(maxBatches: 16, maxSamples: 1_000)
        XCTAssertEqual(describe(big), ["3"])
    }

    func testCancelWakesAWaitingWriterWithNothing() async {
        let inbox = SessionInbox(capacity: 2)
        async let taken = inbox.take(maxBatches: 16, maxSamples: 1_000)
        try? await Task.sleep(for: .milliseconds(50))
        await inbox.cancel()
        let items = await taken
        XCTAssertTrue(items.isEmpty)
    }
}
