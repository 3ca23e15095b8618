import CrowsnestWire
import Crypto
import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import PostgresNIO
import X509
import ServiceLifecycleTestKit
import XCTest

@testable import CrowsnestServer

/// A real `AgentGateway` on 127.0.0.1 (port 0) over real stores, with its own CA in a temporary directory.
struct GatewayHarness: Sendable {
    let ca: CertificateAuthority
    let port: Int
    let client: PostgresClient
    let logger: Logger
    let admission: ConnectionAdmission
    /// Begins the gateway's graceful shutdown, as SIGTERM does in the server.
    let shutdown: GracefulShutdownTestTrigger

    static let logger: Logger = {
        var logger = Logger(label: "crowsnest.tests.gateway")
        logger.logLevel = .critical
        return logger
    }()

    /// Runs the gateway in a task for the duration of `body`, then cancels it and removes the CA directory.
    static func run<T>(client: PostgresClient, storageTimeout: Duration = .seconds(20),
                       admissionLimits: ConnectionAdmission.Limits = ConnectionAdmission.Limits(),
                       trustedProxies: [IPNetwork] = [],
                       isolation: isolated (any Actor)? = #isolation,
                       _ body: (GatewayHarness) async throws -> T) async throws -> T {
        let directory = try TestPostgres.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let ca = try CertificateAuthority.loadOrCreate(directory: directory + "/ca", logger: logger)
        let partitions = PartitionStore(client: client, logger: logger)
        var sessions = AgentSessionHandler(
            agents: AgentStore(client: client, logger: logger),
            ingest: IngestWriter(client: client, partitions: partitions, logger: logger, timeWindow: IngestFixtures.timeWindow),
            enrollment: { var enrollment = AgentEnrollment(client: client, authority: ca, logger: logger)
                          enrollment.certificateValidity = 3_600
                          return enrollment }(),
            logger: logger)
        sessions.storageTimeout = storageTimeout
        sessions.sessionCheckInterval = .milliseconds(200)
        let admission = ConnectionAdmission(limits: admissionLimits, logger: logger)
        sessions.admission = admission
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        var gatewayConfiguration = GatewayConfiguration(host: "127.0.0.1", port: 0, handshakeTimeout: .seconds(5))
        gatewayConfiguration.trustedProxies = trustedProxies
        let gateway = try AgentGateway(
            configuration: gatewayConfiguration,
            tlsConfiguration: try ServerTLS.makeGatewayConfiguration(ca: ca), sessions: sessions, logger: logger,
            onBound: { address in continuation.yield(address.port ?? 0) })
        // The gateway's task carries a graceful shutdown a test can trigger (the database client's does not).
        let (task, shutdown) = await testGracefulShutdown { trigger in
            (Task {
                defer { continuation.finish() }
                try await gateway.run()
            }, trigger)
        }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next(), port > 0 else {
            task.cancel()
            _ = await task.result
            throw TestPostgresUnavailable(description: "the gateway did not bind: \(String(describing: await task.result))")
        }
        let harness = GatewayHarness(ca: ca, port: port, client: client, logger: logger, admission: admission, shutdown: shutdown)
        do {
            let result = try await body(harness)
            task.cancel()
            _ = await task.result
            return result
        } catch {
            task.cancel()
            _ = await task.result
            throw error
        }
    }

    // MARK: Tenants, tokens and agents

    func createTenant(_ name: String = "acme") async throws -> UUID {
        try await TenantStore(client: client, logger: logger).create(name: name)
    }

    func createToken(tenantID: UUID) async throws -> String {
        try await EnrollmentTokenStore(client: client, logger: logger).create(tenantID: tenantID)
    }

    /// An agent row plus a client certificate from this gateway's CA (what enrollment would have produced).
    func enrolledAgent(tenantID: UUID, committedSeq: Int64 = 0) async throws -> (agentID: UUID, tls: TLSConfiguration) {
        let agentID = UUID()
        let (key, csr) = try GatewayHarness.makeCSR()
        let certificatePEM = try ca.signAgentCSR(csrPEM: csr, agentID: agentID, tenantID: tenantID)
        try await client.query("""
            INSERT INTO agents (tenant_id, id, hostname, committed_seq) VALUES (\(tenantID), \(agentID), 'host-1', \(committedSeq))
            """, logger: logger)
        return (agentID, try GatewayHarness.clientTLS(certificatePEM: certificatePEM, key: key, caPEM: ca.caCertificatePEM))
    }

    /// TLS for a client without a certificate (an enrolling agent) that trusts this gateway's CA.
    var enrollmentTLS: TLSConfiguration {
        get throws { try GatewayHarness.clientTLS(certificatePEM: nil, key: nil, caPEM: ca.caCertificatePEM) }
    }

