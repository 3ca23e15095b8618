import CrowsnestAgent
import CrowsnestWire
import Foundation
import Logging
import XCTest

/// The inventory against the real dockerd: listed at start, kept current by events, sampled without Docker.
final class ContainerInventoryTests: XCTestCase {
    private func runContainer(_ name: String, command: [String]) throws -> String {
        addTeardownBlock { _ = try? DockerTestSupport.docker(["rm", "-f", name]) }
        return try DockerTestSupport.dockerOK(["run", "-d", "--name", name, DockerTestSupport.image] + command)
    }

    func testEventsKeepTheInventoryCurrentAndDestroyForgetsAContainer() async throws {
        let docker = try await DockerTestSupport.liveClient()
        let logger = DockerTestSupport.makeLogger()
        let inventory = ContainerInventory(docker: docker, logger: logger)
        let watcher = DockerEventWatcher(docker: docker, inventory: inventory, logger: logger)
        let before = DockerTestSupport.containerName("inv-before")
        let beforeID = try runContainer(before, command: ["sleep", "300"])
        let tasks = [Task { try await inventory.run() }, Task { try await watcher.run() }]
        defer { tasks.forEach { $0.cancel() } }

        await inventory.waitUntilListed(timeout: .seconds(20))
        let listed = inventory.snapshot().entries.first { $0.details?.id == beforeID }
        XCTAssertEqual(listed?.details?.state, "running", "a container running at start is in the first listing")
        XCTAssertGreaterThan(listed?.details?.pid ?? 0, 0)

        // A container started afterwards arrives by its events, without a new listing.
        let after = DockerTestSupport.containerName("inv-after")
        let afterID = try runContainer(after, command: ["sleep", "300"])
        let started = try await DockerTestSupport.eventually(seconds: 10, what: "the new container in the inventory") {
            inventory.snapshot().entries.first { $0.details?.id == afterID && $0.details?.state == "running" }
        }
        XCTAssertEqual(started.details?.name, after)
        _ = try DockerTestSupport.dockerOK(["stop", "-t", "0", after])
        _ = try await DockerTestSupport.eventually(seconds: 10, what: "the stop seen") {
            inventory.snapshot().entries.first { $0.details?.id == afterID && $0.details?.state == "exited" }
        }
        _ = try DockerTestSupport.dockerOK(["rm", after])
        _ = try await DockerTestSupport.eventually(seconds: 10, what: "the destroyed container forgotten") {
            inventory.snapshot().entries.contains { $0.details?.id == afterID } ? nil : true
        }
        XCTAssertTrue(inventory.snapshot().entries.contains { $0.details?.id == beforeID })
        XCTAssertEqual(inventory.snapshot().unavailableReason, "")
    }

    func testAnEngineThatCannotBeReachedLeavesNoContainersAndSaysWhy() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("inv-\(UUID().uuidString)").path
        let docker = DockerClient(socketPath: directory + "/no-such.sock", logger: DockerTestSupport.makeLogger())
        let inventory = ContainerInventory(docker: docker, logger: DockerTestSupport.makeLogger())
        let listed = await inventory.list()
        XCTAssertFalse(listed)
        let snapshot = inventory.snapshot()
        XCTAssertTrue(snapshot.entries.isEmpty)
        XCTAssertTrue(snapshot.unavailableReason.contains("no-such.sock"), snapshot.unavailableReason)
    }
}
