import CrowsnestWire
import Foundation
import XCTest

@testable import CrowsnestAgent

/// The sampler on the real engine: a container's files are opened once and followed across a restart.
final class SamplerEngineTests: XCTestCase {
    /// What this process's open descriptors point at. Counting them is not enough: NIO opens its event loops'
    /// descriptors lazily, so a test run alone sees the count grow for reasons of its own.
    private func openPaths() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").compactMap {
            try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/" + $0)
        }
    }

    /// The open descriptors that belong to the container: its cgroup files (named by its id) or its process's.
    private func containerFiles(id: String, pids: [Int]) throws -> [String] {
        try openPaths().filter { path in path.contains(id) || pids.contains { path.hasPrefix("/proc/\($0)/") } }
    }

    /// A restart gives the container a new init process and a cgroup directory created anew: the next sweep reads
    /// it through new collectors (its cgroup, not Docker's stats API), and once it is removed its files are closed.
    func testARestartedContainerIsReadThroughNewCollectorsAndARemovedOneClosesItsFiles() async throws {
        let docker = try await DockerTestSupport.liveClient()
        let logger = DockerTestSupport.makeLogger()
        let state = try scratchDirectory("sampler")
        let inventory = ContainerInventory(docker: docker, logger: logger)
        let events = DockerEventWatcher(docker: docker, inventory: inventory, logger: logger)
        let sampler = Sampler(
            configuration: .init(interval: .seconds(1)), docker: docker, inventory: inventory, events: events,
            spool: try Spool(directory: state + "/spool", logger: logger), sequence: try SequenceStore(stateDirectory: state),
            deadLetters: try DeadLetterBox(stateDirectory: state), doorbell: Doorbell(), logger: logger)
        let tasks = [Task { try await inventory.run() }, Task { try await events.run() }]
        defer { tasks.forEach { $0.cancel() } }
        await inventory.waitUntilListed(timeout: .seconds(20))
        _ = await sampler.sampleContainers()

        let name = DockerTestSupport.containerName("restart")
        addTeardownBlock { _ = try? DockerTestSupport.docker(["rm", "-f", name]) }
        let id = try DockerTestSupport.dockerOK(["run", "-d", "--name", name, DockerTestSupport.image, "sleep", "300"])
        func sample() async -> Crowsnest_V1_ContainerSample? {
            await sampler.sampleContainers().containers.first { $0.dockerID == id }
        }
        let firstPid = try await DockerTestSupport.eventually(seconds: 10, what: "the container in the inventory") {
            inventory.snapshot().entries.first { $0.details?.id == id && $0.details?.state == "running" }?.details?.pid
        }
        let firstSample = await sample()
        let first = try XCTUnwrap(firstSample)
        XCTAssertTrue(first.hasStats_p)
        XCTAssertTrue(first.statsSource.hasPrefix("cgroup-"), "read from its cgroup, not \(first.statsSource)")
        XCTAssertGreaterThan(first.pids, 0)
        XCTAssertEqual(sampler.keptCollectors(of: id)?.pid, Int32(firstPid))
        XCTAssertFalse(try containerFiles(id: id, pids: [firstPid]).isEmpty, "its files are kept open")

        _ = try DockerTestSupport.dockerOK(["restart", "-t", "0", name])
        let secondPid = try await DockerTestSupport.eventually(seconds: 15, what: "the restarted container's new process") {
            inventory.snapshot().entries.first { $0.details?.id == id && $0.details?.state == "running" && $0.details?.pid != firstPid }?
                .details?.pid
        }
        let secondSample = await sample()
        let second = try XCTUnwrap(secondSample)
        XCTAssertTrue(second.statsSource.hasPrefix("cgroup-"), "after the restart still from its cgroup, not \(second.statsSource)")
        XCTAssertGreaterThan(second.pids, 0, "pids.current of the new cgroup")
        XCTAssertEqual(sampler.keptCollectors(of: id)?.pid, Int32(secondPid), "collectors follow the new process")

        _ = try DockerTestSupport.dockerOK(["rm", "-f", name])
        _ = try await DockerTestSupport.eventually(seconds: 10, what: "the removed container gone from the inventory") {
            inventory.snapshot().entries.contains { $0.details?.id == id } ? nil : true
        }
        let after = await sampler.sampleContainers()
        XCTAssertFalse(after.containers.contains { $0.dockerID == id })
        XCTAssertNil(sampler.keptCollectors(of: id))
        let left = try containerFiles(id: id, pids: [firstPid, secondPid])
        XCTAssertEqual(left, [], "the removed container's files are not all closed")
    }
}
