import CrowsnestAgent
import CrowsnestWire
import Foundation
import XCTest

/// Runs the client against the machine's real dockerd with containers from crowsnest-test/busybox.
///
/// Needs scripts/ensure-docker.sh (and scripts/build-test-image.sh, which the tests run themselves
/// when the image is missing). Fails under CI=true when Docker is missing, skips otherwise.
final class DockerEngineIntegrationTests: XCTestCase {
    private var client: DockerClient!

    override func setUp() async throws {
        client = try await DockerTestSupport.liveClient()
    }

    override func tearDown() async throws {
        client = nil
    }

    /// Starts a container and removes it (docker rm -f) after the test, passed or failed.
    private func runContainer(_ name: String, _ options: [String], command: [String]) throws -> String {
        addTeardownBlock { _ = try? DockerTestSupport.docker(["rm", "-f", name]) }
        return try DockerTestSupport.dockerOK(["run", "-d", "--name", name] + options + [DockerTestSupport.image] + command)
    }

    /// dockerd closes every connection right after its answer (the client sends `Connection: close`). That EOF
    /// used to race the client's second request write and fail a call now and then with "I/O on closed channel".
    /// Sequential calls as the sampler makes them, then eight at a time; not one may fail.
    func testThousandsOfCallsAllSucceedWhileTheEngineClosesEachConnection() async throws {
        let engine: DockerClient = self.client
        let sequential = await DockerTestSupport.outcomes(count: 1500, workers: 1) {
            let containers = try await engine.listContainers(all: true)
            guard let first = containers.first else { return }
            do {
                _ = try await engine.inspect(first.id)
            } catch let error as DockerClientError where error.code == .notFound {
                // Removed between list and inspect by something else on this host: not the failure looked for.
            }
        }
        XCTAssertEqual(sequential, ["ok": 1500], "\(sequential)")
        let concurrent = await DockerTestSupport.outcomes(count: 3000, workers: 8) {
            _ = try await engine.version()
        }
        XCTAssertEqual(concurrent, ["ok": 3000], "\(concurrent)")
    }

    /// Containers whose labels make one listing larger than the response cap are still all listed (in pages),
    /// where a single capped call used to fail and leave the inventory empty.
    func testAListingOverTheResponseCapIsFetchedInPages() async throws {
        let label = "crowsnest.test.big=" + String(repeating: "L", count: 60_000)
        var ours: Set<String> = []
        for index in 0..<6 {
            let name = DockerTestSupport.containerName("big-labels-\(index)")
            addTeardownBlock { _ = try? DockerTestSupport.docker(["rm", "-f", name]) }
            ours.insert(try DockerTestSupport.dockerOK(["create", "--name", name, "--label", label, DockerTestSupport.image, "true"]))
        }
        // And one larger than the cap on its own: it cannot be read whole, and must not hide the others.
        let huge = DockerTestSupport.containerName("huge-labels")
        addTeardownBlock { _ = try? DockerTestSupport.docker(["rm", "-f", huge]) }
        // Four labels of 60,000 characters (one argument may not exceed 128 KiB): 240,000 bytes over a 150,000 cap.
        let hugeLabels = (0..<4).flatMap { ["--label", "crowsnest.test.huge\($0)=" + String(repeating: "H", count: 60_000)] }
        let hugeID = try DockerTestSupport.dockerOK(["create", "--name", huge] + hugeLabels + [DockerTestSupport.image, "true"])
        let engine = try DockerClient(dockerHost: DockerClient.dockerHostFromEnvironment, maxResponseBytes: 150_000,
                                      logger: DockerTestSupport.makeLogger())
        let listed = try await engine.listContainers(all: true)
        let expected = Set(try DockerTestSupport.dockerOK(["ps", "-aq", "--no-trunc"]).split(separator: "\n").map(String.init))
        XCTAssertEqual(Set(listed.map(\.id)), expected, "every container, each once")
        XCTAssertEqual(listed.count, expected.count)
        XCTAssertTrue(ours.isSubset(of: Set(listed.map(\.id))))
        XCTAssertEqual(listed.first { ours.contains($0.id) }?.labels["crowsnest.test.big"]?.count, 60_000)
        let alone = try XCTUnwrap(listed.first { $0.id == hugeID })
        XCTAssertEqual(alone.names, [], "too large to read: known by its id only")
        XCTAssertEqual(alone.primaryName, String(hugeID.prefix(12)))
        do {
            _ = try await engine.inspect(hugeID)
            XCTFail("the inspect of a container over the cap should fail")
        } catch let error as DockerClientError {
            XCTAssertEqual(error.code, .responseTooLarge, "\(error)")
        }
    }

    func testEngineReportsItsVersion() async throws {
        let version = try await client.version()
        XCTAssertEqual(version, try DockerTestSupport.dockerOK(["version", "--format", "{{.Server.Version}}"]))
        XCTAssertTrue(version.first?.isNumber ?? false, version)
    }

