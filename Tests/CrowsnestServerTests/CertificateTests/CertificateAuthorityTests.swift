import CrowsnestServer
import CrowsnestWire
import Crypto
import Foundation
import Logging
import SwiftASN1
import X509
import XCTest

final class CertificateAuthorityTests: XCTestCase {
    private let logger = Logger(label: "test.certificates", factory: { _ in SwiftLogNoOpLogHandler() })
    private var directory = ""

    override func setUpWithError() throws {
        directory = try CertificateTestSupport.temporaryDirectory()
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: directory)
    }

    private func permissions(_ name: String) -> mode_t? {
        CredentialFile.permissions(of: directory + "/" + name)
    }

    func testLoadOrCreateTwiceReusesTheSameCAAndServingCertificate() throws {
        let first = try CertificateAuthority.loadOrCreate(directory: directory, logger: logger)
        let second = try CertificateAuthority.loadOrCreate(directory: directory, logger: logger)
        XCTAssertEqual(first.caPin, second.caPin)
        XCTAssertEqual(first.caCertificatePEM, second.caCertificatePEM)
        XCTAssertEqual(first.serverCertificatePEM, second.serverCertificatePEM)
        XCTAssertEqual(first.serverPrivateKeyPEM, second.serverPrivateKeyPEM)
        XCTAssertEqual(first.caPin, CAPin.compute(derBytes: first.caCertificateDER))
        XCTAssertEqual(first.caPin.description.count, "sha256:".count + 64)
    }

    func testPrivateKeysAreWrittenWithMode0600() throws {
        _ = try CertificateAuthority.loadOrCreate(directory: directory, logger: logger)
        XCTAssertEqual(permissions("ca-key.pem"), 0o600)
        XCTAssertEqual(permissions("server-key.pem"), 0o600)
        XCTAssertEqual(permissions("ca.pem"), 0o644)
        XCTAssertEqual(permissions("server.pem"), 0o644)
    }

    func testCAIsValidForTenYearsAndIsACertificateAuthority() throws {
        let now = Date()
        let ca = try CertificateAuthority.loadOrCreate(directory: directory, logger: logger, now: now)
        let lifetime = ca.caCertificate.notValidAfter.timeIntervalSince(now)
        XCTAssertEqual(lifetime, 10 * 365 * 86_400, accuracy: 60)
        XCTAssertEqual(try ca.caCertificate.extensions.basicConstraints, .isCertificateAuthority(maxPathLength: 0))
        XCTAssertNotNil(P256.Signing.PublicKey(ca.caCertificate.publicKey), "the CA key must be P-256")
    }

    func testServingCertificateIsForServerAuthOnlyWithRequestedAndDefaultNames() throws {
        let now = Date()
        let ca = try CertificateAuthority.loadOrCreate(
            directory: directory,
            serverNames: ["crowsnest.example.internal"],
            serverIPs: ["192.0.2.10", "2001:db8::7"],
            logger: logger,
            now: now
        )
        let certificate = ca.serverCertificate
        let usage = try XCTUnwrap(try certificate.extensions.extendedKeyUsage)
        XCTAssertEqual(Array(usage), [.serverAuth])
        let names = try XCTUnwrap(try certificate.extensions.subjectAlternativeNames)
        let dnsNames = names.compactMap { name -> String? in
            if case .dnsName(let value) = name { return value }
            return nil
        }
        let ipAddresses = names.compactMap { name -> [UInt8]? in
            if case .ipAddress(let value) = name { return Array(value.bytes) }
            return nil
        }
        XCTAssertTrue(dnsNames.contains("crowsnest.example.internal"), "\(dnsNames)")
        XCTAssertTrue(dnsNames.contains("localhost"), "\(dnsNames)")
        XCTAssertTrue(dnsNames.contains(ProcessInfo.processInfo.hostName.lowercased()), "\(dnsNames)")
        XCTAssertTrue(ipAddresses.contains([192, 0, 2, 10]), "\(ipAddresses)")
        XCTAssertTrue(ipAddresses.contains([127, 0, 0, 1]), "\(ipAddresses)")
        XCTAssertTrue(ipAddresses.contains([0x20, 0x01, 0x0d, 0xb8] + Array(repeating: 0, count: 11) + [7]), "\(ipAddresses)")
        XCTAssertTrue(ipAddresses.contains(Array(repeating: 0, count: 15) + [1]), "\(ipAddresses)")
        XCTAssertEqual(certificate.notValidAfter.timeIntervalSince(now), 365 * 86_400, accuracy: 60)
        XCTAssertTrue(ca.caCertificate.publicKey.isValidSignature(certificate.signature, for: certificate))
    }

    func testConfiguredServerNamesAreSplitIntoAddressesAndNamesByParsingNotByLooks() throws {
        let ca = try ServerConfiguration.loadAuthority(
            dataDirectory: directory, serverNames: ["[2001:db8::9]", "192.0.2.11", "10.0.0.1.example.net", "Status.Example.COM"],
            logger: logger)
        let names = try XCTUnwrap(try ca.serverCertificate.extensions.subjectAlternativeNames)
        XCTAssertTrue(names.contains(.dnsName("10.0.0.1.example.net")), "four dotted parts do not make an address: \(names)")
        XCTAssertTrue(names.contains(.dnsName("status.example.com")), "\(names)")
        let ipAddresses = names.compactMap { name -> [UInt8]? in
            if case .ipAddress(let value) = name { return Array(value.bytes) }
            return nil
        }
        XCTAssertTrue(ipAddresses.contains([192, 0, 2, 11]), "\(ipAddresses)")
        XCTAssertTrue(ipAddresses.contains([0x20, 0x01, 0x0d, 0xb8] + Array(repeating: 0, count: 11) + [9]), "a bracketed IPv6 address: \(ipAddresses)")
        XCTAssertFalse(names.contains(where: { if case .dnsName(let value) = $0 { return value.contains(":") } else { return false } }))

        XCTAssertThrowsError(try ServerConfiguration.loadAuthority(dataDirectory: directory, serverNames: ["2001:db8::zz"], logger: logger)) { error in
            XCTAssertEqual(error as? CertificateAuthorityError, .invalidIPAddress("2001:db8::zz"), "a mistyped IPv6 address is refused, not made a name")
        }
    }

    func testServingCertificateIsReissuedWhenTheNamesChangeButTheCAStays() throws {
        let first = try CertificateAuthority.loadOrCreate(directory: directory, logger: logger)
        let second = try CertificateAuthority.loadOrCreate(
            directory: directory,
            serverNames: ["another-name.example.internal"],
            logger: logger
        )
        XCTAssertEqual(first.caPin, second.caPin)
        XCTAssertNotEqual(first.serverCertificatePEM, second.serverCertificatePEM)
        let names = try XCTUnwrap(try second.serverCertificate.extensions.subjectAlternativeNames)
        XCTAssertTrue(names.contains(.dnsName("another-name.example.internal")))
        // And the new one is kept on the next start with the same names.
        let third = try CertificateAuthority.loadOrCreate(
            directory: directory,
            serverNames: ["another-name.example.internal"],
            logger: logger
        )
        XCTAssertEqual(second.serverCertificatePEM, third.serverCertificatePEM)
    }

    func testServingCertificateIsRenewedWhenLessThanThirtyDaysAreLeft() throws {
        let now = Date()
        let old = try CertificateAuthority.loadOrCreate(
            directory: directory,
            logger: logger,
            now: now - 340 * 86_400
        )
        let stillFine = try CertificateAuthority.loadOrCreate(directory: directory, logger: logger, now: now - 300 * 86_400)
        XCTAssertEqual(old.serverCertificatePEM, stillFine.serverCertificatePEM, "65 days left: kept")
        let renewed = try CertificateAuthority.loadOrCreate(directory: directory, logger: logger, now: now)
        XCTAssertEqual(old.caPin, renewed.caPin)
        XCTAssertNotEqual(old.serverCertificatePEM, renewed.serverCertificatePEM, "25 days left: renewed")
        XCTAssertGreaterThan(renewed.serverCertificate.notValidAfter, now + 360 * 86_400)
    }

    func testAHalfPresentCAIsRefusedRatherThanReplaced() throws {
        _ = try CertificateAuthority.loadOrCreate(directory: directory, logger: logger)
        try FileManager.default.removeItem(atPath: directory + "/ca.pem")
        XCTAssertThrowsError(try CertificateAuthority.loadOrCreate(directory: directory, logger: logger)) { error in
            guard case .incompleteCA = error as? CertificateAuthorityError else {
                return XCTFail("unexpected error \(error)")
            }
            XCTAssertTrue(String(describing: error).contains("ca.pem is missing"), "\(error)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory + "/ca.pem"), "must not create a new CA")
    }

    func testSigningIgnoresTheSubjectTheCSRAsksFor() throws {
        let ca = try CertificateAuthority.loadOrCreate(directory: directory, logger: logger)
        let forgedAgent = UUID()
        let forgedTenant = UUID()
        let (key, csrPEM) = try CertificateTestSupport.makeCSR(
            subject: try DistinguishedName {
                CommonName(forgedAgent.uuidString)
                OrganizationName(forgedTenant.uuidString)
                OrganizationalUnitName("crowsnest-admin")
            }
        )
        let agentID = UUID()
        let tenantID = UUID()
        let now = Date()
        let pem = try ca.signAgentCSR(csrPEM: csrPEM, agentID: agentID, tenantID: tenantID, now: now)
        let certificate = try Certificate(pemEncoded: pem)

        XCTAssertEqual(
            try AgentCertificateIdentity.parse(certificate: certificate),
            AgentCertificateIdentity(agentID: agentID, tenantID: tenantID)
        )
        XCTAssertFalse(String(describing: certificate.subject).contains(forgedAgent.uuidString.lowercased()))
        XCTAssertFalse(String(describing: certificate.subject).contains("crowsnest-admin"))
        XCTAssertEqual(Array(try XCTUnwrap(try certificate.extensions.extendedKeyUsage)), [.clientAuth])
        XCTAssertEqual(try certificate.extensions.basicConstraints, .notCertificateAuthority)
        XCTAssertEqual(certificate.publicKey, Certificate.PublicKey(key.publicKey))
        XCTAssertEqual(certificate.issuer, ca.caCertificate.subject)
        XCTAssertTrue(ca.caCertificate.publicKey.isValidSignature(certificate.signature, for: certificate))
        XCTAssertEqual(certificate.notValidAfter.timeIntervalSince(now), 365 * 86_400, accuracy: 60)
    }

    func testATamperedCSRIsRefused() throws {
        let ca = try CertificateAuthority.loadOrCreate(directory: directory, logger: logger)
        let (_, csrPEM) = try CertificateTestSupport.makeCSR(subject: try DistinguishedName { CommonName("honest-host") })
        let honest = try CertificateSigningRequest(pemEncoded: csrPEM)
        // Same key and signature, different subject: the signature no longer covers what is asked.
        let tampered = try CertificateSigningRequest(
            version: honest.version,
            subject: try DistinguishedName { CommonName("tampered-host") },
            publicKey: honest.publicKey,
            attributes: honest.attributes,
            signatureAlgorithm: honest.signatureAlgorithm,
            signature: honest.signature
        )
        let tamperedPEM = try tampered.serializeAsPEM().pemString
        XCTAssertThrowsError(try ca.signAgentCSR(csrPEM: tamperedPEM, agentID: UUID(), tenantID: UUID())) { error in
            XCTAssertEqual(error as? CertificateAuthorityError, .csrSignatureDoesNotVerify)
            XCTAssertEqual(String(describing: error), "the certificate signing request's signature does not verify")
        }
    }

    func testACSRForANonP256KeyIsRefused() throws {
        let ca = try CertificateAuthority.loadOrCreate(directory: directory, logger: logger)
        let key = P384.Signing.PrivateKey()
        let request = try CertificateSigningRequest(
            version: .v1,
            subject: try DistinguishedName { CommonName("host") },
            privateKey: Certificate.PrivateKey(key),
            attributes: CertificateSigningRequest.Attributes()
        )
        XCTAssertThrowsError(
            try ca.signAgentCSR(csrPEM: try request.serializeAsPEM().pemString, agentID: UUID(), tenantID: UUID())
        ) { error in
            guard case .unsupportedCSRKey = error as? CertificateAuthorityError else {
                return XCTFail("unexpected error \(error)")
            }
        }
    }

    func testGarbageIsNotACSR() throws {
        let ca = try CertificateAuthority.loadOrCreate(directory: directory, logger: logger)
        XCTAssertThrowsError(try ca.signAgentCSR(csrPEM: "hello", agentID: UUID(), tenantID: UUID())) { error in
            guard case .unreadableCSR = error as? CertificateAuthorityError else {
                return XCTFail("unexpected error \(error)")
            }
        }
    }
}
