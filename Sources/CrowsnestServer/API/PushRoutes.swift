import CrowsnestWire
import Foundation
import Hummingbird

/// `GET` and `POST /api/v1/push/{token}`: the URL a push check's cron job calls. The token is the credential (no
/// API key); the call is recorded as the check's result for the current slot. `status=down` (default `up`) and
/// `msg` report a failure, `latency_ms` a duration. Calls are limited per check to `callsPerMinute`.
struct PushRoutes: Sendable {
    let checks: CheckStore
    let partitions: PartitionStore
    let leases: LeaseStore

    /// Calls per check per minute; more answer 429 (a loop calling the URL must not flood the results).
    static let callsPerMinute: Int64 = 60
    /// Longest `msg` kept, in UTF-8 bytes (cut on a character boundary).
    static let maximumMessageBytes = 1_024

    func register(on router: Router<APIRequestContext>) {
        for method in [HTTPRequest.Method.get, .post] {
            router.on("api/v1/push/:token", method: method) { request, context in
                try await self.push(request: request, context: context)
            }
        }
    }

    func push(request: Request, context: APIRequestContext) async throws -> PushResponse {
        let token = context.parameters.get("token") ?? ""
        guard token.hasPrefix(CheckStore.pushTokenPrefix), token.utf8.count <= 100 else {
            throw Self.unknown
        }
        let query = request.uri.queryParameters
        let ok: Bool
        switch query.get("status") ?? "up" {
        case "up": ok = true
        case "down": ok = false
        case let other:
            throw APIError.badRequest("status must be up or down (got \"\(WireTextCleaner.excerpt(other))\")")
        }
        var latency: Double?
        if let text = query.get("latency_ms") {
            guard let value = Double(text), value.isFinite, (0...86_400_000).contains(value) else {
                throw APIError.badRequest("latency_ms must be a number of milliseconds from 0 to 86400000 (got \"\(WireTextCleaner.excerpt(text))\")")
            }
            latency = value
        }
        var cleaner = WireTextCleaner()
        let message = cleaner.text(query.get("msg") ?? (ok ? "" : "reported down by its push call"),
                                   maxBytes: Self.maximumMessageBytes)
        try await partitions.ensurePartitions(forMillis: [Int64(Date().timeIntervalSince1970 * 1000)])
        switch try await checks.recordPush(token: token, ok: ok, message: message, latencyMs: latency) {
        case .unknownToken:
            throw Self.unknown
        case .paused(_, let checkID):
            throw APIError.conflict("check \(TargetID.check(checkID: checkID)) is paused; resume it to record its push calls")
        case .recorded(_, let checkID, let slotAt):
            let (calls, resetsAt) = try await leases.increment(key: "push:\(checkID.uuidString.lowercased())", window: .seconds(60))
            if calls > Self.callsPerMinute {
                let wait = max(1, Int(resetsAt.timeIntervalSinceNow.rounded(.up)))
                throw APIError(status: .tooManyRequests, code: "rate_limited",
                               message: "check \(TargetID.check(checkID: checkID)) was pushed more than \(Self.callsPerMinute) times in a minute; this call was recorded, slow the caller down",
                               headers: [.retryAfter: "\(wait)"])
            }
            return PushResponse(ok: true, checkID: TargetID.check(checkID: checkID).description,
                                slotAt: RFC3339.string(from: slotAt), status: ok ? "up" : "down")
        }
    }

    static let unknown = APIError.notFound("no push check has this URL; copy the push_url of the check from the API")
}

/// The answer to a push call.
struct PushResponse: ResponseEncodable {
    let ok: Bool
    let checkID: String
    let slotAt: String
    let status: String

    enum CodingKeys: String, CodingKey {
        case ok
        case checkID = "check_id"
        case slotAt = "slot_at"
        case status
    }
}
