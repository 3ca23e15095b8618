import Synchronization

/// A replaceable callback that is read on every use (every ring of the doorbell, every check assignment).
///
/// The closure is kept inside a struct: a closure stored straight in a `Mutex` is wrapped in one more
/// reabstraction thunk every time `withLock` hands it out through its generic `inout`, so a callback read once per
/// event grew a chain of thunks without bound — heap for every read, and a call that walked the whole chain on the
/// stack (an agent running 100 checks had 250 KiB-deep stacks after a minute, and would have overflowed within hours).
final class CallbackSlot<Argument>: Sendable {
    private struct Callback: Sendable {
        let call: @Sendable (Argument) -> Void
    }

    private let slot = Mutex<Callback?>(nil)

    init() {}

    /// Installs what ``call(_:)`` runs, or nil to run nothing.
    func set(_ action: (@Sendable (Argument) -> Void)?) {
        let callback = action.map(Callback.init)
        slot.withLock { $0 = callback }
    }

    /// Runs the installed callback (outside the lock); false when none is installed.
    @discardableResult
    func call(_ argument: Argument) -> Bool {
        guard let callback = slot.withLock({ $0 }) else { return false }
        callback.call(argument)
        return true
    }
}
