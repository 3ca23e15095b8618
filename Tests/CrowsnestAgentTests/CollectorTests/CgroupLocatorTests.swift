import XCTest

@testable import CrowsnestAgent

final class CgroupLocatorTests: XCTestCase {
    private var v2: CgroupLocator { CgroupLocator(cgroupRoot: CollectorFixtures.cgroupV2, procRoot: CollectorFixtures.proc) }

    func testFindsV2CgroupFromTheInitProcessCgroupFile() throws {
        let location = try v2.locate(pid: 4242, dockerID: CollectorFixtures.v2SystemdID)
        XCTAssertEqual(
            location, .v2(directory: CollectorFixtures.cgroupV2 + "/system.slice/docker-\(CollectorFixtures.v2SystemdID).scope"))
    }

    func testFallsBackToDockerLayoutWhenTheProcPathIsNamespaceRelative() throws {
        // pid 5151's cgroup file says "0::/../../.." (private cgroup namespace).
        let location = try v2.locate(pid: 5151, dockerID: CollectorFixtures.v2CgroupfsID)
        XCTAssertEqual(location, .v2(directory: CollectorFixtures.cgroupV2 + "/docker/\(CollectorFixtures.v2CgroupfsID)"))
    }

    func testIgnoresARecycledPidThatBelongsToAnotherContainer() throws {
        // pid 6161 now lives in the v2SystemdID container's cgroup.
        let location = try v2.locate(pid: 6161, dockerID: CollectorFixtures.v2CgroupfsID)
        XCTAssertEqual(location, .v2(directory: CollectorFixtures.cgroupV2 + "/docker/\(CollectorFixtures.v2CgroupfsID)"))
    }

    func testFindsTheSystemdLayoutWithoutAPid() throws {
        let location = try v2.locate(pid: 0, dockerID: CollectorFixtures.v2SystemdID)
        XCTAssertEqual(
            location, .v2(directory: CollectorFixtures.cgroupV2 + "/system.slice/docker-\(CollectorFixtures.v2SystemdID).scope"))
    }

    func testFindsEachV1ControllerDirectoryFromTheInitProcess() throws {
        let root = CollectorFixtures.cgroupV1Cgroupfs
        let id = CollectorFixtures.v1CgroupfsID
        let location = try CgroupLocator(cgroupRoot: root, procRoot: CollectorFixtures.proc).locate(pid: 1717, dockerID: id)
        XCTAssertEqual(
            location,
            .v1(
                CgroupV1Directories(
                    cpu: "\(root)/cpu/docker/\(id)", cpuacct: "\(root)/cpuacct/docker/\(id)",
                    memory: "\(root)/memory/docker/\(id)", blkio: "\(root)/blkio/docker/\(id)", pids: "\(root)/pids/docker/\(id)")))
    }

    func testFindsCoMountedV1HierarchiesAndLeavesAbsentControllersOut() throws {
        let root = CollectorFixtures.cgroupV1Systemd
        let scope = "system.slice/docker-\(CollectorFixtures.v1SystemdID).scope"
        let location = try CgroupLocator(cgroupRoot: root + "/", procRoot: CollectorFixtures.proc)
            .locate(pid: 0, dockerID: CollectorFixtures.v1SystemdID)
        XCTAssertEqual(
            location,
            .v1(
                CgroupV1Directories(
                    cpu: "\(root)/cpu,cpuacct/\(scope)", cpuacct: "\(root)/cpu,cpuacct/\(scope)",
                    memory: "\(root)/memory/\(scope)", blkio: "\(root)/blkio/\(scope)", pids: nil)))
    }

    func testParsesProcCgroupLinesForV2AndForEachV1Controller() {
        let table = """
            12:pids:/docker/aaa
            4:cpu,cpuacct:/docker/bbb
            1:name=systemd:/docker/ccc
            0::/system.slice/docker-ddd.scope
            """
        XCTAssertEqual(CgroupLocator.path(inProcCgroup: table, controller: nil), "/system.slice/docker-ddd.scope")
        XCTAssertEqual(CgroupLocator.path(inProcCgroup: table, controller: "cpuacct"), "/docker/bbb")
        XCTAssertEqual(CgroupLocator.path(inProcCgroup: table, controller: "cpu"), "/docker/bbb")
        XCTAssertEqual(CgroupLocator.path(inProcCgroup: table, controller: "pids"), "/docker/aaa")
        XCTAssertNil(CgroupLocator.path(inProcCgroup: table, controller: "memory"))
    }

    func testNoPidAndNoIdIsAnErrorThatSaysSo() {
        XCTAssertThrowsError(try v2.locate(pid: 0, dockerID: "")) { error in
            XCTAssertEqual(
                String(describing: error),
                "no cgroup directory found for pid 0 under \(CollectorFixtures.cgroupV2): nothing to try (no pid and no container id)")
        }
    }
}
