#if os(Linux)
import Foundation
import NIOCore
import NIOPosix
import Synchronization
import XCTest

@testable import CrowsnestProbes

/// The raw-socket exchanges plain HTTP and TCP probes run on, against real TCP peers on loopback that answer in
/// pieces, cut answers short, never answer, or read a large request before answering.
final class SocketExchangePollerTests: XCTestCase {
    private var sockets: SocketExchangePoller {
        get throws { try XCTUnwrap(SocketExchangePoller.shared, "the poller could not start") }
    }

    private static func http() -> ByteBuffer { ExchangeParts.request() }

    private static func conversation() -> HTTPResponseConversation { ExchangeParts.conversation() }

    func testAnAnswerArrivingInPiecesIsReadUntilItIsCompleteWithoutWaitingForAClose() async throws {
        let peer = try await ScriptedTCPPeer.start(answer: [
            "HTTP/1.1 200 OK\r\nContent-Le", "ngth: 5\r\nX-Test: yes\r\n\r\nhel", "lo",
        ], pause: .milliseconds(30), thenClose: false)
        defer { Task { try? await peer.stop() } }
        let ended = try await sockets.exchange(to: peer.address, sending: Self.http(), conversation: Self.conversation())
        XCTAssertEqual(ended.parser.status, 200)
        XCTAssertEqual(ended.parser.headers.first(name: "x-test"), "yes")
        XCTAssertEqual(String(decoding: ended.parser.body, as: UTF8.self), "hello")
        XCTAssertEqual(peer.requestBytes, Self.http().readableBytes, "the whole request was sent")
        try await peer.waitForClosedConnections(1)  // closed by us once the answer was complete
    }

    func testAnAnswerCutShortByACloseIsAnErrorAndNoAnswerAtAllLeavesStatusZero() async throws {
        let cut = try await ScriptedTCPPeer.start(answer: ["HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"], thenClose: true)
        defer { Task { try? await cut.stop() } }
        do {
            _ = try await sockets.exchange(to: cut.address, sending: Self.http(), conversation: Self.conversation())
            XCTFail("a body cut short must not pass")
        } catch let failure as ProbeFailure {
            XCTAssertEqual(failure.reason, "the connection closed in the middle of the response body")
        }
        let silent = try await ScriptedTCPPeer.start(answer: [], thenClose: true)
        defer { Task { try? await silent.stop() } }
        let ended = try await sockets.exchange(to: silent.address, sending: Self.http(), conversation: Self.conversation())
        XCTAssertEqual(ended.parser.status, 0)
    }

    func testARefusedConnectionFailsAtTheConnectStageWithItsReason() async throws {
        let peer = try await ScriptedTCPPeer.start(answer: [], thenClose: true)
        let address = peer.address
        try await peer.stop()
        do {
            _ = try await sockets.exchange(to: address, sending: Self.http(), conversation: Self.conversation())
            XCTFail("nothing listens there")
        } catch let error as SocketExchangeError {
            XCTAssertEqual(error.stage, .connect)
            XCTAssertEqual(error.reason, "connection refused")
        }
        do {
            _ = try await sockets.exchange(to: address, sending: ByteBuffer(), conversation: ConnectionOnly())
            XCTFail("nothing listens there")
        } catch let error as SocketExchangeError {
            XCTAssertEqual(error.stage, .connect)
        }
    }

    func testARequestLargerThanTheSocketBuffersIsSentWhole() async throws {
        let size = 8 << 20
        let peer = try await ScriptedTCPPeer.start(answer: ["HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"],
                                                   thenClose: false, afterReading: size)
        defer { Task { try? await peer.stop() } }
        var request = ByteBuffer()
        request.writeRepeatingByte(UInt8(ascii: "x"), count: size)
        let ended = try await sockets.exchange(to: peer.address, sending: request, conversation: Self.conversation())
        XCTAssertEqual(ended.parser.status, 200)
        XCTAssertEqual(peer.requestBytes, size)
    }

