import CrowsnestAgent
import CrowsnestWire
import Foundation
import XCTest

/// Decoding of real Docker Engine answers recorded on this project's machine (see Fixtures/docker/README.md).
final class DockerFixtureTests: XCTestCase {
    static func fixture(_ name: String) throws -> Data {
        let folder = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures", withExtension: nil))
        return try Data(contentsOf: folder.appendingPathComponent("docker").appendingPathComponent(name))
    }

    func testDecodesContainerListWithNamesStatesAndLabels() throws {
        let list = try DockerResponseDecoder.containerList(from: Self.fixture("list.json"))
        XCTAssertEqual(list.count, 4)
        XCTAssertEqual(list.map(\.names), [
            ["crowsnest-test-rec-oom"], ["crowsnest-test-rec-ok"], ["crowsnest-test-rec-exited"],
            ["crowsnest-test-rec-healthy"],
        ])
        let running = list[3]
        XCTAssertEqual(running.id, "7aff0a668303573b29aefcc17b09d510c9374e0c32873d97d8540b4aa4b9ff4c")
        XCTAssertEqual(running.image, "crowsnest-test/busybox:latest")
        XCTAssertEqual(running.state, "running")
        XCTAssertEqual(running.status, "Up 20 seconds (unhealthy)")
        XCTAssertEqual(running.labels, ["com.example.tier": "web", "crowsnest.test": "1"])
        XCTAssertEqual(running.primaryName, "crowsnest-test-rec-healthy")
        XCTAssertEqual(list[0].state, "exited")
        XCTAssertEqual(list[0].status, "Exited (137) 10 seconds ago")
        XCTAssertEqual(list[0].labels, [:])
    }

    func testDecodesInspectOfRunningContainerWithFailingHealthcheck() throws {
        let details = try DockerResponseDecoder.containerDetails(from: Self.fixture("inspect-running-unhealthy.json"))
        XCTAssertEqual(details.id, "7aff0a668303573b29aefcc17b09d510c9374e0c32873d97d8540b4aa4b9ff4c")
        XCTAssertEqual(details.name, "crowsnest-test-rec-healthy")
        XCTAssertEqual(details.image, "crowsnest-test/busybox:latest")
        XCTAssertEqual(details.labels, ["com.example.tier": "web", "crowsnest.test": "1"])
        XCTAssertEqual(details.state, "running")
        XCTAssertEqual(details.pid, 11305)
        XCTAssertEqual(details.exitCode, 0)
        XCTAssertFalse(details.oomKilled)
        XCTAssertEqual(details.startedAtUnixNano, 1_795_612_773_049_352_500)
        XCTAssertNil(details.finishedAtUnixNano, "0001-01-01T00:00:00Z means not finished")
        XCTAssertEqual(details.health, DockerHealth(status: "unhealthy", failingStreak: 19, lastOutput: "probe-ok\n", lastExitCode: 1))
        XCTAssertEqual(details.restartCount, 0)
        XCTAssertEqual(details.cpuLimitCores, 0.5, "--cpus 0.5 is NanoCpus 500000000")
        XCTAssertEqual(details.memoryLimitBytes, 64 * 1024 * 1024)
    }

    func testDecodesInspectOfExitedContainerWithCpuQuota() throws {
        let details = try DockerResponseDecoder.containerDetails(from: Self.fixture("inspect-exited.json"))
        XCTAssertEqual(details.name, "crowsnest-test-rec-exited")
        XCTAssertEqual(details.state, "exited")
        XCTAssertEqual(details.pid, 0)
        XCTAssertEqual(details.exitCode, 3)
        XCTAssertFalse(details.oomKilled)
        XCTAssertEqual(details.startedAtUnixNano, 1_795_612_773_390_177_328)
        XCTAssertEqual(details.finishedAtUnixNano, 1_795_612_773_397_031_897)
        XCTAssertNil(details.health, "no HEALTHCHECK means no health")
        XCTAssertEqual(details.cpuLimitCores, 0.25, "CpuQuota 25000 / CpuPeriod 100000")
        XCTAssertEqual(details.memoryLimitBytes, 0)
        XCTAssertEqual(details.labels, [:])
    }