    func testInspectsRunningContainerWithFailingHealthcheckAndLimits() async throws {
        let name = DockerTestSupport.containerName("health")
        let startedBefore = DockerTestSupport.nowUnixNano()
        let events = client.events(since: startedBefore - 1_000_000_000)
        let id = try runContainer(
            name,
            [
                "--label", "crowsnest.test=health", "--cpus", "0.5", "--memory", "64m",
                "--health-cmd", "echo probe-output; false", "--health-interval", "1s", "--health-retries", "1",
            ],
            command: ["sleep", "300"]
        )

        let unhealthy = try await DockerTestSupport.collectEvents(events, seconds: 30, what: "health_status: unhealthy") {
            $0.contains { $0.name == name && $0.rawAction == "health_status: unhealthy" }
        }.filter { $0.name == name }
        XCTAssertEqual(unhealthy.map(\.action), ["create", "start", "health_status"])
        XCTAssertEqual(unhealthy.last?.healthStatus, "unhealthy")
        XCTAssertEqual(unhealthy.last?.id, id)

        let details = try await client.inspect(id)
        XCTAssertEqual(details.id, id)
        XCTAssertEqual(details.name, name)
        XCTAssertEqual(details.image, DockerTestSupport.image)
        XCTAssertEqual(details.labels, ["crowsnest.test": "health"])
        XCTAssertEqual(details.state, "running")
        XCTAssertGreaterThan(details.pid, 0)
        XCTAssertEqual(details.cpuLimitCores, 0.5)
        XCTAssertEqual(details.memoryLimitBytes, 64 << 20)
        XCTAssertEqual(details.health?.status, "unhealthy")
        XCTAssertEqual(details.health?.lastOutput, "probe-output\n")
        XCTAssertEqual(details.health?.lastExitCode, 1)
        XCTAssertNil(details.finishedAtUnixNano)
        let started = try XCTUnwrap(details.startedAtUnixNano)
        XCTAssertGreaterThanOrEqual(started, startedBefore - 1_000_000_000)
        XCTAssertLessThanOrEqual(started, DockerTestSupport.nowUnixNano())

        let byName = try await client.inspect(name)
        XCTAssertEqual(byName.id, id)
        let listed = try await client.listContainers(all: false)
        let row = try XCTUnwrap(listed.first { $0.id == id })
        XCTAssertEqual(row.names, [name])
        XCTAssertEqual(row.state, "running")
        XCTAssertTrue(row.status.contains("unhealthy"), row.status)

        var sample = Crowsnest_V1_ContainerSample()
        sample.setIdentityAndState(from: details)
        XCTAssertEqual(sample.health, "unhealthy")
        XCTAssertEqual(sample.healthOutput, "probe-output")
        XCTAssertEqual(sample.startedAtUnixMs, started / 1_000_000)
    }

    func testWatchesStartAndDieWithExitCodeAndExactTimes() async throws {
        let name = DockerTestSupport.containerName("exit")
        let before = DockerTestSupport.nowUnixNano()
        let events = client.events(since: before - 1_000_000_000)
        let id = try runContainer(name, [], command: ["sh", "-c", "sleep 1; exit 7"])

        let seen = try await DockerTestSupport.collectEvents(events, seconds: 30, what: "die of \(name)") {
            $0.contains { $0.name == name && $0.action == "die" }
        }.filter { $0.name == name }
        XCTAssertEqual(seen.map(\.action), ["create", "start", "die"])
        let start = seen[1]
        let die = seen[2]
        XCTAssertEqual(die.id, id)
        XCTAssertEqual(die.exitCode, 7)
        XCTAssertNil(start.exitCode)
        XCTAssertGreaterThanOrEqual(start.timeUnixNano, before - 1_000_000_000)
        XCTAssertGreaterThanOrEqual(die.timeUnixNano - start.timeUnixNano, 900_000_000, "the container slept 1 s")
        XCTAssertLessThan(die.timeUnixNano - start.timeUnixNano, 10_000_000_000)

        let details = try await client.inspect(id)
        XCTAssertEqual(details.state, "exited")
        XCTAssertEqual(details.exitCode, 7)
        XCTAssertEqual(details.pid, 0)
        XCTAssertFalse(details.oomKilled)
        let finished = try XCTUnwrap(details.finishedAtUnixNano)
        XCTAssertLessThan(abs(finished - die.timeUnixNano), 1_000_000_000, "FinishedAt matches the die event")
        let started = try XCTUnwrap(details.startedAtUnixNano)
        XCTAssertLessThan(abs(started - start.timeUnixNano), 1_000_000_000, "StartedAt matches the start event")

        let wire = Crowsnest_V1_ContainerEvent(die)
        XCTAssertEqual(wire.action, "die")
        XCTAssertEqual(wire.exitCode, 7)
        XCTAssertEqual(wire.timeUnixNano, die.timeUnixNano)
    }