    func testAnEarlyAnswerIsReadWhileTheRequestCannotBeSentWhole() async throws {
        // The peer answers after the first bytes and reads no more: the rest of an 8 MiB request can never leave,
        // and the answer must be read all the same (edge-triggered: its event is not reported twice).
        let peer = try await ScriptedTCPPeer.start(answer: ["HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\n\r\n"],
                                                   thenClose: false, stopReadingToAnswer: true)
        defer { Task { try? await peer.stop() } }
        var request = ByteBuffer()
        request.writeRepeatingByte(UInt8(ascii: "x"), count: 8 << 20)
        let sockets = try self.sockets
        let exchange = Task { [request] () async throws -> HTTPResponseConversation in
            try await sockets.exchange(to: peer.address, sending: request, conversation: ExchangeParts.conversation())
        }
        let watchdog = Task {
            try await Task.sleep(for: .seconds(5))
            exchange.cancel()
        }
        defer { watchdog.cancel() }
        do {
            let ended = try await exchange.value
            XCTAssertEqual(ended.parser.status, 413)
        } catch {
            XCTFail("the early answer was not read (cut at 5 s: \(error))")
        }
    }

    func testAConnectOnlyConversationEndsWhenTheConnectionIsUp() async throws {
        let peer = try await ScriptedTCPPeer.start(answer: [], thenClose: false)
        defer { Task { try? await peer.stop() } }
        _ = try await sockets.exchange(to: peer.address, sending: ByteBuffer(), conversation: ConnectionOnly())
        try await peer.waitForClosedConnections(1)
        XCTAssertEqual(peer.requestBytes, 0)
    }

    func testCancellingAnExchangeClosesItsSocketAtOnceAndNoDescriptorIsLeft() async throws {
        let peer = try await ScriptedTCPPeer.start(answer: [], thenClose: false)  // never answers
        defer { Task { try? await peer.stop() } }
        let sockets = try self.sockets
        let address = peer.address
        // Warm up whatever opens descriptors once (the poller, NIO's loops), then count.
        _ = try await sockets.exchange(to: address, sending: ByteBuffer(), conversation: ConnectionOnly())
        try await peer.waitForClosedConnections(1)
        let before = try Self.openDescriptors()
        let rounds = 40
        for round in 1...rounds {
            let exchange = Task { () async throws -> HTTPResponseConversation in
                try await sockets.exchange(to: address, sending: ExchangeParts.request(), conversation: ExchangeParts.conversation())
            }
            // Cancelled while it waits for the answer: once the peer has the connection.
            try await peer.waitForAcceptedConnections(1 + round)
            exchange.cancel()
            do {
                _ = try await exchange.value
                XCTFail("the peer never answers: only cancellation ends the exchange")
            } catch {
                XCTAssertTrue(error is CancellationError, "\(error)")
            }
        }
        // Cancelled before it started: fails at once, leaves nothing behind.
        let early = Task { () async throws -> HTTPResponseConversation in
            withUnsafeCurrentTask { $0?.cancel() }
            return try await sockets.exchange(to: address, sending: ExchangeParts.request(), conversation: ExchangeParts.conversation())
        }
        do {
            _ = try await early.value
            XCTFail("a cancelled task must not exchange")
        } catch {
            XCTAssertTrue(error is CancellationError, "\(error)")
        }
        for _ in 0..<200 {
            _ = try await sockets.exchange(to: address, sending: ByteBuffer(), conversation: ConnectionOnly())
        }
        try await peer.waitForClosedConnections(1 + rounds + 200)  // the early one never connected
        XCTAssertLessThanOrEqual(try Self.openDescriptors(), before, "every exchange closed its socket")
    }