    func testDecodesInspectOfOomKilledContainer() throws {
        let details = try DockerResponseDecoder.containerDetails(from: Self.fixture("inspect-oom.json"))
        XCTAssertEqual(details.id, "a4ee6a93727edd6c862629dbbcccf7ecb5c56ccfbf5a7d62d91807b34f9e5b39")
        XCTAssertTrue(details.oomKilled)
        XCTAssertEqual(details.exitCode, 137)
        XCTAssertEqual(details.state, "exited")
        XCTAssertEqual(details.memoryLimitBytes, 8 * 1024 * 1024)
        XCTAssertEqual(details.cpuLimitCores, 0)
        XCTAssertEqual(details.startedAtUnixNano, 1_795_612_782_882_478_310)
        XCTAssertEqual(details.finishedAtUnixNano, 1_795_612_782_964_652_849)
    }

    func testDecodesOneShotStatsOnCgroupV1() throws {
        let stats = try XCTUnwrap(DockerResponseDecoder.stats(from: Self.fixture("stats-oneshot.json")))
        XCTAssertEqual(stats.source, .dockerStats)
        XCTAssertEqual(stats.readUnixNano, 1_795_612_793_992_397_697)
        XCTAssertEqual(stats.cpuUsageNs, 454_686_375)
        XCTAssertEqual(stats.cpuThrottledPeriods, 0)
        XCTAssertEqual(stats.cpuThrottledNs, 0)
        XCTAssertEqual(stats.memoryUsageBytes, 798_720)
        XCTAssertEqual(stats.memoryInactiveFileBytes, 4096, "total_inactive_file on cgroup v1")
        XCTAssertEqual(stats.memoryWorkingSetBytes, 798_720 - 4096)
        XCTAssertEqual(stats.memoryLimitBytes, 0, "Docker's limit is the host's memory when unlimited: not taken")
        XCTAssertEqual(stats.network.rxBytes, 1182)
        XCTAssertEqual(stats.network.rxPackets, 13)
        XCTAssertEqual(stats.network.txBytes, 0)
        XCTAssertEqual(stats.blockReadBytes, 0)
        XCTAssertEqual(stats.blockWriteOps, 0)
        XCTAssertEqual(stats.pids, 2)
    }

    func testSumsNetworksAndLowercaseBlockIOOnCgroupV2Shape() throws {
        let stats = try XCTUnwrap(DockerResponseDecoder.stats(from: Self.fixture("stats-cgroupv2-handwritten.json")))
        XCTAssertEqual(stats.readUnixNano, 1_795_613_400_123_456_789)
        XCTAssertEqual(stats.cpuUsageNs, 98_765_432_100)
        XCTAssertEqual(stats.cpuThrottledPeriods, 37)
        XCTAssertEqual(stats.cpuThrottledNs, 2_500_000_000)
        XCTAssertEqual(stats.memoryUsageBytes, 52_428_800)
        XCTAssertEqual(stats.memoryInactiveFileBytes, 10_485_760, "inactive_file on cgroup v2")
        XCTAssertEqual(stats.memoryWorkingSetBytes, 41_943_040)
        XCTAssertEqual(stats.memoryLimitBytes, 0)
        XCTAssertEqual(stats.network, NetworkCounters(rxBytes: 1500, txBytes: 2700, rxPackets: 15, txPackets: 27,
                                                      rxErrors: 1, txErrors: 3, rxDropped: 3, txDropped: 4))
        XCTAssertEqual(stats.blockReadBytes, 4_096_904)
        XCTAssertEqual(stats.blockWriteBytes, 16_777_216)
        XCTAssertEqual(stats.blockReadOps, 0, "io_serviced_recursive is null")
        XCTAssertEqual(stats.pids, 7)
    }

    func testSumsUppercaseBlockIOOpsOfCgroupV1() throws {
        let json = """
            {"read":"2026-01-01T00:00:00Z","blkio_stats":{
              "io_service_bytes_recursive":[{"major":8,"minor":0,"op":"Read","value":100},
                {"major":8,"minor":0,"op":"Write","value":200},{"major":8,"minor":0,"op":"Sync","value":300},
                {"major":8,"minor":0,"op":"Total","value":300},{"major":8,"minor":16,"op":"Read","value":1}],
              "io_serviced_recursive":[{"major":8,"minor":0,"op":"Read","value":4},{"major":8,"minor":0,"op":"Write","value":5},
                {"major":8,"minor":0,"op":"Total","value":9}]}}
            """
        let stats = try XCTUnwrap(DockerResponseDecoder.stats(from: Data(json.utf8)))
        XCTAssertEqual(stats.blockReadBytes, 101)
        XCTAssertEqual(stats.blockWriteBytes, 200)
        XCTAssertEqual(stats.blockReadOps, 4)
        XCTAssertEqual(stats.blockWriteOps, 5)
        XCTAssertEqual(stats.readUnixNano, 1_767_225_600_000_000_000)
    }

