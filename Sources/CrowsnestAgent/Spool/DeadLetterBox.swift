import Synchronization
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Spooled batches the server refused to decode (`Goodbye{MALFORMED_BATCH}`), counted per sequence and, after
/// `maxRefusals`, moved out of the spool into `<state>/dead-letter/<seq>.frame` so one bad record cannot block
/// every batch behind it. The files stay for an operator to inspect; the count is reported to the server.
public final class DeadLetterBox: Sendable {
    /// Refusals of the same record before it is set aside.
    public static let maxRefusals = 3

    public let directory: String
    private let refusalsPath: String
    private let state: Mutex<State>

    private struct State {
        var seq: UInt64 = 0
        var refusals = 0
        var unreported: UInt64 = 0
    }

    public init(stateDirectory: String) throws {
        directory = stateDirectory + "/dead-letter"
        refusalsPath = stateDirectory + "/dead-letter-refusals"
        try SpoolFileSystem.makeDirectories(directory)
        var initial = State()
        if let bytes = try SpoolFileSystem.readIfExists(refusalsPath) {
            let text = String(decoding: bytes, as: UTF8.self)
            let fields = text.split(whereSeparator: \.isWhitespace)
            if fields.count == 3, let seq = UInt64(fields[0]), let count = Int(fields[1]), let unreported = UInt64(fields[2]) {
                initial = State(seq: seq, refusals: count, unreported: unreported)
            }
        }
        state = Mutex(initial)
    }

    /// Counts one refusal of the record `seq`; returns how many refusals that record has had in a row.
    public func countRefusal(of seq: UInt64) throws -> Int {
        try state.withLock { state in
            if state.seq != seq {
                state.seq = seq
                state.refusals = 0
            }
            state.refusals += 1
            try persist(state)
            return state.refusals
        }
    }

    /// Writes the record's bytes to the dead-letter directory and counts it for the next report.
    public func setAside(seq: UInt64, payload: [UInt8]) throws {
        let path = directory + "/\(seq).frame"
        try SpoolFileSystem.atomicReplace(path, with: payload)
        try state.withLock { state in
            state.unreported &+= 1
            state.refusals = 0
            try persist(state)
        }
    }

    /// Records set aside since the last call (for `SampleBatch.dead_lettered_batches`).
    public func takeUnreported() throws -> UInt64 {
        try state.withLock { state in
            let count = state.unreported
            guard count > 0 else { return 0 }
            state.unreported = 0
            try persist(state)
            return count
        }
    }

    private func persist(_ state: State) throws {
        try SpoolFileSystem.atomicReplace(refusalsPath, with:
                                            Array("\(state.seq) \(state.refusals) \(state.unreported)\n".utf8))
    }
}
