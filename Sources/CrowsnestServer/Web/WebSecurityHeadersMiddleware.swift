import HTTPTypes
import Hummingbird

/// Headers every web page, status page and static file carries: a strict Content-Security-Policy (scripts and
/// styles only from this server, no inline script, no framing, forms only to this server), no MIME sniffing, no
/// referrer beyond this origin.
struct WebSecurityHeadersMiddleware: RouterMiddleware {
    typealias Context = APIRequestContext

    static let contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        + "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var response = try await next(request, context)
        Self.apply(to: &response.headers)
        return response
    }

    static let referrerPolicy = HTTPField.Name("Referrer-Policy")!
    static let frameOptions = HTTPField.Name("X-Frame-Options")!

    static func apply(to headers: inout HTTPFields) {
        headers[.contentSecurityPolicy] = contentSecurityPolicy
        headers[.xContentTypeOptions] = "nosniff"
        headers[referrerPolicy] = "same-origin"
        headers[frameOptions] = "DENY"
    }
}
