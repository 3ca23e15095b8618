import CrowsnestWire
import XCTest

@testable import CrowsnestAgent

final class CgroupV1ReaderTests: XCTestCase {
    private var cgroupfs: ContainerCounterReader {
        ContainerCounterReader(cgroupRoot: CollectorFixtures.cgroupV1Cgroupfs, procRoot: CollectorFixtures.proc)
    }
    private var systemd: ContainerCounterReader {
        ContainerCounterReader(cgroupRoot: CollectorFixtures.cgroupV1Systemd, procRoot: CollectorFixtures.proc)
    }

    func testDetectsCgroupV1WhenThereIsNoCgroupControllersFile() {
        XCTAssertEqual(cgroupfs.locator.version, .v1)
        XCTAssertEqual(systemd.locator.version, .v1)
    }

    func testReadsCPUUsageFromCpuacctAndThrottlingFromCPUStat() throws {
        let stats = try cgroupfs.read(pid: 1717, dockerID: CollectorFixtures.v1CgroupfsID)
        XCTAssertEqual(stats.source, .cgroupV1)
        XCTAssertEqual(stats.cpuUsageNs, 5_351_664_326)
        XCTAssertEqual(stats.cpuThrottledPeriods, 265)
        XCTAssertEqual(stats.cpuThrottledNs, 34_988_315_616)
    }

    func testReadsMemoryUsageWorkingSetAndLimitFromCgroupV1() throws {
        let stats = try cgroupfs.read(pid: 1717, dockerID: CollectorFixtures.v1CgroupfsID)
        XCTAssertEqual(stats.memoryUsageBytes, 20_021_248)
        XCTAssertEqual(stats.memoryWorkingSetBytes, 20_021_248 - 6_291_456)
        XCTAssertEqual(stats.memoryLimitBytes, 268_435_456)
    }

    func testPrefersRecursiveBlkioCountersSummedOverDevices() throws {
        let stats = try cgroupfs.read(pid: 1717, dockerID: CollectorFixtures.v1CgroupfsID)
        XCTAssertEqual(stats.blockReadBytes, 4_096 + 1_634_304)
        XCTAssertEqual(stats.blockWriteBytes, 8_192 + 20_983_808)
        XCTAssertEqual(stats.blockReadOps, 1 + 52)
        XCTAssertEqual(stats.blockWriteOps, 2 + 161)
    }

    func testFallsBackToNonRecursiveBlkioCounters() throws {
        let stats = try systemd.read(pid: 0, dockerID: CollectorFixtures.v1SystemdID)
        XCTAssertEqual(stats.blockReadBytes, 2_097_152)
        XCTAssertEqual(stats.blockWriteBytes, 1_048_576)
        XCTAssertEqual(stats.blockReadOps, 64)
        XCTAssertEqual(stats.blockWriteOps, 32)
    }

    func testReadsPidsAndNetworkOfTheInitProcess() throws {
        let stats = try cgroupfs.read(pid: 1717, dockerID: CollectorFixtures.v1CgroupfsID)
        XCTAssertEqual(stats.pids, 3)
        XCTAssertEqual(stats.network.rxBytes, 726)
        XCTAssertEqual(stats.network.rxPackets, 9)
        XCTAssertEqual(stats.network.txBytes, 0)
    }

    func testHugeV1MemoryLimitIsUnlimited() throws {
        let stats = try systemd.read(pid: 0, dockerID: CollectorFixtures.v1SystemdID)
        XCTAssertEqual(stats.memoryLimitBytes, 0)
        XCTAssertEqual(stats.memoryUsageBytes, 104_857_600)
        XCTAssertEqual(stats.memoryWorkingSetBytes, 104_857_600 - 52_428_800)
    }

    func testReadsCoMountedCPUAndCpuacctHierarchyAndMissingPidsControllerAsZero() throws {
        let stats = try systemd.read(pid: 0, dockerID: CollectorFixtures.v1SystemdID)
        XCTAssertEqual(stats.cpuUsageNs, 987_654_321_012)
        XCTAssertEqual(stats.cpuThrottledPeriods, 0)
        XCTAssertEqual(stats.pids, 0)
    }

    func testMissingOptionalV1FilesReadAsZero() throws {
        let root = try CollectorFixtures.temporaryDirectory(for: self)
        try CollectorFixtures.write("123456789\n", to: root + "/cpuacct/docker/abc/cpuacct.usage")
        try CollectorFixtures.write("4096\n", to: root + "/memory/docker/abc/memory.usage_in_bytes")
        try FileManager.default.createDirectory(atPath: root + "/blkio/docker/abc", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: root + "/pids/docker/abc", withIntermediateDirectories: true)
        let stats = try ContainerCounterReader(cgroupRoot: root, procRoot: root).read(pid: 0, dockerID: "abc")
        XCTAssertEqual(stats.cpuUsageNs, 123_456_789)
        XCTAssertEqual(stats.memoryUsageBytes, 4096)
        XCTAssertEqual(stats.memoryWorkingSetBytes, 4096)
        XCTAssertEqual(stats.memoryLimitBytes, 0)
        XCTAssertEqual(stats.cpuThrottledNs, 0)
        XCTAssertEqual(stats.blockReadBytes, 0)
        XCTAssertEqual(stats.blockWriteOps, 0)
        XCTAssertEqual(stats.pids, 0)
    }

    func testMissingV1CgroupIsAClearError() {
        XCTAssertThrowsError(try cgroupfs.read(pid: 0, dockerID: "0123456789abcdef")) { error in
            let message = String(describing: error)
            XCTAssertTrue(message.hasPrefix("no cgroup directory found for container 0123456789ab (pid 0) under "), message)
            XCTAssertTrue(message.contains(CollectorFixtures.cgroupV1Cgroupfs + "/memory/docker/0123456789abcdef"), message)
        }
    }

    func testAppliesV1StatsWithTheirSource() throws {
        var sample = Crowsnest_V1_ContainerSample()
        sample.setCounters(try cgroupfs.read(pid: 1717, dockerID: CollectorFixtures.v1CgroupfsID))
        XCTAssertTrue(sample.hasStats_p)
        XCTAssertEqual(sample.statsSource, "cgroup-v1")
        XCTAssertEqual(sample.memoryLimitBytes, 268_435_456)
        XCTAssertEqual(sample.blockWriteBytes, 20_992_000)
    }
}
