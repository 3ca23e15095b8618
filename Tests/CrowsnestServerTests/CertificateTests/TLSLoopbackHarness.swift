import CrowsnestServer
import CrowsnestWire
import Crypto
import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import X509

/// A gateway-like TLS server and client over real loopback sockets, reporting how each side's handshake ended.
enum TLSLoopbackHarness {
    /// How the server side of one connection ended up.
    enum ServerOutcome: Sendable, Equatable {
        /// Handshake completed; the identity read from the peer certificate, or nil without a client certificate.
        case completed(identity: AgentCertificateIdentity?, tlsVersion: TLSVersion?)
        /// Handshake failed with this error text.
        case failed(String)
    }

    /// Runs one connection: a server with `serverConfiguration`, a client with `clientHandler`.
    ///
    /// - Returns: the server's outcome and whether the client saw its handshake complete (nil) or an error.
    static func run(
        serverConfiguration: TLSConfiguration,
        makeClientHandler: @escaping @Sendable () throws -> NIOSSLClientHandler,
        connectTo host: String = "127.0.0.1"
    ) async throws -> (server: ServerOutcome, clientError: String?) {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        do {
            let result = try await runOnce(
                group: group,
                serverConfiguration: serverConfiguration,
                makeClientHandler: makeClientHandler,
                connectTo: host
            )
            try await group.shutdownGracefully()
            return result
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
    }

    private static func runOnce(
        group: MultiThreadedEventLoopGroup,
        serverConfiguration: TLSConfiguration,
        makeClientHandler: @escaping @Sendable () throws -> NIOSSLClientHandler,
        connectTo host: String
    ) async throws -> (server: ServerOutcome, clientError: String?) {
        let serverContext = try NIOSSLContext(configuration: serverConfiguration)
        let serverOutcome = group.next().makePromise(of: ServerOutcome.self)

        let listener = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: serverContext))
                    try channel.pipeline.syncOperations.addHandler(ServerObserver(outcome: serverOutcome))
                }
            }
            .bind(host: host, port: 0)
            .get()
        defer { listener.close(promise: nil) }
        let port = try XCTUnwrapPort(listener.localAddress?.port)

        let clientDone = group.next().makePromise(of: Void.self)
        let client = try await ClientBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(try makeClientHandler())
                    try channel.pipeline.syncOperations.addHandler(ClientObserver(done: clientDone))
                }
            }
            .connect(host: host, port: port)
            .get()

        var clientError: String?
        do {
            try await clientDone.futureResult.get()
        } catch {
            clientError = String(describing: error)
        }
        // With TLS 1.3 the client finishes its handshake before the server has judged the client certificate:
        // wait for the server's verdict, then close.
        let outcome = try await serverOutcome.futureResult.get()
        if case .failed = outcome, clientError == nil {
            // The server refused: the client learns it when the alert arrives; record that as its error.
            clientError = "server refused the handshake"
        }
        try? await client.close()
        return (outcome, clientError)
    }

    private static func XCTUnwrapPort(_ port: Int?) throws -> Int {
        guard let port else { throw HarnessError("listener has no port") }
        return port
    }

    struct HarnessError: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    private final class ServerObserver: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        let outcome: EventLoopPromise<ServerOutcome>

        init(outcome: EventLoopPromise<ServerOutcome>) { self.outcome = outcome }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if case TLSUserEvent.handshakeCompleted = event {
                do {
                    let handler = try context.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self)
                    let identity = try handler.peerCertificate.map { try ServerTLS.agentIdentity(of: $0) }
                    outcome.succeed(.completed(identity: identity, tlsVersion: handler.tlsVersion))
                } catch {
                    outcome.succeed(.failed("identity: \(error)"))
                }
            }
            context.fireUserInboundEventTriggered(event)
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            outcome.succeed(.failed(String(describing: error)))
            context.close(promise: nil)
        }

        func channelInactive(context: ChannelHandlerContext) {
            outcome.succeed(.failed("connection closed before the handshake completed"))
            context.fireChannelInactive()
        }
    }

    private final class ClientObserver: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        let done: EventLoopPromise<Void>

        init(done: EventLoopPromise<Void>) { self.done = done }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if case TLSUserEvent.handshakeCompleted = event {
                done.succeed(())
            }
            context.fireUserInboundEventTriggered(event)
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            done.fail(error)
            context.close(promise: nil)
        }

        func channelInactive(context: ChannelHandlerContext) {
            done.fail(HarnessError("connection closed before the handshake completed"))
            context.fireChannelInactive()
        }
    }
}

/// Test helpers to make keys, CSRs and foreign CAs with swift-certificates.
enum CertificateTestSupport {
    /// A new P-256 key and a CSR for it with the given subject.
    static func makeCSR(subject: DistinguishedName) throws -> (key: P256.Signing.PrivateKey, csrPEM: String) {
        let key = P256.Signing.PrivateKey()
        let request = try CertificateSigningRequest(
            version: .v1,
            subject: subject,
            privateKey: Certificate.PrivateKey(key),
            attributes: CertificateSigningRequest.Attributes()
        )
        return (key, try request.serializeAsPEM().pemString)
    }

    /// A client TLS configuration presenting `certificatePEM`/`key`, trusting only `caPEM`, TLS 1.2 minimum.
    static func clientConfiguration(
        certificatePEM: String?,
        key: P256.Signing.PrivateKey?,
        caPEM: String
    ) throws -> TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        configuration.trustRoots = .certificates([try NIOSSLCertificate(bytes: Array(caPEM.utf8), format: .pem)])
        configuration.certificateVerification = .fullVerification
        if let certificatePEM, let key {
            configuration.certificateChain = [
                .certificate(try NIOSSLCertificate(bytes: Array(certificatePEM.utf8), format: .pem))
            ]
            configuration.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: Array(key.pemRepresentation.utf8), format: .pem))
        }
        return configuration
    }

    /// A fresh temporary directory.
    static func temporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "crowsnest-cert-tests-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}
