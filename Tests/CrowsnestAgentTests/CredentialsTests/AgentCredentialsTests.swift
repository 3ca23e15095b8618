@testable import CrowsnestAgent
import CrowsnestWire
import Crypto
import Foundation
import NIOSSL
import X509
import XCTest

final class AgentCredentialsTests: XCTestCase {
    private var directory = ""

    override func setUpWithError() throws {
        directory = NSTemporaryDirectory() + "crowsnest-agent-credentials-" + UUID().uuidString
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: directory)
    }

    private func enroll(with ca: TestCA, agentID: UUID = UUID(), tenantID: UUID = UUID()) throws -> AgentCredentials {
        let (keyPEM, csrPEM) = try AgentCredentials.generateKeyAndCSR(hostname: "docker-host-1")
        return try AgentCredentials(
            privateKeyPEM: keyPEM,
            certificatePEM: try ca.signAgent(csrPEM: csrPEM, agentID: agentID, tenantID: tenantID),
            caCertificatePEM: try ca.pem,
            serverAddresses: ["localhost:7443", "127.0.0.1:7443"]
        )
    }

    func testGeneratesAP256KeyAndACSRSignedByIt() throws {
        let (keyPEM, csrPEM) = try AgentCredentials.generateKeyAndCSR(hostname: "docker-host-1")
        let key = try P256.Signing.PrivateKey(pemRepresentation: keyPEM)
        let request = try CertificateSigningRequest(pemEncoded: csrPEM)
        XCTAssertEqual(request.publicKey, Certificate.PublicKey(key.publicKey))
        XCTAssertTrue(request.publicKey.isValidSignature(request.signature, for: request))
        XCTAssertEqual(String(describing: request.subject), "CN=docker-host-1")
        let (otherKeyPEM, _) = try AgentCredentials.generateKeyAndCSR(hostname: "docker-host-1")
        XCTAssertNotEqual(keyPEM, otherKeyPEM, "every call makes a new key")
    }

    func testLoadReturnsNilBeforeEnrollment() throws {
        XCTAssertNil(try AgentCredentials.load(stateDirectory: directory))
    }

    func testSaveThenLoadRoundTripsWithAPrivateKeyFile() throws {
        let ca = try TestCA()
        let agentID = UUID()
        let tenantID = UUID()
        let credentials = try enroll(with: ca, agentID: agentID, tenantID: tenantID)
        try credentials.save(stateDirectory: directory)

        XCTAssertEqual(CredentialFile.permissions(of: directory + "/agent-key.pem"), 0o600)
        XCTAssertEqual(CredentialFile.permissions(of: directory), 0o700)
        let loaded = try XCTUnwrap(try AgentCredentials.load(stateDirectory: directory))
        XCTAssertEqual(loaded, credentials)
        XCTAssertEqual(loaded.identity, AgentCertificateIdentity(agentID: agentID, tenantID: tenantID))
        XCTAssertEqual(loaded.serverAddresses, ["localhost:7443", "127.0.0.1:7443"])
        XCTAssertEqual(loaded.caPin, try ca.pin)
        let json = try String(contentsOfFile: directory + "/identity.json", encoding: .utf8)
        XCTAssertTrue(json.contains(agentID.uuidString), json)
        XCTAssertEqual(
            try FileManager.default.contentsOfDirectory(atPath: directory).sorted(),
            ["agent-key.pem", "agent.pem", "ca.pem", "identity.json"],
            "no temporary files are left behind"
        )
    }

    func testRenewalIsDueAfterTwoThirdsOfTheLifetime() throws {
        // The test CA issues from an hour ago to a day ahead: 25 hours, two thirds after 16 h 40 min.
        let credentials = try enroll(with: try TestCA())
        let start = credentials.certificateNotValidBefore
        XCTAssertFalse(credentials.renewalDue(now: start.addingTimeInterval(16 * 3600)))
        XCTAssertTrue(credentials.renewalDue(now: start.addingTimeInterval(17 * 3600)))
    }

    func testARenewalReplacesKeyAndCertificateAndAnInterruptedOneIsFinishedOnLoad() throws {
        let ca = try TestCA()
        let agentID = UUID()
        let tenantID = UUID()
        let old = try enroll(with: ca, agentID: agentID, tenantID: tenantID)
        try old.save(stateDirectory: directory)
        let renewed = try enroll(with: ca, agentID: agentID, tenantID: tenantID)
        try renewed.saveRenewal(stateDirectory: directory)
        XCTAssertEqual(try AgentCredentials.load(stateDirectory: directory), renewed)
        XCTAssertEqual(CredentialFile.permissions(of: directory + "/agent-key.pem"), 0o600)
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory + "/agent-key.pem.next"))

        // A crash after the certificate was replaced but before the key: load finishes the job.
        let third = try enroll(with: ca, agentID: agentID, tenantID: tenantID)
        try third.privateKeyPEM.write(toFile: directory + "/agent-key.pem.next", atomically: true, encoding: .utf8)
        try third.certificatePEM.write(toFile: directory + "/agent.pem", atomically: true, encoding: .utf8)
        XCTAssertEqual(try AgentCredentials.load(stateDirectory: directory), third)
        // A crash before the certificate was replaced: the old pair stays, the pending key is discarded.
        let fourth = try enroll(with: ca, agentID: agentID, tenantID: tenantID)
        try fourth.privateKeyPEM.write(toFile: directory + "/agent-key.pem.next", atomically: true, encoding: .utf8)
        XCTAssertEqual(try AgentCredentials.load(stateDirectory: directory), third)
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory + "/agent-key.pem.next"))
    }

    func testRefusesAKeyThatDoesNotBelongToTheCertificate() throws {
        let ca = try TestCA()
        let credentials = try enroll(with: ca)
        let (strangerKeyPEM, _) = try AgentCredentials.generateKeyAndCSR(hostname: "x")
        XCTAssertThrowsError(
            try AgentCredentials(
                privateKeyPEM: strangerKeyPEM,
                certificatePEM: credentials.certificatePEM,
                caCertificatePEM: credentials.caCertificatePEM,
                serverAddresses: []
            )
        ) { error in
            XCTAssertTrue(String(describing: error).contains("does not belong to the client certificate"), "\(error)")
        }
    }

    func testRefusesACertificateFromAnotherCA() throws {
        let credentials = try enroll(with: try TestCA())
        XCTAssertThrowsError(
            try AgentCredentials(
                privateKeyPEM: credentials.privateKeyPEM,
                certificatePEM: credentials.certificatePEM,
                caCertificatePEM: try TestCA(name: "Other CA").pem,
                serverAddresses: []
            )
        ) { error in
            XCTAssertTrue(String(describing: error).contains("not issued by the CA"), "\(error)")
        }
    }

    func testServerNameIndicationIsOmittedForIPAddresses() {
        XCTAssertEqual(AgentCredentials.serverNameIndication(for: "crowsnest.example.internal"), "crowsnest.example.internal")
        XCTAssertNil(AgentCredentials.serverNameIndication(for: "127.0.0.1"))
        XCTAssertNil(AgentCredentials.serverNameIndication(for: "::1"))
    }

    // MARK: - Real handshakes

    func testClientConfigurationAuthenticatesTheAgentToAServerOfItsCA() async throws {
        let ca = try TestCA()
        let credentials = try enroll(with: ca)
        let serving = try ca.issueServingCertificate()
        let clientContext = try NIOSSLContext(configuration: try credentials.makeClientTLSConfiguration())
        for host in ["localhost", "127.0.0.1"] {
            let result = try await LoopbackTLS.run(
                serverConfiguration: try LoopbackTLS.serverConfiguration(
                    chain: [serving.certificate, ca.certificate],
                    key: serving.key,
                    clientCA: ca.certificate
                ),
                makeClientHandler: {
                    try NIOSSLClientHandler(
                        context: clientContext,
                        serverHostname: AgentCredentials.serverNameIndication(for: host)
                    )
                }
            )
            XCTAssertNil(result.clientError, host)
            XCTAssertEqual(result.server, .completed(peer: credentials.identity), host)
        }
    }

    func testClientConfigurationRefusesAServerOfAnotherCA() async throws {
        let ca = try TestCA()
        let credentials = try enroll(with: ca)
        let impostorCA = try TestCA(name: "Impostor CA")
        let serving = try impostorCA.issueServingCertificate()
        let clientContext = try NIOSSLContext(configuration: try credentials.makeClientTLSConfiguration())
        let result = try await LoopbackTLS.run(
            serverConfiguration: try LoopbackTLS.serverConfiguration(
                chain: [serving.certificate, impostorCA.certificate],
                key: serving.key,
                clientCA: ca.certificate
            ),
            makeClientHandler: { try NIOSSLClientHandler(context: clientContext, serverHostname: "localhost") }
        )
        let clientError = try XCTUnwrap(result.clientError)
        XCTAssertTrue(clientError.contains("CERTIFICATE_VERIFY_FAILED"), clientError)
    }

    func testClientConfigurationChecksTheServerName() async throws {
        let ca = try TestCA()
        let credentials = try enroll(with: ca)
        let serving = try ca.issueServingCertificate(dnsNames: ["elsewhere.example.internal"], ipAddresses: [])
        let clientContext = try NIOSSLContext(configuration: try credentials.makeClientTLSConfiguration())
        let result = try await LoopbackTLS.run(
            serverConfiguration: try LoopbackTLS.serverConfiguration(
                chain: [serving.certificate, ca.certificate],
                key: serving.key,
                clientCA: ca.certificate
            ),
            makeClientHandler: { try NIOSSLClientHandler(context: clientContext, serverHostname: "localhost") }
        )
        XCTAssertNotNil(result.clientError)
    }
    // MARK: - The identity record: a start takes what the full checks found from `identity.json` while the files
    // are the ones they checked (no certificate parsing at every start), and checks in full when anything differs.

    private var recordPath: String { directory + "/identity.json" }
    /// The record's inode: a start that checked in full rewrites the record (a new file), one that trusted it does not.
    private func recordInode() throws -> UInt64 {
        try XCTUnwrap((try FileManager.default.attributesOfItem(atPath: recordPath)[.systemFileNumber] as? NSNumber)?.uint64Value)
    }
    private func record() throws -> [String: Any] {
        try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: recordPath))) as? [String: Any])
    }

    func testTheRecordVouchesForTheFilesItWasWrittenForAndIsTrustedWithoutRewriting() throws {
        let ca = try TestCA()
        let credentials = try enroll(with: ca)
        try credentials.save(stateDirectory: directory)
        let verified = try XCTUnwrap(try record()["verified"] as? [String: Any])
        XCTAssertEqual((verified["sha256"] as? String)?.count, 64)
        XCTAssertEqual(verified["ca_pin"] as? String, try ca.pin.description)
        XCTAssertEqual(verified["not_valid_after"] as? Int,
                       Int(credentials.certificateNotValidAfter.timeIntervalSince1970.rounded(.down)))
        let inode = try recordInode()
        let loaded = try XCTUnwrap(try AgentCredentials.load(stateDirectory: directory))
        XCTAssertEqual(loaded, credentials, "identity, pin and validity as the full checks found them")
        XCTAssertEqual(loaded.certificateNotValidBefore, credentials.certificateNotValidBefore)
        XCTAssertEqual(try recordInode(), inode, "trusted as written: not checked and rewritten")
    }

    func testTheCAPinComesFromTheCAFileNotFromTheRecord() throws {
        let ca = try TestCA()
        XCTAssertEqual(AgentCredentials.pemBody(try ca.pem).map { CAPin.compute(derBytes: $0) }, try ca.pin)
        XCTAssertNil(AgentCredentials.pemBody("no PEM here"))
        let credentials = try enroll(with: ca)
        try credentials.save(stateDirectory: directory)
        // A record naming another pin (its fingerprint recomputed would be needed to match; here it does not):
        // checked in full, and the pin is the CA file's.
        let saved = try String(contentsOfFile: recordPath, encoding: .utf8)
        try saved.replacingOccurrences(of: try ca.pin.description, with: try TestCA(name: "Other").pin.description)
            .write(toFile: recordPath, atomically: true, encoding: .utf8)
        let loaded = try XCTUnwrap(try AgentCredentials.load(stateDirectory: directory))
        XCTAssertEqual(loaded.caPin, try ca.pin)
        XCTAssertTrue(try String(contentsOfFile: recordPath, encoding: .utf8).contains(try ca.pin.description),
                      "the record rewritten after the full check")
    }

    func testARecordOfAnOlderAgentIsCheckedInFullAndThenCompleted() throws {
        let credentials = try enroll(with: try TestCA())
        try credentials.save(stateDirectory: directory)
        var old = try record()
        old["verified"] = nil
        try JSONSerialization.data(withJSONObject: old).write(to: URL(fileURLWithPath: recordPath))
        XCTAssertEqual(try AgentCredentials.load(stateDirectory: directory), credentials)
        XCTAssertNotNil(try record()["verified"], "the record vouches for the files from now on")
        let inode = try recordInode()
        XCTAssertEqual(try AgentCredentials.load(stateDirectory: directory), credentials)
        XCTAssertEqual(try recordInode(), inode)
    }

    func testFilesReplacedBehindTheRecordOrARecordEditedByHandAreCheckedInFull() throws {
        let ca = try TestCA()
        let agentID = UUID()
        let tenantID = UUID()
        let credentials = try enroll(with: ca, agentID: agentID, tenantID: tenantID)
        try credentials.save(stateDirectory: directory)
        let saved = try String(contentsOfFile: recordPath, encoding: .utf8)

        // The record edited to name another agent: its fingerprint no longer matches, and the certificate disagrees.
        try saved.replacingOccurrences(of: agentID.uuidString, with: UUID().uuidString)
            .write(toFile: recordPath, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try AgentCredentials.load(stateDirectory: directory)) { error in
            XCTAssertTrue(String(describing: error).contains("but the certificate is for"), "\(error)")
        }

        // Another key put beside the certificate: refused as before, not trusted from the record.
        try saved.write(toFile: recordPath, atomically: true, encoding: .utf8)
        let (strangerKeyPEM, _) = try AgentCredentials.generateKeyAndCSR(hostname: "x")
        try strangerKeyPEM.write(toFile: directory + "/agent-key.pem", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try AgentCredentials.load(stateDirectory: directory)) { error in
            XCTAssertTrue(String(describing: error).contains("does not belong to the client certificate"), "\(error)")
        }

        // A certificate of another CA: refused.
        try credentials.privateKeyPEM.write(toFile: directory + "/agent-key.pem", atomically: true, encoding: .utf8)
        try TestCA(name: "Other CA").pem.write(toFile: directory + "/ca.pem", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try AgentCredentials.load(stateDirectory: directory)) { error in
            XCTAssertTrue(String(describing: error).contains("not issued by the CA"), "\(error)")
        }
    }

    func testARenewalRewritesTheRecordForTheNewFiles() throws {
        let ca = try TestCA()
        let agentID = UUID()
        let tenantID = UUID()
        try enroll(with: ca, agentID: agentID, tenantID: tenantID).save(stateDirectory: directory)
        let before = try XCTUnwrap(try record()["verified"] as? [String: Any])["sha256"] as? String
        let renewed = try enroll(with: ca, agentID: agentID, tenantID: tenantID)
        try renewed.saveRenewal(stateDirectory: directory)
        let after = try XCTUnwrap(try record()["verified"] as? [String: Any])["sha256"] as? String
        XCTAssertNotEqual(before, after)
        let inode = try recordInode()
        XCTAssertEqual(try AgentCredentials.load(stateDirectory: directory), renewed)
        XCTAssertEqual(try recordInode(), inode, "the renewed files are vouched for: no full check at the next start")
    }
}
