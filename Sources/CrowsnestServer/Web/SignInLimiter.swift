import Crypto
import Foundation

/// Sign-in attempts counted in the lease keyspace's `INCR` windows, shared by every replica: at most
/// `perUsername` attempts for one user name and `perAddress` from one address in `window`. Counted before the
/// password is checked, so guessing costs the same whether or not a guess is right.
struct SignInLimiter: Sendable {
    static let perUsername: Int64 = 10
    static let perAddress: Int64 = 50
    static let window: Duration = .seconds(15 * 60)

    let leases: LeaseStore

    /// nil when the attempt may go ahead, else the seconds until it may be tried again.
    func admit(username: String, address: String?) async throws -> Int? {
        let name = Self.key("signin:user:", username.lowercased())
        let user = try await leases.increment(key: name, window: Self.window)
        var retryAfter: Date?
        if user.value > Self.perUsername { retryAfter = user.expiresAt }
        if let address {
            let counted = try await leases.increment(key: Self.key("signin:address:", address), window: Self.window)
            if counted.value > Self.perAddress { retryAfter = max(retryAfter ?? counted.expiresAt, counted.expiresAt) }
        }
        return retryAfter.map { max(1, Int($0.timeIntervalSinceNow.rounded(.up))) }
    }

    /// Keys carry a hash of the name or address: bounded in length, nothing typed into the form reaches a key.
    static func key(_ prefix: String, _ value: String) -> String {
        prefix + SHA256.hash(data: Data(value.utf8)).prefix(16).map { String(format: "%02x", $0) }.joined()
    }
}
