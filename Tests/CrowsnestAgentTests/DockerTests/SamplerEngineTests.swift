import CrowsnestWire
import Foundation
import XCTest

@testable import CrowsnestAgent

/// The sampler on the real engine: a container's files are opened once and followed across a restart.
final class SamplerEngineTests: XCTestCase {
    private func openDescriptorCount() throws -> Int {
        try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count
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
        let before = try openDescriptorCount()

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
        XCTAssertGreaterThan(try openDescriptorCount(), before, "its files are kept open")

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
        // A Docker call in flight holds a socket for a moment: look again for a few seconds.
        let settled = try? await DockerTestSupport.eventually(seconds: 5, what: "the descriptor count back") {
            try self.openDescriptorCount() == before ? true : nil
        }
        let open = try openDescriptorCount()
        XCTAssertEqual(settled, true, "the removed container's files are not all closed: \(open) open, \(before) before")
    }
}
