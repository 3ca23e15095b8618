import CrowsnestAgent
import CrowsnestProbes
import CrowsnestWire
import Foundation
import XCTest

/// `docker` checks as an agent runs them: against its inventory of the real dockerd's containers, by name and by
/// label, running or not, healthy or not — no Docker call per run.
final class DockerCheckTests: XCTestCase {
    private func container(_ purpose: String, _ options: [String], command: [String]) throws -> String {
        let name = DockerTestSupport.containerName(purpose)
        addTeardownBlock { _ = try? DockerTestSupport.docker(["rm", "-f", name]) }
        _ = try DockerTestSupport.dockerOK(["run", "-d", "--name", name] + options + [DockerTestSupport.image] + command)
        return name
    }

    func testADockerCheckJudgesTheContainersItPicksFromTheAgentsInventory() async throws {
        let docker = try await DockerTestSupport.liveClient()
        let logger = DockerTestSupport.makeLogger()
        let inventory = ContainerInventory(docker: docker, logger: logger)
        // Health changes reach the inventory as Docker events, as in the agent.
        let watcher = DockerEventWatcher(docker: docker, inventory: inventory, logger: logger)
        let tasks = [Task { try await inventory.run() }, Task { try await watcher.run() }]
        defer { tasks.forEach { $0.cancel() } }
        let prober = Prober(containers: { inventory.probedContainers() })
        let role = "web-\(UUID().uuidString.prefix(8).lowercased())"
        let healthy = try container("chk-healthy", ["--label", "crowsnest.test.role=\(role)", "--health-cmd", "true",
                                                     "--health-interval", "1s"], command: ["sleep", "300"])
        let sick = try container("chk-sick", ["--health-cmd", "echo database unreachable; false", "--health-interval", "1s",
                                              "--health-retries", "1"], command: ["sleep", "300"])
        let plain = try container("chk-plain", ["--label", "crowsnest.test.role=\(role)"], command: ["sleep", "300"])
        let exited = try container("chk-exited", [], command: ["sh", "-c", "exit 3"])
        _ = try await DockerTestSupport.eventually(seconds: 30, what: "health checks settled and the exit seen") { () -> Bool? in
            let byName = Dictionary(inventory.probedContainers().containers.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
            return byName[healthy]?.health == "healthy" && byName[sick]?.health == "unhealthy"
                && byName[exited]?.state == "exited" ? true : nil
        }
        func run(_ target: String, requireHealthy: Bool = false) async -> ProbeOutcome {
            await prober.run(type: "docker", target: target, options: requireHealthy ? ["require_healthy": "true"] : [:],
                             timeout: .seconds(2), addressGuard: AddressGuard(runner: .agent))
        }

        let running = await run(healthy, requireHealthy: true)
        XCTAssertTrue(running.ok, running.error)
        XCTAssertEqual(running.details["containers"], "\(healthy): running (healthy)")
        let byLabel = await run("label=crowsnest.test.role=\(role)")
        XCTAssertTrue(byLabel.ok, byLabel.error)
        XCTAssertEqual(byLabel.figures["containers"], 2)
        let byLabelHealthy = await run("label=crowsnest.test.role=\(role)", requireHealthy: true)
        XCTAssertFalse(byLabelHealthy.ok)
        XCTAssertEqual(byLabelHealthy.error, "container \(plain) has no health check, and require_healthy is set")
        let unhealthy = await run("/" + sick, requireHealthy: true)
        XCTAssertFalse(unhealthy.ok)
        XCTAssertTrue(unhealthy.error.hasPrefix("container \(sick) is unhealthy: database unreachable"), unhealthy.error)
        let sickButRunning = await run(sick)
        XCTAssertTrue(sickButRunning.ok, "without require_healthy a running container passes: \(sickButRunning.error)")
        let stopped = await run(exited)
        XCTAssertFalse(stopped.ok)
        XCTAssertEqual(stopped.error, "container \(exited) is exited with code 3")
        let absent = await run("no-such-container-here")
        XCTAssertEqual(absent.error, "no container named no-such-container-here on this host")
    }

    func testADockerCheckFailsWithTheReasonWhenTheAgentCannotSeeContainersOrIsTheServer() async {
        let blind = Prober(containers: { ContainerView(containers: [], unavailableReason: "cannot reach /var/run/docker.sock") })
        let outcome = await blind.run(type: "docker", target: "web", options: [:], timeout: .seconds(1),
                                      addressGuard: AddressGuard(runner: .agent))
        XCTAssertEqual(outcome.error, "the agent cannot see its containers: cannot reach /var/run/docker.sock")
        let server = await Prober().run(type: "docker", target: "web", options: [:], timeout: .seconds(1),
                                        addressGuard: AddressGuard(runner: .server))
        XCTAssertEqual(server.error, "docker checks look at an agent's own containers; place them on agents, not on the server")
    }
}
