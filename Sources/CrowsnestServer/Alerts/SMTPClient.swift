import CrowsnestProbes
import CrowsnestWire
import Foundation
import NIOCore
import NIOPosix
import NIOSSL

/// How an SMTP connection is secured: `STARTTLS` after the greeting (port 587), or TLS from the first byte
/// (port 465). There is no plain mode: a password or an alert's text never crosses the network in the clear.
public enum SMTPSecurity: String, Sendable, CaseIterable {
    case startTLS = "starttls"
    case implicitTLS = "tls"

    public var defaultPort: Int { self == .startTLS ? 587 : 465 }
}

/// Where and how mail is handed over.
public struct SMTPServer: Sendable, Equatable {
    public var host: String
    public var port: Int
    public var security: SMTPSecurity
    /// Whether the server's certificate must chain to the system's roots and name `host`.
    public var verifyTLS: Bool
    public var username: String?
    public var password: String?

    public init(host: String, port: Int, security: SMTPSecurity, verifyTLS: Bool = true, username: String? = nil, password: String? = nil) {
        (self.host, self.port, self.security, self.verifyTLS, self.username, self.password) = (host, port, security, verifyTLS, username, password)
    }
}

/// One message: the envelope and the whole RFC 5322 text (headers, blank line, body; any line breaks).
public struct SMTPMail: Sendable {
    public var from: String
    public var to: [String]
    public var text: String

    public init(from: String, to: [String], text: String) {
        (self.from, self.to, self.text) = (from, to, text)
    }
}

/// Why a message was not handed over. `permanent` when the server refused it with a 5xx reply (or cannot do what
/// the channel needs, such as STARTTLS or AUTH): sending it again will not help.
public struct SMTPFailure: Error, CustomStringConvertible, Sendable {
    public var reason: String
    public var permanent: Bool

    public init(_ reason: String, permanent: Bool = false) {
        (self.reason, self.permanent) = (reason, permanent)
    }

    public var description: String { reason }
}

/// A minimal SMTP submission client on SwiftNIO (RFC 5321 with STARTTLS, RFC 3207, and AUTH PLAIN or LOGIN,
/// RFC 4954): greeting, EHLO, TLS, AUTH, MAIL, RCPT, DATA, QUIT — what delivering an alert needs. The server's
/// name goes through the SSRF guard like every server-side request, and the checked address is the one dialled.
public struct SMTPClient: Sendable {
    private let group: any EventLoopGroup

    public init(group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        self.group = group
    }

    /// Hands `mail` to `server` within `timeout`; throws `SMTPFailure` saying what went wrong.
    public func send(_ mail: SMTPMail, via server: SMTPServer, addressGuard: AddressGuard, timeout: Duration) async throws {
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await self.session(mail, via: server, addressGuard: addressGuard, timeout: timeout) }
            tasks.addTask {
                try await Task.sleep(for: timeout)
                throw SMTPFailure("the SMTP server \(server.host):\(server.port) did not take the message within \(timeout)")
            }
            defer { tasks.cancelAll() }
            try await tasks.next()
        }
    }

    private func session(_ mail: SMTPMail, via server: SMTPServer, addressGuard: AddressGuard, timeout: Duration) async throws {
        let addresses: [SocketAddress]
        do {
            addresses = try await GuardedResolver(addressGuard: addressGuard).resolve(host: server.host, port: server.port)
        } catch let failure as ProbeFailure {
            throw SMTPFailure("the SMTP server \(server.host) is refused: \(failure.reason)")
        }
        let context = try Self.tlsContext(verify: server.verifyTLS)
        let serverName = IPAddress(server.host) == nil ? server.host : nil
        var lastError = "no address"
        for address in addresses {
            let channel: NIOAsyncChannel<SMTPReply, ByteBuffer>
            do {
                channel = try await ClientBootstrap(group: group)
                    .connectTimeout(.seconds(10))
                    .connect(to: address) { channel in
                        channel.eventLoop.makeCompletedFuture {
                            if server.security == .implicitTLS {
                                try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: context, serverHostname: serverName))
                            }
                            try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(SMTPReplyDecoder()))
                            return try NIOAsyncChannel<SMTPReply, ByteBuffer>(wrappingChannelSynchronously: channel)
                        }
                    }
            } catch {
                lastError = "\(address): \(error)"
                continue
            }
            do {
                try await withTaskCancellationHandler {
                    try await channel.executeThenClose { inbound, outbound in
                        var conversation = SMTPConversation(replies: inbound.makeAsyncIterator(), outbound: outbound, server: server)
                        try await conversation.run(mail, channel: channel.channel, context: context, serverName: serverName)
                    }
                } onCancel: {
                    channel.channel.close(promise: nil)
                }
            } catch let failure as SMTPFailure {
                throw failure
            } catch let error as NIOSSLError {
                let hint = server.verifyTLS ? " (for a certificate not signed by a public authority, set smtp_verify_tls false)" : ""
                throw SMTPFailure("TLS with the SMTP server \(server.host):\(server.port) failed: \(error)\(hint)")
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                throw SMTPFailure("the conversation with the SMTP server \(server.host):\(server.port) broke off: \(error)")
            }
            return
        }
        throw SMTPFailure("cannot connect to the SMTP server \(server.host):\(server.port): \(lastError)")
    }

    static func tlsContext(verify: Bool) throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        if !verify { configuration.certificateVerification = .none }
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw SMTPFailure("cannot set up TLS for SMTP: \(error)", permanent: true)
        }
    }
}

