import Crypto
import CrowsnestWire
import Foundation
import Logging
import SwiftASN1
import X509

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The server's own certificate authority: it issues the gateway's serving certificate and the agents' client
/// certificates, and its certificate is what agents pin.
///
/// All keys are ECDSA P-256. The CA is valid for 10 years, the serving certificate and agent certificates for 1 year.
public struct CertificateAuthority: Sendable {
    /// File name of the CA certificate inside the server data directory.
    public static let caCertificateFileName = "ca.pem"
    /// File name of the CA private key (mode 0600) inside the server data directory.
    public static let caPrivateKeyFileName = "ca-key.pem"
    /// File name of the gateway's serving certificate inside the server data directory.
    public static let serverCertificateFileName = "server.pem"
    /// File name of the serving certificate's private key (mode 0600) inside the server data directory.
    public static let serverPrivateKeyFileName = "server-key.pem"

    /// How long a new CA certificate is valid.
    public static let caValidity: TimeInterval = 10 * 365 * 86_400
    /// How long a serving certificate is valid.
    public static let serverCertificateValidity: TimeInterval = 365 * 86_400
    /// How long an agent's client certificate is valid.
    public static let agentCertificateValidity: TimeInterval = 365 * 86_400
    /// A serving certificate with less than this left is replaced at start.
    public static let serverRenewalMargin: TimeInterval = 30 * 86_400
    /// Certificates start being valid this long before issuance, to tolerate clock skew between machines.
    public static let backdating: TimeInterval = 5 * 60

    /// The CA certificate.
    public let caCertificate: Certificate
    /// The CA certificate in PEM form, as agents save it in `ca.pem`.
    public let caCertificatePEM: String
    /// The CA certificate's DER encoding.
    public let caCertificateDER: [UInt8]
    /// The pin of the CA certificate that operators give to agents: `sha256:<hex>`.
    public let caPin: CAPin
    /// The gateway's serving certificate (extended key usage serverAuth, SANs for the server's names and IPs).
    public let serverCertificate: Certificate
    /// The serving certificate in PEM form.
    public let serverCertificatePEM: String
    /// The serving certificate's private key in PEM (PKCS#8) form.
    public let serverPrivateKeyPEM: String

    private let caPrivateKey: Certificate.PrivateKey
    private let caSigningKey: P256.Signing.PrivateKey

    /// Loads the CA and serving certificate from `directory`, creating what is missing.
    ///
    /// On first start it creates the CA (`ca.pem`, `ca-key.pem`) and the serving certificate (`server.pem`,
    /// `server-key.pem`); keys are written with mode 0600. Afterwards the CA is reused as is, and the serving
    /// certificate is reissued when its names differ from the requested ones, when it has less than 30 days left,
    /// or when it was not issued by this CA.
    ///
    /// - Parameters:
    ///   - directory: the server data directory (created with mode 0700 if missing).
    ///   - serverNames: DNS names for the serving certificate; the machine's hostname and `localhost` are always added.
    ///   - serverIPs: IP addresses for the serving certificate; `127.0.0.1` and `::1` are always added.
    ///   - logger: where to report what was created or renewed.
    ///   - now: the current time (tests pass other times to exercise renewal).
    public static func loadOrCreate(
        directory: String,
        serverNames: [String] = [],
        serverIPs: [String] = [],
        logger: Logger,
        now: Date = Date()
    ) throws -> CertificateAuthority {
        try CredentialFile.createDirectory(directory, mode: 0o700)
        let caPath = CredentialFile.join(directory, caCertificateFileName)
        let caKeyPath = CredentialFile.join(directory, caPrivateKeyFileName)
        let caCertificate: Certificate
        let caKey: P256.Signing.PrivateKey
        if let existing = try readCAFiles(directory: directory) {
            (caCertificate, caKey) = existing
            logger.debug("loaded certificate authority", metadata: ["directory": "\(directory)"])
        } else {
            (caCertificate, caKey) = try newCA(now: now)
            try CredentialFile.writeAtomically(caKey.pemRepresentation, to: caKeyPath, mode: 0o600)
            try CredentialFile.writeAtomically(try caCertificate.serializeAsPEM().pemString, to: caPath, mode: 0o644)
            let pin = CAPin.compute(derBytes: try Self.der(caCertificate))
            logger.notice("created certificate authority", metadata: ["directory": "\(directory)", "ca_pin": "\(pin)"])
        }
        return try withServingCertificate(caCertificate: caCertificate, caKey: caKey, directory: directory,
                                          serverNames: serverNames, serverIPs: serverIPs, logger: logger, now: now)
    }

