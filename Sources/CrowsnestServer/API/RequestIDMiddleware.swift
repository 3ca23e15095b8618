import Hummingbird
import HTTPTypes
import Logging

/// Gives every HTTP request an id: the caller's `X-Request-Id` when it is a plain token (at most 64 letters,
/// digits, `-`, `_` or `.`, as a proxy in front would set), else a new random one. It is on every log line of the
/// request (`http.request.id`) and echoed in the response's `X-Request-Id`, so an operator can find the lines
/// of the request a user reports — errors included.
struct RequestIDMiddleware<Context: RequestContext>: RouterMiddleware {
    static var headerName: HTTPField.Name { RequestID.headerName }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let id = request.headers[Self.headerName].flatMap { RequestID.acceptable($0) ? $0 : nil } ?? RequestID.make()
        var context = context
        context.logger[metadataKey: "http.request.id"] = "\(id)"
        do {
            var response = try await next(request, context)
            response.headers[Self.headerName] = id
            return response
        } catch let error as HTTPResponseError {
            var response = try error.response(from: request, context: context)
            response.headers[Self.headerName] = id
            return response
        }
    }
}

/// Request ids: what is accepted from a caller, and new ones.
enum RequestID {
    static let headerName = HTTPField.Name("X-Request-Id")!
    static let maximumLength = 64

    static func acceptable(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.count <= maximumLength && text.utf8.allSatisfy { byte in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_")
                || byte == UInt8(ascii: ".")
        }
    }

    static func make() -> String {
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("0123456789abcdefghijklmnopqrstuvwxyz".utf8)
        return String(decoding: (0..<20).map { _ in alphabet[Int(generator.next() % UInt64(alphabet.count))] }, as: UTF8.self)
    }
}
