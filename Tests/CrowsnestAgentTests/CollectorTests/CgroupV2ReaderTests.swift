import CrowsnestWire
import XCTest

@testable import CrowsnestAgent

final class CgroupV2ReaderTests: XCTestCase {
    private var reader: ContainerCounterReader {
        ContainerCounterReader(cgroupRoot: CollectorFixtures.cgroupV2, procRoot: CollectorFixtures.proc)
    }

    func testDetectsCgroupV2FromCgroupControllers() {
        XCTAssertEqual(reader.locator.version, .v2)
    }

    func testReadsCPUUsageAndThrottlingFromCgroupV2() throws {
        let stats = try reader.read(pid: 4242, dockerID: CollectorFixtures.v2SystemdID)
        XCTAssertEqual(stats.source, .cgroupV2)
        XCTAssertEqual(stats.cpuUsageNs, 8_335_557_000)
        XCTAssertEqual(stats.cpuThrottledPeriods, 120)
        XCTAssertEqual(stats.cpuThrottledNs, 2_314_599_000)
    }

    func testReadsMemoryUsageWorkingSetAndLimitFromCgroupV2() throws {
        let stats = try reader.read(pid: 4242, dockerID: CollectorFixtures.v2SystemdID)
        XCTAssertEqual(stats.memoryUsageBytes, 52_817_920)
        XCTAssertEqual(stats.memoryWorkingSetBytes, 52_817_920 - 11_345_920)
        XCTAssertEqual(stats.memoryLimitBytes, 536_870_912)
    }

    func testSumsBlockIOOverDevicesFromIOStat() throws {
        let stats = try reader.read(pid: 4242, dockerID: CollectorFixtures.v2SystemdID)
        XCTAssertEqual(stats.blockReadBytes, 4_513_792 + 1_048_576)
        XCTAssertEqual(stats.blockWriteBytes, 180_224 + 2_097_152)
        XCTAssertEqual(stats.blockReadOps, 152 + 16)
        XCTAssertEqual(stats.blockWriteOps, 22 + 40)
    }

    func testReadsPidsCurrent() throws {
        let stats = try reader.read(pid: 4242, dockerID: CollectorFixtures.v2SystemdID)
        XCTAssertEqual(stats.pids, 7)
    }

    func testSumsNetworkOverInterfacesExceptLoopback() throws {
        let stats = try reader.read(pid: 4242, dockerID: CollectorFixtures.v2SystemdID)
        XCTAssertEqual(
            stats.network,
            NetworkCounters(
                rxBytes: 18_734_521 + 1_000_000, txBytes: 2_210_456 + 500_000,
                rxPackets: 14_210 + 800, txPackets: 9_876 + 400,
                rxErrors: 1, txErrors: 4, rxDropped: 3 + 1, txDropped: 2))
    }

    func testMaxMemoryLimitIsUnlimitedAndMissingOptionalFilesReadAsZero() throws {
        // cgroupfs layout on v2: memory.max is "max", io.stat and pids.current are absent; pid unknown.
        let stats = try reader.read(pid: 0, dockerID: CollectorFixtures.v2CgroupfsID)
        XCTAssertEqual(stats.memoryLimitBytes, 0)
        XCTAssertEqual(stats.memoryUsageBytes, 4_096_000)
        XCTAssertEqual(stats.memoryWorkingSetBytes, 3_072_000)
        XCTAssertEqual(stats.cpuUsageNs, 120_000_000)
        XCTAssertEqual(stats.blockReadBytes, 0)
        XCTAssertEqual(stats.blockWriteOps, 0)
        XCTAssertEqual(stats.pids, 0)
        XCTAssertEqual(stats.network, NetworkCounters())
    }

    func testMissingCgroupIsAClearError() {
        let id = "deadbeef00000000000000000000000000000000000000000000000000000000"
        XCTAssertThrowsError(try reader.read(pid: 0, dockerID: id)) { error in
            guard case CollectorError.cgroupNotFound = error else { return XCTFail("unexpected error \(error)") }
            let message = String(describing: error)
            XCTAssertTrue(message.hasPrefix("no cgroup directory found for container deadbeef0000 (pid 0) under "), message)
            XCTAssertTrue(message.contains(CollectorFixtures.cgroupV2 + "/docker/" + id), message)
            XCTAssertTrue(message.contains(CollectorFixtures.cgroupV2 + "/system.slice/docker-" + id + ".scope"), message)
        }
    }

    func testCgroupThatLostItsCPUStatIsAnError() throws {
        // A directory without cpu.stat is a cgroup removed while we looked at it.
        let root = try CollectorFixtures.temporaryDirectory(for: self)
        try CollectorFixtures.write("cpu memory io pids\n", to: root + "/cgroup.controllers")
        try CollectorFixtures.write("1024\n", to: root + "/docker/abc/memory.current")
        let reader = ContainerCounterReader(cgroupRoot: root, procRoot: CollectorFixtures.proc)
        XCTAssertThrowsError(try reader.read(pid: 0, dockerID: "abc")) { error in
            XCTAssertEqual(String(describing: error), "cannot read \(root)/docker/abc/cpu.stat: no such file")
        }
    }

    func testAppliesStatsOntoAContainerSample() throws {
        let stats = try reader.read(pid: 4242, dockerID: CollectorFixtures.v2SystemdID)
        var sample = Crowsnest_V1_ContainerSample()
        sample.setCounters(stats)
        XCTAssertTrue(sample.hasStats_p)
        XCTAssertEqual(sample.statsSource, "cgroup-v2")
        XCTAssertEqual(sample.cpuUsageNs, 8_335_557_000)
        XCTAssertEqual(sample.cpuThrottledPeriods, 120)
        XCTAssertEqual(sample.cpuThrottledNs, 2_314_599_000)
        XCTAssertEqual(sample.memoryUsageBytes, 52_817_920)
        XCTAssertEqual(sample.memoryWorkingSetBytes, 41_472_000)
        XCTAssertEqual(sample.memoryLimitBytes, 536_870_912)
        XCTAssertEqual(sample.netRxBytes, 19_734_521)
        XCTAssertEqual(sample.netTxBytes, 2_710_456)
        XCTAssertEqual(sample.netRxPackets, 15_010)
        XCTAssertEqual(sample.netTxPackets, 10_276)
        XCTAssertEqual(sample.netRxErrors, 1)
        XCTAssertEqual(sample.netTxErrors, 4)
        XCTAssertEqual(sample.netRxDropped, 4)
        XCTAssertEqual(sample.netTxDropped, 2)
        XCTAssertEqual(sample.blockReadBytes, 5_562_368)
        XCTAssertEqual(sample.blockWriteBytes, 2_277_376)
        XCTAssertEqual(sample.blockReadOps, 168)
        XCTAssertEqual(sample.blockWriteOps, 62)
        XCTAssertEqual(sample.pids, 7)
    }

    func testAppliedStatsKeepTheMemoryLimitTheCallerAlreadySet() throws {
        let stats = try reader.read(pid: 4242, dockerID: CollectorFixtures.v2SystemdID)
        var sample = Crowsnest_V1_ContainerSample()
        sample.memoryLimitBytes = 1_073_741_824
        sample.setCounters(stats)
        XCTAssertEqual(sample.memoryLimitBytes, 1_073_741_824)
    }
}
