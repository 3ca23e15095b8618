import Synchronization

/// The agent's batch sequence counter, persisted in the state directory so a sequence
/// number never repeats for this agent, across restarts and crashes alike.
///
/// To avoid a disk write per batch it reserves blocks: the file (`<stateDirectory>/sequence`)
/// holds the highest value that may already have been handed out, written ahead by
/// `reservationBlock` (atomically: temp file, fsync, rename, fsync directory). After a
/// crash the counter continues above the reservation, so sequences may skip but never
/// repeat. `close()` writes the exact position so a clean restart skips nothing.
public final class SequenceStore: Sendable {
    /// Path of the counter file.
    public let path: String
    private let state: Mutex<State>

    private struct State {
        /// Value `next()` returns next.
        var nextValue: UInt64
        /// Highest value the file allows to be handed out without another write.
        var reservedThrough: UInt64
        let block: UInt64
    }

    /// Opens the counter in `stateDirectory` (created if missing); the first sequence of a
    /// new agent is 1. Throws `SpoolError.corruptStateFile` if the file does not parse.
    public init(stateDirectory: String, reservationBlock: UInt64 = 1000) throws {
        guard reservationBlock > 0 else {
            throw SpoolError.invalidConfiguration("sequence reservation block must be positive")
        }
        try SpoolFileSystem.makeDirectories(stateDirectory)
        let path = stateDirectory + "/sequence"
        self.path = path
        let reserved = try Self.read(path)
        self.state = Mutex(State(nextValue: reserved + 1, reservedThrough: reserved, block: reservationBlock))
    }

    /// Returns a sequence number never returned before by this state directory.
    /// Writes the file only when the reserved block is used up.
    public func next() throws -> UInt64 {
        try state.withLock { state in
            let value = state.nextValue
            if value > state.reservedThrough {
                let (reserve, overflow) = value.addingReportingOverflow(state.block - 1)
                let through = overflow ? UInt64.max : reserve
                try Self.write(through, to: path)
                state.reservedThrough = through
            }
            state.nextValue = value + 1
            return value
        }
    }

    /// Makes the next sequence at least `value` (e.g. the server's highest committed
    /// sequence from `Welcome`, plus one), durably. Never lowers the counter.
    public func raise(toAtLeast value: UInt64) throws {
        try state.withLock { state in
            guard value > state.nextValue else { return }
            if value - 1 > state.reservedThrough {
                try Self.write(value - 1, to: path)
                state.reservedThrough = value - 1
            }
            state.nextValue = value
        }
    }

    /// Makes the next sequence above `committed`, the highest sequence the server says it
    /// has committed for this agent: `raise(toAtLeast: committed + 1)`.
    public func raise(above committed: UInt64) throws {
        try raise(toAtLeast: committed == .max ? .max : committed + 1)
    }

    /// The value the next call to `next()` returns (for logs).
    public var peekNext: UInt64 { state.withLock { $0.nextValue } }

    /// Persists the exact position so a clean restart continues without a gap. The store
    /// stays usable afterwards.
    public func close() throws {
        try state.withLock { state in
            let handedOut = state.nextValue - 1
            if handedOut != state.reservedThrough {
                try Self.write(handedOut, to: path)
                state.reservedThrough = handedOut
            }
        }
    }

    private static func read(_ path: String) throws -> UInt64 {
        guard let bytes = try SpoolFileSystem.readIfExists(path) else { return 0 }
        let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n")
        guard lines.count >= 2, lines[0] == "crowsnest-sequence 1" else {
            throw SpoolError.corruptStateFile(path: path, reason: "missing crowsnest-sequence header")
        }
        let fields = lines[1].split(separator: " ")
        guard fields.count == 2, fields[0] == "reserved-through", let value = UInt64(fields[1]) else {
            throw SpoolError.corruptStateFile(path: path, reason: "malformed line \"\(lines[1])\"")
        }
        return value
    }

    private static func write(_ reservedThrough: UInt64, to path: String) throws {
        try SpoolFileSystem.atomicReplace(path, with: Array("crowsnest-sequence 1\nreserved-through \(reservedThrough)\n".utf8))
    }
}