    func testCancellationsRacingTheStartOfExchangesLeaveNoDescriptorOpen() async throws {
        // An answer at once, so a cancellation lands anywhere: before the table, between the table and epoll,
        // while the poller reads, or after the answer. Whoever is last with the socket closes it, exactly once.
        let peer = try await ScriptedTCPPeer.start(answer: ["HTTP/1.1 204 No Content\r\n\r\n"], thenClose: false)
        defer { Task { try? await peer.stop() } }
        let sockets = try self.sockets
        let address = peer.address
        // Warm-up, and how long a whole exchange takes here (the slowest of 20: a debug build on a busy machine).
        var whole = Duration.zero
        for _ in 0..<20 {
            let started = ContinuousClock.now
            _ = try await Task {
                try await sockets.exchange(to: address, sending: ExchangeParts.request(), conversation: ExchangeParts.conversation())
            }.value
            whole = max(whole, ContinuousClock.now - started)
        }
        try await peer.waitForClosedConnections(20)
        let before = try Self.openDescriptorList()
        var answered = 0
        var cancelled = 0
        for round in 0..<400 {
            let exchange = Task { () async throws -> HTTPResponseConversation in
                try await sockets.exchange(to: address, sending: ExchangeParts.request(), conversation: ExchangeParts.conversation())
            }
            // Cancelled from at once to 1.5 times an exchange's time after the start (spinning: a sleep is coarser).
            let cancelAt = ContinuousClock.now + whole * (1.5 * Double(round % 40) / 40)
            while ContinuousClock.now < cancelAt {}
            exchange.cancel()
            do {
                let ended = try await exchange.value
                XCTAssertEqual(ended.parser.status, 204)
                answered += 1
            } catch is CancellationError {
                cancelled += 1
            }
        }
        XCTAssertEqual(answered + cancelled, 400, "every exchange ends answered or cancelled, none with another error")
        XCTAssertGreaterThan(cancelled, 0, "some cancellations came before the answer")
        XCTAssertGreaterThan(answered, 0, "some exchanges were answered before their cancellation")
        // The peer (in this process) still accepts and closes its side of connections from its backlog.
        let deadline = ContinuousClock.now + .seconds(5)
        var left = try Self.openDescriptorList().subtracting(before)
        while !left.isEmpty, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
            left = try Self.openDescriptorList().subtracting(before)
        }
        XCTAssertEqual(left, [], "every exchange closed its socket (\(answered) answered, \(cancelled) cancelled)")
    }

    func testIPv6LoopbackWorksWhenTheMachineHasIt() async throws {
        guard let peer = try? await ScriptedTCPPeer.start(answer: ["HTTP/1.1 204 No Content\r\n\r\n"], thenClose: false, host: "::1") else {
            throw XCTSkip("no IPv6 loopback on this machine")
        }
        defer { Task { try? await peer.stop() } }
        let ended = try await sockets.exchange(to: peer.address, sending: Self.http(), conversation: Self.conversation())
        XCTAssertEqual(ended.parser.status, 204)
    }

    private static func openDescriptors() throws -> Int {
        try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count
    }

    /// Open descriptors with what each is ("7 -> socket:[123]"), to name a leaked one.
    private static func openDescriptorList() throws -> Set<String> {
        Set(try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").map { fd in
            "\(fd) -> \((try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(fd)")) ?? "?")"
        })
    }
}

/// The request and the answer's reader the tests use.
enum ExchangeParts {
    static func request() -> ByteBuffer { ByteBuffer(string: "GET / HTTP/1.1\r\nHost: test\r\n\r\n") }

    static func conversation() -> HTTPResponseConversation {
        HTTPResponseConversation(parser: HTTPResponseParser(isHEAD: false, maximumBodyBytes: 1 << 20))
    }
}

/// A TCP server on loopback that answers each connection, once it has read `afterReading` bytes (at least one;
/// zero: at once), with `answer`'s parts a pause apart, then closes or keeps the connection open. Counts the bytes
/// it read and the connections that closed.
final class ScriptedTCPPeer: Sendable {
    private let channel: any Channel
    private let counters: Counters
    let address: SocketAddress