    func testStatsOfStoppedContainerHaveNoFigures() throws {
        XCTAssertNil(try DockerResponseDecoder.stats(from: Self.fixture("stats-stopped.json")),
                     "a container that is not running has no figures (zero read time)")
    }

    func testDecodesEngineVersion() throws {
        XCTAssertEqual(try DockerResponseDecoder.serverVersion(from: Self.fixture("version.json")), "20.10.24+dfsg1")
    }

    static func fixtureEvents() throws -> [DockerEvent] {
        let text = String(decoding: try fixture("events.ndjson"), as: UTF8.self)
        return try text.split(separator: "\n").map { try DockerResponseDecoder.event(fromLine: Data($0.utf8)) }
    }

    func testDecodesDieEventWithExitCodeAndNanosecondTime() throws {
        let events = try Self.fixtureEvents()
        XCTAssertEqual(events.count, 34)
        let die = try XCTUnwrap(events.first { $0.action == "die" })
        XCTAssertEqual(die.name, "crowsnest-test-rec-exited")
        XCTAssertEqual(die.id, "ec4a50577f18447a2f2c733f10c57ec9946c159c31992fb0be11d7c575cfaffe")
        XCTAssertEqual(die.rawAction, "die")
        XCTAssertEqual(die.exitCode, 3)
        XCTAssertNil(die.signal)
        XCTAssertNil(die.healthStatus)
        XCTAssertEqual(die.timeUnixNano, 1_795_612_773_429_339_524)
        XCTAssertEqual(die.attributes["image"], "crowsnest-test/busybox:latest")
    }

    func testDecodesHealthStatusActionWithItsDetail() throws {
        let events = try Self.fixtureEvents()
        let health = events.filter { $0.action == "health_status" }
        XCTAssertEqual(health.map(\.rawAction), ["health_status: unhealthy", "health_status: healthy"])
        XCTAssertEqual(health.map(\.healthStatus), ["unhealthy", "healthy"])
        XCTAssertEqual(health.map(\.name), ["crowsnest-test-rec-healthy", "crowsnest-test-rec-ok"])
        XCTAssertEqual(health.map(\.timeUnixNano), [1_795_612_776_246_168_182, 1_795_612_783_570_165_631])
    }

    func testDecodesKillSignalOomStopRestartAndDestroy() throws {
        let events = try Self.fixtureEvents()
        let forOk = events.filter { $0.name == "crowsnest-test-rec-ok" }.map(\.action)
        XCTAssertEqual(forOk, ["create", "start", "health_status", "kill", "kill", "die", "stop", "destroy"])
        let kills = events.filter { $0.action == "kill" && $0.name == "crowsnest-test-rec-ok" }
        XCTAssertEqual(kills.map(\.signal), ["15", "9"])
        XCTAssertEqual(kills.map(\.exitCode), [nil, nil])
        let oom = try XCTUnwrap(events.first { $0.action == "oom" })
        XCTAssertEqual(oom.name, "crowsnest-test-rec-oom")
        XCTAssertEqual(oom.timeUnixNano, 1_795_612_782_961_904_712)
        let oomDie = try XCTUnwrap(events.first { $0.action == "die" && $0.name == "crowsnest-test-rec-oom" })
        XCTAssertEqual(oomDie.exitCode, 137)
        XCTAssertEqual(events.filter { $0.action == "restart" }.map(\.name), ["crowsnest-test-rec-io"])
        let exec = try XCTUnwrap(events.first { $0.rawAction.hasPrefix("exec_start") })
        XCTAssertEqual(exec.action, "exec_start")
        XCTAssertNil(exec.healthStatus)
    }

    func testEventWithoutTimeNanoFallsBackToSeconds() throws {
        let line = #"{"Type":"container","Action":"start","Actor":{"ID":"abc","Attributes":{"name":"web"}},"time":1700000000}"#
        let event = try DockerResponseDecoder.event(fromLine: Data(line.utf8))
        XCTAssertEqual(event.timeUnixNano, 1_700_000_000_000_000_000)
        XCTAssertEqual(event.id, "abc")
        XCTAssertEqual(event.name, "web")
    }

    func testMalformedEventLineThrows() {
        XCTAssertThrowsError(try DockerResponseDecoder.event(fromLine: Data("{\"Action\":".utf8)))
    }
}
