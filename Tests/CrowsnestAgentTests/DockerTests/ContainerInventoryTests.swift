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

    /// Huge labels are bounded when the container is inspected (memory stays small, no work per sweep) and the
    /// shortened values are counted once, not on every sweep.
    func testLabelsAreBoundedOnceWhenAContainerIsInspected() async throws {
        let docker = try await DockerTestSupport.liveClient()
        let inventory = ContainerInventory(docker: docker, logger: DockerTestSupport.makeLogger())
        var labels: [String] = []
        for index in 0..<20 { labels += ["--label", "big.\(index)=" + String(repeating: "v", count: 15_000)] }
        let name = DockerTestSupport.containerName("inv-labels")
        addTeardownBlock { _ = try? DockerTestSupport.docker(["rm", "-f", name]) }
        let id = try DockerTestSupport.dockerOK(["create", "--name", name] + labels + [DockerTestSupport.image, "true"])
        let listed = await inventory.list()
        XCTAssertTrue(listed)
        let entry = try XCTUnwrap(inventory.snapshot().entries.first { $0.details?.id == id })
        let kept = try XCTUnwrap(entry.details?.labels)
        XCTAssertLessThanOrEqual(kept.reduce(0) { $0 + $1.key.utf8.count + $1.value.utf8.count }, WireTextBounds.labelTotalBytes)
        XCTAssertTrue(kept.values.allSatisfy { $0.utf8.count <= WireTextBounds.labelValueBytes })
        XCTAssertGreaterThanOrEqual(inventory.takeTruncatedSinceLastReport(), 20, "every shortened or dropped label counted")
        XCTAssertEqual(inventory.takeTruncatedSinceLastReport(), 0, "and counted once")
    }

    /// Events spooled before a restart are not replayed; one that happened while the agent was stopped is,
    /// with Docker's own time.
    func testAfterARestartTheStreamResumesFromTheSavedCursor() async throws {
        let docker = try await DockerTestSupport.liveClient()
        let logger = DockerTestSupport.makeLogger()
        let directory = try scratchDirectory("cursor")
        let cursor = EventCursor(stateDirectory: directory)

        let first = DockerEventWatcher(docker: docker, cursor: cursor, logger: logger)
        let running = Task { try await first.run() }
        try await Task.sleep(for: .milliseconds(500))
        let name = DockerTestSupport.containerName("cursor")
        let id = try runContainer(name, command: ["sleep", "300"])
        var spooled: [Crowsnest_V1_ContainerEvent] = []
        _ = try await DockerTestSupport.eventually(seconds: 10, what: "the start event") { () -> Bool? in
            spooled += first.drain()
            return spooled.contains { $0.dockerID == id && $0.action == "start" } ? true : nil
        }
        first.markSpooled(spooled)
        running.cancel()
        _ = await running.result
        XCTAssertNotNil(cursor.load())

        // While no agent watches, the container dies.
        _ = try DockerTestSupport.dockerOK(["kill", name])
        let finished = try DockerTestSupport.dockerOK(["inspect", "--format", "{{.State.FinishedAt}}", name])

        let second = DockerEventWatcher(docker: docker, cursor: cursor, logger: logger)
        let resumed = Task { try await second.run() }
        defer { resumed.cancel() }
        var replayed: [Crowsnest_V1_ContainerEvent] = []
        let die = try await DockerTestSupport.eventually(seconds: 10, what: "the die event from while the agent was stopped") {
            replayed += second.drain()
            return replayed.first { $0.dockerID == id && $0.action == "die" }
        }
        XCTAssertFalse(replayed.contains { $0.dockerID == id && $0.action == "start" }, "an already spooled event came again")
        let dockerNanos = try XCTUnwrap(DockerTimestamp.unixNanoseconds(fromRFC3339: finished))
        XCTAssertLessThan(abs(die.timeUnixNano - dockerNanos), 1_000_000_000, "Docker's event time, not the agent's")
    }

    /// The event stream drops (dockerd restarting, a wedged socket): a container created and started meanwhile is
    /// found by the listing that follows the reconnect, and its start event is replayed with Docker's time.
    func testAContainerCreatedWhileTheStreamIsDownAppearsAfterReconciliation() async throws {
        _ = try await DockerTestSupport.liveClient()
        let proxy = try await SeveringProxy.start()
        let logger = DockerTestSupport.makeLogger()
        let docker = DockerClient(socketPath: proxy.socketPath, logger: logger)
        let inventory = ContainerInventory(docker: docker, logger: logger)
        let watcher = DockerEventWatcher(docker: docker, inventory: inventory, logger: logger)
        let tasks = [Task { try await inventory.run() }, Task { try await watcher.run() }]
        defer { tasks.forEach { $0.cancel() } }
        await inventory.waitUntilListed(timeout: .seconds(20))
        var seen: [Crowsnest_V1_ContainerEvent] = []

        // The stream is up: a container's start arrives through it.
        let first = DockerTestSupport.containerName("recon-first")
        let firstID = try runContainer(first, command: ["sleep", "300"])
        _ = try await DockerTestSupport.eventually(seconds: 10, what: "the first container's start event") { () -> Bool? in
            seen += watcher.drain()
            return seen.contains { $0.dockerID == firstID && $0.action == "start" } ? true : nil
        }

        // Cut: while no event can arrive, a second container is created and started.
        proxy.sever()
        let second = DockerTestSupport.containerName("recon-second")
        let secondID = try runContainer(second, command: ["sleep", "300"])
        let startedAt = try DockerTestSupport.dockerOK(["inspect", "--format", "{{.State.StartedAt}}", second])
        try await Task.sleep(for: .seconds(2))
        seen += watcher.drain()
        XCTAssertFalse(inventory.snapshot().entries.contains { $0.details?.id == secondID }, "known while the stream was cut?")
        XCTAssertFalse(seen.contains { $0.dockerID == secondID })

        proxy.restore()
        let entry = try await DockerTestSupport.eventually(seconds: 40, what: "the second container after reconciliation") {
            inventory.snapshot().entries.first { $0.details?.id == secondID && $0.details?.state == "running" }
        }
        XCTAssertEqual(entry.details?.name, second)
        let start = try await DockerTestSupport.eventually(seconds: 20, what: "its start event replayed") { () -> Crowsnest_V1_ContainerEvent? in
            seen += watcher.drain()
            return seen.first { $0.dockerID == secondID && $0.action == "start" }
        }
        let dockerNanos = try XCTUnwrap(DockerTimestamp.unixNanoseconds(fromRFC3339: startedAt))
        XCTAssertLessThan(abs(start.timeUnixNano - dockerNanos), 1_000_000_000, "Docker's event time, not the reconnect's")
        XCTAssertEqual(seen.filter { $0.dockerID == firstID && $0.action == "start" }.count, 1, "an event came twice")
        tasks.forEach { $0.cancel() }
        await proxy.stop()
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