/// The commands of one session, each with the reply it needs.
private struct SMTPConversation {
    var replies: NIOAsyncChannelInboundStream<SMTPReply>.AsyncIterator
    let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    let server: SMTPServer

    mutating func run(_ mail: SMTPMail, channel: any Channel, context: NIOSSLContext, serverName: String?) async throws {
        let name = channel.localAddress?.ipAddress.map { $0.contains(":") ? "[IPv6:\($0)]" : "[\($0)]" } ?? "[127.0.0.1]"
        _ = try await expect(220, after: "the connection (its greeting)")
        var capabilities = try await command("EHLO \(name)", expecting: 250).capabilities
        if server.security == .startTLS {
            guard capabilities.contains(where: { $0 == "STARTTLS" }) else {
                throw SMTPFailure("the SMTP server \(server.host):\(server.port) does not offer STARTTLS (it offers: "
                    + "\(capabilities.joined(separator: ", ").prefix(200))); use smtp_security \"tls\" if it expects TLS from the start "
                    + "(port 465)", permanent: true)
            }
            _ = try await command("STARTTLS", expecting: 220)
            // Wait for the handshake before writing: a certificate that does not verify then fails with its reason,
            // not with a write to the channel the failed handshake closed.
            let handshake = channel.eventLoop.makePromise(of: Void.self)
            try await channel.eventLoop.submit {
                let tls = try NIOSSLClientHandler(context: context, serverHostname: serverName)
                try channel.pipeline.syncOperations.addHandler(tls, position: .first)
                try channel.pipeline.syncOperations.addHandler(HandshakeWaiter(promise: handshake), position: .after(tls))
            }.get()
            try await handshake.futureResult.get()
            capabilities = try await command("EHLO \(name)", expecting: 250).capabilities
        }
        if let username = server.username {
            let password = server.password ?? ""
            let mechanisms = capabilities.filter { $0.hasPrefix("AUTH") }
                .flatMap { $0.dropFirst(4).split(whereSeparator: { $0 == " " || $0 == "=" }).map(String.init) }
            if mechanisms.contains("PLAIN") {
                let token = Data("\u{0}\(username)\u{0}\(password)".utf8).base64EncodedString()
                _ = try await command("AUTH PLAIN \(token)", expecting: 235, secret: true)
            } else if mechanisms.contains("LOGIN") {
                _ = try await command("AUTH LOGIN", expecting: 334)
                _ = try await command(Data(username.utf8).base64EncodedString(), expecting: 334, secret: true)
                _ = try await command(Data(password.utf8).base64EncodedString(), expecting: 235, secret: true)
            } else {
                throw SMTPFailure("the SMTP server \(server.host):\(server.port) offers no AUTH PLAIN or LOGIN for the username "
                    + "(it offers: \(mechanisms.isEmpty ? "no AUTH at all" : mechanisms.joined(separator: " ")))", permanent: true)
            }
        }
        _ = try await command("MAIL FROM:<\(mail.from)>", expecting: 250)
        for recipient in mail.to {
            _ = try await command("RCPT TO:<\(recipient)>", expecting: 250, alsoAccepting: 251)
        }
        _ = try await command("DATA", expecting: 354)
        try await outbound.write(ByteBuffer(string: SMTPMessageText.dotStuffed(mail.text)))
        _ = try await expect(250, after: "the message")
        try? await outbound.write(ByteBuffer(string: "QUIT\r\n"))
        _ = try? await replies.next()
    }

