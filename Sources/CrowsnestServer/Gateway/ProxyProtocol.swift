import CrowsnestWire
import NIOCore

/// Reads the PROXY protocol v2 header a load balancer (HAProxy `send-proxy-v2`) puts before the TLS bytes, so
/// caps, rate limits and logs see the agent's address rather than the balancer's. Accepted only from
/// `trusted` networks: from anyone else the header is not parsed (and the TLS handshake fails on it).
///
/// Until the header has been read nothing is passed on; then it fires `ProxyProtocolHandler.ClientAddress` and
/// passes the rest of the bytes through. A malformed or oversized header closes the connection.
final class ProxyProtocolHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    /// The address the connection is from: the proxied client, or the peer itself.
    struct ClientAddress: Sendable {
        let address: SocketAddress?
    }

    static let signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]
    /// Largest header (addresses plus TLVs) accepted.
    static let maximumLength = 1_024

    private let trusted: [IPNetwork]
    private var buffer: ByteBuffer?
    private var expectingHeader = false

    init(trusted: [IPNetwork]) {
        self.trusted = trusted
    }

    func channelActive(context: ChannelHandlerContext) {
        expectingHeader = trusted.contains { $0.contains(context.remoteAddress) }
        context.fireChannelActive()
        if !expectingHeader {
            context.fireUserInboundEventTriggered(ClientAddress(address: context.remoteAddress))
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard expectingHeader else {
            context.fireChannelRead(data)
            return
        }
        var incoming = unwrapInboundIn(data)
        if buffer == nil { buffer = incoming } else { buffer!.writeBuffer(&incoming) }
        switch Self.parse(&buffer!) {
        case .needMoreBytes:
            if buffer!.readableBytes > 16 + Self.maximumLength { context.close(promise: nil) }
        case .invalid:
            context.close(promise: nil)
        case .parsed(let address):
            expectingHeader = false
            context.fireUserInboundEventTriggered(ClientAddress(address: address ?? context.remoteAddress))
            let rest = buffer!
            buffer = nil
            if rest.readableBytes > 0 { context.fireChannelRead(wrapInboundOut(rest)) }
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        }
    }

    enum ParseResult: Equatable {
        case needMoreBytes
        case invalid
        /// The source address; nil for a LOCAL command or an unknown family (the peer itself then counts).
        case parsed(SocketAddress?)
    }

    /// Parses (and consumes) a PROXY v2 header at the start of `buffer`.
    static func parse(_ buffer: inout ByteBuffer) -> ParseResult {
        guard buffer.readableBytes >= 16 else {
            let available = buffer.getBytes(at: buffer.readerIndex, length: buffer.readableBytes) ?? []
            return Array(signature.prefix(available.count)) == Array(available.prefix(signature.count)) ? .needMoreBytes : .invalid
        }
        let start = buffer.readerIndex
        guard buffer.getBytes(at: start, length: 12) == signature,
              let versionCommand = buffer.getInteger(at: start + 12, as: UInt8.self),
              let family = buffer.getInteger(at: start + 13, as: UInt8.self),
              let length = buffer.getInteger(at: start + 14, as: UInt16.self)
        else { return .invalid }
        guard versionCommand >> 4 == 2, Int(length) <= maximumLength else { return .invalid }
        guard buffer.readableBytes >= 16 + Int(length) else { return .needMoreBytes }
        let command = versionCommand & 0x0F
        var address: SocketAddress?
        if command == 1 {
            switch family {
            case 0x11 where length >= 12:  // TCP over IPv4: source, destination, source port, destination port
                if let bytes = buffer.getBytes(at: start + 16, length: 4), let port = buffer.getInteger(at: start + 24, as: UInt16.self) {
                    address = try? SocketAddress(ipAddress: bytes.map(String.init).joined(separator: "."), port: Int(port))
                }
            case 0x21 where length >= 36:  // TCP over IPv6
                if let bytes = buffer.getBytes(at: start + 16, length: 16), let port = buffer.getInteger(at: start + 48, as: UInt16.self) {
                    let groups = stride(from: 0, to: 16, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }
                    address = try? SocketAddress(ipAddress: groups.joined(separator: ":"), port: Int(port))
                }
            default:
                address = nil
            }
        } else if command != 0 {
            return .invalid
        }
        buffer.moveReaderIndex(forwardBy: 16 + Int(length))
        return .parsed(address)
    }
}
