import CrowsnestServer
import CrowsnestWire
import Crypto
import Foundation
import Logging
import NIOSSL
import X509
import XCTest

/// Real TLS handshakes over loopback between a client and the gateway's TLS configuration
/// (`ServerTLS.makeGatewayConfiguration`), which uses NIOSSL's `.optionalVerification`.
final class GatewayMutualTLSTests: XCTestCase {
    private let logger = Logger(label: "test.gateway-tls", factory: { _ in SwiftLogNoOpLogHandler() })
    private var directory = ""
    private var otherDirectory = ""

    override func setUpWithError() throws {
        directory = try CertificateTestSupport.temporaryDirectory()
        otherDirectory = try CertificateTestSupport.temporaryDirectory()
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: directory)
        try? FileManager.default.removeItem(atPath: otherDirectory)
    }

    private func enrolledClient(
        of ca: CertificateAuthority,
        agentID: UUID,
        tenantID: UUID
    ) throws -> (certificatePEM: String, key: P256.Signing.PrivateKey) {
        let (key, csrPEM) = try CertificateTestSupport.makeCSR(subject: try DistinguishedName { CommonName("host") })
        return (try ca.signAgentCSR(csrPEM: csrPEM, agentID: agentID, tenantID: tenantID), key)
    }

    func testAnEnrolledAgentCompletesTheHandshakeAndTheServerReadsItsIdentity() async throws {
        let ca = try CertificateAuthority.loadOrCreate(directory: directory, logger: logger)
        let agentID = UUID()
        let tenantID = UUID()
        let client = try enrolledClient(of: ca, agentID: agentID, tenantID: tenantID)
        let clientContext = try NIOSSLContext(
            configuration: try CertificateTestSupport.clientConfiguration(
                certificatePEM: client.certificatePEM,
                key: client.key,
                caPEM: ca.caCertificatePEM
            )
        )
        let result = try await TLSLoopbackHarness.run(
            serverConfiguration: try ServerTLS.makeGatewayConfiguration(ca: ca),
            makeClientHandler: { try NIOSSLClientHandler(context: clientContext, serverHostname: "localhost") }
        )
        XCTAssertNil(result.clientError)
        XCTAssertEqual(
            result.server,
            .completed(identity: AgentCertificateIdentity(agentID: agentID, tenantID: tenantID), tlsVersion: .tlsv13)
        )
    }

    func testTheServingCertificateVerifiesForTheLoopbackIPAddress() async throws {
        let ca = try CertificateAuthority.loadOrCreate(directory: directory, logger: logger)
        let client = try enrolledClient(of: ca, agentID: UUID(), tenantID: UUID())
        let clientContext = try NIOSSLContext(
            configuration: try CertificateTestSupport.clientConfiguration(
                certificatePEM: client.certificatePEM,
                key: client.key,
                caPEM: ca.caCertificatePEM
            )
        )
        // No SNI for an IP address: NIOSSL then checks the connected IP against the IP SANs.
        let result = try await TLSLoopbackHarness.run(
            serverConfiguration: try ServerTLS.makeGatewayConfiguration(ca: ca),
            makeClientHandler: { try NIOSSLClientHandler(context: clientContext, serverHostname: nil) }
        )
        XCTAssertNil(result.clientError)
        guard case .completed(let identity?, _) = result.server else {
            return XCTFail("expected an identified agent, got \(result.server)")
        }
        XCTAssertNotNil(identity)
    }

    func testAClientWithoutACertificateConnectsAndTheServerSeesNoPeerCertificate() async throws {
        let ca = try CertificateAuthority.loadOrCreate(directory: directory, logger: logger)
        let clientContext = try NIOSSLContext(
            configuration: try CertificateTestSupport.clientConfiguration(
                certificatePEM: nil,
                key: nil,
                caPEM: ca.caCertificatePEM
            )
        )
        let result = try await TLSLoopbackHarness.run(
            serverConfiguration: try ServerTLS.makeGatewayConfiguration(ca: ca),
            makeClientHandler: { try NIOSSLClientHandler(context: clientContext, serverHostname: "localhost") }
        )
        XCTAssertNil(result.clientError)
        XCTAssertEqual(result.server, .completed(identity: nil, tlsVersion: .tlsv13))
    }

    func testAClientCertificateFromAnotherCAIsRefusedAtHandshake() async throws {
        let ca = try CertificateAuthority.loadOrCreate(directory: directory, logger: logger)
        let otherCA = try CertificateAuthority.loadOrCreate(directory: otherDirectory, logger: logger)
        // A perfectly formed agent certificate, but issued by a CA the gateway does not trust.
        let foreign = try enrolledClient(of: otherCA, agentID: UUID(), tenantID: UUID())
        let clientContext = try NIOSSLContext(
            configuration: try CertificateTestSupport.clientConfiguration(
                certificatePEM: foreign.certificatePEM,
                key: foreign.key,
                caPEM: ca.caCertificatePEM
            )
        )
        let result = try await TLSLoopbackHarness.run(
            serverConfiguration: try ServerTLS.makeGatewayConfiguration(ca: ca),
            makeClientHandler: { try NIOSSLClientHandler(context: clientContext, serverHostname: "localhost") }
        )
        guard case .failed(let reason) = result.server else {
            return XCTFail("the gateway accepted a certificate from another CA: \(result.server)")
        }
        XCTAssertTrue(reason.contains("CERTIFICATE_VERIFY_FAILED"), reason)
        XCTAssertNotNil(result.clientError)
    }

    func testTheServingCertificateCannotBeUsedAsAClientCertificate() async throws {
        // The serving certificate chains to our CA but is for serverAuth only: BoringSSL's purpose check
        // must refuse it as a client certificate.
        let ca = try CertificateAuthority.loadOrCreate(directory: directory, logger: logger)
        var configuration = try CertificateTestSupport.clientConfiguration(
            certificatePEM: nil,
            key: nil,
            caPEM: ca.caCertificatePEM
        )
        configuration.certificateChain = [
            .certificate(try NIOSSLCertificate(bytes: Array(ca.serverCertificatePEM.utf8), format: .pem))
        ]
        configuration.privateKey = .privateKey(
            try NIOSSLPrivateKey(bytes: Array(ca.serverPrivateKeyPEM.utf8), format: .pem)
        )
        let clientContext = try NIOSSLContext(configuration: configuration)
        let result = try await TLSLoopbackHarness.run(
            serverConfiguration: try ServerTLS.makeGatewayConfiguration(ca: ca),
            makeClientHandler: { try NIOSSLClientHandler(context: clientContext, serverHostname: "localhost") }
        )
        guard case .failed(let reason) = result.server else {
            return XCTFail("the gateway accepted a serverAuth-only certificate as a client: \(result.server)")
        }
        XCTAssertTrue(reason.contains("CERTIFICATE_VERIFY_FAILED"), reason)
    }

    func testAClientThatTrustsOnlyAnotherCARefusesTheGateway() async throws {
        let ca = try CertificateAuthority.loadOrCreate(directory: directory, logger: logger)
        let otherCA = try CertificateAuthority.loadOrCreate(directory: otherDirectory, logger: logger)
        let clientContext = try NIOSSLContext(
            configuration: try CertificateTestSupport.clientConfiguration(
                certificatePEM: nil,
                key: nil,
                caPEM: otherCA.caCertificatePEM
            )
        )
        let result = try await TLSLoopbackHarness.run(
            serverConfiguration: try ServerTLS.makeGatewayConfiguration(ca: ca),
            makeClientHandler: { try NIOSSLClientHandler(context: clientContext, serverHostname: "localhost") }
        )
        let clientError = try XCTUnwrap(result.clientError)
        XCTAssertTrue(clientError.contains("CERTIFICATE_VERIFY_FAILED"), clientError)
    }

    func testAClientLimitedToTLS12StillConnects() async throws {
        let ca = try CertificateAuthority.loadOrCreate(directory: directory, logger: logger)
        let client = try enrolledClient(of: ca, agentID: UUID(), tenantID: UUID())
        var configuration = try CertificateTestSupport.clientConfiguration(
            certificatePEM: client.certificatePEM,
            key: client.key,
            caPEM: ca.caCertificatePEM
        )
        configuration.maximumTLSVersion = .tlsv12
        let clientContext = try NIOSSLContext(configuration: configuration)
        let result = try await TLSLoopbackHarness.run(
            serverConfiguration: try ServerTLS.makeGatewayConfiguration(ca: ca),
            makeClientHandler: { try NIOSSLClientHandler(context: clientContext, serverHostname: "localhost") }
        )
        XCTAssertNil(result.clientError)
        guard case .completed(_?, .tlsv12?) = result.server else {
            return XCTFail("expected an identified TLS 1.2 connection, got \(result.server)")
        }
    }

    func testAClientLimitedToTLS11IsRefused() async throws {
        let ca = try CertificateAuthority.loadOrCreate(directory: directory, logger: logger)
        var configuration = try CertificateTestSupport.clientConfiguration(
            certificatePEM: nil,
            key: nil,
            caPEM: ca.caCertificatePEM
        )
        configuration.minimumTLSVersion = .tlsv1
        configuration.maximumTLSVersion = .tlsv11
        let clientContext = try NIOSSLContext(configuration: configuration)
        let result = try await TLSLoopbackHarness.run(
            serverConfiguration: try ServerTLS.makeGatewayConfiguration(ca: ca),
            makeClientHandler: { try NIOSSLClientHandler(context: clientContext, serverHostname: "localhost") }
        )
        guard case .failed(let reason) = result.server else {
            return XCTFail("the gateway accepted TLS 1.1: \(result.server)")
        }
        XCTAssertTrue(reason.contains("UNSUPPORTED_PROTOCOL"), reason)
    }
}
