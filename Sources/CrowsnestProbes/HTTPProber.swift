import CrowsnestWire
import NIOCore
import NIOHTTP1
import NIOSSL
import Synchronization
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// `http` checks: one request (and the redirects it leads to, each hop's addresses checked again), judged by
/// status, body keyword or regex, a JSON value, latency and the certificate's days left.
struct HTTPProber: Sendable {
    /// Most body bytes read for keyword, regex and JSON checks; the rest is not read.
    static let maximumBodyBytes = 1 << 20
    /// Most redirects followed.
    static let maximumRedirects = 10
    static let userAgent = "crowsnest-probe/0.1"

    let dialer: ProbeDialer
    let resolver: GuardedResolver
    let tls: ProbeTLS

    struct Response {
        var status: Int
        var headers: HTTPHeaders
        var body: [UInt8]
        var certificateNotAfter: Int64?
    }

    func probe(_ target: String, options: [String: String], deadline: ContinuousClock.Instant) async throws -> ProbeOutcome {
        let start = ContinuousClock.now
        let options = try HTTPProbeOptions(options)
        var url = try ProbeURL(target)
        var method = options.method
        var body = options.body
        var earliestExpiry: Int64?
        var hops = 0
        var response: Response
        while true {
            response = try await exchange(url, method: method, headers: options.headers, body: body,
                                          verifyTLS: options.verifyTLS, deadline: deadline)
            if let expiry = response.certificateNotAfter { earliestExpiry = min(earliestExpiry ?? expiry, expiry) }
            guard options.followRedirects, [301, 302, 303, 307, 308].contains(response.status),
                  let location = response.headers.first(name: "location") else { break }
            hops += 1
            guard hops <= Self.maximumRedirects else {
                throw ProbeFailure("more than \(Self.maximumRedirects) redirects (the last to \(location))")
            }
            url = try url.resolving(location)
            if response.status == 303 || ((response.status == 301 || response.status == 302) && method != "GET" && method != "HEAD") {
                method = "GET"
                body = nil
            }
        }
        let latency = (ContinuousClock.now - start).milliseconds
        var outcome = ProbeOutcome(ok: true, latencyMs: latency)
        outcome.httpStatus = response.status
        outcome.certificateNotAfterUnixMs = earliestExpiry.map { $0 * 1000 } ?? 0
        if hops > 0 { outcome.details["final_url"] = url.description }
        outcome.figures["body_bytes"] = Double(response.body.count)
        let problem: String?
        if options.keyword != nil || options.regex != nil || options.jsonPath != nil, #available(macOS 15.0, *) {
            // A check's own regex over up to 1 MiB of body, or a JSON document that large, can take long. Plain runs
            // execute on the socket poller's one thread, which serves every other plain probe of the process
            // (every tenant's, on a server) meanwhile, and TLS runs on an event loop shared with their channels:
            // the body is examined on the global executor instead.
            problem = await withTaskExecutorPreference(globalConcurrentExecutor) {
                Self.judge(response, options: options, latencyMs: latency, earliestExpiry: earliestExpiry)
            }
        } else {
            problem = Self.judge(response, options: options, latencyMs: latency, earliestExpiry: earliestExpiry)
        }
        if let problem {
            outcome.ok = false
            outcome.error = problem
        }
        return outcome
    }

    /// Why the answer fails the check; nil when it passes.
    static func judge(_ response: Response, options: HTTPProbeOptions, latencyMs: Double, earliestExpiry: Int64?) -> String? {
        guard options.expectedStatus.contains(where: { $0.contains(response.status) }) else {
            let wanted = options.expectedStatus.map { $0.lowerBound == $0.upperBound ? "\($0.lowerBound)" : "\($0.lowerBound)-\($0.upperBound)" }
            return "HTTP \(response.status), expected \(wanted.joined(separator: ", "))"
        }
        if let limit = options.maxLatencyMs, latencyMs > limit {
            return "answered in \(Int(latencyMs.rounded())) ms, over the limit of \(Int(limit)) ms"
        }
        let text = String(decoding: response.body, as: UTF8.self)
        if let keyword = options.keyword {
            let found = text.contains(keyword)
            if found && options.keywordAbsent { return "the body contains \"\(WireTextCleaner.excerpt(keyword))\", which must be absent" }
            if !found && !options.keywordAbsent { return "the body does not contain \"\(WireTextCleaner.excerpt(keyword))\"" }
        }
        if let pattern = options.regex {
            do {
                let regex = try Regex(pattern)
                if (try? regex.firstMatch(in: text)) == nil { return "the body does not match the regex \(WireTextCleaner.excerpt(pattern))" }
            } catch {
                return "the regex \(WireTextCleaner.excerpt(pattern)) does not compile here: \(error)"
            }
        }
        if let path = options.jsonPath, let expected = options.jsonEquals {
            guard let document = try? JSONValue.parse(Data(response.body)) else { return "the body is not JSON" }
            guard let found = path.evaluate(document) else { return "the JSON has nothing at the path" }
            if !Self.jsonEqual(found, expected) {
                return "the JSON value at the path is \(WireTextCleaner.excerpt(found.jsonText)), expected \(WireTextCleaner.excerpt(expected.jsonText))"
            }
        }
        if let minDays = options.certificateMinDays, let expiry = earliestExpiry {
            let daysLeft = (Double(expiry) - Date().timeIntervalSince1970) / 86_400
            if daysLeft < Double(minDays) {
                return daysLeft < 0 ? "the certificate expired \(Int((-daysLeft).rounded())) days ago"
                    : "the certificate expires in \(Int(daysLeft)) days, fewer than \(minDays)"
            }
        }
        return nil
    }

    /// Equal JSON values, numbers compared by value (1 equals 1.0).
    static func jsonEqual(_ a: JSONValue, _ b: JSONValue) -> Bool {
        switch (a, b) {
        case (.integer(let x), .number(let y)), (.number(let y), .integer(let x)): return Double(x) == y
        default: return a == b
        }
    }

    /// One request and its response, on a new connection to a checked address of the URL's host.
    func exchange(_ url: ProbeURL, method: String, headers: [(String, String)], body: String?, verifyTLS: Bool,
                  deadline: ContinuousClock.Instant) async throws -> Response {
        let addresses = try await resolver.resolve(host: url.host, port: url.port)
        let context = url.isTLS ? try (verifyTLS ? tls.verifyingContext() : tls.inspectingContext()) : nil
        let recorder = url.isTLS && !verifyTLS ? PeerChainRecorder() : nil
        let serverName = IPAddress(url.host) == nil ? url.host : nil
        var requestHeaders: [(String, String)] = [("Host", url.hostHeader), ("User-Agent", Self.userAgent), ("Connection", "close")]
        if let userInfo = url.userInfo {
            requestHeaders.append(("Authorization", "Basic " + Data(Self.percentDecoded(userInfo).utf8).base64EncodedString()))
        }
        // The check's own headers replace the defaults of the same name (case-insensitively).
        for (name, value) in headers {
            requestHeaders.removeAll { $0.0.lowercased() == name.lowercased() }
            requestHeaders.append((name, value))
        }
        // The body is framed here, never by the check's headers: a Transfer-Encoding or Content-Length of theirs
        // would announce a body other than the one sent, and the server would wait for it until the deadline.
        requestHeaders.removeAll { ["content-length", "transfer-encoding"].contains($0.0.lowercased()) }
        if let body {
            requestHeaders.append(("Content-Length", "\(body.utf8.count)"))
        } else if ["POST", "PUT", "PATCH"].contains(method) {
            // Some servers answer 411 to a body-less POST without a length.
            requestHeaders.append(("Content-Length", "0"))
        }
        let request = try HTTPRequestBytes.make(method: method, pathAndQuery: url.pathAndQuery, headers: requestHeaders, body: body)
        let isHEAD = method == "HEAD"
        #if os(Linux)
        if context == nil, let sockets = dialer.sockets {
            // Plain HTTP: a raw socket of the process's poller, no channel (most of a probe's cost otherwise).
            let (ended, _) = try await dialer.exchange(
                with: addresses, sending: request, through: sockets, deadline: deadline,
                conversation: HTTPResponseConversation(parser: HTTPResponseParser(isHEAD: isHEAD, maximumBodyBytes: Self.maximumBodyBytes)))
            try Task.checkCancellation()
            let parser = ended.parser
            guard parser.status != 0 else { throw ProbeFailure("\(url.hostHeader) closed the connection without an HTTP answer") }
            return Response(status: parser.status, headers: parser.headers, body: parser.body, certificateNotAfter: nil)
        }
        #endif
        // A plain handler, not an async channel: the request goes out when the connection is up and the response
        // completes one future, with no per-part hops between the event loop and the task (probes are frequent).
        let ((channel, answer), _) = try await dialer.connect(to: addresses, deadline: deadline) { channel in
            channel.eventLoop.makeCompletedFuture {
                if let context {
                    try channel.pipeline.syncOperations.addHandler(
                        ProbeTLS.clientHandler(context: context, serverName: serverName, recorder: recorder))
                }
                let collector = HTTPExchangeHandler(request: request, isHEAD: isHEAD, maximumBodyBytes: Self.maximumBodyBytes,
                                                    promise: channel.eventLoop.makePromise())
                try channel.pipeline.syncOperations.addHandler(collector)
                return (channel, collector.response)
            }
        }
        defer { channel.close(promise: nil) }
        // Cancellation (the run's deadline) closes the connection, which completes the future.
        let collected = try await answer.get(closingOnCancel: channel)
        try Task.checkCancellation()
        guard collected.status != 0 else { throw ProbeFailure("\(url.hostHeader) closed the connection without an HTTP answer") }
        var expiry = recorder?.earliestExpiry
        if url.isTLS, expiry == nil, let certificate = try? await channel.nioSSL_peerCertificate().get() {
            expiry = Int64(certificate.notValidAfter)
        }
        return Response(status: collected.status, headers: collected.headers, body: collected.body, certificateNotAfter: expiry)
    }

    static func percentDecoded(_ text: String) -> String {
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8).makeIterator()
        while let byte = iterator.next() {
            if byte == UInt8(ascii: "%"), let high = iterator.next(), let low = iterator.next(),
               let value = UInt8(String(decoding: [high, low], as: UTF8.self), radix: 16) {
                bytes.append(value)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

#if os(Linux)
/// An HTTP response read from a `SocketExchangePoller` connection by `HTTPResponseParser`: complete when the
/// response ends or its body limit is reached; a close before any byte leaves status 0 (no answer).
struct HTTPResponseConversation: SocketConversation {
    var parser: HTTPResponseParser

    mutating func connected() -> Bool { false }

    mutating func received(_ bytes: UnsafeRawBufferPointer) throws -> Bool {
        try parser.feed(bytes)
    }

    mutating func peerClosed() throws {
        _ = try parser.finishAtClose()
    }
}
#endif

/// Sends one HTTP request when the connection is up and reads the response with `HTTPResponseParser`: the final
/// head (1xx answers skipped), the body up to a limit. Completes when the response ends, the limit is reached, or
/// the connection closes (status 0 when no answer came); fails on a connection error or a malformed response.
final class HTTPExchangeHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    struct Collected: Sendable {
        var status = 0
        var headers = HTTPHeaders()
        var body: [UInt8] = []
    }

    private let request: ByteBuffer
    private var parser: HTTPResponseParser
    private let promise: EventLoopPromise<Collected>
    private var done = false

    init(request: ByteBuffer, isHEAD: Bool, maximumBodyBytes: Int, promise: EventLoopPromise<Collected>) {
        self.request = request
        self.parser = HTTPResponseParser(isHEAD: isHEAD, maximumBodyBytes: maximumBodyBytes)
        self.promise = promise
    }

    var response: EventLoopFuture<Collected> { promise.futureResult }

    func channelActive(context: ChannelHandlerContext) {
        context.writeAndFlush(wrapOutboundOut(request), promise: nil)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !done else { return }
        let buffer = unwrapInboundIn(data)
        do {
            let complete = try buffer.withUnsafeReadableBytes { try parser.feed($0) }
            if complete { finish(context) }
        } catch {
            fail(context, error)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !done {
            do {
                _ = try parser.finishAtClose()
                finish(context)
            } catch {
                fail(context, error)
            }
        }
        context.fireChannelInactive()
    }

    /// A connection that never came up (the dialer tries the next address) still completes the promise.
    func handlerRemoved(context: ChannelHandlerContext) {
        finish(context)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(context, error)
    }

    private func fail(_ context: ChannelHandlerContext, _ error: any Error) {
        if !done {
            done = true
            promise.fail(error)
        }
        context.close(promise: nil)
    }

    private func finish(_ context: ChannelHandlerContext) {
        guard !done else { return }
        done = true
        promise.succeed(Collected(status: parser.status, headers: parser.headers, body: parser.body))
    }
}