    /// A new CA: P-256 key and a self-signed certificate valid for `caValidity`.
    public static func newCA(now: Date = Date()) throws -> (certificate: Certificate, key: P256.Signing.PrivateKey) {
        let key = P256.Signing.PrivateKey()
        return (try makeCACertificate(key: key, now: now), key)
    }

    /// The CA kept in `ca.pem` and `ca-key.pem` in `directory`, or nil when neither file exists. Only one of the
    /// two, unreadable files or a key that does not belong to the certificate are errors (silently replacing a
    /// CA would cut off every enrolled agent).
    public static func readCAFiles(directory: String) throws -> (certificate: Certificate, key: P256.Signing.PrivateKey)? {
        let caPath = CredentialFile.join(directory, caCertificateFileName)
        let caKeyPath = CredentialFile.join(directory, caPrivateKeyFileName)
        switch (try CredentialFile.readIfPresent(caPath), try CredentialFile.readIfPresent(caKeyPath)) {
        case (let certificatePEM?, let keyPEM?):
            let caCertificate: Certificate
            let caKey: P256.Signing.PrivateKey
            do {
                caCertificate = try Certificate(pemEncoded: certificatePEM)
            } catch {
                throw CertificateAuthorityError.unreadableFile(path: caPath, reason: String(describing: error))
            }
            do {
                caKey = try P256.Signing.PrivateKey(pemRepresentation: keyPEM)
            } catch {
                throw CertificateAuthorityError.unreadableFile(
                    path: caKeyPath,
                    reason: "not a P-256 private key in PEM form (\(error))"
                )
            }
            guard caCertificate.publicKey == Certificate.PublicKey(caKey.publicKey) else {
                throw CertificateAuthorityError.caKeyDoesNotMatchCertificate(certificatePath: caPath, keyPath: caKeyPath)
            }
            return (caCertificate, caKey)
        case (nil, nil):
            return nil
        case (nil, _?):
            throw CertificateAuthorityError.incompleteCA(present: caKeyPath, missing: caPath)
        case (_?, nil):
            throw CertificateAuthorityError.incompleteCA(present: caPath, missing: caKeyPath)
        }
    }