    static func makeCSR(hostname: String = "host-1") throws -> (key: P256.Signing.PrivateKey, csrPEM: String) {
        let key = P256.Signing.PrivateKey()
        let request = try CertificateSigningRequest(
            version: .v1, subject: try DistinguishedName { CommonName(hostname) }, privateKey: Certificate.PrivateKey(key),
            attributes: CertificateSigningRequest.Attributes())
        return (key, try request.serializeAsPEM().pemString)
    }

    static func clientTLS(certificatePEM: String?, key: P256.Signing.PrivateKey?, caPEM: String) throws -> TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        configuration.trustRoots = .certificates([try NIOSSLCertificate(bytes: Array(caPEM.utf8), format: .pem)])
        configuration.certificateVerification = .fullVerification
        if let certificatePEM, let key {
            configuration.certificateChain = [.certificate(try NIOSSLCertificate(bytes: Array(certificatePEM.utf8), format: .pem))]
            configuration.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: Array(key.pemRepresentation.utf8), format: .pem))
        }
        return configuration
    }

    // MARK: Frames

    static func hello(lastAckedSeq: UInt64 = 0) -> Crowsnest_V1_Frame {
        var hello = Crowsnest_V1_Hello()
        hello.protocolVersion = FrameLimits.protocolVersion
        hello.agentVersion = "test"
        hello.host.hostname = "host-1"
        hello.bootID = "boot-1"
        hello.lastAckedSeq = lastAckedSeq
        return .with(.hello(hello))
    }

    static func enrollRequest(token: String) throws -> Crowsnest_V1_Frame {
        var request = Crowsnest_V1_EnrollRequest()
        request.token = token
        request.csrPem = try makeCSR().csrPEM
        request.host.hostname = "new-host"
        request.agentVersion = "test"
        return .with(.enrollRequest(request))
    }

    /// Connects to the gateway with `tls` and runs `body` with a frame-level connection. The connection is closed
    /// after `deadline` at the latest, so a silent server fails the test instead of hanging it.
    func connect<T>(tls: TLSConfiguration, deadline: TimeAmount = .seconds(30), proxyHeader: [UInt8]? = nil,
                    isolation: isolated (any Actor)? = #isolation,
                    _ body: (inout AgentWire) async throws -> T) async throws -> T {
        let context = try NIOSSLContext(configuration: tls)
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    // As a load balancer with send-proxy-v2 would: the header goes out before the TLS bytes.
                    if let proxyHeader { try channel.pipeline.syncOperations.addHandler(RawPrefixWriter(bytes: proxyHeader)) }
                    try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: context, serverHostname: nil))
                    return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        let underlying = channel.channel
        let guardTimer = underlying.eventLoop.scheduleTask(in: deadline) { underlying.close(promise: nil) }
        defer { guardTimer.cancel() }
        return try await channel.executeThenClose { inbound, outbound in
            var wire = AgentWire(inbound: inbound.makeAsyncIterator(), outbound: outbound)
            return try await body(&wire)
        }
    }
}

/// The test agent's side of one connection: whole frames, or raw bytes for misbehaviour.
struct AgentWire {
    var inbound: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
    let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    var reader = FrameReader(maximumFrameLength: FrameLimits.established)

    /// The next frame; nil when the server closed the connection.
    mutating func next() async throws -> Crowsnest_V1_Frame? {
        while true {
            if let frame = try reader.next() { return frame }
            guard let bytes = try await inbound.next() else { return nil }
            reader.append(bytes)
        }
    }

    /// The next frame, or a description of how the connection ended instead ("closed", or the error).
    mutating func nextOrEnd() async -> Result<Crowsnest_V1_Frame, EndOfConnection> {
        do {
            guard let frame = try await next() else { return .failure(EndOfConnection(reason: "closed")) }
            return .success(frame)
        } catch {
            return .failure(EndOfConnection(reason: "\(error)"))
        }
    }

    func send(_ frame: Crowsnest_V1_Frame) async throws {
        try await outbound.write(try FrameCodec.encode(frame))
    }

    func send(raw bytes: [UInt8]) async throws {
        try await outbound.write(ByteBuffer(bytes: bytes))
    }
}

/// How a connection ended when a frame was expected.
struct EndOfConnection: Error, Equatable {
    var reason: String
}

/// Writes fixed bytes as soon as the connection is up, before the handlers after it (TLS) say anything.
final class RawPrefixWriter: ChannelInboundHandler {
    typealias InboundIn = NIOAny
    private let bytes: [UInt8]
    init(bytes: [UInt8]) { self.bytes = bytes }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { write(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        write(context)
        context.fireChannelActive()
    }

    private var written = false
    private func write(_ context: ChannelHandlerContext) {
        guard !written else { return }
        written = true
        context.writeAndFlush(NIOAny(ByteBuffer(bytes: bytes)), promise: nil)
    }
}
