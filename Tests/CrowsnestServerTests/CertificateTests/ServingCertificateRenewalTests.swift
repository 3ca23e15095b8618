import CrowsnestWire
import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import PostgresNIO
import X509
import XCTest

@testable import CrowsnestServer

/// The gateway's serving certificate is re-checked while the server runs, and a renewed one is served to new
/// connections without a restart.
final class ServingCertificateRenewalTests: XCTestCase {
    /// The serving certificate a TLS client sees on a fresh connection.
    private func servedCertificate(port: Int, ca: CertificateAuthority) async throws -> Certificate {
        var tls = TLSConfiguration.makeClientConfiguration()
        // Only reading what is served: the renewed certificate is issued for a future "now", so not verified here.
        tls.certificateVerification = .none
        let context = try NIOSSLContext(configuration: tls)
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: context, serverHostname: "localhost"))
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        defer { channel.close(promise: nil) }
        // The handshake finishes shortly after connect; ask until the peer certificate is there.
        for _ in 0..<100 {
            if let peer = try await channel.nioSSL_peerCertificate().get() {
                return try Certificate(derEncoded: try peer.toDERBytes())
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw TestPostgresUnavailable(description: "no TLS handshake with the gateway")
    }

    func testADueServingCertificateIsReissuedAndServedToNewConnections() async throws {
        try await TestPostgres.withTestDatabase { client in
            let logger = GatewayHarness.logger
            let directory = try TestPostgres.makeTemporaryDirectory()
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let ca = try CertificateAuthority.loadOrCreate(directory: directory, logger: logger)
            let sessions = AgentSessionHandler(
                agents: AgentStore(client: client, logger: logger),
                ingest: IngestWriter(client: client, partitions: PartitionStore(client: client, logger: logger), logger: logger),
                enrollment: AgentEnrollment(client: client, authority: ca, logger: logger), logger: logger)
            let (ports, bound) = AsyncStream<Int>.makeStream()
            let gateway = try AgentGateway(configuration: GatewayConfiguration(host: "127.0.0.1", port: 0),
                                           tlsConfiguration: try ServerTLS.makeGatewayConfiguration(ca: ca), sessions: sessions,
                                           logger: logger, onBound: { bound.yield($0.port ?? 0) })
            let running = Task { try await gateway.run() }
            defer { running.cancel() }
            var iterator = ports.makeAsyncIterator()
            let first = await iterator.next()
            let port = try XCTUnwrap(first)

            let before = try await servedCertificate(port: port, ca: ca)
            XCTAssertEqual(before, ca.serverCertificate)
            let check = ServingCertificateRenewal.check(gateway: gateway, authority: ca, directory: directory, serverNames: [],
                                                       serverIPs: [], logger: logger)
            XCTAssertFalse(try check(Date()), "a fresh certificate is kept")
            // Ten days before it expires, the daily check reissues it.
            XCTAssertTrue(try check(before.notValidAfter.addingTimeInterval(-10 * 86_400)))
            let after = try await servedCertificate(port: port, ca: ca)
            XCTAssertNotEqual(after.serialNumber, before.serialNumber, "new connections get the renewed certificate")
            XCTAssertGreaterThan(after.notValidAfter, before.notValidAfter)
        }
    }
}
