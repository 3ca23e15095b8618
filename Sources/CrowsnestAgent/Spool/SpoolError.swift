/// Why a spool or sequence-store operation failed, with a message an operator can act on.
public enum SpoolError: Error, CustomStringConvertible, Equatable {
    /// A system call on a spool file failed (`errno` decoded into `reason`).
    case io(operation: String, path: String, reason: String)
    /// A single record is larger than the per-record limit or the whole spool cap.
    case recordTooLarge(payloadBytes: Int, limitBytes: Int)
    /// A record was appended with a sequence number not above every earlier one.
    case sequenceNotIncreasing(seq: UInt64, highest: UInt64)
    /// The spool was used after `close()`.
    case closed(directory: String)
    /// A small state file (ack position, sequence counter) does not parse.
    case corruptStateFile(path: String, reason: String)
    /// Configuration that cannot work (e.g. a zero byte cap).
    case invalidConfiguration(String)

    /// Human-readable message, e.g. "cannot fdatasync spool file /var/lib/...: No space left on device".
    public var description: String {
        switch self {
        case let .io(operation, path, reason):
            return "cannot \(operation) spool file \(path): \(reason)"
        case let .recordTooLarge(payloadBytes, limitBytes):
            return "spool record of \(payloadBytes) bytes refused: larger than the limit of \(limitBytes) bytes"
        case let .sequenceNotIncreasing(seq, highest):
            return "spool append refused: sequence \(seq) is not above the highest sequence already spooled or acknowledged (\(highest))"
        case let .closed(directory):
            return "spool in \(directory) is closed"
        case let .corruptStateFile(path, reason):
            return "state file \(path) is unreadable: \(reason); remove it to reset (the server's Welcome restores the sequence)"
        case let .invalidConfiguration(message):
            return "invalid spool configuration: \(message)"
        }
    }
}
