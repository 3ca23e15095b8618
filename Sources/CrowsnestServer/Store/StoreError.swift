/// A request the store refused, with a message an operator can act on.
public struct StoreError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What kind of refusal this is, for callers that branch on it.
    public enum Code: String, Sendable {
        case notFound = "not_found"
        case alreadyExists = "already_exists"
        case invalid = "invalid"
        case tokenRejected = "token_rejected"
        case agentRevoked = "agent_revoked"
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
