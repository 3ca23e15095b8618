import CrowsnestWire
import Foundation
import XCTest

@testable import CrowsnestAgent

final class HostReaderTests: XCTestCase {
    private func fixture(_ name: String) throws -> String {
        try String(contentsOfFile: CollectorFixtures.proc + "/" + name, encoding: .utf8)
    }

    func testConvertsProcStatJiffiesToNanoseconds() throws {
        let cpu = try XCTUnwrap(CPUTimesCollector.parse(try fixture("stat"), clockTicksPerSecond: 100))
        XCTAssertEqual(cpu.userNs, (1_843_921 + 2_210) * 10_000_000)
        XCTAssertEqual(cpu.systemNs, (611_520 + 0 + 8_421) * 10_000_000)
        XCTAssertEqual(cpu.idleNs, 42_911_350 * 10_000_000)
        XCTAssertEqual(cpu.iowaitNs, 20_133 * 10_000_000)
        XCTAssertEqual(cpu.totalNs, 45_399_055 * 10_000_000)
        XCTAssertEqual(cpu.cpuCount, 4)
    }

    func testHonoursTheClockTickRate() throws {
        let cpu = try XCTUnwrap(CPUTimesCollector.parse(try fixture("stat"), clockTicksPerSecond: 250))
        XCTAssertEqual(cpu.userNs, 1_846_131 * 4_000_000)
        // Large tick counts do not overflow the intermediate product.
        let huge = try XCTUnwrap(CPUTimesCollector.parse("cpu  100000000000 0 0 0 0 0 0 0 0 0\n", clockTicksPerSecond: 100))
        XCTAssertEqual(huge.userNs, 100_000_000_000 * 10_000_000)
        XCTAssertEqual(huge.cpuCount, 0)
        XCTAssertNil(CPUTimesCollector.parse("intr 1 2 3\n", clockTicksPerSecond: 100))
    }

    func testParsesMeminfoInBytes() throws {
        let memory = MemoryInfoCollector.parse(try fixture("meminfo"))
        XCTAssertEqual(
            memory,
            HostMemoryInfo(
                totalBytes: 8_039_604 * 1024, availableBytes: 5_123_456 * 1024,
                swapTotalBytes: 2_097_148 * 1024, swapFreeBytes: 1_998_844 * 1024))
    }

    func testParsesLoadUptimeAndBootID() throws {
        let load = try XCTUnwrap(LoadAverageCollector.parse(try fixture("loadavg")))
        XCTAssertEqual(load.load1, 0.52)
        XCTAssertEqual(load.load5, 0.58)
        XCTAssertEqual(load.load15, 0.59)
        XCTAssertEqual(UptimeCollector.parse(try fixture("uptime")), 1_234_567)
        XCTAssertEqual(BootIDCollector.parse(try fixture("sys/kernel/random/boot_id")), "6b1f0e0c-3a5d-4c2e-9f7b-2d8e1a4c5b6f")
    }

    func testListsInterfacesWithoutLoopbackOrVethPairs() throws {
        let interfaces = NetworkInterfacesCollector.parse(try fixture("net/dev"))
        XCTAssertEqual(interfaces.map(\.name), ["eth0", "docker0"])
        let eth0 = interfaces[0]
        // "eth0:123456789012" has no space after the colon, as older kernels print large counters.
        XCTAssertEqual(eth0.rxBytes, 123_456_789_012)
        XCTAssertEqual(eth0.rxPackets, 98_765_432)
        XCTAssertEqual(eth0.rxErrors, 12)
        XCTAssertEqual(eth0.rxDropped, 34)
        XCTAssertEqual(eth0.txBytes, 98_765_432_109)
        XCTAssertEqual(eth0.txPackets, 87_654_321)
        XCTAssertEqual(eth0.txErrors, 5)
        XCTAssertEqual(eth0.txDropped, 6)
        XCTAssertEqual(interfaces[1].txDropped, 1)
        XCTAssertEqual(NetworkInterfacesCollector.parse(try fixture("net/dev"), skippingPrefixes: []).map(\.name), ["eth0", "docker0", "veth1a2b3c4"])
    }

    func testKeepsRealFilesystemsOncePerDevice() throws {
        let mounts = FilesystemCollector.parse(try fixture("1/mounts"))
        XCTAssertEqual(
            mounts,
            [
                HostMount(device: "/dev/sda1", mountpoint: "/", fstype: "ext4"),
                HostMount(device: "/dev/sda15", mountpoint: "/boot/efi", fstype: "vfat"),
                HostMount(device: "/dev/sdb", mountpoint: "/mnt/backup disk", fstype: "xfs"),
                HostMount(device: "tank/data", mountpoint: "/srv/data", fstype: "zfs"),
            ])
    }

    func testPrefersTheShortestMountpointOfADeviceAndSkipsNetworkFilesystems() {
        let table = """
            /dev/vda /etc/hosts ext4 rw 0 0
            /dev/vda / ext4 rw 0 0
            nas:/export /mnt/nas nfs4 rw 0 0
            """
        XCTAssertEqual(FilesystemCollector.parse(table), [HostMount(device: "/dev/vda", mountpoint: "/", fstype: "ext4")])
        XCTAssertEqual(FilesystemCollector.parse(table, includeNetworkFilesystems: true).map(\.fstype), ["ext4", "nfs4"])
    }

    func testReadsAHostSampleFromAProcRootAndMeasuresFilesystemsUnderTheRootfsPrefix() throws {
        let rootfs = try CollectorFixtures.temporaryDirectory(for: self)
        for dir in ["boot/efi", "mnt/backup disk", "srv/data"] {
            try FileManager.default.createDirectory(atPath: rootfs + "/" + dir, withIntermediateDirectories: true)
        }
        let sample = try HostReader(procRoot: CollectorFixtures.proc, rootfsPrefix: rootfs).read()
        let hz = UInt64(sysconf(Int32(_SC_CLK_TCK)))
        XCTAssertEqual(sample.cpuIdleNs, 42_911_350 * 1_000_000_000 / hz)
        XCTAssertEqual(sample.cpuCount, 4)
        XCTAssertEqual(sample.load15, 0.59)
        XCTAssertEqual(sample.memoryTotalBytes, 8_039_604 * 1024)
        XCTAssertEqual(sample.swapFreeBytes, 1_998_844 * 1024)
        XCTAssertEqual(sample.uptimeSeconds, 1_234_567)
        XCTAssertEqual(sample.bootID, "6b1f0e0c-3a5d-4c2e-9f7b-2d8e1a4c5b6f")
        XCTAssertEqual(sample.interfaces.map(\.name), ["eth0", "docker0"])
        XCTAssertEqual(sample.filesystems.map(\.mountpoint), ["/", "/boot/efi", "/mnt/backup disk", "/srv/data"])
        for fs in sample.filesystems {
            XCTAssertGreaterThan(fs.sizeBytes, 0, fs.mountpoint)
            XCTAssertGreaterThanOrEqual(fs.sizeBytes, fs.freeBytes, fs.mountpoint)
            XCTAssertGreaterThanOrEqual(fs.freeBytes, fs.availableBytes, fs.mountpoint)
        }
    }

    func testMissingProcStatIsAClearError() throws {
        let empty = try CollectorFixtures.temporaryDirectory(for: self)
        XCTAssertThrowsError(try HostReader(procRoot: empty).read()) { error in
            XCTAssertEqual(String(describing: error), "cannot read \(empty)/stat: no such file")
        }
    }
}