    final class Counters: Sendable {
        let requestBytes = Atomic<Int>(0)
        let accepted = Atomic<Int>(0)
        let closed = Atomic<Int>(0)
    }

    static func start(answer: [String], pause: Duration = .zero, thenClose: Bool, afterReading: Int = 1,
                      stopReadingToAnswer: Bool = false, host: String = "127.0.0.1") async throws -> ScriptedTCPPeer {
        let counters = Counters()
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        Answerer(answer: answer, pause: pause, thenClose: thenClose, afterReading: afterReading,
                                 stopReading: stopReadingToAnswer, counters: counters))
                }
            }
            .bind(host: host, port: 0).get()
        return ScriptedTCPPeer(channel: channel, counters: counters, address: channel.localAddress!)
    }

    private init(channel: any Channel, counters: Counters, address: SocketAddress) {
        self.channel = channel
        self.counters = counters
        self.address = address
    }

    var requestBytes: Int { counters.requestBytes.load(ordering: .relaxed) }

    func stop() async throws { try await channel.close() }

    /// Waits (up to 5 s) until `count` connections have closed.
    func waitForClosedConnections(_ count: Int) async throws {
        let counters = self.counters
        try await waitFor(count, "closed") { counters.closed.load(ordering: .relaxed) }
    }

    /// Waits (up to 5 s) until `count` connections have been accepted.
    func waitForAcceptedConnections(_ count: Int) async throws {
        let counters = self.counters
        try await waitFor(count, "accepted") { counters.accepted.load(ordering: .relaxed) }
    }

    private func waitFor(_ count: Int, _ what: String, _ current: () -> Int) async throws {
        let deadline = ContinuousClock.now + .seconds(5)
        while current() < count {
            guard ContinuousClock.now < deadline else {
                XCTFail("\(current()) of \(count) connections \(what) within 5 s")
                return
            }
            try await Task.sleep(for: .milliseconds(2))
        }
    }

    private final class Answerer: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let answer: [String]
        let pause: Duration
        let thenClose: Bool
        let afterReading: Int
        let stopReading: Bool
        let counters: Counters
        private var read = 0
        private var answering = false

        init(answer: [String], pause: Duration, thenClose: Bool, afterReading: Int, stopReading: Bool, counters: Counters) {
            (self.answer, self.pause, self.thenClose, self.afterReading, self.stopReading, self.counters) =
                (answer, pause, thenClose, afterReading, stopReading, counters)
        }

        func channelActive(context: ChannelHandlerContext) {
            counters.accepted.add(1, ordering: .relaxed)
            if afterReading == 0 { startAnswering(context) }
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let bytes = unwrapInboundIn(data).readableBytes
            read += bytes
            counters.requestBytes.add(bytes, ordering: .relaxed)
            if read >= afterReading { startAnswering(context) }
        }

        func channelInactive(context: ChannelHandlerContext) {
            counters.closed.add(1, ordering: .relaxed)
        }

        private func startAnswering(_ context: ChannelHandlerContext) {
            guard !answering else { return }
            answering = true
            // Like a server refusing a request it will not read (413): the rest of it stays unread.
            if stopReading { context.channel.setOption(ChannelOptions.autoRead, value: false).whenComplete { _ in } }
            send(0, context)
        }

        private func send(_ index: Int, _ context: ChannelHandlerContext) {
            guard index < answer.count else {
                if thenClose { context.close(promise: nil) }
                return
            }
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: answer[index])), promise: nil)
            let nanoseconds = pause.components.seconds * 1_000_000_000 + pause.components.attoseconds / 1_000_000_000
            if nanoseconds == 0 {
                send(index + 1, context)
            } else {
                context.eventLoop.assumeIsolated().scheduleTask(in: .nanoseconds(nanoseconds)) { self.send(index + 1, context) }
            }
        }
    }
}
#endif
