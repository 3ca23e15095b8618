import Hummingbird
import Logging

/// Sends the browser elsewhere: to the sign-in page when no one is signed in, back to a page after a form.
struct WebRedirect: Error {
    let location: String

    static let signIn = WebRedirect(location: "/sign-in")
}

/// Turns what a web route throws into a page: redirects as 303, API errors as an error page with their status
/// and message (messages are the API's own, written for operators, and are escaped by the template), anything
/// else as a 500 that says nothing of the cause (logged instead).
struct WebErrorMiddleware: RouterMiddleware {
    typealias Context = APIRequestContext

    let templates: WebTemplates

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let redirect as WebRedirect {
            return Self.redirect(to: redirect.location)
        } catch let error as APIError {
            var response = templates.page("error", ErrorView(session: context.webSession.map(SessionView.init), heading: Self.heading(error.status),
                                                             message: error.message), status: error.status)
            for field in error.headers { response.headers.append(field) }
            return response
        } catch let error as HTTPError where error.status == .notFound {
            return templates.page("error", ErrorView(session: context.webSession.map(SessionView.init), heading: "Not found",
                                                     message: "There is no page at this address."), status: .notFound)
        } catch {
            context.logger.error("web page failed", metadata: ["http.path": "\(request.uri.path)", "error": "\(String(reflecting: error))"])
            return templates.page("error", ErrorView(session: context.webSession.map(SessionView.init), heading: "Something went wrong",
                                                     message: "The server could not draw this page; the reason is in its log."),
                                  status: .internalServerError)
        }
    }

    static func redirect(to location: String) -> Response {
        Response(status: .seeOther, headers: [.location: location, .cacheControl: "no-store"])
    }

    static func heading(_ status: HTTPResponse.Status) -> String {
        switch status.code {
        case 400: "That request cannot be done"
        case 403: "Not allowed"
        case 404: "Not found"
        case 409: "That conflicts with what is stored"
        case 429: "Too many attempts"
        default: status.reasonPhrase
        }
    }
}

/// What the layout shows of the signed-in user.
struct SessionView {
    let username: String
    let tenant: String
    let role: String
    let csrf: String
    let isAdmin: Bool

    init(_ session: WebSession) {
        username = session.user.username
        tenant = session.tenantName
        role = session.user.role == .admin ? "admin" : "read-only"
        csrf = session.csrfToken
        isAdmin = session.user.role == .admin
    }
}

struct ErrorView {
    let session: SessionView?
    let heading: String
    let message: String
}
