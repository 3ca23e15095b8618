import Crypto
import CrowsnestWire
import Foundation
import Logging
import PostgresNIO
import X509

/// Finds the installation's CA in the database when `serve` starts: creates it on the very first start, imports
/// once a CA an older install kept in its data directory, and refuses to start when the data directory holds a
/// different CA than the database (that server's agents would not trust the others, or the reverse). Runs under
/// an advisory lock, so replicas starting together agree on one CA.
public enum AuthorityBootstrap {
    /// The CA certificate and key this installation signs with.
    public static func loadCA(client: PostgresClient, secret: SecretKey, dataDirectory: String, logger: Logger,
                              now: Date = Date()) async throws -> (certificate: Certificate, key: P256.Signing.PrivateKey) {
        let fileCA = try CertificateAuthority.readCAFiles(directory: dataDirectory)
        let outcome: Outcome = try await client.withTransaction(logger: logger) { connection in
            try await CertificateAuthorityStore.lock(on: connection, logger: logger)
            if let row = try await CertificateAuthorityStore.load(on: connection, logger: logger) {
                return .loaded(row)
            }
            let (certificate, key) = try fileCA ?? CertificateAuthority.newCA(now: now)
            let row = CertificateAuthorityStore.Row(
                certificatePEM: try certificate.serializeAsPEM().pemString,
                sealedPrivateKey: try secret.seal(Array(key.pemRepresentation.utf8)),
                secretFingerprint: secret.fingerprint,
                pin: CAPin.compute(derBytes: try CertificateAuthority.der(certificate)).description)
            try await CertificateAuthorityStore.insert(row, on: connection, logger: logger)
            return fileCA == nil ? .created(row) : .imported(row)
        }
        let row: CertificateAuthorityStore.Row
        switch outcome {
        case .created(let created):
            logger.notice("created the certificate authority in the database", metadata: ["ca_pin": "\(created.pin)"])
            row = created
        case .imported(let imported):
            logger.notice("imported the certificate authority from the data directory into the database",
                          metadata: ["ca_pin": "\(imported.pin)", "directory": "\(dataDirectory)"])
            row = imported
        case .loaded(let loaded):
            row = loaded
        }
        let certificate: Certificate
        do {
            certificate = try Certificate(pemEncoded: row.certificatePEM)
        } catch {
            throw AuthorityBootstrapError("the CA certificate in the database cannot be read: \(error)")
        }
        guard row.secretFingerprint == secret.fingerprint else {
            throw AuthorityBootstrapError("the CA's private key in the database was sealed with another secret key "
                + "(fingerprint \(row.secretFingerprint)) than \(secret.path) (fingerprint \(secret.fingerprint)): "
                + "give this server the secret_key_file the installation was created with")
        }
        let key: P256.Signing.PrivateKey
        do {
            key = try P256.Signing.PrivateKey(pemRepresentation: String(decoding: try secret.open(row.sealedPrivateKey), as: UTF8.self))
        } catch {
            throw AuthorityBootstrapError("the CA's private key in the database cannot be decrypted with \(secret.path): \(error)")
        }
        guard certificate.publicKey == Certificate.PublicKey(key.publicKey) else {
            throw AuthorityBootstrapError("the CA's private key in the database does not belong to its certificate")
        }
        if let fileCA, fileCA.certificate != certificate {
            let filePin = CAPin.compute(derBytes: try CertificateAuthority.der(fileCA.certificate))
            throw AuthorityBootstrapError("the CA in \(dataDirectory)/\(CertificateAuthority.caCertificateFileName) (pin \(filePin)) "
                + "is not the installation's CA in the database (pin \(row.pin)): point this server at the database that "
                + "holds \(filePin), or move ca.pem and ca-key.pem out of the data directory (agents enrolled with "
                + "\(filePin) then enroll again)")
        }
        return (certificate, key)
    }

    private enum Outcome: Sendable {
        case loaded(CertificateAuthorityStore.Row)
        case created(CertificateAuthorityStore.Row)
        case imported(CertificateAuthorityStore.Row)
    }
}

/// Why the server cannot use the CA it found, in one line.
public struct AuthorityBootstrapError: Error, CustomStringConvertible, Sendable {
    public var description: String
    init(_ description: String) { self.description = description }
}
