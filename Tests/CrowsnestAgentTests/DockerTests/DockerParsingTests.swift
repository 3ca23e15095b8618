import CrowsnestAgent
import CrowsnestWire
import Foundation
import XCTest

/// Timestamps, event-stream line splitting, DOCKER_HOST handling and the mapping to wire messages.
final class DockerParsingTests: XCTestCase {
    // MARK: Timestamps

    func testParsesRFC3339WithNanosecondsAndShorterFractions() {
        XCTAssertEqual(DockerTimestamp.unixNanoseconds(fromRFC3339: "2026-11-25T13:30:00.123456789Z"), 1_795_613_400_123_456_789)
        XCTAssertEqual(DockerTimestamp.unixNanoseconds(fromRFC3339: "2026-11-25T13:19:33.0493525Z"), 1_795_612_773_049_352_500)
        XCTAssertEqual(DockerTimestamp.unixNanoseconds(fromRFC3339: "2026-11-25T13:30:00Z"), 1_795_613_400_000_000_000)
        XCTAssertEqual(DockerTimestamp.unixNanoseconds(fromRFC3339: "1970-01-01T00:00:00Z"), 0)
        XCTAssertEqual(DockerTimestamp.unixNanoseconds(fromRFC3339: "2024-02-29T23:59:59.5Z"), 1_709_251_199_500_000_000)
    }

    func testParsesOffsetsAndTruncatesBeyondNanoseconds() {
        XCTAssertEqual(DockerTimestamp.unixNanoseconds(fromRFC3339: "2026-11-25T14:30:00.000000000+01:00"), 1_795_613_400_000_000_000)
        XCTAssertEqual(DockerTimestamp.unixNanoseconds(fromRFC3339: "2026-11-25T08:00:00-05:30"), 1_795_613_400_000_000_000)
        XCTAssertEqual(DockerTimestamp.unixNanoseconds(fromRFC3339: "2026-11-25T13:30:00.1234567891234Z"), 1_795_613_400_123_456_789)
    }

    func testZeroTimeAndGarbageReadAsNone() {
        XCTAssertNil(DockerTimestamp.unixNanoseconds(fromRFC3339: "0001-01-01T00:00:00Z"))
        XCTAssertNil(DockerTimestamp.unixNanoseconds(fromRFC3339: ""))
        XCTAssertNil(DockerTimestamp.unixNanoseconds(fromRFC3339: "2026-11-25"))
        XCTAssertNil(DockerTimestamp.unixNanoseconds(fromRFC3339: "2026-13-25T13:30:00Z"))
        XCTAssertNil(DockerTimestamp.unixNanoseconds(fromRFC3339: "2026-11-25T13:30:00.Z"))
        XCTAssertNil(DockerTimestamp.unixNanoseconds(fromRFC3339: "2026-11-25T13:30:00Zjunk"))
    }

    // MARK: Event stream lines

    func testSplitsEventLinesAcrossArbitraryChunkBoundaries() throws {
        let data = try DockerFixtureTests.fixture("events.ndjson")
        let expected = try DockerFixtureTests.fixtureEvents()
        var generator = SplitMix64(seed: 42)
        for _ in 0..<20 {
            var splitter = DockerEventLineSplitter()
            var events: [DockerEvent] = []
            var offset = 0
            let bytes = [UInt8](data)
            while offset < bytes.count {
                let size = Int(generator.next() % 300) + 1
                let end = min(offset + size, bytes.count)
                for case .complete(let line) in splitter.append(bytes[offset..<end]) {
                    events.append(try DockerResponseDecoder.event(fromLine: Data(line)))
                }
                offset = end
            }
            XCTAssertNil(splitter.finish())
            XCTAssertEqual(events, expected)
        }
    }

    func testSplitterHandlesCRLFBlankLinesAndUnterminatedLastLine() throws {
        var splitter = DockerEventLineSplitter()
        XCTAssertEqual(splitter.append(Array("{\"a\":1}\r\n\n  \r\n{\"b\"".utf8)), [.complete(Array("{\"a\":1}".utf8))])
        XCTAssertEqual(splitter.pendingByteCount, 4)
        XCTAssertEqual(splitter.append(Array(":2}".utf8)), [])
        XCTAssertEqual(splitter.finish(), .complete(Array("{\"b\":2}".utf8)))
        XCTAssertEqual(splitter.pendingByteCount, 0)
    }

