import Foundation
import Hummingbird

/// Puts the session of the browser's `crowsnest_session` cookie (if live) into the context. Pages that need a
/// signed-in user call `requireSession`; forms check their CSRF token with `checkForm`.
struct WebSessionMiddleware: RouterMiddleware {
    typealias Context = APIRequestContext

    static let cookieName = "crowsnest_session"

    let sessions: WebSessionStore

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        if let token = request.cookies[Self.cookieName]?.value, let session = try await sessions.session(token: token) {
            context.webSession = session
            context.logger[metadataKey: "tenant.id"] = "\(session.user.tenantID)"
            context.logger[metadataKey: "user.id"] = "\(session.user.id)"
        }
        return try await next(request, context)
    }
}

extension APIRequestContext {
    /// The signed-in user's session, or a redirect to the sign-in page.
    func requireSession() throws -> WebSession {
        guard let session = webSession else { throw WebRedirect.signIn }
        return session
    }
}

/// The fields of an `application/x-www-form-urlencoded` body, and the CSRF check every form goes through.
struct WebForm {
    /// Forms are small: a body over this is refused.
    static let maximumBytes = 16 * 1024

    let fields: [String: String]

    subscript(name: String) -> String? { fields[name] }

    static func read(_ request: Request, context: APIRequestContext) async throws -> WebForm {
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: maximumBytes)
        } catch {
            throw APIError.badRequest("the form is larger than \(maximumBytes / 1024) KiB")
        }
        var fields: [String: String] = [:]
        for pair in String(buffer: buffer).split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ text: Substring) -> String? {
                String(text).replacingOccurrences(of: "+", with: " ").removingPercentEncoding
            }
            guard let name = decode(parts[0]), let value = decode(parts.count > 1 ? parts[1] : "") else {
                throw APIError.badRequest("the form is not valid URL-encoded text")
            }
            if fields[name] == nil { fields[name] = value }
        }
        return WebForm(fields: fields)
    }

    /// Refuses (403) a form whose `csrf` field is not `expected`, or that a page of another origin sent (this
    /// server's origin is the request's host, or `publicOrigin` behind a proxy that rewrites the host).
    func check(csrf expected: String, request: Request, publicOrigin: String? = nil) throws {
        if let origin = request.headers[.origin] {
            let host = request.head.authority ?? ""
            let sameOrigin = origin == "http://\(host)" || origin == "https://\(host)" || origin == publicOrigin
            guard sameOrigin else { throw APIError.forbidden("this form was sent from another site (\(origin)); reload the page and try again") }
        }
        guard let given = fields["csrf"], Self.constantTimeEqual(given, expected) else {
            throw APIError.forbidden("this form is stale or was not sent by this site; reload the page and try again")
        }
    }

    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let left = Array(a.utf8), right = Array(b.utf8)
        guard left.count == right.count else { return false }
        var difference: UInt8 = 0
        for index in left.indices { difference |= left[index] ^ right[index] }
        return difference == 0
    }
}
