/// Why a stream of bytes could not be read as frames. Every case closes the connection.
public enum FrameError: Error, Equatable, CustomStringConvertible, Sendable {
    /// The length prefix announced an empty frame; the protocol never sends one.
    case emptyFrame
    /// The length prefix announced more bytes than the current limit allows.
    case frameTooLarge(length: UInt32, limit: Int)
    /// The payload is not a valid `crowsnest.v1.Frame`.
    case malformedPayload(reason: String)
    /// The frame decoded but carries no message.
    case emptyMessage
    /// The stream ended in the middle of a frame.
    case truncated(bufferedBytes: Int)

    public var description: String {
        switch self {
        case .emptyFrame:
            return "frame length 0 is not allowed"
        case .frameTooLarge(let length, let limit):
            return "frame of \(length) bytes exceeds the limit of \(limit) bytes"
        case .malformedPayload(let reason):
            return "frame payload is not a valid crowsnest.v1.Frame: \(reason)"
        case .emptyMessage:
            return "frame carries no message"
        case .truncated(let buffered):
            return "connection ended in the middle of a frame (\(buffered) bytes buffered)"
        }
    }
}
