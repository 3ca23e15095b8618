import CrowsnestWire
import Crypto
import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import SwiftASN1
import X509

/// A minimal CA for agent-side tests, issuing certificates shaped like the server's CA does
/// (the agent test target cannot link the server).
struct TestCA {
    let key = P256.Signing.PrivateKey()
    let certificate: Certificate

    init(name: String = "Test CA") throws {
        let publicKey = Certificate.PublicKey(key.publicKey)
        let subject = try DistinguishedName { CommonName(name) }
        certificate = try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(),
            publicKey: publicKey,
            notValidBefore: Date() - 3600,
            notValidAfter: Date() + 86_400,
            issuer: subject,
            subject: subject,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
            },
            issuerPrivateKey: Certificate.PrivateKey(key)
        )
    }

    var pem: String { get throws { try certificate.serializeAsPEM().pemString } }
    var der: [UInt8] {
        get throws {
            var serializer = DER.Serializer()
            try serializer.serialize(certificate)
            return serializer.serializedBytes
        }
    }
    var pin: CAPin { get throws { CAPin.compute(derBytes: try der) } }

    /// A serving certificate (serverAuth) for `localhost` and 127.0.0.1, with its key.
    func issueServingCertificate(
        dnsNames: [String] = ["localhost"],
        ipAddresses: [[UInt8]] = [[127, 0, 0, 1]],
        notValidBefore: Date = Date() - 3600,
        notValidAfter: Date = Date() + 86_400
    ) throws -> (certificate: Certificate, key: P256.Signing.PrivateKey) {
        let serverKey = P256.Signing.PrivateKey()
        let names = dnsNames.map { GeneralName.dnsName($0) }
            + ipAddresses.map { GeneralName.ipAddress(ASN1OctetString(contentBytes: $0[...])) }
        let leaf = try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(),
            publicKey: Certificate.PublicKey(serverKey.publicKey),
            notValidBefore: notValidBefore,
            notValidAfter: notValidAfter,
            issuer: certificate.subject,
            subject: try DistinguishedName { CommonName("server") },
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                try ExtendedKeyUsage([.serverAuth])
                SubjectAlternativeNames(names)
            },
            issuerPrivateKey: Certificate.PrivateKey(key)
        )
        return (leaf, serverKey)
    }

    /// An agent certificate for a CSR, with the subject the server's CA sets.
    func signAgent(csrPEM: String, agentID: UUID, tenantID: UUID) throws -> String {
        let request = try CertificateSigningRequest(pemEncoded: csrPEM)
        let leaf = try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(),
            publicKey: request.publicKey,
            notValidBefore: Date() - 3600,
            notValidAfter: Date() + 86_400,
            issuer: certificate.subject,
            subject: try AgentCertificateIdentity(agentID: agentID, tenantID: tenantID).subject,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                try ExtendedKeyUsage([.clientAuth])
            },
            issuerPrivateKey: Certificate.PrivateKey(key)
        )
        return try leaf.serializeAsPEM().pemString
    }
}

/// A TLS server on loopback presenting a chosen chain and accepting optional client certificates from `clientCA`,
/// like the gateway; it reports how one handshake ended.
enum LoopbackTLS {
    enum ServerOutcome: Sendable, Equatable {
        case completed(peer: AgentCertificateIdentity?)
        case failed(String)
    }

    static func serverConfiguration(
        chain: [Certificate],
        key: P256.Signing.PrivateKey,
        clientCA: Certificate
    ) throws -> TLSConfiguration {
        func nio(_ certificate: Certificate) throws -> NIOSSLCertificate {
            try NIOSSLCertificate(bytes: Array(certificate.serializeAsPEM().pemString.utf8), format: .pem)
        }
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: try chain.map { .certificate(try nio($0)) },
            privateKey: .privateKey(try NIOSSLPrivateKey(bytes: Array(key.pemRepresentation.utf8), format: .pem))
        )
        configuration.minimumTLSVersion = .tlsv12
        configuration.certificateVerification = .optionalVerification
        configuration.trustRoots = .certificates([try nio(clientCA)])
        return configuration
    }

    /// Runs one connection and returns the server's outcome and the client's error, if any.
    static func run(
        serverConfiguration: TLSConfiguration,
        makeClientHandler: @escaping @Sendable () throws -> NIOSSLClientHandler
    ) async throws -> (server: ServerOutcome, clientError: String?) {
        try await run(serverConfiguration: serverConfiguration, makeClientHandlers: { [try makeClientHandler()] })
    }

    /// The same with the client's TLS handler followed by handlers of its own.
    static func run(
        serverConfiguration: TLSConfiguration,
        makeClientHandlers: @escaping @Sendable () throws -> [any ChannelHandler]
    ) async throws -> (server: ServerOutcome, clientError: String?) {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        do {
            let result = try await runOnce(group: group, serverConfiguration: serverConfiguration, makeClientHandlers: makeClientHandlers)
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
        makeClientHandlers: @escaping @Sendable () throws -> [any ChannelHandler]
    ) async throws -> (server: ServerOutcome, clientError: String?) {
        let serverContext = try NIOSSLContext(configuration: serverConfiguration)
        let serverOutcome = group.next().makePromise(of: ServerOutcome.self)
        let listener = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: serverContext))
                    try channel.pipeline.syncOperations.addHandler(Observer(server: serverOutcome))
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        defer { listener.close(promise: nil) }
        let clientDone = group.next().makePromise(of: ServerOutcome.self)
        let client = try await ClientBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers(try makeClientHandlers())
                    try channel.pipeline.syncOperations.addHandler(Observer(client: clientDone))
                }
            }
            .connect(host: "127.0.0.1", port: listener.localAddress!.port!)
            .get()
        var clientError: String?
        if case .failed(let reason) = try await clientDone.futureResult.get() {
            clientError = reason
        }
        let outcome = try await serverOutcome.futureResult.get()
        if case .failed = outcome, clientError == nil {
            clientError = "server refused the handshake"
        }
        try? await client.close()
        return (outcome, clientError)
    }

    private final class Observer: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        let promise: EventLoopPromise<ServerOutcome>
        let isServer: Bool

        init(server: EventLoopPromise<ServerOutcome>) {
            promise = server
            isServer = true
        }

        init(client: EventLoopPromise<ServerOutcome>) {
            promise = client
            isServer = false
        }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if case TLSUserEvent.handshakeCompleted = event {
                if isServer {
                    do {
                        let handler = try context.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self)
                        let peer = try handler.peerCertificate.map {
                            try AgentCertificateIdentity.parse(derBytes: $0.toDERBytes())
                        }
                        promise.succeed(.completed(peer: peer))
                    } catch {
                        promise.succeed(.failed("identity: \(error)"))
                    }
                } else {
                    promise.succeed(.completed(peer: nil))
                }
            }
            context.fireUserInboundEventTriggered(event)
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            promise.succeed(.failed(String(describing: error)))
            context.close(promise: nil)
        }

        func channelInactive(context: ChannelHandlerContext) {
            promise.succeed(.failed("connection closed before the handshake completed"))
            context.fireChannelInactive()
        }
    }
}
