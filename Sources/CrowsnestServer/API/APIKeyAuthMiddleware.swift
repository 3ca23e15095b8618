import Foundation
import Hummingbird
import Logging

/// Authenticates `Authorization: Bearer <key>` against `api_keys` and puts the caller (tenant, role)
/// into the context; a missing, malformed, unknown or revoked key ends the request with 401.
public struct APIKeyAuthMiddleware: RouterMiddleware {
    /// The request context this middleware fills in.
    public typealias Context = APIRequestContext

    private let keys: APIKeyStore

    /// Creates the middleware over the key store it checks secrets against.
    public init(keys: APIKeyStore) {
        self.keys = keys
    }

    /// Checks the bearer key, then runs the rest of the chain with `context.caller` set.
    public func handle(_ request: Request, context: APIRequestContext, next: (Request, APIRequestContext) async throws -> Response) async throws -> Response {
        guard let header = request.headers[.authorization] else {
            throw APIError.unauthorized("missing API key: send Authorization: Bearer <key>")
        }
        guard let secret = Self.bearerToken(from: header) else {
            throw APIError.unauthorized("the Authorization header must be \"Bearer <key>\"")
        }
        guard let caller = try await self.keys.authenticate(secret: secret) else {
            context.logger.notice("API key rejected", metadata: ["http.path": "\(request.uri.path)"])
            throw APIError.unauthorized("invalid or revoked API key")
        }
        var context = context
        context.caller = caller
        context.logger[metadataKey: "tenant.id"] = "\(caller.tenantID)"
        context.logger[metadataKey: "api_key.id"] = "\(caller.keyID)"
        return try await next(request, context)
    }

    /// The token of a `Bearer` header value (scheme case-insensitive), or nil for any other shape.
    static func bearerToken(from header: String) -> String? {
        let parts = header.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        let token = parts[1].trimmingCharacters(in: .whitespaces)
        return token.isEmpty ? nil : token
    }
}
