@testable import CrowsnestAgent
import CrowsnestWire
import Crypto
import Foundation
import NIOCore
import NIOSSL
import Synchronization
import X509
import XCTest

/// The session's two checks of the server against real handshakes on loopback: BoringSSL's, which reports a
/// refusal so the shipper can switch, and the careful one, which says why and tolerates a wrong clock.
final class SessionTLSTests: XCTestCase {
    private func enroll(with ca: TestCA) throws -> AgentCredentials {
        let (keyPEM, csrPEM) = try AgentCredentials.generateKeyAndCSR(hostname: "docker-host-1")
        return try AgentCredentials(
            privateKeyPEM: keyPEM,
            certificatePEM: try ca.signAgent(csrPEM: csrPEM, agentID: UUID(), tenantID: UUID()),
            caCertificatePEM: try ca.pem,
            serverAddresses: ["localhost:7443"]
        )
    }

    /// Runs one handshake with BoringSSL's check; returns the client's error and whether a refusal was reported.
    private func handshake(host: String, serving: (certificate: Certificate, key: P256.Signing.PrivateKey), servingCA: TestCA,
                           credentials: AgentCredentials) async throws -> (clientError: String?, refused: Bool) {
        let context = try NIOSSLContext(configuration: try credentials.makeClientTLSConfiguration())
        let refused = Mutex(false)
        let result = try await LoopbackTLS.run(
            serverConfiguration: try LoopbackTLS.serverConfiguration(
                chain: [serving.certificate, servingCA.certificate], key: serving.key, clientCA: servingCA.certificate),
            makeClientHandlers: {
                try SessionTLS.makeHandlers(context: context, serverHost: host) { refused.withLock { $0 = true } }
            })
        return (result.clientError, refused.withLock { $0 })
    }

    func testBoringSSLAcceptsTheServerOfThePinnedCAByNameAndByAddressAndReportsNothing() async throws {
        let ca = try TestCA()
        let credentials = try enroll(with: ca)
        for host in ["localhost", "127.0.0.1"] {
            let outcome = try await handshake(host: host, serving: try ca.issueServingCertificate(), servingCA: ca,
                                              credentials: credentials)
            XCTAssertNil(outcome.clientError, host)
            XCTAssertFalse(outcome.refused, host)
        }
    }

    func testBoringSSLRefusalsOfTheCertificateAreReported() async throws {
        let ca = try TestCA()
        let credentials = try enroll(with: ca)
        let impostor = try TestCA(name: "Impostor CA")
        let cases: [(String, (certificate: Certificate, key: P256.Signing.PrivateKey), TestCA)] = [
            ("another CA", try impostor.issueServingCertificate(), impostor),
            ("another name", try ca.issueServingCertificate(dnsNames: ["elsewhere.example.internal"], ipAddresses: []), ca),
            ("expired", try ca.issueServingCertificate(notValidBefore: Date() - 7200, notValidAfter: Date() - 3600), ca),
        ]
        for (label, serving, servingCA) in cases {
            let outcome = try await handshake(host: "localhost", serving: serving, servingCA: servingCA,
                                              credentials: credentials)
            XCTAssertNotNil(outcome.clientError, label)
            XCTAssertTrue(outcome.refused, "\(label): \(outcome.clientError ?? "")")
        }
    }

    func testAServerRefusingTheAgentsCertificateIsNotReportedAsARefusalOfTheServers() async throws {
        let ca = try TestCA()
        let credentials = try enroll(with: ca)
        let context = try NIOSSLContext(configuration: try credentials.makeClientTLSConfiguration())
        let serving = try ca.issueServingCertificate()
        var server = try LoopbackTLS.serverConfiguration(
            chain: [serving.certificate, ca.certificate], key: serving.key, clientCA: try TestCA(name: "Other agents' CA").certificate)
        server.certificateVerification = .noHostnameVerification  // a client certificate is required, and this one refused
        let refused = Mutex(false)
        let result = try await LoopbackTLS.run(serverConfiguration: server, makeClientHandlers: {
            try SessionTLS.makeHandlers(context: context, serverHost: "localhost") { refused.withLock { $0 = true } }
        })
        if case .completed = result.server { XCTFail("the server accepted an agent certificate of another CA") }
        XCTAssertFalse(refused.withLock { $0 }, "the server's own certificate was fine: \(result.clientError ?? "")")
    }

    func testOnlyACertificateRefusalCountsAsOne() {
        XCTAssertTrue(SessionTLS.isCertificateRefusal(NIOSSLExtraError.failedToValidateHostname))
        XCTAssertFalse(SessionTLS.isCertificateRefusal(NIOSSLError.uncleanShutdown))
        XCTAssertFalse(SessionTLS.isCertificateRefusal(ChannelError.connectTimeout(.seconds(1))))
    }

    func testTheCarefulCheckSaysWhyAndBlamesOnlyTheClockForAnExpiredCertificateOfThePinnedCA() async throws {
        let ca = try TestCA()
        let credentials = try enroll(with: ca)
        let context = try NIOSSLContext(configuration: try credentials.makeClientTLSConfiguration())
        let impostor = try TestCA(name: "Impostor CA")
        let cases: [(String, (certificate: Certificate, key: P256.Signing.PrivateKey), TestCA, connects: Bool, says: String?)] = [
            ("valid", try ca.issueServingCertificate(), ca, true, nil),
            ("expired", try ca.issueServingCertificate(notValidBefore: Date() - 7200, notValidAfter: Date() - 3600), ca,
             true, "expired"),
            ("another CA", try impostor.issueServingCertificate(), impostor, false, "does not match the pin"),
            ("another name", try ca.issueServingCertificate(dnsNames: ["elsewhere.example.internal"], ipAddresses: []), ca,
             false, "does not verify against the pinned CA"),
        ]
        for (label, serving, servingCA, connects, says) in cases {
            let heard = Mutex<[SessionTLS.Outcome]>([])
            let result = try await LoopbackTLS.run(
                serverConfiguration: try LoopbackTLS.serverConfiguration(
                    chain: [serving.certificate, servingCA.certificate], key: serving.key, clientCA: servingCA.certificate),
                makeClientHandler: {
                    try SessionTLS.makeCarefulHandler(context: context, caPin: credentials.caPin, serverHost: "localhost") { outcome in
                        heard.withLock { $0.append(outcome) }
                    }
                })
            XCTAssertEqual(result.clientError == nil, connects, "\(label): \(result.clientError ?? "")")
            let outcomes = heard.withLock { $0 }
            switch (says, outcomes.first) {
            case (nil, nil):
                break
            case (let expected?, .verifiedDespiteClock(let reason)?):
                XCTAssertTrue(connects, label)
                XCTAssertTrue(reason.lowercased().contains(expected), "\(label): \(reason)")
            case (let expected?, .refused(let reason)?):
                XCTAssertFalse(connects, label)
                XCTAssertTrue(reason.contains(expected), "\(label): \(reason)")
            default:
                XCTFail("\(label): heard \(outcomes)")
            }
        }
    }
}
