import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// HTTP/1.1 GET requests to the Docker Engine over its unix socket, one connection per request.
///
/// The engine is local, so connecting costs microseconds: a connection per request keeps no pool, no idle sockets
/// and no state between calls, and cancelling a call closes its socket. Written on NIOHTTP1 directly because a
/// general HTTP client (AsyncHTTPClient with HTTP/2, proxies, TLS and configuration) more than doubled the agent's
/// resident code for these few GETs.
struct DockerSocketTransport: Sendable {
    let socketPath: String
    let eventLoopGroup: any EventLoopGroup
    let connectTimeout: TimeAmount

    /// The connection ended before the engine finished its answer.
    struct ClosedEarly: Error, CustomStringConvertible {
        var description: String { "the engine closed the connection before the answer was complete" }
    }

    /// The engine accepted the connection but did not start answering within the head timeout.
    struct NoAnswer: Error {}

    /// An answer's body was larger than the caller accepts.
    struct TooLarge: Error {
        var limit: Int
    }

    /// The body of one answer, read chunk by chunk as the engine sends it.
    struct ResponseBody {
        fileprivate var parts: NIOAsyncChannelInboundStream<HTTPClientResponsePart>.AsyncIterator
        fileprivate var finished = false

        /// The next chunk, or nil at the end of the answer.
        mutating func next() async throws -> ByteBuffer? {
            guard !finished else { return nil }
            while let part = try await parts.next() {
                switch part {
                case .head: continue
                case .body(let chunk): return chunk
                case .end:
                    finished = true
                    return nil
                }
            }
            throw ClosedEarly()
        }

        /// The whole body; throws `TooLarge` as soon as it passes `limit` bytes.
        mutating func collect(upTo limit: Int) async throws -> ByteBuffer {
            var body = ByteBuffer()
            while var chunk = try await next() {
                guard body.readableBytes + chunk.readableBytes <= limit else { throw TooLarge(limit: limit) }
                body.writeBuffer(&chunk)
            }
            return body
        }
    }

    /// Sends `GET uri` (path and query) and hands the answer's head and body to `handle`, which runs while the
    /// connection is open; the connection is closed when it returns or throws. Without the answer's head within
    /// `headTimeout` the connection is closed and `NoAnswer` thrown (a long body, like the event stream, is fine).
    func get<Result: Sendable>(_ uri: String, headTimeout: Duration,
                               handle: (HTTPResponseHead, inout ResponseBody) async throws -> Result) async throws -> Result {
        let channel = try await ClientBootstrap(group: eventLoopGroup)
            .connectTimeout(connectTimeout)
            .connect(unixDomainSocketPath: socketPath) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(wrappingChannelSynchronously: channel)
                }
            }
        return try await channel.executeThenClose { inbound, outbound in
            var headers = HTTPHeaders()
            // HTTP/1.1 requires a Host; the engine ignores it on its socket.
            headers.add(name: "Host", value: "docker")
            headers.add(name: "Connection", value: "close")
            try await outbound.write(.head(HTTPRequestHead(version: .http1_1, method: .GET, uri: uri, headers: headers)))
            try await outbound.write(.end(nil))
            let timedOut = TimedOut()
            let (seconds, attoseconds) = headTimeout.components
            let deadline = channel.channel.eventLoop.scheduleTask(
                in: .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
            ) { [channel = channel.channel] in
                timedOut.flag.store(true, ordering: .relaxed)
                channel.close(promise: nil)
            }
            var parts = inbound.makeAsyncIterator()
            var head: HTTPResponseHead?
            do {
                while head == nil, let part = try await parts.next() {
                    // 1xx interim answers carry no body; the final head is the first with another status.
                    if case .head(let received) = part, received.status.code >= 200 { head = received }
                }
            } catch where timedOut.flag.load(ordering: .relaxed) {
                throw NoAnswer()
            }
            deadline.cancel()
            guard let head else { throw timedOut.flag.load(ordering: .relaxed) ? NoAnswer() : ClosedEarly() }
            var body = ResponseBody(parts: parts)
            return try await handle(head, &body)
        }
    }

    private final class TimedOut: Sendable {
        let flag = Atomic<Bool>(false)
    }
}
