import Foundation
import Hummingbird
import Logging
import NIOCore

/// A real HTTP server on loopback that records every request it gets (path, headers by lowercased name, body) and answers with the
/// statuses it is told, in turn (200 once they run out): the receiving end of alert webhooks in tests.
final class TestWebhookReceiver: Sendable {
    struct Received: Sendable {
        let path: String
        let headers: [String: String]
        let body: String
    }

    actor Log {
        var received: [Received] = []
        var statuses: [Int] = []

        func record(_ request: Received) -> Int {
            received.append(request)
            return statuses.isEmpty ? 200 : statuses.removeFirst()
        }

        func answer(_ next: [Int]) { statuses = next }
    }

    let log: Log
    let port: Int
    private let task: Task<Void, any Error>

    private init(log: Log, port: Int, task: Task<Void, any Error>) {
        (self.log, self.port, self.task) = (log, port, task)
    }

    static func start() async throws -> TestWebhookReceiver {
        let log = Log()
        let router = Router()
        router.post("**") { request, context -> Response in
            let body = try await request.body.collect(upTo: 1 << 20)
            var headers: [String: String] = [:]
            for field in request.headers { headers[field.name.canonicalName] = field.value }
            let status = await log.record(Received(path: request.uri.path, headers: headers, body: String(buffer: body)))
            return Response(status: .init(code: status))
        }
        let (stream, continuation) = AsyncStream.makeStream(of: Int.self)
        var logger = Logger(label: "crowsnest.tests.webhook-receiver")
        logger.logLevel = .critical  // its shutdown on cancellation logs an error
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                              onServerRunning: { channel in continuation.yield(channel.localAddress?.port ?? 0) }, logger: logger)
        let task = Task { try await app.runService(gracefulShutdownSignals: []) }
        var port = 0
        for await bound in stream {
            port = bound
            break
        }
        return TestWebhookReceiver(log: log, port: port, task: task)
    }

    var requests: [Received] {
        get async { await log.received }
    }

    func answer(_ statuses: [Int]) async { await log.answer(statuses) }

    var url: String { "http://127.0.0.1:\(port)/hook" }

    func stop() async {
        task.cancel()
        _ = await task.result
    }

}
