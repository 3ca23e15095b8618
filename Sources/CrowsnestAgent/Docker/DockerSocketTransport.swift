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
            while let part = try await DockerSocketTransport.nextPart(&parts) {
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
            let request: [HTTPClientRequestPart] = [
                .head(HTTPRequestHead(version: .http1_1, method: .GET, uri: uri, headers: headers)), .end(nil),
            ]
            // The engine answers a GET as soon as its head arrives and, as `Connection: close` asks, closes the socket
            // right after the answer (about 0.1 ms later on a local socket). NIO closes the channel on that EOF, and
            // from then on every write throws ChannelError.ioOnClosedChannel although the whole answer is already
            // buffered in `inbound`. Head and end therefore go out as one write: one hop to the event loop that
            // hands both to the pipeline before any byte reaches the engine, so the engine's close can no longer
            // land between them (`.end` of a GET carries no bytes at all; as a second write it used to fail the
            // call whenever this task was descheduled between the two writes for longer than the engine took).
            do {
                try await outbound.write(contentsOf: request)
            } catch where !(error is CancellationError) {
                // The channel was already closed (the engine hung up on accept): not a failure of its own. Whatever
                // the engine sent is in `inbound`; with no answer there, the reads below end in ClosedEarly, which
                // says what happened instead of NIO's bare "I/O on closed channel".
            }
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
                while head == nil, let part = try await Self.nextPart(&parts) {
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

    /// The next part of an answer. NIO's decoder reports a connection that ends inside a head or inside a
    /// length-delimited or chunked body as `HTTPParserError.invalidEOFState`; that is ClosedEarly too.
    fileprivate static func nextPart(
        _ parts: inout NIOAsyncChannelInboundStream<HTTPClientResponsePart>.AsyncIterator
    ) async throws -> HTTPClientResponsePart? {
        do {
            return try await parts.next()
        } catch HTTPParserError.invalidEOFState {
            throw ClosedEarly()
        }
    }

    private final class TimedOut: Sendable {
        let flag = Atomic<Bool>(false)
    }
}