    /// A line over the cap keeps only its ends (memory stays bounded) and the stream goes on with the next line.
    func testAnOverlongLineKeepsItsEndsAndTheNextLineStillComesThrough() {
        var splitter = DockerEventLineSplitter(maxLineBytes: 16, keptEndBytes: 4)
        XCTAssertEqual(splitter.append(Array(repeating: UInt8(ascii: "x"), count: 16)), [], "16 bytes is still a line")
        var out = splitter.append(Array("HEAD".utf8))
        for _ in 0..<10_000 { out += splitter.append(Array("middle".utf8)) }
        XCTAssertLessThanOrEqual(splitter.pendingByteCount, 4 + 8, "an overlong line is not buffered")
        out += splitter.append(Array("TAIL\r\n{\"ok\":1}\n".utf8))
        let expectedOverlong = DockerEventLineSplitter.OverlongLine(head: Array("xxxx".utf8), tail: Array("TAIL".utf8),
                                                                    byteCount: 16 + 4 + 60_000 + 5)
        let expected: [DockerEventLineSplitter.Line] = [.overlong(expectedOverlong), .complete(Array("{\"ok\":1}".utf8))]
        XCTAssertEqual(out, expected)
    }

    /// What a real die event of a container with huge labels keeps: id, action and exact time, no attributes.
    func testAnOverlongEventKeepsItsIDActionAndTime() throws {
        let value = String(repeating: "v", count: 15_000)
        let labels: String = (0..<100).map { (index: Int) -> String in "\"label.\(index)\":\"\(value)\"" }.joined(separator: ",")
        let line = #"{"status":"die","id":"\#(String(repeating: "ab", count: 32))","from":"busybox","Type":"container","Action":"die","Actor":{"ID":"\#(String(repeating: "ab", count: 32))","Attributes":{"exitCode":"3",\#(labels),"name":"web"}},"scope":"local","time":1764500000,"timeNano":1764500000123456789}"#
        var splitter = DockerEventLineSplitter()
        let pieces = splitter.append(Array((line + "\n").utf8))
        guard pieces.count == 1, case .overlong(let overlong) = pieces[0] else { return XCTFail("expected one overlong line, got \(pieces.count)") }
        let event = try XCTUnwrap(DockerResponseDecoder.event(fromOverlong: overlong))
        XCTAssertEqual(event.id, String(repeating: "ab", count: 32))
        XCTAssertEqual(event.action, "die")
        XCTAssertEqual(event.timeUnixNano, 1_764_500_000_123_456_789)
        XCTAssertEqual(event.attributes, [:])
        let health = DockerEventLineSplitter.OverlongLine(
            head: Array(#"{"status":"health_status: unhealthy","id":"c1","Type":"container","Action":"health_status: unhealthy","Actor":{"#.utf8),
            tail: Array(#""time":1764500001}"#.utf8), byteCount: 2 << 20)
        let healthEvent = try XCTUnwrap(DockerResponseDecoder.event(fromOverlong: health))
        XCTAssertEqual(healthEvent.healthStatus, "unhealthy")
        XCTAssertEqual(healthEvent.timeUnixNano, 1_764_500_001_000_000_000)
        XCTAssertNil(DockerResponseDecoder.event(fromOverlong: .init(head: Array("garbage".utf8), tail: [], byteCount: 9)))
    }

    // MARK: DOCKER_HOST

    func testSocketPathComesFromUnixDockerHostOrDefault() throws {
        XCTAssertEqual(try DockerClient.socketPath(dockerHost: nil), "/var/run/docker.sock")
        XCTAssertEqual(try DockerClient.socketPath(dockerHost: ""), "/var/run/docker.sock")
        XCTAssertEqual(try DockerClient.socketPath(dockerHost: "unix:///run/user/1000/docker.sock"), "/run/user/1000/docker.sock")
    }

    func testTcpDockerHostIsRejectedWithClearMessage() {
        XCTAssertThrowsError(try DockerClient.socketPath(dockerHost: "tcp://10.0.0.5:2375")) { error in
            let dockerError = error as? DockerClientError
            XCTAssertEqual(dockerError?.code, .unsupportedDockerHost)
            XCTAssertTrue("\(error)".contains("DOCKER_HOST=tcp://10.0.0.5:2375 is not supported"), "\(error)")
            XCTAssertTrue("\(error)".contains("unix socket"), "\(error)")
        }
        XCTAssertThrowsError(try DockerClient.socketPath(dockerHost: "ssh://me@host"))
    }

    // MARK: Mapping to wire messages

    func testMapsInspectAndStatsToContainerSample() throws {
        let details = try DockerResponseDecoder.containerDetails(from: DockerFixtureTests.fixture("inspect-running-unhealthy.json"))
        let stats = try XCTUnwrap(DockerResponseDecoder.stats(from: DockerFixtureTests.fixture("stats-cgroupv2-handwritten.json")))
        var sample = Crowsnest_V1_ContainerSample()
        sample.setIdentityAndState(from: details)
        sample.setCounters(stats)
        XCTAssertEqual(sample.dockerID, "7aff0a668303573b29aefcc17b09d510c9374e0c32873d97d8540b4aa4b9ff4c")
        XCTAssertEqual(sample.name, "crowsnest-test-rec-healthy")
        XCTAssertEqual(sample.image, "crowsnest-test/busybox:latest")
        XCTAssertEqual(sample.labels, ["com.example.tier": "web", "crowsnest.test": "1"])
        XCTAssertEqual(sample.state, "running")
        XCTAssertEqual(sample.health, "unhealthy")
        XCTAssertEqual(sample.healthOutput, "probe-ok")
        XCTAssertEqual(sample.restartCount, 0)
        XCTAssertEqual(sample.exitCode, 0)
        XCTAssertFalse(sample.oomKilled)
        XCTAssertEqual(sample.startedAtUnixMs, 1_795_612_773_049)
        XCTAssertEqual(sample.finishedAtUnixMs, 0)
        XCTAssertEqual(sample.cpuLimitCores, 0.5)
        XCTAssertEqual(sample.memoryLimitBytes, 67_108_864)
        XCTAssertTrue(sample.hasStats_p)
        XCTAssertEqual(sample.statsSource, "docker-stats")
        XCTAssertEqual(sample.cpuUsageNs, 98_765_432_100)
        XCTAssertEqual(sample.cpuThrottledPeriods, 37)
        XCTAssertEqual(sample.cpuThrottledNs, 2_500_000_000)
        XCTAssertEqual(sample.memoryUsageBytes, 52_428_800)
        XCTAssertEqual(sample.memoryWorkingSetBytes, 41_943_040)
        XCTAssertEqual(sample.netRxBytes, 1500)
        XCTAssertEqual(sample.netTxBytes, 2700)
        XCTAssertEqual(sample.netRxPackets, 15)
        XCTAssertEqual(sample.netTxPackets, 27)
        XCTAssertEqual(sample.netRxErrors, 1)
        XCTAssertEqual(sample.netTxErrors, 3)
        XCTAssertEqual(sample.netRxDropped, 3)
        XCTAssertEqual(sample.netTxDropped, 4)
        XCTAssertEqual(sample.blockReadBytes, 4_096_904)
        XCTAssertEqual(sample.blockWriteBytes, 16_777_216)
        XCTAssertEqual(sample.blockReadOps, 0)
        XCTAssertEqual(sample.blockWriteOps, 0)
        XCTAssertEqual(sample.pids, 7)
    }

    func testMapsExitedContainerWithoutHealthcheckAndWithoutStats() throws {
        let details = try DockerResponseDecoder.containerDetails(from: DockerFixtureTests.fixture("inspect-oom.json"))
        XCTAssertNil(try DockerResponseDecoder.stats(from: DockerFixtureTests.fixture("stats-stopped.json")))
        var sample = Crowsnest_V1_ContainerSample()
        sample.setIdentityAndState(from: details)
        XCTAssertEqual(sample.health, "none")
        XCTAssertEqual(sample.healthOutput, "")
        XCTAssertEqual(sample.state, "exited")
        XCTAssertEqual(sample.exitCode, 137)
        XCTAssertTrue(sample.oomKilled)
        XCTAssertEqual(sample.startedAtUnixMs, 1_795_612_782_882)
        XCTAssertEqual(sample.finishedAtUnixMs, 1_795_612_782_964)
        XCTAssertEqual(sample.memoryLimitBytes, 8_388_608)
        XCTAssertFalse(sample.hasStats_p, "a stopped container has no figures")
        XCTAssertEqual(sample.statsSource, "")
    }

    func testMapsEventsToWireEventsWithExitCodeAndDetail() throws {
        let events = try DockerFixtureTests.fixtureEvents().map(Crowsnest_V1_ContainerEvent.init)
        let die = try XCTUnwrap(events.first { $0.action == "die" })
        XCTAssertEqual(die.exitCode, 3)
        XCTAssertEqual(die.detail, "")
        XCTAssertEqual(die.name, "crowsnest-test-rec-exited")
        XCTAssertEqual(die.dockerID, "ec4a50577f18447a2f2c733f10c57ec9946c159c31992fb0be11d7c575cfaffe")
        XCTAssertEqual(die.timeUnixNano, 1_795_612_773_429_339_524)
        let unhealthy = try XCTUnwrap(events.first { $0.action == "health_status" })
        XCTAssertEqual(unhealthy.detail, "unhealthy")
        XCTAssertEqual(unhealthy.exitCode, -1)
        let kill = try XCTUnwrap(events.first { $0.action == "kill" })
        XCTAssertEqual(kill.detail, "15")
        XCTAssertEqual(kill.exitCode, -1)
        let start = try XCTUnwrap(events.first { $0.action == "start" })
        XCTAssertEqual(start.exitCode, -1)
        XCTAssertEqual(start.detail, "")
    }
}

/// Small deterministic generator so chunk sizes differ between rounds but never between runs.
struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
