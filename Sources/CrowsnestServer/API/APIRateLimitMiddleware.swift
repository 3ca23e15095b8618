import Foundation
import Hummingbird
import Logging

/// Limits each API key to `requestsPerMinute` requests in a fixed one-minute window, counted with the lease
/// keyspace's `INCR` (`api:<key id>`), so every replica counts against the same window. Over the limit the
/// request is refused with 429 and `Retry-After` (the seconds until the window ends), before it touches anything.
public struct APIRateLimitMiddleware: RouterMiddleware {
    public typealias Context = APIRequestContext

    /// The default limit: twenty requests a second, sustained over a minute, per key.
    public static let defaultRequestsPerMinute = 1200

    private let leases: LeaseStore
    private let requestsPerMinute: Int

    public init(leases: LeaseStore, requestsPerMinute: Int) {
        self.leases = leases
        self.requestsPerMinute = requestsPerMinute
    }

    public func handle(_ request: Request, context: APIRequestContext,
                       next: (Request, APIRequestContext) async throws -> Response) async throws -> Response {
        let caller = try context.requireCaller()
        let (count, resetsAt) = try await leases.increment(key: "api:\(caller.keyID.uuidString.lowercased())", window: .seconds(60))
        guard count <= Int64(requestsPerMinute) else {
            let wait = max(1, Int(resetsAt.timeIntervalSinceNow.rounded(.up)))
            if count == Int64(requestsPerMinute) + 1 {
                context.logger.notice("API key over its rate limit; refusing its requests until the window ends",
                                      metadata: ["limit.per_minute": "\(requestsPerMinute)", "retry_after_seconds": "\(wait)"])
            }
            throw APIError(status: .tooManyRequests, code: "rate_limited",
                           message: "this API key made more than \(requestsPerMinute) requests in a minute; retry after \(wait) s",
                           headers: [.retryAfter: "\(wait)"])
        }
        return try await next(request, context)
    }
}