    mutating func command(_ line: String, expecting code: Int, alsoAccepting other: Int? = nil, secret: Bool = false) async throws -> SMTPReply {
        try await outbound.write(ByteBuffer(string: line + "\r\n"))
        let shown = secret ? "the credentials" : String(line.prefix(60))
        return try await expect(code, alsoAccepting: other, after: shown)
    }

    mutating func expect(_ code: Int, alsoAccepting other: Int? = nil, after what: String) async throws -> SMTPReply {
        guard let reply = try await replies.next() else {
            throw SMTPFailure("the SMTP server \(server.host):\(server.port) closed the connection after \(what)")
        }
        guard reply.code == code || reply.code == other else {
            throw SMTPFailure("the SMTP server \(server.host):\(server.port) answered \(what) with \(reply.code) \(reply.text.prefix(200))",
                              permanent: reply.code >= 500)
        }
        return reply
    }
}

/// One reply: its code and the text of each line.
struct SMTPReply: Sendable {
    var code: Int
    var lines: [String]

    var text: String { lines.joined(separator: " ") }

    /// The EHLO keywords (every line after the first), upper-cased.
    var capabilities: [String] { lines.dropFirst().map { $0.uppercased() } }
}

/// Splits the server's bytes into replies (`250-…` lines continue one, `250 …` ends it); a line longer than 4 KiB
/// or a reply of more than 100 lines ends the session instead of growing without bound.
struct SMTPReplyDecoder: ByteToMessageDecoder {
    typealias InboundOut = SMTPReply
    static let maximumLineLength = 4096
    static let maximumLines = 100
    private var lines: [String] = []

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let newline = buffer.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) else {
            if buffer.readableBytes > Self.maximumLineLength { throw SMTPFailure("the SMTP server sent a line longer than 4 KiB") }
            return .needMoreData
        }
        var bytes = buffer.readBytes(length: newline - buffer.readerIndex + 1) ?? []
        // Bytes, not characters: "\r\n" is one Character in Swift.
        while let last = bytes.last, last == UInt8(ascii: "\n") || last == UInt8(ascii: "\r") { bytes.removeLast() }
        let line = String(decoding: bytes, as: UTF8.self)
        guard line.count <= Self.maximumLineLength, line.utf8.count >= 3, let code = Int(line.prefix(3)), (200...599).contains(code) else {
            throw SMTPFailure("the SMTP server sent a line that is not a reply: \(line.prefix(80))")
        }
        lines.append(String(line.dropFirst(4)))
        guard lines.count <= Self.maximumLines else { throw SMTPFailure("the SMTP server sent a reply of more than 100 lines") }
        if line.dropFirst(3).first == "-" { return .continue }
        let reply = SMTPReply(code: code, lines: lines)
        lines = []
        context.fireChannelRead(Self.wrapInboundOut(reply))
        return .continue
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        return .needMoreData
    }
}

/// The text of a message as SMTP's DATA carries it.
enum SMTPMessageText {
    /// Every line break as CRLF, a leading dot doubled (RFC 5321 4.5.2), and the closing `.` line.
    static func dotStuffed(_ text: String) -> String {
        let normalized = text.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\r", with: "\n")
        var lines = normalized.split(separator: "\n", omittingEmptySubsequences: false).map { $0.hasPrefix(".") ? "." + $0 : String($0) }
        if lines.last == "" { lines.removeLast() }
        return lines.joined(separator: "\r\n") + "\r\n.\r\n"
    }
}
