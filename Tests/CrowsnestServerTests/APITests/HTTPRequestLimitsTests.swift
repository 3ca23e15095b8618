import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import Synchronization
import XCTest

@testable import CrowsnestServer

/// The HTTP listener's limits against a real server on loopback and raw sockets: a client that trickles its
/// request head, one that idles between requests, and bodies over the cap, declared or not.
final class HTTPRequestLimitsTests: XCTestCase {
    private static let limits = HTTPRequestLimits(headerTimeout: .milliseconds(400), keepAliveTimeout: .milliseconds(800),
                                                  maxBodyBytes: 1024)

    /// Runs `body` with the port of a live server whose `/echo` route counts the bodies it was handed.
    private func withServer(_ body: @escaping @Sendable (Int, Counter) async throws -> Void) async throws {
        let echoed = Counter()
        let router = Router(context: APIRequestContext.self)
        router.get("/ping") { _, _ in "pong" }
        router.post("/echo") { request, context -> String in
            let buffer = try await request.body.collect(upTo: context.maxUploadSize)
            echoed.add()
            return "\(buffer.readableBytes)"
        }
        var logger = Logger(label: "crowsnest.tests.http-limits")
        logger.logLevel = .warning
        let app = Application(router: router, server: Self.limits.http1Server(logger: logger),
                              configuration: .init(address: .hostname("127.0.0.1", port: 0)), logger: logger)
        try await app.test(.live) { client in
            let port = try XCTUnwrap(client.port)
            try await body(port, echoed)
        }
    }

    func testAConnectionThatNeverCompletesItsRequestHeadIsClosed() async throws {
        try await withServer { port, _ in
            let socket = try RawSocket(port: port)
            try socket.send("GET /ping HTTP/1.1\r\nHost: x\r\n")
            // Trickle header lines faster than any idle timeout would notice, never finishing the head.
            let closed = await socket.trickle((0..<40).map { "X-Slow-\($0): y\r\n" }, every: .milliseconds(100))
            XCTAssertTrue(closed, "a request head trickled for 4 s was not cut off by the 0.4 s header deadline")
            XCTAssertEqual(socket.received, "", "nothing is answered to an incomplete head")
        }
    }

    func testAKeepAliveConnectionMustSendItsNextRequestInTime() async throws {
        try await withServer { port, _ in
            let socket = try RawSocket(port: port)
            try socket.send("GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
            let first = try await socket.waitFor("pong")
            XCTAssertTrue(first.hasPrefix("HTTP/1.1 200"), first)
            // The next head trickles in, one byte every 100 ms: the keep-alive deadline (0.8 s) still ends it.
            let closed = await socket.trickle("GET /ping HTTP/1.1\r\nHost: x\r\nX-Padding: aaaaaaaaaaaaaaaaaaaa\r\n".map { String($0) },
                                              every: .milliseconds(100))
            XCTAssertTrue(closed, "a second request head trickled for seconds was not cut off")
        }
    }

    func testABodyDeclaredOverTheLimitIsRefusedWith413AndNeverReachesTheRoute() async throws {
        try await withServer { port, echoed in
            let socket = try RawSocket(port: port)
            try socket.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1025\r\n\r\n")
            let response = try await socket.waitFor("}}")
            XCTAssertTrue(response.hasPrefix("HTTP/1.1 413"), response)
            XCTAssertTrue(response.contains(#""code":"payload_too_large""#), response)
            XCTAssertTrue(response.contains("1025 bytes is over the limit of 1024 bytes"), response)
            XCTAssertEqual(echoed.value, 0)
        }
    }

    func testAnUndeclaredChunkedBodyOverTheLimitIsCutOff() async throws {
        try await withServer { port, echoed in
            let socket = try RawSocket(port: port)
            try socket.send("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            let chunk = "c8\r\n" + String(repeating: "a", count: 200) + "\r\n"
            let closed = await socket.trickle(Array(repeating: chunk, count: 20), every: .milliseconds(20))
            XCTAssertTrue(closed, "4,000 chunked bytes against a 1,024-byte cap were accepted")
            XCTAssertFalse(socket.received.contains("HTTP/1.1 200"), socket.received)
            XCTAssertEqual(echoed.value, 0)
        }
    }

    func testABodyAtTheLimitIsAccepted() async throws {
        try await withServer { port, echoed in
            let socket = try RawSocket(port: port)
            try socket.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1024\r\n\r\n" + String(repeating: "b", count: 1024))
            let response = try await socket.waitFor("1024")
            XCTAssertTrue(response.hasPrefix("HTTP/1.1 200"), response)
            XCTAssertEqual(echoed.value, 1)
        }
    }
}

/// How many bodies a route was handed.
final class Counter: Sendable {
    private let count = Mutex(0)
    func add() { count.withLock { $0 += 1 } }
    var value: Int { count.withLock { $0 } }
}

/// A blocking TCP client socket on loopback, for sending exactly the bytes a hostile client would.
final class RawSocket: @unchecked Sendable {
    private let fd: Int32
    private(set) var received = ""

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else { throw RawSocketError("connect failed: errno \(errno)") }
    }

    deinit { close(fd) }

    /// Sends all of `text` (MSG_NOSIGNAL: a closed peer is an error, not SIGPIPE).
    func send(_ text: String) throws {
        let bytes = Array(text.utf8)
        let sent = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        guard sent == bytes.count else { throw RawSocketError("send failed: errno \(errno)") }
    }

    /// Sends `pieces` one at a time, `every` apart, until the peer closes; true when it did.
    func trickle(_ pieces: [String], every interval: Duration) async -> Bool {
        for piece in pieces {
            try? await Task.sleep(for: interval)
            if (try? send(piece)) == nil || isClosedByPeer() { return true }
        }
        return false
    }

    /// Reads what is there without waiting; true when the peer has closed the connection.
    func isClosedByPeer() -> Bool {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if count > 0 {
                received += String(decoding: buffer[..<count], as: UTF8.self)
                continue
            }
            if count == 0 { return true }
            return errno == ECONNRESET
        }
    }

    /// Waits (at most 5 s) until what was received contains `marker`.
    func waitFor(_ marker: String) async throws -> String {
        for _ in 0..<100 {
            _ = isClosedByPeer()
            if received.contains(marker) { return received }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw RawSocketError("no \(marker) within 5 s; received: \(received)")
    }
}

struct RawSocketError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