    /// The authority for a CA kept elsewhere (the database): loads the serving certificate from `directory`, or
    /// issues a new one when it is missing, names other names, has less than 30 days left or another issuer.
    public static func withServingCertificate(
        caCertificate: Certificate,
        caKey: P256.Signing.PrivateKey,
        directory: String,
        serverNames: [String] = [],
        serverIPs: [String] = [],
        logger: Logger,
        now: Date = Date()
    ) throws -> CertificateAuthority {
        try CredentialFile.createDirectory(directory, mode: 0o700)
        let serverPath = CredentialFile.join(directory, serverCertificateFileName)
        let serverKeyPath = CredentialFile.join(directory, serverPrivateKeyFileName)
        let names = Self.dnsNames(requested: serverNames)
        let ips = try Self.ipAddresses(requested: serverIPs)

        // The serving certificate: reuse it only if it is still what we would issue now.
        var serverCertificate: Certificate?
        var serverKeyPEM: String?
        if let certificatePEM = try CredentialFile.readIfPresent(serverPath),
            let keyPEM = try CredentialFile.readIfPresent(serverKeyPath)
        {
            if let certificate = try? Certificate(pemEncoded: certificatePEM),
                let key = try? P256.Signing.PrivateKey(pemRepresentation: keyPEM)
            {
                if let reason = Self.reasonToReissue(
                    serverCertificate: certificate,
                    key: key,
                    ca: caCertificate,
                    names: names,
                    ips: ips,
                    now: now
                ) {
                    logger.notice("renewing serving certificate", metadata: ["reason": "\(reason)"])
                } else {
                    serverCertificate = certificate
                    serverKeyPEM = keyPEM
                }
            } else {
                logger.warning("renewing serving certificate", metadata: ["reason": "unreadable files"])
            }
        }
        if serverCertificate == nil {
            let key = P256.Signing.PrivateKey()
            let certificate = try Self.makeServerCertificate(
                key: key,
                ca: caCertificate,
                caKey: caKey,
                names: names,
                ips: ips,
                now: now
            )
            try CredentialFile.writeAtomically(key.pemRepresentation, to: serverKeyPath, mode: 0o600)
            try CredentialFile.writeAtomically(try certificate.serializeAsPEM().pemString, to: serverPath, mode: 0o644)
            logger.notice(
                "issued serving certificate",
                metadata: [
                    "dns_names": "\(names.joined(separator: ","))",
                    "ip_addresses": "\(ips.map(\.text).joined(separator: ","))",
                    "not_after": "\(certificate.notValidAfter)",
                ]
            )
            serverCertificate = certificate
            serverKeyPEM = key.pemRepresentation
        }

        return try CertificateAuthority(
            caCertificate: caCertificate,
            caPrivateKey: caKey,
            serverCertificate: serverCertificate!,
            serverPrivateKeyPEM: serverKeyPEM!
        )
    }

    private init(
        caCertificate: Certificate,
        caPrivateKey: P256.Signing.PrivateKey,
        serverCertificate: Certificate,
        serverPrivateKeyPEM: String
    ) throws {
        self.caCertificate = caCertificate
        self.caCertificatePEM = try caCertificate.serializeAsPEM().pemString
        self.caCertificateDER = try Self.der(caCertificate)
        self.caPin = CAPin.compute(derBytes: self.caCertificateDER)
        self.caPrivateKey = Certificate.PrivateKey(caPrivateKey)
        self.caSigningKey = caPrivateKey
        self.serverCertificate = serverCertificate
        self.serverCertificatePEM = try serverCertificate.serializeAsPEM().pemString
        self.serverPrivateKeyPEM = serverPrivateKeyPEM
    }

    /// The same CA with its serving certificate re-checked at `now` (reissued into `directory` when due).
    public func renewingServingCertificate(directory: String, serverNames: [String], serverIPs: [String], logger: Logger,
                                           now: Date = Date()) throws -> CertificateAuthority {
        try Self.withServingCertificate(caCertificate: caCertificate, caKey: caSigningKey, directory: directory,
                                        serverNames: serverNames, serverIPs: serverIPs, logger: logger, now: now)
    }

