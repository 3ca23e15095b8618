import CrowsnestAgent
import CrowsnestWire
import Foundation
import NIOCore
import NIOPosix
import Synchronization
import XCTest

/// The inventory and the event watcher against a stand-in engine that plays the recorded fixtures
/// (`Fixtures/docker`: a listing, three inspects, an event stream): no Docker needed, every answer known.
final class RecordedEngineTests: XCTestCase {
    private static let healthy = "7aff0a668303573b29aefcc17b09d510c9374e0c32873d97d8540b4aa4b9ff4c"
    private static let exited = "ec4a50577f18447a2f2c733f10c57ec9946c159c31992fb0be11d7c575cfaffe"

    /// The recorded events, as the engine sends them for the agent's subscription.
    private static func subscribedEvents() throws -> [DockerEvent] {
        try DockerFixtureTests.fixtureEvents().filter { DockerClient.defaultEventActions.contains($0.action) }
    }

    func testTheInventoryAndTheWatcherFollowARecordedEventStream() async throws {
        let engine = try await RecordedEngine.start()
        let logger = DockerTestSupport.makeLogger()
        let docker = DockerClient(socketPath: engine.socketPath, logger: logger)
        let inventory = ContainerInventory(docker: docker, logger: logger)
        let watcher = DockerEventWatcher(docker: docker, inventory: inventory, logger: logger)
        let tasks = [Task { try await inventory.run() }, Task { try await watcher.run() }]
        await inventory.waitUntilListed(timeout: .seconds(10))

        let expected = try Self.subscribedEvents()
        XCTAssertEqual(expected.count, 31, "the recording's 34 events less its three exec_* ones")
        var seen: [Crowsnest_V1_ContainerEvent] = []
        _ = try await DockerTestSupport.eventually(seconds: 10, what: "every recorded event") { () -> Bool? in
            seen += watcher.drain()
            return seen.count >= expected.count ? true : nil
        }
        XCTAssertEqual(seen.map(\.action), expected.map(\.action), "in Docker's order, nothing lost, nothing twice")
        XCTAssertEqual(seen.map(\.timeUnixNano), expected.map(\.timeUnixNano), "with Docker's times")
        XCTAssertFalse(engine.eventQueries.isEmpty)
        XCTAssertTrue(engine.eventQueries.allSatisfy { $0.contains("\"rename\"") && $0.contains("\"update\"") },
                      "rename and update are subscribed: \(engine.eventQueries)")
        let die = try XCTUnwrap(seen.first { $0.dockerID == Self.exited && $0.action == "die" })
        XCTAssertEqual(die.exitCode, 3)
        XCTAssertEqual(die.name, "crowsnest-test-rec-exited")
        let health = try XCTUnwrap(seen.first { $0.action == "health_status" && $0.dockerID == Self.healthy })
        XCTAssertEqual(health.detail, "unhealthy")
        XCTAssertTrue(seen.contains { $0.action == "oom" && $0.name == "crowsnest-test-rec-oom" })

        // What the inventory holds once the stream is played: the three containers the engine can inspect; the two
        // destroyed in the recording and the one it cannot inspect (gone, as far as the engine says) are not kept.
        let known = try await DockerTestSupport.eventually(seconds: 10, what: "the inventory settled") { () -> [ContainerInventory.Entry]? in
            let entries = inventory.snapshot().entries
            return entries.count == 3 && entries.allSatisfy({ $0.details != nil }) ? entries : nil
        }
        let byName = Dictionary(uniqueKeysWithValues: known.compactMap { $0.details }.map { ($0.name, $0) })
        XCTAssertEqual(Set(byName.keys), ["crowsnest-test-rec-healthy", "crowsnest-test-rec-exited", "crowsnest-test-rec-oom"])
        XCTAssertEqual(byName["crowsnest-test-rec-healthy"]?.state, "running")
        XCTAssertEqual(byName["crowsnest-test-rec-healthy"]?.health?.status, "unhealthy")
        XCTAssertEqual(byName["crowsnest-test-rec-exited"]?.exitCode, 3)
        XCTAssertEqual(byName["crowsnest-test-rec-oom"]?.oomKilled, true)
        XCTAssertEqual(inventory.name(of: Self.exited), "crowsnest-test-rec-exited")
        tasks.forEach { $0.cancel() }
        await engine.stop()
    }
}

/// A stand-in dockerd on a unix socket that answers from the recorded fixtures: `GET /containers/json` with
/// `list.json`, `GET /containers/{id}/json` with the inspect fixture of that id (404 for any other), and
/// `GET /events` with `events.ndjson` filtered as dockerd filters it (type, subscribed actions, `since`), the
/// stream then held open.
final class RecordedEngine: Sendable {
    let socketPath: String
    private let group: MultiThreadedEventLoopGroup
    private let listener: any Channel
    private let queries = Mutex<[String]>([])

    /// The `filters` parameter of every events request so far.
    var eventQueries: [String] { queries.withLock { $0 } }

    private init(socketPath: String, group: MultiThreadedEventLoopGroup, listener: any Channel) {
        self.socketPath = socketPath
        self.group = group
        self.listener = listener
    }

