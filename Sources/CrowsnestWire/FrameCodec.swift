import NIOCore
import SwiftProtobuf

/// Turns `Frame` messages into length-prefixed bytes and payloads back into messages.
public enum FrameCodec {
    /// Serializes `frame` and appends its 4-byte big-endian length and payload to `buffer`.
    public static func encode(_ frame: Crowsnest_V1_Frame, into buffer: inout ByteBuffer) throws {
        let payload: [UInt8] = try frame.serializedBytes()
        precondition(payload.count <= Int(UInt32.max), "frame payload exceeds 4 GiB")
        buffer.writeInteger(UInt32(payload.count))
        buffer.writeBytes(payload)
    }

    /// Serializes `frame` into a fresh buffer holding exactly one length-prefixed frame.
    public static func encode(_ frame: Crowsnest_V1_Frame, allocator: ByteBufferAllocator = ByteBufferAllocator()) throws -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 256)
        try encode(frame, into: &buffer)
        return buffer
    }

    /// Adds the length prefix to an already serialized `Frame` (as the agent keeps them in its spool).
    public static func frame(serialized payload: [UInt8]) -> ByteBuffer {
        precondition(payload.count <= Int(UInt32.max), "frame payload exceeds 4 GiB")
        var buffer = ByteBuffer()
        buffer.reserveCapacity(4 + payload.count)
        buffer.writeInteger(UInt32(payload.count))
        buffer.writeBytes(payload)
        return buffer
    }

    /// Decodes one payload (without its length prefix). Fields this version does not know are kept aside by
    /// SwiftProtobuf (as unknown fields) and never read: a newer peer's additions change nothing here.
    public static func decodeFrame(_ payload: ByteBuffer) throws -> Crowsnest_V1_Frame {
        let frame: Crowsnest_V1_Frame
        do {
            frame = try Crowsnest_V1_Frame(serializedBytes: Array(payload.readableBytesView))
        } catch {
            throw FrameError.malformedPayload(reason: String(describing: error))
        }
        if frame.message == nil { throw FrameError.emptyMessage }
        return frame
    }
}

extension Crowsnest_V1_Frame {
    /// A short name of the carried message, for logs ("hello", "batch", ...).
    public var messageName: String {
        switch message {
        case .hello: return "hello"
        case .welcome: return "welcome"
        case .reject: return "reject"
        case .batch: return "batch"
        case .ack: return "ack"
        case .heartbeat: return "heartbeat"
        case .goodbye: return "goodbye"
        case .assign: return "assign"
        case .checkResults: return "check_results"
        case .enrollRequest: return "enroll_request"
        case .enrollResponse: return "enroll_response"
        case .renewRequest: return "renew_request"
        case .renewResponse: return "renew_response"
        case .none: return "none"
        }
    }

    /// Wraps a message in a frame.
    public static func with(_ message: Crowsnest_V1_Frame.OneOf_Message) -> Crowsnest_V1_Frame {
        var frame = Crowsnest_V1_Frame()
        frame.message = message
        return frame
    }
}
