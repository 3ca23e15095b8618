/// A failed call to the Docker Engine API, with a message an operator can act on.
///
/// The message names the call and the socket, e.g.
/// "list containers: cannot reach the Docker engine at /var/run/docker.sock: connection refused".
public struct DockerClientError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What kind of failure this is, so callers can branch without parsing the message.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// Stable name of the code, e.g. "socketUnreachable".
        public let name: String

        /// The socket does not exist, refuses connections or the connection broke.
        public static let socketUnreachable = Code(name: "socketUnreachable")
        /// The engine answered with an unexpected HTTP status (see `httpStatus`).
        public static let httpStatus = Code(name: "httpStatus")
        /// The engine answered 404: the container (or endpoint) does not exist.
        public static let notFound = Code(name: "notFound")
        /// The engine's answer was not the JSON this client expects.
        public static let decoding = Code(name: "decoding")
        /// The engine did not answer within the request timeout.
        public static let timeout = Code(name: "timeout")
        /// The answer was larger than the client's cap on response bodies.
        public static let responseTooLarge = Code(name: "responseTooLarge")
        /// The engine closed the event stream (e.g. dockerd restarted); reconnect with `since`.
        public static let eventStreamEnded = Code(name: "eventStreamEnded")
        /// DOCKER_HOST names something other than a unix socket (tcp://, ssh://, ...).
        public static let unsupportedDockerHost = Code(name: "unsupportedDockerHost")

        /// The code's name.
        public var description: String { name }
    }

    /// What kind of failure this is.
    public var code: Code
    /// The unix socket path the client talks to.
    public var socketPath: String
    /// The call that failed, in words ("inspect container 3f2a…").
    public var call: String
    /// The HTTP status the engine answered with, when it answered.
    public var httpStatus: Int?
    /// The reason alone, without call and socket ("connection refused").
    public var reason: String

    /// Creates an error; `description` is built from the parts.
    public init(code: Code, socketPath: String, call: String, httpStatus: Int? = nil, reason: String) {
        self.code = code
        self.socketPath = socketPath
        self.call = call
        self.httpStatus = httpStatus
        self.reason = reason
    }

    /// The full human message: call, socket and reason.
    public var description: String {
        switch code {
        case .socketUnreachable:
            return "\(call): cannot reach the Docker engine at \(socketPath): \(reason)"
        case .httpStatus, .notFound:
            let status = httpStatus.map { " \($0)" } ?? ""
            return "\(call): the Docker engine at \(socketPath) answered\(status): \(reason)"
        case .timeout:
            return "\(call): the Docker engine at \(socketPath) did not answer in time: \(reason)"
        case .unsupportedDockerHost:
            return "\(call): \(reason)"
        default:
            return "\(call): Docker engine at \(socketPath): \(reason)"
        }
    }
}
