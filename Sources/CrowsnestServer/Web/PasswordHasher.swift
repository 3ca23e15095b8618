import HummingbirdBcrypt
import NIOPosix

/// Passwords hashed and checked with bcrypt (hummingbird-auth's, a salted slow hash) on NIO's thread pool, never
/// on an event loop. Checking a name that has no user still runs one bcrypt, so the time taken does not reveal
/// which names exist.
public struct PasswordHasher: Sendable {
    /// Bcrypt's cost: 2^cost rounds (12 takes a few hundred milliseconds here).
    public let cost: UInt8
    /// Shortest and longest password accepted (bcrypt reads only the first 72 bytes; longer ones are refused
    /// rather than silently cut).
    public static let minimumLength = 10
    public static let maximumBytes = 72

    private let decoy: String

    public init(cost: UInt8 = 12) {
        self.cost = cost
        self.decoy = Bcrypt.hash("crowsnest decoy password", cost: cost)
    }

    /// Why `password` cannot be used, or nil when it can.
    public static func problem(password: String) -> String? {
        if password.count < minimumLength { return "the password is shorter than \(minimumLength) characters" }
        if password.utf8.count > maximumBytes { return "the password is longer than \(maximumBytes) bytes (bcrypt reads no more)" }
        return nil
    }

    public func hash(_ password: String) async throws -> String {
        let cost = self.cost
        return try await NIOThreadPool.singleton.runIfActive { Bcrypt.hash(password, cost: cost) }
    }

    /// True when `password` matches `hash`; with no hash (no such user), checks against a decoy and says false.
    public func verify(_ password: String, hash: String?) async throws -> Bool {
        let against = hash ?? decoy
        let matches = try await NIOThreadPool.singleton.runIfActive {
            Bcrypt.verify(String(password.utf8.prefix(Self.maximumBytes)) ?? "", hash: against)
        }
        return matches && hash != nil
    }
}
