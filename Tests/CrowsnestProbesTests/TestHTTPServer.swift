import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// A real HTTP/1.1 server on 127.0.0.1 (an ephemeral port) for probe tests, with a few fixed routes.
/// With a TLS configuration it serves HTTPS.
final class TestHTTPServer: Sendable {
    let channel: any Channel
    let port: Int

    static func start(tls: TLSConfiguration? = nil, host: String = "127.0.0.1") async throws -> TestHTTPServer {
        let context = try tls.map { try NIOSSLContext(configuration: $0) }
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let context { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context)) }
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Routes())
                }
            }
            .bind(host: host, port: 0).get()
        return TestHTTPServer(channel: channel, port: channel.localAddress!.port!)
    }

    private init(channel: any Channel, port: Int) {
        self.channel = channel
        self.port = port
    }

    func stop() async throws { try await channel.close() }

    var base: String { "http://127.0.0.1:\(port)" }

    /// GET /ok → 200 "hello crowsnest"; /json → {"status":"green","count":3}; /fail → 503; /redirect → /ok;
    /// /loop → /loop; /to-metadata → http://169.254.169.254/; /to-localhost → http://localhost:PORT/ok;
    /// /slow → 200 after 3 s; /echo → the request's method and headers; /big → 3 MiB of 'a'.
    final class Routes: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        private var head: HTTPRequestHead?
        private var body = ""

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head):
                self.head = head
                body = ""
            case .body(let buffer):
                body += String(buffer: buffer)
            case .end:
                guard let head else { return }
                respond(context: context, head: head)
            }
        }

        private func respond(context: ChannelHandlerContext, head: HTTPRequestHead) {
            let port = context.channel.localAddress?.port ?? 0
            func send(_ status: HTTPResponseStatus, _ text: String, headers extra: [(String, String)] = []) {
                var headers = HTTPHeaders([("Content-Length", "\(text.utf8.count)"), ("Connection", "close")])
                for (name, value) in extra { headers.add(name: name, value: value) }
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
                context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: text)))), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in context.close(promise: nil) }
            }
            switch head.uri {
            case "/ok": send(.ok, "hello crowsnest")
            case "/json": send(.ok, #"{"status":"green","count":3,"items":[{"name":"a"}]}"#, headers: [("Content-Type", "application/json")])
            case "/fail": send(.serviceUnavailable, "down for maintenance")
            case "/redirect": send(.found, "", headers: [("Location", "/ok")])
            case "/loop": send(.found, "", headers: [("Location", "/loop")])
            case "/to-metadata": send(.found, "", headers: [("Location", "http://169.254.169.254/latest/meta-data/")])
            case "/to-localhost": send(.movedPermanently, "", headers: [("Location", "http://localhost:\(port)/ok")])
            case "/echo":
                let lines = ["method=\(head.method.rawValue)", "body=\(body)"] + head.headers.map { "\($0.name.lowercased())=\($0.value)" }
                send(.ok, lines.joined(separator: "\n"))
            case "/big": send(.ok, String(repeating: "a", count: 3 << 20) + "needle")
            case "/slow":
                let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
                context.eventLoop.scheduleTask(in: .seconds(3)) {
                    let context = loopBound.value
                    var headers = HTTPHeaders([("Content-Length", "2"), ("Connection", "close")])
                    headers.add(name: "X-Slow", value: "1")
                    context.write(NIOAny(HTTPServerResponsePart.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
                    context.write(NIOAny(HTTPServerResponsePart.body(.byteBuffer(ByteBuffer(string: "ok")))), promise: nil)
                    context.writeAndFlush(NIOAny(HTTPServerResponsePart.end(nil)), promise: nil)
                }
            default: send(.notFound, "no such route")
            }
        }
    }
}