    func testReplaysPastEventsBetweenSinceAndUntilThenFinishes() async throws {
        let name = DockerTestSupport.containerName("replay")
        let before = DockerTestSupport.nowUnixNano()
        let id = try runContainer(name, [], command: ["sh", "-c", "exit 2"])
        _ = try await DockerTestSupport.eventually(seconds: 20, what: "\(name) to exit") {
            try await client.inspect(id).state == "exited" ? true : nil
        }
        let after = DockerTestSupport.nowUnixNano() + 1_000_000_000
        try await Task.sleep(for: .milliseconds(1100))

        var replayed: [DockerEvent] = []
        for try await event in client.events(since: before - 1_000_000_000, until: after) where event.name == name {
            replayed.append(event)
        }
        XCTAssertEqual(replayed.map(\.action), ["create", "start", "die"])
        XCTAssertEqual(replayed.last?.exitCode, 2)
        XCTAssertTrue(replayed.allSatisfy { $0.timeUnixNano >= before - 1_000_000_000 && $0.timeUnixNano <= after })
    }

    func testStopReportsKillSignalExitCodeAndStop() async throws {
        let name = DockerTestSupport.containerName("stop")
        let events = client.events(since: DockerTestSupport.nowUnixNano() - 1_000_000_000)
        let id = try runContainer(name, [], command: ["sh", "-c", "trap 'exit 143' TERM; while :; do sleep 0.1; done"])
        _ = try await DockerTestSupport.eventually(seconds: 20, what: "\(name) to run") {
            try await client.inspect(id).state == "running" ? true : nil
        }
        try DockerTestSupport.dockerOK(["stop", "-t", "10", name])

        let seen = try await DockerTestSupport.collectEvents(events, seconds: 30, what: "stop of \(name)") {
            $0.contains { $0.name == name && $0.action == "stop" }
        }.filter { $0.name == name }
        XCTAssertEqual(seen.map(\.action), ["create", "start", "kill", "die", "stop"])
        XCTAssertEqual(seen[2].signal, "15")
        XCTAssertEqual(Crowsnest_V1_ContainerEvent(seen[2]).detail, "15")
        XCTAssertEqual(seen[3].exitCode, 143)

        let details = try await client.inspect(id)
        XCTAssertEqual(details.state, "exited")
        XCTAssertEqual(details.exitCode, 143)
        XCTAssertNotNil(details.finishedAtUnixNano)
    }

    func testOneShotStatsOfRunningContainerHaveProcessesMemoryAndCpu() async throws {
        let name = DockerTestSupport.containerName("stats")
        let id = try runContainer(
            name,
            ["--memory", "64m"],
            command: ["sh", "-c", "head -c 2000000 /dev/urandom | md5sum; sleep 300"]
        )
        let stats = try await DockerTestSupport.eventually(seconds: 20, what: "stats of \(name)") { () -> ContainerCounters? in
            guard let stats = try await client.oneShotStats(id) else { return nil }
            return stats.pids > 0 && stats.cpuUsageNs > 0 ? stats : nil
        }
        XCTAssertGreaterThan(stats.pids, 0)
        XCTAssertGreaterThan(stats.memoryUsageBytes, 0)
        XCTAssertEqual(stats.source, .dockerStats)
        XCTAssertEqual(stats.memoryLimitBytes, 0, "the limit comes from inspect, not from Docker's stats")
        XCTAssertGreaterThan(stats.cpuUsageNs, 0)
        XCTAssertLessThanOrEqual(stats.memoryWorkingSetBytes, stats.memoryUsageBytes)
        let readAt = try XCTUnwrap(stats.readUnixNano)
        XCTAssertLessThan(abs(readAt - DockerTestSupport.nowUnixNano()), 60_000_000_000)

        var sample = Crowsnest_V1_ContainerSample()
        sample.setCounters(stats)
        XCTAssertTrue(sample.hasStats_p)
        XCTAssertEqual(sample.statsSource, "docker-stats")
        XCTAssertEqual(sample.pids, stats.pids)

        try DockerTestSupport.dockerOK(["kill", name])
        _ = try await DockerTestSupport.eventually(seconds: 20, what: "\(name) to exit") {
            try await client.inspect(id).state == "exited" ? true : nil
        }
        let stopped = try await client.oneShotStats(id)
        XCTAssertNil(stopped, "a stopped container has no figures")
    }

    func testInspectOfUnknownContainerIsNotFound() async throws {
        let name = DockerTestSupport.containerName("absent")
        do {
            _ = try await client.inspect(name)
            XCTFail("inspect of \(name) should fail")
        } catch let error as DockerClientError {
            XCTAssertEqual(error.code, .notFound)
            XCTAssertEqual(error.httpStatus, 404)
            XCTAssertEqual(
                error.description,
                "inspect container \(name): the Docker engine at \(client.socketPath) answered 404: No such container: \(name)"
            )
        }
    }
}