    /// Issues an agent's client certificate for a certificate signing request.
    ///
    /// The request's signature must verify (proving the agent holds the private key) and its key must be P-256.
    /// Whatever subject the request asks for is ignored: the certificate's subject is always
    /// `CN=<agentID>, O=<tenantID>, OU=crowsnest-agent`, with extended key usage clientAuth only.
    ///
    /// - Returns: the certificate in PEM form.
    public func signAgentCSR(
        csrPEM: String,
        agentID: UUID,
        tenantID: UUID,
        validity: TimeInterval = CertificateAuthority.agentCertificateValidity,
        now: Date = Date()
    ) throws -> String {
        let request: CertificateSigningRequest
        do {
            request = try CertificateSigningRequest(pemEncoded: csrPEM)
        } catch {
            throw CertificateAuthorityError.unreadableCSR(reason: String(describing: error))
        }
        guard request.publicKey.isValidSignature(request.signature, for: request) else {
            throw CertificateAuthorityError.csrSignatureDoesNotVerify
        }
        guard P256.Signing.PublicKey(request.publicKey) != nil else {
            throw CertificateAuthorityError.unsupportedCSRKey(description: String(describing: request.publicKey))
        }
        let identity = AgentCertificateIdentity(agentID: agentID, tenantID: tenantID)
        let certificate = try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(),
            publicKey: request.publicKey,
            // Backdated for clock skew, by at most a tenth of the lifetime (short lifetimes are for tests).
            notValidBefore: now - min(Self.backdating, validity / 10),
            notValidAfter: min(now + validity, caCertificate.notValidAfter),
            issuer: caCertificate.subject,
            subject: try identity.subject,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.clientAuth])
                SubjectKeyIdentifier(hash: request.publicKey)
                try Self.authorityKeyIdentifier(of: caCertificate)
            },
            issuerPrivateKey: caPrivateKey
        )
        return try certificate.serializeAsPEM().pemString
    }

    /// The DNS names the serving certificate carries by default: the machine's hostname and `localhost`.
    public static func defaultServerNames() -> [String] {
        var names: [String] = []
        if let host = machineHostname() { names.append(host) }
        names.append("localhost")
        return names
    }

    /// The IP addresses the serving certificate carries by default: `127.0.0.1` and `::1`.
    public static let defaultServerIPs = ["127.0.0.1", "::1"]

    // MARK: - Issuing

    private static func makeCACertificate(key: P256.Signing.PrivateKey, now: Date) throws -> Certificate {
        let publicKey = Certificate.PublicKey(key.publicKey)
        let name = try DistinguishedName {
            CommonName("Crowsnest CA \(String(UInt32.random(in: 0...UInt32.max), radix: 16))")
            OrganizationName("Crowsnest")
        }
        return try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(),
            publicKey: publicKey,
            notValidBefore: now - backdating,
            notValidAfter: now + caValidity,
            issuer: name,
            subject: name,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(hash: publicKey)
            },
            issuerPrivateKey: Certificate.PrivateKey(key)
        )
    }

    private static func makeServerCertificate(
        key: P256.Signing.PrivateKey,
        ca: Certificate,
        caKey: P256.Signing.PrivateKey,
        names: [String],
        ips: [IPAddress],
        now: Date
    ) throws -> Certificate {
        let publicKey = Certificate.PublicKey(key.publicKey)
        let subject = try DistinguishedName {
            CommonName(names.first ?? "crowsnest-server")
            OrganizationName("Crowsnest")
        }
        return try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(),
            publicKey: publicKey,
            notValidBefore: now - backdating,
            notValidAfter: min(now + serverCertificateValidity, ca.notValidAfter),
            issuer: ca.subject,
            subject: subject,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.serverAuth])
                subjectAlternativeNames(names: names, ips: ips)
                SubjectKeyIdentifier(hash: publicKey)
                try authorityKeyIdentifier(of: ca)
            },
            issuerPrivateKey: Certificate.PrivateKey(caKey)
        )
    }

    private static func subjectAlternativeNames(names: [String], ips: [IPAddress]) -> SubjectAlternativeNames {
        SubjectAlternativeNames(
            names.map { GeneralName.dnsName($0) }
                + ips.map { GeneralName.ipAddress(ASN1OctetString(contentBytes: $0.bytes[...])) }
        )
    }

    private static func authorityKeyIdentifier(of ca: Certificate) throws -> AuthorityKeyIdentifier {
        let keyIdentifier =
            try ca.extensions.subjectKeyIdentifier?.keyIdentifier
            ?? SubjectKeyIdentifier(hash: ca.publicKey).keyIdentifier
        return AuthorityKeyIdentifier(keyIdentifier: keyIdentifier)
    }

    /// Why an existing serving certificate must be replaced, or nil when it can be kept.
    private static func reasonToReissue(
        serverCertificate: Certificate,
        key: P256.Signing.PrivateKey,
        ca: Certificate,
        names: [String],
        ips: [IPAddress],
        now: Date
    ) -> String? {
        if serverCertificate.publicKey != Certificate.PublicKey(key.publicKey) {
            return "key does not match certificate"
        }
        if serverCertificate.issuer != ca.subject
            || !ca.publicKey.isValidSignature(serverCertificate.signature, for: serverCertificate)
        {
            return "not issued by the current CA"
        }
        if serverCertificate.notValidAfter.timeIntervalSince(now) < serverRenewalMargin {
            return "expires within 30 days"
        }
        if serverCertificate.notValidBefore > now {
            return "not valid yet"
        }
        guard let existing = try? serverCertificate.extensions.subjectAlternativeNames else {
            return "subject alternative names missing"
        }
        let wanted = subjectAlternativeNames(names: names, ips: ips)
        if Set(existing.map { $0 }) != Set(wanted.map { $0 }) {
            return "subject alternative names changed"
        }
        return nil
    }

    // MARK: - Names and addresses

    private static func dnsNames(requested: [String]) -> [String] {
        var seen = Set<String>()
        var result: [String] = []
        for name in requested + defaultServerNames() {
            let normalized = name.trimmingCharacters(in: .whitespaces).lowercased()
            guard !normalized.isEmpty, IPAddress(normalized) == nil, seen.insert(normalized).inserted else { continue }
            result.append(normalized)
        }
        return result
    }

    private static func ipAddresses(requested: [String]) throws -> [IPAddress] {
        var seen = Set<[UInt8]>()
        var result: [IPAddress] = []
        for text in requested + defaultServerIPs {
            let trimmed = text.trimmingCharacters(in: .whitespaces)
            guard !trimmed.isEmpty else { continue }
            guard let address = IPAddress(trimmed) else {
                throw CertificateAuthorityError.invalidIPAddress(trimmed)
            }
            if seen.insert(address.bytes).inserted { result.append(address) }
        }
        return result
    }

    private static func machineHostname() -> String? {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count) == 0 else { return nil }
        let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        let name = String(decoding: bytes, as: UTF8.self).lowercased()
        return name.isEmpty ? nil : name
    }

    static func der(_ certificate: Certificate) throws -> [UInt8] {
        var serializer = DER.Serializer()
        try serializer.serialize(certificate)
        return serializer.serializedBytes
    }
}

