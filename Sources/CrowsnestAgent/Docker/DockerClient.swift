import CrowsnestProbes
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import CrowsnestWire
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix

/// Client for the Docker Engine API over its unix socket: container list, inspect, one-shot
/// stats, the container event stream and the engine version.
///
/// Talks API version 1.41 (Docker 20.10 and later answer it). Every answer is capped in size and
/// every call but the event stream has a timeout. Each call uses its own connection, closed when it ends.
public final class DockerClient: Sendable {
    /// Where Docker listens when DOCKER_HOST is not set.
    public static let defaultSocketPath = "/var/run/docker.sock"
    /// API version prefix of every request path; 1.41 is Docker 20.10's and newer engines accept it.
    public static let apiVersionPrefix = "/v1.41"
    /// Default cap on a response body (8 MiB): far above a big host's container list.
    public static let defaultMaxResponseBytes = 8 << 20
    /// Event actions the event stream asks for by default: what changes a container's uptime or health.
    ///
    /// Docker matches "health_status" as a prefix of "health_status: healthy", and leaves out
    /// the exec_* events that every health probe run emits.
    public static let defaultEventActions = [
        "create", "start", "restart", "stop", "kill", "die", "oom", "health_status",
        "pause", "unpause", "destroy", "rename", "update",
    ]

    /// The unix socket this client talks to.
    public let socketPath: String
    /// How long a call (other than the event stream) may take before it fails with `.timeout`.
    public let requestTimeout: Duration
    /// Largest response body accepted; larger ones fail with `.responseTooLarge`.
    public let maxResponseBytes: Int

    private let transport: DockerSocketTransport
    private let logger: Logger

    /// Creates a client for the engine at `socketPath`.
    ///
    /// - Parameters:
    ///   - socketPath: the engine's unix socket, default `/var/run/docker.sock`.
    ///   - requestTimeout: limit for each call except the event stream (default 10 s; one-shot
    ///     stats take about a second on busy engines).
    ///   - maxResponseBytes: cap on each response body.
    ///   - eventLoopGroup: where the connections live; the process-wide NIO singleton by default.
    ///   - logger: where the client logs; it never bootstraps logging.
    public init(
        socketPath: String = DockerClient.defaultSocketPath,
        requestTimeout: Duration = .seconds(10),
        maxResponseBytes: Int = DockerClient.defaultMaxResponseBytes,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger
    ) {
        self.socketPath = socketPath
        self.requestTimeout = requestTimeout
        self.maxResponseBytes = maxResponseBytes
        self.logger = logger
        // A local socket either accepts at once or is down: fail the call now; the caller's next tick retries.
        self.transport = DockerSocketTransport(socketPath: socketPath, eventLoopGroup: eventLoopGroup,
                                               connectTimeout: .seconds(5))
    }

    /// Creates a client for the socket named by `dockerHost` (the DOCKER_HOST value), or the default
    /// socket when it is nil or empty. Throws `.unsupportedDockerHost` for tcp://, ssh:// and the like.
    public convenience init(
        dockerHost: String?,
        requestTimeout: Duration = .seconds(10),
        maxResponseBytes: Int = DockerClient.defaultMaxResponseBytes,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger
    ) throws {
        self.init(
            socketPath: try Self.socketPath(dockerHost: dockerHost),
            requestTimeout: requestTimeout,
            maxResponseBytes: maxResponseBytes,
            eventLoopGroup: eventLoopGroup,
            logger: logger
        )
    }

    /// The DOCKER_HOST environment variable of this process, or nil when unset.
    public static var dockerHostFromEnvironment: String? {
        getenv("DOCKER_HOST").map { String(cString: $0) }
    }

    /// Unix socket path for a DOCKER_HOST value: "unix:///run/docker.sock" → "/run/docker.sock";
    /// nil or empty → the default socket. Only unix sockets are supported.
    public static func socketPath(dockerHost: String?) throws -> String {
        guard let dockerHost, !dockerHost.isEmpty else { return defaultSocketPath }
        if dockerHost.hasPrefix("unix://") {
            let path = String(dockerHost.dropFirst("unix://".count))
            if path.hasPrefix("/") { return path }
        } else if dockerHost.hasPrefix("/") {
            return dockerHost
        }
        throw DockerClientError(
            code: .unsupportedDockerHost,
            socketPath: dockerHost,
            call: "read DOCKER_HOST",
            reason: "DOCKER_HOST=\(dockerHost) is not supported: the agent talks to Docker over a local unix socket only (unix:///path/to/docker.sock)"
        )
    }

    // MARK: - Calls

