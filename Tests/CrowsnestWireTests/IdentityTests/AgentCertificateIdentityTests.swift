import CrowsnestWire
import Foundation
import XCTest

final class AgentCertificateIdentityTests: XCTestCase {
    func testReadsAgentAndTenantFromTheSubject() throws {
        let identity = try AgentCertificateIdentity.parse(pemEncoded: IdentityFixtures.agentCertificatePEM)
        XCTAssertEqual(identity.agentID, UUID(uuidString: "6f1d2c3a-9b8e-4f7a-8c6d-5e4f3a2b1c0d"))
        XCTAssertEqual(identity.tenantID, UUID(uuidString: "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"))
    }

    func testRefusesACertificateWithoutTheAgentOrganizationalUnit() {
        XCTAssertThrowsError(try AgentCertificateIdentity.parse(pemEncoded: IdentityFixtures.certificateWithoutAgentUnitPEM)) {
            error in
            guard case .notAnAgentCertificate = error as? AgentCertificateIdentityError else {
                return XCTFail("unexpected error \(error)")
            }
            XCTAssertTrue(String(describing: error).contains("OU=crowsnest-agent"), "\(error)")
        }
    }

    func testRefusesACertificateNotIssuedForClientAuthentication() {
        XCTAssertThrowsError(try AgentCertificateIdentity.parse(pemEncoded: IdentityFixtures.serverAuthOnlyCertificatePEM)) {
            error in
            guard case .notForClientAuthentication = error as? AgentCertificateIdentityError else {
                return XCTFail("unexpected error \(error)")
            }
        }
    }

    func testRefusesACommonNameThatIsNotAUUID() {
        XCTAssertThrowsError(
            try AgentCertificateIdentity.parse(pemEncoded: IdentityFixtures.certificateWithNonUUIDCommonNamePEM)
        ) { error in
            guard case .invalidAgentID = error as? AgentCertificateIdentityError else {
                return XCTFail("unexpected error \(error)")
            }
            XCTAssertTrue(String(describing: error).contains("exactly one CN holding a UUID"), "\(error)")
        }
    }

    func testRefusesBytesThatAreNotACertificate() {
        XCTAssertThrowsError(try AgentCertificateIdentity.parse(derBytes: [0x30, 0x03, 0x01, 0x01, 0xff])) { error in
            guard case .unreadableCertificate = error as? AgentCertificateIdentityError else {
                return XCTFail("unexpected error \(error)")
            }
        }
    }

    func testSubjectRoundTripsThroughParse() throws {
        let identity = AgentCertificateIdentity(agentID: UUID(), tenantID: UUID())
        let subject = try identity.subject
        XCTAssertTrue(String(describing: subject).contains("OU=crowsnest-agent"), "\(subject)")
        XCTAssertTrue(String(describing: subject).contains("CN=\(identity.agentID.uuidString.lowercased())"), "\(subject)")
    }
}
