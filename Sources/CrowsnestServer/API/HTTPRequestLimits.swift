import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTPTypes

/// Limits on how slowly and how much a client may send the HTTP API, enforced per connection.
public struct HTTPRequestLimits: Sendable {
    /// A new connection must deliver a complete request head within this time.
    public var headerTimeout: TimeAmount
    /// After a response, the next request head must be complete within this time (keep-alive); a client that
    /// trickles one header byte a minute is closed here, where the idle timeout alone would never fire.
    public var keepAliveTimeout: TimeAmount
    /// Largest request body accepted. A request that declares more is answered 413 without being read; one that
    /// sends more without declaring it (chunked) is cut off.
    public var maxBodyBytes: Int

    /// 1 MiB: far above any JSON the API takes.
    public static let defaultMaxBodyBytes = 1 << 20

    /// Defaults: 10 s for a request head, 60 s between requests, 1 MiB bodies.
    public init(headerTimeout: TimeAmount = .seconds(10), keepAliveTimeout: TimeAmount = .seconds(60),
                maxBodyBytes: Int = HTTPRequestLimits.defaultMaxBodyBytes) {
        self.headerTimeout = headerTimeout
        self.keepAliveTimeout = keepAliveTimeout
        self.maxBodyBytes = maxBodyBytes
    }
}

extension HTTPRequestLimits {
    /// Hummingbird's HTTP/1 server with these limits: header and keep-alive deadlines, the body cap, and the
    /// idle timeout (nothing read for `keepAliveTimeout`) that also ends a stalled request body.
    public func http1Server(logger: Logger) -> HTTPServerBuilder {
        let limits = self
        return .http1(configuration: .init(
            additionalChannelHandlers: [HTTPRequestLimitHandler(limits: limits, logger: logger)],
            idleTimeout: limits.keepAliveTimeout))
    }
}

/// Enforces `HTTPRequestLimits` on one HTTP/1 connection; sits after the HTTP codec, before Hummingbird's router.
final class HTTPRequestLimitHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let limits: HTTPRequestLimits
    private let logger: Logger
    private var headDeadline: Scheduled<Void>?
    private var bodyBytes = 0
    /// A refused request: its remaining parts are dropped until the connection closes.
    private var discarding = false

    init(limits: HTTPRequestLimits, logger: Logger) {
        self.limits = limits
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { armHeadDeadline(context: context, in: limits.headerTimeout, reason: "no complete request head") }
    }

    func channelActive(context: ChannelHandlerContext) {
        armHeadDeadline(context: context, in: limits.headerTimeout, reason: "no complete request head")
        context.fireChannelActive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        headDeadline?.cancel()
        headDeadline = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if discarding { return }
        let part = unwrapInboundIn(data)
        switch part {
        case .head(let head):
            headDeadline?.cancel()
            headDeadline = nil
            bodyBytes = 0
            if let declared = head.headerFields[.contentLength].flatMap(Int.init), declared > limits.maxBodyBytes {
                refuseTooLarge(context: context, declared: declared)
                return
            }
        case .body(let buffer):
            bodyBytes += buffer.readableBytes
            if bodyBytes > limits.maxBodyBytes {
                logger.notice("HTTP request body over the limit; connection closed", metadata: [
                    "http.max_body_bytes": "\(limits.maxBodyBytes)", "peer.address": "\(context.remoteAddress.map { "\($0)" } ?? "?")"])
                discarding = true
                context.close(promise: nil)
                return
            }
        case .end:
            break
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) {
            armHeadDeadline(context: context, in: limits.keepAliveTimeout, reason: "no next request head")
        }
        context.write(data, promise: promise)
    }

    func channelInactive(context: ChannelHandlerContext) {
        headDeadline?.cancel()
        headDeadline = nil
        context.fireChannelInactive()
    }

    private func armHeadDeadline(context: ChannelHandlerContext, in timeout: TimeAmount, reason: String) {
        headDeadline?.cancel()
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        let logger = self.logger
        headDeadline = context.eventLoop.scheduleTask(in: timeout) {
            let context = loopBound.value
            logger.debug("HTTP connection closed: \(reason) within \(timeout)",
                         metadata: ["peer.address": "\(context.remoteAddress.map { "\($0)" } ?? "?")"])
            context.close(promise: nil)
        }
    }

    /// Answers 413 with the API's error body and closes; the request never reaches a route.
    private func refuseTooLarge(context: ChannelHandlerContext, declared: Int) {
        discarding = true
        let message = #"{"error":{"code":"payload_too_large","message":"request body of \#(declared) bytes is over the limit of \#(limits.maxBodyBytes) bytes"}}"#
        var body = context.channel.allocator.buffer(capacity: message.utf8.count)
        body.writeString(message)
        let response = HTTPResponse(status: .contentTooLarge, headerFields: [
            .contentType: "application/json; charset=utf-8", .contentLength: "\(body.readableBytes)", .connection: "close"])
        context.write(wrapOutboundOut(.head(response)), promise: nil)
        context.write(wrapOutboundOut(.body(body)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in context.close(promise: nil) }
    }
}
