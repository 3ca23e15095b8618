#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import X509

/// Who an agent is, as stated by the client certificate the server's CA issued to it.
///
/// The subject is `CN=<agent id>, O=<tenant id>, OU=crowsnest-agent` and the certificate is for client
/// authentication only. The server takes an agent's identity and tenant from here, never from frame contents.
public struct AgentCertificateIdentity: Sendable, Hashable, CustomStringConvertible {
    /// The organizational unit every agent certificate carries, so agent certificates cannot be confused with others.
    public static let organizationalUnit = "crowsnest-agent"

    /// The agent's id (the certificate's common name).
    public let agentID: UUID
    /// The tenant the agent belongs to (the certificate's organization).
    public let tenantID: UUID

    /// Creates an identity from its two ids.
    public init(agentID: UUID, tenantID: UUID) {
        self.agentID = agentID
        self.tenantID = tenantID
    }

    /// The certificate subject that encodes this identity: `CN=<agent id>, O=<tenant id>, OU=crowsnest-agent`.
    public var subject: DistinguishedName {
        get throws {
            try DistinguishedName {
                CommonName(agentID.uuidString.lowercased())
                OrganizationName(tenantID.uuidString.lowercased())
                OrganizationalUnitName(Self.organizationalUnit)
            }
        }
    }

    /// `agent <id> (tenant <id>)`, for logs and messages.
    public var description: String {
        "agent \(agentID.uuidString.lowercased()) (tenant \(tenantID.uuidString.lowercased()))"
    }

    /// Reads the identity from an agent certificate given as DER bytes.
    ///
    /// This only reads the subject and extended key usage: whether the certificate chains to the server's CA is
    /// checked by the TLS handshake.
    public static func parse(derBytes: [UInt8]) throws(AgentCertificateIdentityError) -> AgentCertificateIdentity {
        let certificate: Certificate
        do {
            certificate = try Certificate(derEncoded: derBytes)
        } catch {
            throw .unreadableCertificate(String(describing: error))
        }
        return try parse(certificate: certificate)
    }

    /// Reads the identity from an agent certificate in PEM form.
    public static func parse(pemEncoded: String) throws(AgentCertificateIdentityError) -> AgentCertificateIdentity {
        let certificate: Certificate
        do {
            certificate = try Certificate(pemEncoded: pemEncoded)
        } catch {
            throw .unreadableCertificate(String(describing: error))
        }
        return try parse(certificate: certificate)
    }

    /// Reads the identity from an agent certificate.
    ///
    /// The certificate must carry exactly one common name and one organization, both UUIDs, the organizational
    /// unit `crowsnest-agent`, and an extended key usage of client authentication.
    public static func parse(certificate: Certificate) throws(AgentCertificateIdentityError) -> AgentCertificateIdentity {
        let subject = certificate.subject
        let commonNames = values(in: subject) { $0.type == .RDNAttributeType.commonName }
        let organizations = values(in: subject) { $0.type == .RDNAttributeType.organizationName }
        let units = values(in: subject) { $0.type == .RDNAttributeType.organizationalUnitName }
        let subjectText = String(describing: subject)

        guard units == [organizationalUnit] else {
            throw .notAnAgentCertificate(subject: subjectText)
        }
        guard commonNames.count == 1, let agentID = UUID(uuidString: commonNames[0]) else {
            throw .invalidAgentID(subject: subjectText)
        }
        guard organizations.count == 1, let tenantID = UUID(uuidString: organizations[0]) else {
            throw .invalidTenantID(subject: subjectText)
        }
        let usage: ExtendedKeyUsage?
        do {
            usage = try certificate.extensions.extendedKeyUsage
        } catch {
            throw .unreadableCertificate(String(describing: error))
        }
        guard let usage, usage.contains(.clientAuth) else {
            throw .notForClientAuthentication(subject: subjectText)
        }
        return AgentCertificateIdentity(agentID: agentID, tenantID: tenantID)
    }

    private static func values(
        in name: DistinguishedName,
        where isWanted: (RelativeDistinguishedName.Attribute) -> Bool
    ) -> [String] {
        var found: [String] = []
        for rdn in name {
            for attribute in rdn where isWanted(attribute) {
                found.append(String(attribute.value) ?? "")
            }
        }
        return found
    }
}

/// Why an agent identity could not be read from a certificate.
public enum AgentCertificateIdentityError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The bytes are not a readable X.509 certificate.
    case unreadableCertificate(String)
    /// The subject does not carry `OU=crowsnest-agent`.
    case notAnAgentCertificate(subject: String)
    /// The common name is missing, repeated or not a UUID.
    case invalidAgentID(subject: String)
    /// The organization is missing, repeated or not a UUID.
    case invalidTenantID(subject: String)
    /// The certificate is not issued for TLS client authentication.
    case notForClientAuthentication(subject: String)

    /// A human-readable explanation of what is wrong with the certificate.
    public var description: String {
        switch self {
        case .unreadableCertificate(let reason):
            return "cannot read the agent certificate: \(reason)"
        case .notAnAgentCertificate(let subject):
            return "certificate \"\(subject)\" is not an agent certificate: its subject lacks OU=\(AgentCertificateIdentity.organizationalUnit)"
        case .invalidAgentID(let subject):
            return "agent certificate \"\(subject)\" has no valid agent id: the subject must have exactly one CN holding a UUID"
        case .invalidTenantID(let subject):
            return "agent certificate \"\(subject)\" has no valid tenant id: the subject must have exactly one O holding a UUID"
        case .notForClientAuthentication(let subject):
            return "agent certificate \"\(subject)\" is not issued for TLS client authentication (extended key usage clientAuth missing)"
        }
    }
}
