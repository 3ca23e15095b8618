/// Wakes the shipper when the sampler has spooled a new batch.
public final class Doorbell: Sendable {
    private let wake = CallbackSlot<Void>()

    public init() {}

    /// Signals that there is something new to send.
    public func ring() {
        wake.call(())
    }

    /// Installs what `ring()` does (the current session's wake-up), or nil between sessions.
    func attach(_ action: (@Sendable () -> Void)?) {
        wake.set(action.map { action in { @Sendable _ in action() } })
    }
}
