import CrowsnestAgent
import CrowsnestWire
import Crypto
import Foundation
import NIOSSL
import X509
import XCTest

/// The first contact: the agent has only the operator's CA pin and no client certificate.
final class EnrollmentTLSTests: XCTestCase {
    private func handshake(
        enrollment: EnrollmentTLS,
        serverHost: String = "localhost",
        chain: [Certificate],
        key: P256.Signing.PrivateKey,
        clientCA: Certificate
    ) async throws -> (server: LoopbackTLS.ServerOutcome, clientError: String?) {
        try await LoopbackTLS.run(
            serverConfiguration: try LoopbackTLS.serverConfiguration(chain: chain, key: key, clientCA: clientCA),
            makeClientHandler: { try enrollment.makeHandler(serverHost: serverHost) }
        )
    }

    func testAcceptsTheServerWhenThePinMatchesAndHandsBackTheCA() async throws {
        let ca = try TestCA()
        let serving = try ca.issueServingCertificate()
        let enrollment = try EnrollmentTLS(pin: try ca.pin)
        XCTAssertNil(enrollment.verifiedCACertificatePEM)
        let result = try await handshake(
            enrollment: enrollment,
            chain: [serving.certificate, ca.certificate],
            key: serving.key,
            clientCA: ca.certificate
        )
        XCTAssertNil(result.clientError)
        XCTAssertEqual(result.server, .completed(peer: nil), "an enrolling agent presents no certificate")
        XCTAssertEqual(enrollment.verifiedCACertificateDER, try ca.der)
        XCTAssertEqual(enrollment.verifiedCACertificatePEM, try ca.pem)
    }

    func testAcceptsAnIPAddressInTheServingCertificate() async throws {
        let ca = try TestCA()
        let serving = try ca.issueServingCertificate(dnsNames: [], ipAddresses: [[127, 0, 0, 1]])
        let enrollment = try EnrollmentTLS(pin: try ca.pin)
        let result = try await handshake(
            enrollment: enrollment,
            serverHost: "127.0.0.1",
            chain: [serving.certificate, ca.certificate],
            key: serving.key,
            clientCA: ca.certificate
        )
        XCTAssertNil(result.clientError)
        XCTAssertNotNil(enrollment.verifiedCACertificateDER)
    }

    func testRefusesTheServerWhenThePinIsForAnotherCA() async throws {
        let ca = try TestCA()
        let serving = try ca.issueServingCertificate()
        let enrollment = try EnrollmentTLS(pin: try TestCA(name: "Other CA").pin)
        let result = try await handshake(
            enrollment: enrollment,
            chain: [serving.certificate, ca.certificate],
            key: serving.key,
            clientCA: ca.certificate
        )
        let clientError = try XCTUnwrap(result.clientError)
        XCTAssertTrue(clientError.contains("CERTIFICATE_VERIFY_FAILED"), clientError)
        XCTAssertNil(enrollment.verifiedCACertificateDER)
        let failure = try XCTUnwrap(enrollment.lastVerificationFailure)
        XCTAssertTrue(failure.contains("does not match the pin"), failure)
        XCTAssertTrue(failure.contains(try ca.pin.description), "names the CA the server presented: \(failure)")
    }

    func testRefusesALeafNotSignedByThePinnedCAEvenIfThePinnedCAIsInTheChain() async throws {
        // An impostor that copies the real CA certificate into its chain but cannot sign with the real CA key.
        let realCA = try TestCA()
        let impostorCA = try TestCA(name: "Test CA")
        let serving = try impostorCA.issueServingCertificate()
        let enrollment = try EnrollmentTLS(pin: try realCA.pin)
        let result = try await handshake(
            enrollment: enrollment,
            chain: [serving.certificate, realCA.certificate],
            key: serving.key,
            clientCA: realCA.certificate
        )
        XCTAssertNotNil(result.clientError)
        XCTAssertNil(enrollment.verifiedCACertificateDER)
        let failure = try XCTUnwrap(enrollment.lastVerificationFailure)
        XCTAssertTrue(failure.contains("does not verify against the pinned CA"), failure)
    }

    func testRefusesAServerThatDoesNotPresentTheCA() async throws {
        let ca = try TestCA()
        let serving = try ca.issueServingCertificate()
        let enrollment = try EnrollmentTLS(pin: try ca.pin)
        let result = try await handshake(
            enrollment: enrollment,
            chain: [serving.certificate],
            key: serving.key,
            clientCA: ca.certificate
        )
        XCTAssertNotNil(result.clientError)
        XCTAssertNil(enrollment.verifiedCACertificateDER)
    }

    func testRefusesAServingCertificateForAnotherName() async throws {
        let ca = try TestCA()
        let serving = try ca.issueServingCertificate(dnsNames: ["elsewhere.example.internal"], ipAddresses: [])
        let enrollment = try EnrollmentTLS(pin: try ca.pin)
        let result = try await handshake(
            enrollment: enrollment,
            chain: [serving.certificate, ca.certificate],
            key: serving.key,
            clientCA: ca.certificate
        )
        XCTAssertNotNil(result.clientError)
        XCTAssertNil(enrollment.verifiedCACertificateDER)
        let failure = try XCTUnwrap(enrollment.lastVerificationFailure)
        XCTAssertTrue(failure.contains("server localhost"), failure)
    }
}