/// Why the certificate authority could not load, create or issue certificates.
public enum CertificateAuthorityError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A certificate or key file exists but cannot be parsed.
    case unreadableFile(path: String, reason: String)
    /// Only one of the CA certificate and CA key exists.
    case incompleteCA(present: String, missing: String)
    /// The CA key is not the key of the CA certificate.
    case caKeyDoesNotMatchCertificate(certificatePath: String, keyPath: String)
    /// A configured server IP address is not a valid IPv4 or IPv6 address.
    case invalidIPAddress(String)
    /// The certificate signing request is not a readable PEM CSR.
    case unreadableCSR(reason: String)
    /// The certificate signing request's signature does not match its public key.
    case csrSignatureDoesNotVerify
    /// The certificate signing request's key is not ECDSA P-256.
    case unsupportedCSRKey(description: String)

    /// A human-readable explanation of the failure.
    public var description: String {
        switch self {
        case .unreadableFile(let path, let reason):
            return "cannot read \(path): \(reason)"
        case .incompleteCA(let present, let missing):
            return "certificate authority is incomplete: \(present) exists but \(missing) is missing; restore it from a backup, or remove both files to create a new CA (every agent will then have to enroll again)"
        case .caKeyDoesNotMatchCertificate(let certificatePath, let keyPath):
            return "certificate authority key \(keyPath) does not belong to the certificate \(certificatePath)"
        case .invalidIPAddress(let text):
            return "invalid server IP address \"\(text)\" for the serving certificate"
        case .unreadableCSR(let reason):
            return "cannot read the certificate signing request: \(reason)"
        case .csrSignatureDoesNotVerify:
            return "the certificate signing request's signature does not verify"
        case .unsupportedCSRKey(let description):
            return "the certificate signing request's key must be ECDSA P-256, got \(description)"
        }
    }
}
