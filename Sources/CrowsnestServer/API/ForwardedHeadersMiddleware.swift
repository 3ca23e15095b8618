import CrowsnestWire
import HTTPTypes
import Hummingbird

/// Behind a reverse proxy: when the connection comes from one of `trusted_proxies`, the client's address is taken
/// from `X-Forwarded-For` (the right-most entry that is not itself a trusted proxy); from anyone else the header
/// is ignored, so a client cannot choose the address its sign-in attempts are counted under.
struct ForwardedHeadersMiddleware: RouterMiddleware {
    typealias Context = APIRequestContext

    static let forwardedFor = HTTPField.Name("X-Forwarded-For")!

    let trusted: [IPNetwork]

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard !trusted.isEmpty else { return try await next(request, context) }
        var context = context
        context.remoteAddress = Self.clientAddress(peer: context.remoteAddress, forwardedFor: request.headers[values: Self.forwardedFor],
                                                   trusted: trusted)
        return try await next(request, context)
    }

    /// The client's address: the peer's own unless the peer is trusted, then the right-most forwarded address
    /// that is not trusted (proxies append, so entries left of an untrusted one may be forged), else the left-most.
    static func clientAddress(peer: String?, forwardedFor: [String], trusted: [IPNetwork]) -> String? {
        guard let peer, isTrusted(peer, trusted) else { return peer }
        let chain = forwardedFor.flatMap { $0.split(separator: ",") }.map { $0.trimmingCharacters(in: .whitespaces) }
        guard !chain.isEmpty else { return peer }
        for entry in chain.reversed() {
            guard let address = IPAddress(entry) else { return peer }
            if !isTrusted(entry, trusted) { return address.text }
        }
        return IPAddress(chain[0])?.text ?? peer
    }

    static func isTrusted(_ text: String, _ trusted: [IPNetwork]) -> Bool {
        guard let address = IPAddress(text) else { return false }
        return trusted.contains { $0.contains(address.bytes) }
    }
}
