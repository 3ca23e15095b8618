import Synchronization

/// Wakes the shipper when the sampler has spooled a new batch.
public final class Doorbell: Sendable {
    private let wake = Mutex<(@Sendable () -> Void)?>(nil)

    public init() {}

    /// Signals that there is something new to send.
    public func ring() {
        let action = wake.withLock { $0 }
        action?()
    }

    /// Installs what `ring()` does (the current session's wake-up), or nil between sessions.
    func attach(_ action: (@Sendable () -> Void)?) {
        wake.withLock { $0 = action }
    }
}
