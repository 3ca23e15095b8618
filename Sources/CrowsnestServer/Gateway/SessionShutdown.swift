import CrowsnestWire
import Synchronization

/// Ends one established agent session gracefully when the server shuts down: what the agent already sent is
/// stored and acknowledged, then `Goodbye{SHUTTING_DOWN}` tells it to move to another replica at once (instead of
/// finding a closed connection and backing off). A connection still in its handshake is simply closed.
final class SessionShutdown: Sendable {
    /// The Goodbye the agent gets.
    static let end = AgentSessionHandler.SessionEnd(
        reason: "this server is shutting down; connect to another one", code: .shuttingDown)

    private let state = Mutex<(triggered: Bool, inbox: SessionInbox?)>((false, nil))

    /// Called by the session once it is established. When shutdown already began, the session ends at once.
    func attach(_ inbox: SessionInbox) {
        let triggered = state.withLock { state -> Bool in
            state.inbox = inbox
            return state.triggered
        }
        if triggered { Task { await inbox.push(.failed(Self.end)) } }
    }

    /// Begins the shutdown; returns false when no session is established (the caller closes the connection).
    @discardableResult
    func trigger() -> Bool {
        let inbox = state.withLock { state -> SessionInbox? in
            state.triggered = true
            return state.inbox
        }
        guard let inbox else { return false }
        Task { await inbox.push(.failed(Self.end)) }
        return true
    }
}