    static func start() async throws -> RecordedEngine {
        let path = "/tmp/crowsnest-recorded-engine-\(UUID().uuidString.prefix(8).lowercased()).sock"
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let answers = try Answers()
        let box = Mutex<RecordedEngine?>(nil)
        let listener = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(RecordedEngineHandler(answers: answers) { query in
                        box.withLock { $0 }?.queries.withLock { $0.append(query) }
                    })
                }
            }
            .bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true)
            .get()
        let engine = RecordedEngine(socketPath: path, group: group, listener: listener)
        box.withLock { $0 = engine }
        return engine
    }

    func stop() async {
        try? await listener.close()
        try? await group.shutdownGracefully()
        try? FileManager.default.removeItem(atPath: socketPath)
    }

    /// The fixtures, loaded once.
    struct Answers: Sendable {
        let list: String
        let inspects: [String: String]
        /// (time in ns, action without detail, type, the recorded line)
        let events: [(nanos: Int64, action: String, type: String, line: String)]

        init() throws {
            func text(_ name: String) throws -> String { String(decoding: try DockerFixtureTests.fixture(name), as: UTF8.self) }
            list = try text("list.json")
            var inspects: [String: String] = [:]
            for name in ["inspect-running-unhealthy.json", "inspect-exited.json", "inspect-oom.json"] {
                let body = try text(name)
                let id = try DockerResponseDecoder.containerDetails(from: Data(body.utf8)).id
                inspects[id] = body
            }
            self.inspects = inspects
            events = try text("events.ndjson").split(separator: "\n").map { line in
                let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] ?? [:]
                let action = (object["Action"] as? String ?? "").split(separator: ":").first.map(String.init) ?? ""
                return ((object["timeNano"] as? NSNumber)?.int64Value ?? 0, action, object["Type"] as? String ?? "", String(line))
            }
        }
    }
}

private final class RecordedEngineHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let answers: RecordedEngine.Answers
    private let noteEventQuery: @Sendable (String) -> Void
    private var request = ByteBuffer()
    private var answered = false

    init(answers: RecordedEngine.Answers, noteEventQuery: @escaping @Sendable (String) -> Void) {
        self.answers = answers
        self.noteEventQuery = noteEventQuery
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var chunk = Self.unwrapInboundIn(data)
        guard !answered else { return }
        request.writeBuffer(&chunk)
        guard let head = request.getString(at: request.readerIndex, length: request.readableBytes),
              head.hasSuffix("\r\n\r\n"), let line = head.split(separator: "\r\n").first
        else { return }
        answered = true
        let target = line.split(separator: " ").dropFirst().first.map(String.init) ?? "/"
        let components = URLComponents(string: target)
        let path = components?.path ?? target
        let query = Dictionary((components?.queryItems ?? []).map { ($0.name, $0.value ?? "") }, uniquingKeysWith: { _, last in last })
        let answerHead = "HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Type: application/json\r\nServer: Docker/20.10.24 (recorded)\r\n"
        func send(_ text: String) { context.writeAndFlush(Self.wrapOutboundOut(ByteBuffer(string: text)), promise: nil) }
        func answer(status: String = "200 OK", _ body: String) {
            let head = answerHead.replacingOccurrences(of: "200 OK", with: status)
            send(head + "Connection: close\r\nContent-Length: \(body.utf8.count)\r\n\r\n" + body)
            context.close(promise: nil)
        }

        if path == "/v1.41/containers/json" {
            answer(answers.list)
        } else if path.hasPrefix("/v1.41/containers/"), path.hasSuffix("/json") {
            let id = String(path.dropFirst("/v1.41/containers/".count).dropLast("/json".count))
            if let body = answers.inspects[id] {
                answer(body)
            } else {
                answer(status: "404 Not Found", #"{"message":"No such container: \#(id)"}"#)
            }
        } else if path == "/v1.41/events" {
            let filters = query["filters"] ?? ""
            noteEventQuery(filters)
            let parsed = (try? JSONSerialization.jsonObject(with: Data(filters.utf8))) as? [String: [String]] ?? [:]
            let since = Self.nanos(query["since"])
            send(answerHead + "Transfer-Encoding: chunked\r\n\r\n")
            for event in answers.events {
                if let types = parsed["type"], !types.contains(event.type) { continue }
                if let actions = parsed["event"], !actions.contains(event.action) { continue }
                if let since, event.nanos < since { continue }
                let line = event.line + "\n"
                send(String(line.utf8.count, radix: 16) + "\r\n" + line + "\r\n")
            }
            // Held open, as dockerd holds the stream open waiting for the next event.
        } else {
            answer(status: "404 Not Found", #"{"message":"page not found"}"#)
        }
    }

    /// Docker's "seconds.nanoseconds" `since` in nanoseconds.
    private static func nanos(_ value: String?) -> Int64? {
        guard let value, !value.isEmpty else { return nil }
        let parts = value.split(separator: ".", maxSplits: 1)
        guard let seconds = Int64(parts[0]) else { return nil }
        let fraction = parts.count > 1 ? String(parts[1].prefix(9)).padding(toLength: 9, withPad: "0", startingAt: 0) : "0"
        return seconds * 1_000_000_000 + (Int64(fraction) ?? 0)
    }
}
