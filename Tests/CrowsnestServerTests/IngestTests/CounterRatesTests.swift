import XCTest

@testable import CrowsnestServer

/// Rates from cumulative counters: deltas over elapsed time, restarts and resets handled honestly.
final class CounterRatesTests: XCTestCase {
    private let tick: Int64 = 1_700_000_000_000  // unix ms

    private func snapshot(ts: Int64, id: String = "abc", startedAt: Int64 = 1_600_000_000_000, cpu: UInt64,
                          rx: UInt64 = 0, tx: UInt64 = 0, read: UInt64 = 0, write: UInt64 = 0) -> CounterSnapshot {
        CounterSnapshot(tsMillis: ts, dockerID: id, startedAtMillis: startedAt, cpuUsageNanos: cpu, netRxBytes: rx,
                        netTxBytes: tx, blockReadBytes: read, blockWriteBytes: write)
    }

    func testTwoBusyCoresOverThirtySecondsShowTwoHundredPercent() {
        let previous = snapshot(ts: tick, cpu: 5_000_000_000, rx: 1_000, tx: 2_000, read: 10, write: 20)
        // 60 s of CPU time in 30 s of wall time: two full cores.
        let current = snapshot(ts: tick + 30_000, cpu: 65_000_000_000, rx: 31_000, tx: 8_000, read: 3_010, write: 620)
        let rates = CounterRates.between(previous, current)
        XCTAssertEqual(rates.cpuPercent, 200)
        XCTAssertEqual(rates.netRxBytesPerSecond, 1_000)
        XCTAssertEqual(rates.netTxBytesPerSecond, 200)
        XCTAssertEqual(rates.blockReadBytesPerSecond, 100)
        XCTAssertEqual(rates.blockWriteBytesPerSecond, 20)
    }

    func testCPUPercentIsTheNanosecondDeltaOverElapsedSecondsTimesOneHundred() {
        let previous = snapshot(ts: tick, cpu: 1_000)
        let current = snapshot(ts: tick + 7_500, cpu: 1_000 + 1_875_000_000)
        // 1.875 s of CPU in 7.5 s = 25 % of one core.
        XCTAssertEqual(CounterRates.between(previous, current).cpuPercent!, 25, accuracy: 1e-9)
    }

    func testACounterThatWentDownWithoutARestartHasNoRate() {
        let previous = snapshot(ts: tick, cpu: 9_000_000_000, rx: 5_000, tx: 5_000)
        let current = snapshot(ts: tick + 30_000, cpu: 1_000_000_000, rx: 8_000, tx: 4_000)
        let rates = CounterRates.between(previous, current)
        XCTAssertNil(rates.cpuPercent)
        XCTAssertEqual(rates.netRxBytesPerSecond, 100)
        XCTAssertNil(rates.netTxBytesPerSecond, "tx went down: reset at an unknown time")
    }

    func testANewDockerIDCountsFromTheContainersStartTime() {
        let previous = snapshot(ts: tick, id: "old", cpu: 900_000_000_000, rx: 9_999_999)
        // Re-created 10 s before the tick; counters began at zero then.
        let current = snapshot(ts: tick + 30_000, id: "new", startedAt: tick + 20_000, cpu: 5_000_000_000, rx: 20_000)
        let rates = CounterRates.between(previous, current)
        XCTAssertEqual(rates.cpuPercent, 50)
        XCTAssertEqual(rates.netRxBytesPerSecond, 2_000)
    }

    func testAStartAfterThePreviousTickCountsFromTheStartTimeEvenWithTheSameID() {
        let previous = snapshot(ts: tick, cpu: 900_000_000_000)
        // `docker restart` keeps the id; the start time moved past the previous tick.
        let current = snapshot(ts: tick + 30_000, startedAt: tick + 25_000, cpu: 1_000_000_000)
        XCTAssertEqual(CounterRates.between(previous, current).cpuPercent, 20)
    }

    func testNoPreviousSnapshotMeansNoRateForALongRunningContainer() {
        let current = snapshot(ts: tick, startedAt: tick - 11 * 60 * 1000, cpu: 5_000_000_000)
        XCTAssertEqual(CounterRates.between(nil, current), .unknown)
    }

    func testNoPreviousSnapshotButStartedWithinTenMinutesCountsFromTheStart() {
        let current = snapshot(ts: tick, startedAt: tick - 10_000, cpu: 1_000_000_000, rx: 50_000)
        let rates = CounterRates.between(nil, current)
        XCTAssertEqual(rates.cpuPercent, 10)
        XCTAssertEqual(rates.netRxBytesPerSecond, 5_000)
    }

    func testNoPreviousSnapshotAndUnknownStartTimeHasNoRate() {
        let current = snapshot(ts: tick, startedAt: 0, cpu: 1_000_000_000)
        XCTAssertEqual(CounterRates.between(nil, current), .unknown)
    }

    func testZeroElapsedTimeHasNoRate() {
        let previous = snapshot(ts: tick, cpu: 1_000)
        let current = snapshot(ts: tick, cpu: 2_000)
        XCTAssertEqual(CounterRates.between(previous, current), .unknown)
    }

    func testASnapshotOlderThanThePreviousOneHasNoRate() {
        let previous = snapshot(ts: tick, cpu: 1_000)
        let current = snapshot(ts: tick - 30_000, cpu: 2_000)
        XCTAssertEqual(CounterRates.between(previous, current), .unknown)
    }
}
