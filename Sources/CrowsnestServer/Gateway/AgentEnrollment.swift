import CrowsnestWire
import Foundation
import Logging
import PostgresNIO
import X509

/// Turns an enrollment token and a CSR into an agent row and a client certificate, all or nothing.
public struct AgentEnrollment: Sendable {
    public let client: PostgresClient
    public let authority: CertificateAuthority
    public let logger: Logger
    /// Lifetime of the agent certificates issued (at enrollment and renewal); agents renew after two thirds.
    public var certificateValidity: TimeInterval = CertificateAuthority.agentCertificateValidity

    public init(client: PostgresClient, authority: CertificateAuthority, logger: Logger) {
        self.client = client
        self.authority = authority
        self.logger = logger
    }

    /// Consumes the token and signs the CSR in one transaction: a refused token leaves nothing behind, and a
    /// token can be used once only.
    public func enroll(_ request: Crowsnest_V1_EnrollRequest) async throws -> Crowsnest_V1_EnrollResponse {
        guard !request.token.isEmpty, request.token.utf8.count <= 256 else {
            throw StoreError(.tokenRejected, "enrollment token is missing or too long")
        }
        let agentID = UUID()
        let authority = self.authority
        let logger = self.logger
        do {
            return try await transaction(request, agentID: agentID, authority: authority, logger: logger)
        } catch let error as PostgresTransactionError {
            // Surface the refusal itself (bad token, bad CSR), not the transaction wrapper around it.
            if let refusal = error.closureError as? StoreError { throw refusal }
            if let refusal = error.closureError as? CertificateAuthorityError { throw refusal }
            throw error
        }
    }

    /// A new certificate for an established agent's new key, same identity (the session proved it with the old
    /// certificate); the agent's recorded certificate serial is updated.
    public func renew(_ request: Crowsnest_V1_RenewRequest, identity: AgentCertificateIdentity) async throws -> Crowsnest_V1_RenewResponse {
        let certificatePEM = try authority.signAgentCSR(csrPEM: request.csrPem, agentID: identity.agentID,
                                                        tenantID: identity.tenantID, validity: certificateValidity)
        let serial = (try? Certificate(pemEncoded: certificatePEM)).map { "\($0.serialNumber)" } ?? ""
        try await AgentStore(client: client, logger: logger).recordCertificate(tenantID: identity.tenantID, agentID: identity.agentID,
                                                                               serial: serial)
        var response = Crowsnest_V1_RenewResponse()
        response.certificatePem = certificatePEM
        response.caCertificatePem = authority.caCertificatePEM
        return response
    }

    private func transaction(_ request: Crowsnest_V1_EnrollRequest, agentID: UUID, authority: CertificateAuthority,
                             logger: Logger) async throws -> Crowsnest_V1_EnrollResponse {
        try await client.withTransaction(logger: logger) { connection in
            let tenantID = try await EnrollmentTokenStore.consume(token: request.token, agentID: agentID,
                                                                  on: connection, logger: logger)
            let certificatePEM = try authority.signAgentCSR(csrPEM: request.csrPem, agentID: agentID, tenantID: tenantID,
                                                            validity: certificateValidity)
            let serial = (try? Certificate(pemEncoded: certificatePEM)).map { "\($0.serialNumber)" } ?? ""
            try await AgentStore.insert(tenantID: tenantID, agentID: agentID, host: request.host,
                                        agentVersion: request.agentVersion, certificateSerial: serial,
                                        on: connection, logger: logger)
            var response = Crowsnest_V1_EnrollResponse()
            response.agentID = agentID.uuidString.lowercased()
            response.tenantID = tenantID.uuidString.lowercased()
            response.certificatePem = certificatePEM
            response.caCertificatePem = authority.caCertificatePEM
            return response
        }
    }
}
