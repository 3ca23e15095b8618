import Crypto
import Foundation
import NIOSSL
import SwiftASN1
import X509

/// Certificates made for a test: a self-signed leaf, or a leaf issued by a test CA, each with the expiry the test
/// needs, served by `TestHTTPServer`.
struct TestCertificates {
    struct Issued {
        let certificate: Certificate
        let key: P256.Signing.PrivateKey
        var nio: NIOSSLCertificate { get throws { try NIOSSLCertificate(bytes: try Self.der(certificate), format: .der) } }
        var notAfterUnix: Int64 { Int64(certificate.notValidAfter.timeIntervalSince1970) }

        static func der(_ certificate: Certificate) throws -> [UInt8] {
            var serializer = DER.Serializer()
            try serializer.serialize(certificate)
            return serializer.serializedBytes
        }
    }

    /// A certificate for `names` (DNS names; "127.0.0.1" becomes an IP address) valid until `days` from now
    /// (negative: already expired), signed by `issuer` or by itself; `isCA` makes it able to sign others.
    static func make(commonName: String, names: [String], days: Double, issuer: Issued? = nil, isCA: Bool = false) throws -> Issued {
        let key = P256.Signing.PrivateKey()
        let now = Date()
        let subject = try DistinguishedName { CommonName(commonName) }
        let notAfter = now.addingTimeInterval(days * 86_400)
        let notBefore = min(now.addingTimeInterval(-3_600), notAfter.addingTimeInterval(-86_400))
        let alternatives = names.map { name -> GeneralName in
            if name == "127.0.0.1" { return .ipAddress(ASN1OctetString(contentBytes: [127, 0, 0, 1])) }
            return .dnsName(name)
        }
        let extensions = try Certificate.Extensions {
            Critical(isCA ? BasicConstraints.isCertificateAuthority(maxPathLength: 0) : BasicConstraints.notCertificateAuthority)
            if !alternatives.isEmpty { SubjectAlternativeNames(alternatives) }
        }
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(key.publicKey),
            notValidBefore: notBefore, notValidAfter: notAfter,
            issuer: issuer?.certificate.subject ?? subject, subject: subject,
            signatureAlgorithm: .ecdsaWithSHA256, extensions: extensions,
            issuerPrivateKey: .init(issuer?.key ?? key))
        return Issued(certificate: certificate, key: key)
    }

    /// A server configuration presenting `leaf` (and `chain` after it).
    static func serverConfiguration(_ leaf: Issued, chain: [Issued] = []) throws -> TLSConfiguration {
        let privateKey = try NIOSSLPrivateKey(bytes: Array(leaf.key.pemRepresentation.utf8), format: .pem)
        return TLSConfiguration.makeServerConfiguration(
            certificateChain: try ([leaf] + chain).map { .certificate(try $0.nio) }, privateKey: .privateKey(privateKey))
    }
}
