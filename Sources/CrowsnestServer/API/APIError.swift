import Foundation
import Hummingbird
import Logging

/// An error the HTTP API reports to its caller as `{"error":{"code":"…","message":"…"}}` with a
/// matching status; the message is written for the operator reading the response.
public struct APIError: Error, HTTPResponseError, CustomStringConvertible, Sendable {
    /// HTTP status of the response.
    public var status: HTTPResponse.Status
    /// Stable machine-readable code such as `bad_request` or `not_found`.
    public var code: String
    /// Human-readable explanation; never contains secrets or SQL.
    public var message: String
    /// Extra response headers (e.g. `WWW-Authenticate`, `Retry-After`).
    public var headers: HTTPFields

    /// Creates an error with an explicit status, code and message.
    public init(status: HTTPResponse.Status, code: String, message: String, headers: HTTPFields = [:]) {
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
    }

    /// 400: a query parameter or body is malformed or out of limits.
    public static func badRequest(_ message: String) -> APIError {
        APIError(status: .badRequest, code: "bad_request", message: message)
    }

    /// 401: no API key, an unknown one, or a revoked one.
    public static func unauthorized(_ message: String) -> APIError {
        APIError(status: .unauthorized, code: "unauthorized", message: message, headers: [.wwwAuthenticate: "Bearer"])
    }

    /// 403: the key is valid but its role may not do this.
    public static func forbidden(_ message: String) -> APIError {
        APIError(status: .forbidden, code: "forbidden", message: message)
    }

    /// 404: the route or the target does not exist for the caller's tenant.
    public static func notFound(_ message: String) -> APIError {
        APIError(status: .notFound, code: "not_found", message: message)
    }

    /// 409: the request conflicts with what exists (e.g. a name already taken).
    public static func conflict(_ message: String) -> APIError {
        APIError(status: .conflict, code: "conflict", message: message)
    }

    /// 500: something failed on the server side; details go to the log, not the caller.
    public static func internalError() -> APIError {
        APIError(status: .internalServerError, code: "internal", message: "internal server error; see the server log")
    }

    /// 503: the server cannot serve this right now (e.g. the database is unreachable).
    public static func unavailable(_ message: String) -> APIError {
        APIError(status: .serviceUnavailable, code: "unavailable", message: message)
    }

    /// "<status> <code>: <message>", for logs.
    public var description: String { "\(self.status.code) \(self.code): \(self.message)" }

    /// Renders the JSON error body.
    public func response(from request: Request, context: some RequestContext) throws -> Response {
        let data = try JSONEncoder().encode(APIErrorBody(error: .init(code: self.code, message: self.message)))
        var headers = self.headers
        headers[.contentType] = "application/json; charset=utf-8"
        return Response(status: self.status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}

/// The wire shape `{"error":{"code","message"}}`.
struct APIErrorBody: Codable, Sendable {
    /// The inner object.
    struct Detail: Codable, Sendable {
        let code: String
        let message: String
    }
    let error: Detail
}

/// Turns every error escaping a route into the API's JSON error shape: `APIError` as is, Hummingbird's
/// own `HTTPError` (unknown route, bad method) with a code derived from its status, anything else as a
/// logged 500 whose details never reach the caller.
public struct APIErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    /// Creates the middleware; it logs through each request's logger.
    public init() {}

    /// Runs the rest of the chain and converts a thrown error into a JSON error response.
    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as APIError {
            return try error.response(from: request, context: context)
        } catch let error as HTTPResponseError {
            let apiError = APIError(
                status: error.status,
                code: Self.code(for: error.status),
                message: Self.message(for: error, request: request)
            )
            return try apiError.response(from: request, context: context)
        } catch {
            context.logger.error(
                "API request failed",
                metadata: ["http.path": "\(request.uri.path)", "error": "\(String(reflecting: error))"]
            )
            return try APIError.internalError().response(from: request, context: context)
        }
    }

    static func code(for status: HTTPResponse.Status) -> String {
        switch status {
        case .badRequest: return "bad_request"
        case .unauthorized: return "unauthorized"
        case .forbidden: return "forbidden"
        case .notFound: return "not_found"
        case .methodNotAllowed: return "method_not_allowed"
        case .conflict: return "conflict"
        case .contentTooLarge: return "payload_too_large"
        case .tooManyRequests: return "rate_limited"
        case .serviceUnavailable: return "unavailable"
        default: return status.code >= 500 ? "internal" : "bad_request"
        }
    }

    static func message(for error: HTTPResponseError, request: Request) -> String {
        if let httpError = error as? HTTPError, let body = httpError.body, !body.isEmpty {
            return body
        }
        switch error.status {
        case .notFound: return "no route for \(request.method) \(request.uri.path)"
        case .methodNotAllowed: return "method \(request.method) is not allowed on \(request.uri.path)"
        default: return error.status.reasonPhrase
        }
    }
}
