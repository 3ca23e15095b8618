import Foundation
import XCTest

@testable import CrowsnestAgent

/// The collectors on this machine's real /proc and cgroup mount.
final class LiveCollectorTests: XCTestCase {
    func testReadsThisHostsProc() throws {
        let sample = try HostReader().read()
        XCTAssertGreaterThan(sample.cpuCount, 0)
        XCTAssertEqual(Int(sample.cpuCount), sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        XCTAssertGreaterThan(sample.cpuTotalNs, sample.cpuIdleNs)
        XCTAssertGreaterThan(sample.memoryTotalBytes, 0)
        XCTAssertGreaterThan(sample.memoryTotalBytes, sample.memoryAvailableBytes)
        XCTAssertEqual(sample.bootID.count, 36)
        XCTAssertGreaterThan(sample.uptimeSeconds, 0)
        XCTAssertFalse(sample.filesystems.isEmpty, "no real filesystem found in the mount table")
        XCTAssertFalse(sample.filesystems.contains { FilesystemCollector.ignoredFilesystemTypes.contains($0.fstype) })
        XCTAssertTrue(sample.filesystems.allSatisfy { $0.sizeBytes > 0 })
        XCTAssertFalse(sample.interfaces.contains { $0.name == "lo" })
    }

    func testReadsThisTestProcessOwnCgroup() throws {
        let reader = ContainerCounterReader()
        let pid = getpid()
        let stats: ContainerCounters
        do {
            let location = try reader.locator.locate(pid: pid, dockerID: "")
            if case .v2(let directory) = location, directory == reader.locator.cgroupRoot {
                throw XCTSkip("this process sits in the v2 root cgroup, which has no memory.current")
            }
            stats = try ContainerCollectors(dockerID: "", pid: pid, location: location, procRoot: reader.locator.procRoot).collect()
        } catch let error as CollectorError {
            throw XCTSkip("this process's cgroup is not readable here: \(error)")
        }
        XCTAssertEqual(stats.source, ContainerCounters.Source(reader.locator.version))
        XCTAssertGreaterThan(stats.cpuUsageNs, 0, "the test process has used CPU")
        XCTAssertGreaterThan(stats.memoryUsageBytes, 0, "the test process uses memory")
        XCTAssertLessThanOrEqual(stats.memoryWorkingSetBytes, stats.memoryUsageBytes)
        // Reading again never goes backwards.
        let again = try reader.read(pid: pid, dockerID: "")
        XCTAssertGreaterThanOrEqual(again.cpuUsageNs, stats.cpuUsageNs)
    }
}
