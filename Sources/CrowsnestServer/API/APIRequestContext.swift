import Foundation
import Hummingbird

/// The role an API key grants: `admin` may change things, `read` may only look.
public enum APIKeyRole: String, Sendable, Codable, CaseIterable {
    /// Full access to the tenant's data and management routes.
    case admin
    /// Read-only access.
    case read
}

/// Who is calling: the tenant and role of the API key that authenticated the request.
public struct APICaller: Sendable, Equatable {
    /// The tenant every query of this request is confined to.
    public var tenantID: UUID
    /// The id of the API key used (for audit logs; never the secret).
    public var keyID: UUID
    /// What the key may do.
    public var role: APIKeyRole

    /// Creates a caller identity.
    public init(tenantID: UUID, keyID: UUID, role: APIKeyRole) {
        self.tenantID = tenantID
        self.keyID = keyID
        self.role = role
    }
}

/// The per-request context of the HTTP API: Hummingbird's core storage plus the caller that
/// `APIKeyAuthMiddleware` authenticated (nil on the unauthenticated routes `/healthz`, `/readyz`, `/metrics`).
public struct APIRequestContext: RequestContext {
    /// Hummingbird's own per-request storage (logger, path parameters).
    public var coreContext: CoreRequestContextStorage
    /// The authenticated caller; set by `APIKeyAuthMiddleware` before any `/api/v1` route runs.
    public var caller: APICaller?
    /// The signed-in browser's session; set by `WebSessionMiddleware` on the web pages.
    public var webSession: WebSession?
    /// The peer's address (the proxy's, behind one), for per-address limits such as sign-in attempts.
    public var remoteAddress: String?
    /// Bodies a route collects or decodes are refused with 413 above this (the connection-level cap is the same).
    public var maxUploadSize: Int { HTTPRequestLimits.defaultMaxBodyBytes }

    /// Creates the context for a new request, not yet authenticated.
    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.caller = nil
        self.webSession = nil
        self.remoteAddress = source.channel.remoteAddress?.ipAddress
    }

    /// The authenticated caller, or a 401 when the route was reached without authentication
    /// (a wiring mistake: the route was registered outside the authenticated group).
    public func requireCaller() throws -> APICaller {
        guard let caller = self.caller else {
            throw APIError.unauthorized("missing API key: send Authorization: Bearer <key>")
        }
        return caller
    }

    /// The authenticated caller if its key has the admin role, else 403.
    public func requireAdmin() throws -> APICaller {
        let caller = try self.requireCaller()
        guard caller.role == .admin else {
            throw APIError.forbidden("this API key has the read role; an admin key is required")
        }
        return caller
    }
}