    /// Lists containers (`GET /containers/json`); with `all` false only running ones.
    ///
    /// One call normally. When the answer is over `maxResponseBytes` (hundreds of containers with huge labels:
    /// Docker always sends every label in full), the listing is fetched again in pages of the newest containers
    /// (`limit`, then `before` the last one seen), halving the page until each fits; a single container larger
    /// than the cap on its own is listed by its id only (no name, state or labels).
    public func listContainers(all: Bool = true) async throws -> [DockerContainerSummary] {
        let call = "list containers"
        do {
            let body = try await get("/containers/json", query: [("all", all ? "true" : "false")], call: call)
            return try decode(call: call) { try DockerResponseDecoder.containerList(from: body) }
        } catch let error as DockerClientError where error.code == .responseTooLarge {
            logger.info("container listing over the response cap; listing in pages",
                        metadata: ["docker.max_response_bytes": "\(maxResponseBytes)"])
            return try await listContainersInPages(all: all)
        }
    }

    private func listContainersInPages(all: Bool) async throws -> [DockerContainerSummary] {
        var containers: [DockerContainerSummary] = []
        var seen = Set<String>()
        var pageSize = Self.listingPageSize
        var before: String?
        while true {
            var query = [("all", all ? "true" : "false"), ("limit", "\(pageSize)")]
            if let before { query.append(("filters", #"{"before":["\#(before)"]}"#)) }
            let call = "list containers (page of \(pageSize)\(before.map { " before \($0.prefix(12))" } ?? ""))"
            let page: [DockerContainerSummary]
            do {
                let body = try await get("/containers/json", query: query, call: call)
                page = try decode(call: call) { try DockerResponseDecoder.containerList(from: body) }
            } catch let error as DockerClientError where error.code == .responseTooLarge {
                if pageSize > 1 {
                    pageSize /= 2
                    continue
                }
                // One container alone is over the cap (megabytes of labels): known by its id only, so that the
                // listing goes on past it and the inspect that follows says why it has no figures.
                guard let id = try await idAtHeadOfListing(query: query, call: call) else { throw error }
                logger.warning("a container's listing entry is larger than the response cap (huge labels?); listed by id only",
                               metadata: ["docker.container_id": "\(id)", "docker.max_response_bytes": "\(maxResponseBytes)"])
                page = [DockerContainerSummary(id: id, names: [], image: "", state: "", status: "", labels: [:])]
            }
            for container in page where seen.insert(container.id).inserted { containers.append(container) }
            guard page.count == pageSize, let last = page.last else { return containers }
            before = last.id
        }
    }

    /// The `Id` at the head of a listing page's answer, reading only its first bytes (Docker writes `Id` first).
    private func idAtHeadOfListing(query: [(String, String)], call: String) async throws -> String? {
        let uri = requestURI("/containers/json", query: query)
        let timeout = requestTimeout
        let head: [UInt8]
        do {
            head = try await withDeadline(timeout, clock: EventLoopClock()) { [transport] in
                try await transport.get(uri, headTimeout: timeout) { _, body in
                    var bytes: [UInt8] = []
                    while bytes.count < 1024, let chunk = try await body.next() { bytes += chunk.readableBytesView }
                    return bytes
                }
            }
        } catch {
            throw Self.mapTransportError(error, socketPath: socketPath, call: call)
        }
        return DockerResponseDecoder.containerID(atHeadOfListing: head)
    }

    /// First page size when a listing has to be paged.
    static let listingPageSize = 64

    /// Inspects one container by id or name (`GET /containers/{id}/json`); `.notFound` when it is gone.
    public func inspect(_ id: String) async throws -> DockerContainerDetails {
        let call = "inspect container \(id)"
        let body = try await get("/containers/\(Self.percentEncoded(id))/json", query: [], call: call)
        return try decode(call: call) { try DockerResponseDecoder.containerDetails(from: body) }
    }

    /// One snapshot of a container's counters (`GET /containers/{id}/stats?stream=false&one-shot=true`).
    ///
    /// The fallback when the agent cannot read cgroup files. For a container that is not running,
    /// Docker answers with empty figures: nil then.
    public func oneShotStats(_ id: String) async throws -> ContainerCounters? {
        let call = "read stats of container \(id)"
        let body = try await get(
            "/containers/\(Self.percentEncoded(id))/stats",
            query: [("stream", "false"), ("one-shot", "true")],
            call: call
        )
        return try decode(call: call) { try DockerResponseDecoder.stats(from: body) }
    }

    /// The engine's version (`GET /version`), e.g. "20.10.24+dfsg1".
    public func version() async throws -> String {
        let call = "read engine version"
        let body = try await get("/version", query: [], call: call)
        return try decode(call: call) { try DockerResponseDecoder.serverVersion(from: body) }
    }

    /// Streams container events (`GET /events`) as they happen.
    ///
    /// - Parameters:
    ///   - since: replay events from this Unix time in nanoseconds (Docker keeps the last 1000
    ///     or so); nil starts with what happens from now on. Pass the last seen `timeUnixNano`
    ///     when reconnecting, and drop duplicates of that instant.
    ///   - until: end the stream at this Unix time in nanoseconds; the stream then finishes
    ///     normally. Without it, the engine closing the stream is an `.eventStreamEnded` error.
    ///   - actions: which actions to ask for (default `defaultEventActions`); empty asks for all.
    ///
    /// Cancelling the consuming task, or the consumer dropping the stream, closes the connection.
    public func events(
        since: Int64? = nil,
        until: Int64? = nil,
        actions: [String] = DockerClient.defaultEventActions
    ) -> AsyncThrowingStream<DockerEvent, Error> {
        let call = "watch container events"
        var query: [(String, String)] = []
        if let since { query.append(("since", Self.dockerTimestamp(unixNano: since))) }
        if let until { query.append(("until", Self.dockerTimestamp(unixNano: until))) }
        query.append(("filters", Self.eventFilters(actions: actions)))
        let uri = requestURI("/events", query: query)

        let (stream, continuation) = AsyncThrowingStream<DockerEvent, Error>.makeStream()
        let task = Task { [transport, logger, socketPath, maxResponseBytes, requestTimeout] in
            do {
                try await transport.get(uri, headTimeout: requestTimeout) { head, body in
                    guard head.status == .ok else {
                        let answer = try? await body.collect(upTo: 64 * 1024)
                        throw Self.statusError(status: head.status, body: answer, socketPath: socketPath, call: call)
                    }
                    logger.debug("docker event stream open", metadata: ["docker.socket": "\(socketPath)"])
                    var splitter = DockerEventLineSplitter(maxLineBytes: min(maxResponseBytes, 1 << 20))
                    func emit(_ piece: DockerEventLineSplitter.Line) {
                        let line: [UInt8]
                        switch piece {
                        case .complete(let complete):
                            line = complete
                        case .overlong(let overlong):
                            let event = DockerResponseDecoder.event(fromOverlong: overlong)
                            logger.warning("docker event too long to keep (a container with huge labels); passed on without its attributes",
                                           metadata: ["docker.socket": "\(socketPath)", "event.bytes": "\(overlong.byteCount)",
                                                      "container.id": "\(event?.id ?? "?")", "event.action": "\(event?.rawAction ?? "?")"])
                            if let event { continuation.yield(event) }
                            return
                        }
                        do {
                            continuation.yield(try DockerResponseDecoder.event(fromLine: Data(line)))
                        } catch {
                            logger.warning(
                                "docker event line not understood, skipped",
                                metadata: [
                                    "docker.socket": "\(socketPath)", "error": "\(error)",
                                    "line": "\(String(decoding: line.prefix(512), as: UTF8.self))",
                                ]
                            )
                        }
                    }
                    while let chunk = try await body.next() {
                        for line in splitter.append(chunk.readableBytesView) { emit(line) }
                    }
                    if let line = splitter.finish() { emit(line) }
                }
                logger.debug("docker event stream closed by the engine", metadata: ["docker.socket": "\(socketPath)"])
                if until != nil {
                    continuation.finish()
                } else {
                    continuation.finish(
                        throwing: DockerClientError(
                            code: .eventStreamEnded,
                            socketPath: socketPath,
                            call: call,
                            reason: "the engine closed the event stream (restarted?); reconnect with since"
                        )
                    )
                }
            } catch {
                continuation.finish(throwing: Self.mapTransportError(error, socketPath: socketPath, call: call))
            }
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }

    // MARK: - Plumbing

    private func decode<T>(call: String, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch {
            throw DockerClientError(
                code: .decoding,
                socketPath: socketPath,
                call: call,
                reason: "unexpected answer: \(error)"
            )
        }
    }

    private func requestURI(_ path: String, query: [(String, String)]) -> String {
        var uri = Self.apiVersionPrefix + path
        if !query.isEmpty {
            uri += "?" + query.map { "\(Self.percentEncoded($0.0))=\(Self.percentEncoded($0.1))" }.joined(separator: "&")
        }
        return uri
    }

    /// GET with timeout and size cap; returns the body of a 200 answer, throws DockerClientError otherwise.
    private func get(_ path: String, query: [(String, String)], call: String) async throws -> Data {
        let uri = requestURI(path, query: query)
        let timeout = requestTimeout
        let limit = maxResponseBytes
        let transport = transport
        let socketPath = socketPath

        do {
            let (status, body) = try await withDeadline(timeout, clock: EventLoopClock()) {
                try await transport.get(uri, headTimeout: timeout) { head, body in (head.status, try await body.collect(upTo: limit)) }
            }
            guard status == .ok else {
                throw Self.statusError(status: status, body: body, socketPath: socketPath, call: call)
            }
            return Data(body.readableBytesView)
        } catch is DockerSocketTransport.TooLarge {
            throw DockerClientError(
                code: .responseTooLarge,
                socketPath: socketPath,
                call: call,
                reason: "the answer exceeded \(limit) bytes"
            )
        } catch is DeadlineExceeded {
            throw DockerClientError(
                code: .timeout, socketPath: socketPath, call: call, reason: "no answer within \(timeout)"
            )
        } catch {
            throw Self.mapTransportError(error, socketPath: socketPath, call: call)
        }
    }

    private static func statusError(
        status: HTTPResponseStatus,
        body: ByteBuffer?,
        socketPath: String,
        call: String
    ) -> DockerClientError {
        let bodyData = body.map { Data($0.readableBytesView) } ?? Data()
        let message =
            DockerResponseDecoder.errorMessage(from: bodyData)
            ?? String(decoding: bodyData.prefix(512), as: UTF8.self).trimmingWhitespace()
        return DockerClientError(
            code: status == .notFound ? .notFound : .httpStatus,
            socketPath: socketPath,
            call: call,
            httpStatus: Int(status.code),
            reason: message.isEmpty ? status.reasonPhrase : message
        )
    }

    /// Turns what NIO throws into a DockerClientError with a plain reason.
    static func mapTransportError(_ error: any Error, socketPath: String, call: String) -> any Error {
        if error is DockerClientError || error is CancellationError { return error }
        if let ioError = error as? IOError {
            return DockerClientError(
                code: .socketUnreachable,
                socketPath: socketPath,
                call: call,
                reason: errnoReason(ioError.errnoCode)
            )
        }
        if error is DockerSocketTransport.NoAnswer {
            return DockerClientError(code: .timeout, socketPath: socketPath, call: call, reason: "the engine did not start answering in time")
        }
        if let closed = error as? DockerSocketTransport.ClosedEarly {
            return DockerClientError(code: .socketUnreachable, socketPath: socketPath, call: call, reason: closed.description)
        }
        if case ChannelError.connectTimeout = error {
            return DockerClientError(code: .timeout, socketPath: socketPath, call: call, reason: "connecting took too long")
        }
        // NIO wraps connect failures in other shapes on some paths; find an errno in the text.
        let text = "\(error)"
        for (code, _) in [(ENOENT, ""), (ECONNREFUSED, ""), (EACCES, ""), (ENOTSOCK, "")] {
            if text.contains("errno: \(code))") {
                return DockerClientError(
                    code: .socketUnreachable,
                    socketPath: socketPath,
                    call: call,
                    reason: errnoReason(code)
                )
            }
        }
        return DockerClientError(code: .socketUnreachable, socketPath: socketPath, call: call, reason: text)
    }

    private static func errnoReason(_ code: Int32) -> String {
        switch code {
        case ENOENT: return "no such socket (is dockerd running?)"
        case ECONNREFUSED: return "connection refused (is dockerd running?)"
        case EACCES, EPERM: return "permission denied (run as root or add the user to the docker group)"
        default:
            let text = String(cString: strerror(code))
            return text.prefix(1).lowercased() + text.dropFirst()
        }
    }

    /// Docker's "seconds.nanoseconds" form for since/until.
    static func dockerTimestamp(unixNano: Int64) -> String {
        let seconds = unixNano / 1_000_000_000
        let nanos = unixNano % 1_000_000_000
        let fraction = String(nanos)
        return "\(seconds).\(String(repeating: "0", count: 9 - fraction.count))\(fraction)"
    }

    /// The JSON filter for /events: containers only, and the chosen actions.
    static func eventFilters(actions: [String]) -> String {
        func quoted(_ text: String) -> String {
            "\"" + text.replacing("\\", with: "\\\\").replacing("\"", with: "\\\"") + "\""
        }
        var filters = "{\"type\":[\"container\"]"
        if !actions.isEmpty {
            filters += ",\"event\":[" + actions.map(quoted).joined(separator: ",") + "]"
        }
        return filters + "}"
    }

    /// Percent-encodes everything but RFC 3986 unreserved characters.
    static func percentEncoded(_ text: String) -> String {
        var result = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                UInt8(ascii: "~"):
                result.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let hex = String(byte, radix: 16, uppercase: true)
                result += "%" + (hex.count == 1 ? "0" + hex : hex)
            }
        }
        return result
    }
}
