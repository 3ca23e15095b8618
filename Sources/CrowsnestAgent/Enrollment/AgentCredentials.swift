#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Crypto
import CrowsnestWire
import NIOCore
import NIOSSL
import Synchronization
@_spi(DisableValidityCheck) import X509

/// What an enrolled agent keeps in its state directory to talk to the server over mutual TLS.
///
/// Files: `agent-key.pem` (the agent's P-256 private key, mode 0600), `agent.pem` (its client certificate),
/// `ca.pem` (the server's CA, the only CA the agent trusts) and `identity.json` (agent id, tenant id and server
/// addresses). `identity.json` is written last, so its presence means enrollment completed.
public struct AgentCredentials: Sendable, Hashable {
    /// File name of the agent's private key.
    public static let privateKeyFileName = "agent-key.pem"
    /// File name of the agent's client certificate.
    public static let certificateFileName = "agent.pem"
    /// File name of the pinned CA certificate.
    public static let caCertificateFileName = "ca.pem"
    /// File name of the identity record.
    public static let identityFileName = "identity.json"

    /// The agent's private key in PEM (PKCS#8) form.
    public let privateKeyPEM: String
    /// The agent's client certificate issued by the server's CA, in PEM form.
    public let certificatePEM: String
    /// The server's CA certificate in PEM form.
    public let caCertificatePEM: String
    /// The agent id and tenant id, read from the client certificate.
    public let identity: AgentCertificateIdentity
    /// The server addresses (`host:port`) the agent tries in turn.
    public internal(set) var serverAddresses: [String]
    /// When the client certificate expires.
    public let certificateNotValidAfter: Date
    /// When the client certificate became valid.
    public let certificateNotValidBefore: Date
    /// The pin of the CA certificate.
    public let caPin: CAPin

    /// Assembles credentials after enrollment, checking that they fit together.
    ///
    /// The key must belong to the certificate, the certificate must be an agent certificate signed by the CA,
    /// and the identity is read from the certificate.
    public init(
        privateKeyPEM: String,
        certificatePEM: String,
        caCertificatePEM: String,
        serverAddresses: [String]
    ) throws(AgentCredentialsError) {
        let key: P256.Signing.PrivateKey
        do {
            key = try P256.Signing.PrivateKey(pemRepresentation: privateKeyPEM)
        } catch {
            throw .invalid("the private key is not a P-256 key in PEM form (\(error))")
        }
        let certificate: Certificate
        let ca: Certificate
        do {
            certificate = try Certificate(pemEncoded: certificatePEM)
        } catch {
            throw .invalid("the client certificate is not a readable PEM certificate (\(error))")
        }
        do {
            ca = try Certificate(pemEncoded: caCertificatePEM)
        } catch {
            throw .invalid("the CA certificate is not a readable PEM certificate (\(error))")
        }
        guard certificate.publicKey == Certificate.PublicKey(key.publicKey) else {
            throw .invalid("the private key does not belong to the client certificate")
        }
        guard certificate.issuer == ca.subject, ca.publicKey.isValidSignature(certificate.signature, for: certificate)
        else {
            throw .invalid("the client certificate was not issued by the CA in \(Self.caCertificateFileName)")
        }
        do {
            self.identity = try AgentCertificateIdentity.parse(certificate: certificate)
            self.caPin = CAPin.compute(derBytes: try ca.serializeAsPEM().derBytes)
        } catch {
            throw .invalid(String(describing: error))
        }
        self.privateKeyPEM = privateKeyPEM
        self.certificatePEM = certificatePEM
        self.caCertificatePEM = caCertificatePEM
        self.serverAddresses = serverAddresses
        self.certificateNotValidAfter = certificate.notValidAfter
        self.certificateNotValidBefore = certificate.notValidBefore
    }

    /// Credentials taken from an identity record whose fingerprint matches the files: the full checks of
    /// ``init(privateKeyPEM:certificatePEM:caCertificatePEM:serverAddresses:)`` were done when it was written.
    private init(privateKeyPEM: String, certificatePEM: String, caCertificatePEM: String, serverAddresses: [String],
                 identity: AgentCertificateIdentity, caPin: CAPin, verified: VerifiedRecord) {
        self.privateKeyPEM = privateKeyPEM
        self.certificatePEM = certificatePEM
        self.caCertificatePEM = caCertificatePEM
        self.serverAddresses = serverAddresses
        self.identity = identity
        self.caPin = caPin
        self.certificateNotValidBefore = Date(timeIntervalSince1970: TimeInterval(verified.notValidBefore))
        self.certificateNotValidAfter = Date(timeIntervalSince1970: TimeInterval(verified.notValidAfter))
    }

    /// SHA-256 over the three PEM files and what the full checks read from them (identity, CA pin, validity), each
    /// preceded by its length: what an identity record's `verified` block vouches for. A record edited by hand, or
    /// files replaced behind it, no longer match, and the next start checks in full. It catches accidents, not
    /// tampering: whoever can rewrite the record can rewrite `ca.pem` too.
    static func fingerprint(privateKeyPEM: String, certificatePEM: String, caCertificatePEM: String,
                            identity: AgentCertificateIdentity, caPin: String,
                            notValidBefore: Int64, notValidAfter: Int64) -> String {
        var hasher = SHA256()
        let facts = "\(identity.agentID.uuidString.lowercased()) \(identity.tenantID.uuidString.lowercased()) \(caPin) \(notValidBefore) \(notValidAfter)"
        for text in [privateKeyPEM, certificatePEM, caCertificatePEM, facts] {
            let bytes = Array(text.utf8)
            withUnsafeBytes(of: UInt64(bytes.count).bigEndian) { hasher.update(bufferPointer: $0) }
            hasher.update(data: bytes)
        }
        return hasher.finalize().map { byte in
            let hex = Array("0123456789abcdef".utf8)
            return String(decoding: [hex[Int(byte >> 4)], hex[Int(byte & 0x0f)]], as: UTF8.self)
        }.joined()
    }

    /// The DER bytes of the first PEM block in `pem` (base64 between its BEGIN and END lines); nil when there is none.
    static func pemBody(_ pem: String) -> [UInt8]? {
        var body = ""
        var inside = false
        for line in pem.split(whereSeparator: \.isNewline) {
            let text = String(line).trimmingWhitespace()
            if text.hasPrefix("-----BEGIN ") { inside = true; continue }
            if text.hasPrefix("-----END ") { break }
            if inside { body += text }
        }
        guard inside, !body.isEmpty, let data = Data(base64Encoded: body) else { return nil }
        return Array(data)
    }

    /// Creates a fresh P-256 key and a certificate signing request for it.
    ///
    /// The request's subject is `CN=<hostname>` for the operator's benefit only: the server sets the real subject.
    public static func generateKeyAndCSR(hostname: String) throws -> (privateKeyPEM: String, csrPEM: String) {
        let key = P256.Signing.PrivateKey()
        let subject = try DistinguishedName {
            CommonName(hostname.isEmpty ? "crowsnest-agent" : hostname)
        }
        let request = try CertificateSigningRequest(
            version: .v1,
            subject: subject,
            privateKey: Certificate.PrivateKey(key),
            attributes: CertificateSigningRequest.Attributes()
        )
        return (key.pemRepresentation, try request.serializeAsPEM().pemString)
    }

    /// Loads the credentials from `stateDirectory`, or returns nil when the agent has not enrolled yet
    /// (no `identity.json`).
    public static func load(stateDirectory: String) throws(AgentCredentialsError) -> AgentCredentials? {
        let identityPath = CredentialFile.join(stateDirectory, identityFileName)
        let identityText: String?
        do {
            identityText = try CredentialFile.readIfPresent(identityPath)
        } catch {
            throw .file(error)
        }
        guard let identityText else { return nil }
        let record: IdentityRecord
        do {
            record = try JSONDecoder().decode(IdentityRecord.self, from: Data(identityText.utf8))
        } catch {
            throw .invalid("\(identityPath) is not a valid identity record (\(error))")
        }
        let credentials: AgentCredentials
        do {
            try finishInterruptedRenewal(stateDirectory: stateDirectory)
            let keyPEM = try CredentialFile.readRequired(CredentialFile.join(stateDirectory, privateKeyFileName))
            let certificatePEM = try CredentialFile.readRequired(CredentialFile.join(stateDirectory, certificateFileName))
            let caPEM = try CredentialFile.readRequired(CredentialFile.join(stateDirectory, caCertificateFileName))
            let recordIdentity = AgentCertificateIdentity(agentID: record.agentID, tenantID: record.tenantID)
            // The pin always comes from ca.pem itself (the CA BoringSSL trusts), never from the record.
            let caPin = pemBody(caPEM).map { CAPin.compute(derBytes: $0) }
            if let verified = record.verified, let caPin, verified.caPin == caPin.description,
               verified.fingerprint == fingerprint(privateKeyPEM: keyPEM, certificatePEM: certificatePEM, caCertificatePEM: caPEM,
                                                   identity: recordIdentity, caPin: verified.caPin,
                                                   notValidBefore: verified.notValidBefore, notValidAfter: verified.notValidAfter) {
                // The files are the ones checked when the record was written: no certificate parsing at every start
                // (it would keep swift-certificates' code resident in every agent). BoringSSL still checks the
                // server against ca.pem in every handshake, and the server checks the agent's certificate.
                credentials = AgentCredentials(
                    privateKeyPEM: keyPEM, certificatePEM: certificatePEM, caCertificatePEM: caPEM,
                    serverAddresses: record.servers, identity: recordIdentity, caPin: caPin, verified: verified)
            } else {
                credentials = try AgentCredentials(privateKeyPEM: keyPEM, certificatePEM: certificatePEM,
                                                   caCertificatePEM: caPEM, serverAddresses: record.servers)
                // Written by an older agent, or after a renewal a crash interrupted: checked in full above; the
                // record vouches for these files from now on (if it cannot be written, the next start checks again).
                if record.agentID == credentials.identity.agentID, record.tenantID == credentials.identity.tenantID {
                    try? credentials.saveServerAddresses(stateDirectory: stateDirectory)
                }
            }
        } catch let error as CredentialFileError {
            throw .file(error)
        } catch let error as AgentCredentialsError {
            throw error
        } catch {
            throw .invalid(String(describing: error))
        }
        guard record.agentID == credentials.identity.agentID, record.tenantID == credentials.identity.tenantID else {
            throw .invalid(
                "\(identityPath) names \(record.agentID)/\(record.tenantID) but the certificate is for \(credentials.identity)"
            )
        }
        return credentials
    }

    /// Whether the certificate should be renewed at `now`: two thirds of its lifetime have passed.
    public func renewalDue(now: Date = Date()) -> Bool {
        let lifetime = certificateNotValidAfter.timeIntervalSince(certificateNotValidBefore)
        return now >= certificateNotValidBefore.addingTimeInterval(lifetime * 2 / 3)
    }

    /// File the new key of a renewal is written to before the certificate is replaced.
    static let pendingKeyFileName = "agent-key.pem.next"

    /// Replaces key and certificate after a renewal, crash-safely: the new key goes to `agent-key.pem.next`, then
    /// the certificate replaces `agent.pem`, then the key replaces `agent-key.pem`. `load` finishes a replacement
    /// a crash interrupted (the certificate then belongs to the pending key).
    public func saveRenewal(stateDirectory: String) throws(AgentCredentialsError) {
        do {
            let pending = CredentialFile.join(stateDirectory, Self.pendingKeyFileName)
            try CredentialFile.writeAtomically(privateKeyPEM, to: pending, mode: 0o600)
            try CredentialFile.writeAtomically(caCertificatePEM, to: CredentialFile.join(stateDirectory, Self.caCertificateFileName), mode: 0o644)
            try CredentialFile.writeAtomically(certificatePEM, to: CredentialFile.join(stateDirectory, Self.certificateFileName), mode: 0o644)
            try Self.finishInterruptedRenewal(stateDirectory: stateDirectory)
            // Last: the record vouches for the new files (until then it matches none, and a start checks in full).
            try CredentialFile.writeAtomically(try identityJSON(), to: CredentialFile.join(stateDirectory, Self.identityFileName),
                                               mode: 0o644)
        } catch let error as CredentialFileError {
            throw .file(error)
        } catch {
            throw .invalid(String(describing: error))
        }
    }

    /// When a pending renewal key exists and the certificate belongs to it, it becomes the key.
    static func finishInterruptedRenewal(stateDirectory: String) throws {
        let pending = CredentialFile.join(stateDirectory, pendingKeyFileName)
        guard let pendingPEM = try CredentialFile.readIfPresent(pending) else { return }
        let certificatePEM = try CredentialFile.readRequired(CredentialFile.join(stateDirectory, certificateFileName))
        if let key = try? P256.Signing.PrivateKey(pemRepresentation: pendingPEM),
           let certificate = try? Certificate(pemEncoded: certificatePEM),
           certificate.publicKey == Certificate.PublicKey(key.publicKey) {
            try CredentialFile.writeAtomically(pendingPEM, to: CredentialFile.join(stateDirectory, privateKeyFileName), mode: 0o600)
        }
        // Either promoted, or the crash came before the certificate was replaced: the old pair stays valid.
        try? FileManager.default.removeItem(atPath: pending)
    }

    /// Saves the credentials into `stateDirectory` (created with mode 0700 if missing).
    ///
    /// Each file is replaced atomically; the key gets mode 0600; `identity.json` is written last.
    public func save(stateDirectory: String) throws(AgentCredentialsError) {
        let json = try identityJSON()
        do {
            try CredentialFile.createDirectory(stateDirectory, mode: 0o700)
            try CredentialFile.writeAtomically(
                privateKeyPEM,
                to: CredentialFile.join(stateDirectory, Self.privateKeyFileName),
                mode: 0o600
            )
            try CredentialFile.writeAtomically(
                caCertificatePEM,
                to: CredentialFile.join(stateDirectory, Self.caCertificateFileName),
                mode: 0o644
            )
            try CredentialFile.writeAtomically(
                certificatePEM,
                to: CredentialFile.join(stateDirectory, Self.certificateFileName),
                mode: 0o644
            )
            try CredentialFile.writeAtomically(
                json,
                to: CredentialFile.join(stateDirectory, Self.identityFileName),
                mode: 0o644
            )
        } catch {
            throw .file(error)
        }
    }

    /// Replaces only `identity.json` (atomically), for a new list of server addresses.
    public func saveServerAddresses(stateDirectory: String) throws(AgentCredentialsError) {
        let json = try identityJSON()
        do {
            try CredentialFile.writeAtomically(json, to: CredentialFile.join(stateDirectory, Self.identityFileName), mode: 0o644)
        } catch {
            throw .file(error)
        }
    }

    private func identityJSON() throws(AgentCredentialsError) -> String {
        let notValidBefore = Int64(certificateNotValidBefore.timeIntervalSince1970.rounded(.down))
        let notValidAfter = Int64(certificateNotValidAfter.timeIntervalSince1970.rounded(.down))
        let verified = VerifiedRecord(
            fingerprint: Self.fingerprint(privateKeyPEM: privateKeyPEM, certificatePEM: certificatePEM,
                                          caCertificatePEM: caCertificatePEM, identity: identity,
                                          caPin: caPin.description, notValidBefore: notValidBefore,
                                          notValidAfter: notValidAfter),
            caPin: caPin.description, notValidBefore: notValidBefore, notValidAfter: notValidAfter)
        let record = IdentityRecord(agentID: identity.agentID, tenantID: identity.tenantID, servers: serverAddresses,
                                    verified: verified)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        do {
            return String(decoding: try encoder.encode(record), as: UTF8.self) + "\n"
        } catch {
            throw .invalid("cannot encode the identity record (\(error))")
        }
    }

    /// The TLS configuration for normal operation: presents the client certificate, trusts only the pinned CA,
    /// TLS 1.2 minimum (1.3 preferred).
    ///
    /// BoringSSL checks the server with it (chain to the pinned CA, the server's name or address, validity); after
    /// a refusal the shipper checks with `SessionTLS`'s careful handler instead, which says why and tolerates a
    /// wrong clock.
    public func makeClientTLSConfiguration() throws -> TLSConfiguration {
        let certificate = try NIOSSLCertificate(bytes: Array(certificatePEM.utf8), format: .pem)
        let ca = try NIOSSLCertificate(bytes: Array(caCertificatePEM.utf8), format: .pem)
        let key = try NIOSSLPrivateKey(bytes: Array(privateKeyPEM.utf8), format: .pem)
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        configuration.certificateVerification = .fullVerification
        configuration.trustRoots = .certificates([ca])
        configuration.certificateChain = [.certificate(certificate)]
        configuration.privateKey = .privateKey(key)
        return configuration
    }

    /// The TLS configuration for the first contact, before the agent has a certificate.
    ///
    /// It presents no client certificate and trusts nothing by itself: verification is left entirely to the
    /// callback installed by ``EnrollmentTLS/makeHandler(serverHost:)``, which checks the server against the pin.
    /// Use it only through ``EnrollmentTLS``.
    public static func makeEnrollmentTLSConfiguration() -> TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        // Verification must be on for BoringSSL to call the custom verification callback; the callback replaces
        // the chain and name checks, so no trust roots (in particular not the system's) are loaded.
        configuration.certificateVerification = .noHostnameVerification
        configuration.trustRoots = .certificates([])
        return configuration
    }

    /// The value to pass as `serverHostname` to `NIOSSLClientHandler` for `host`: the host itself for a DNS name,
    /// nil for an IP address (TLS forbids IP addresses in SNI; NIOSSL then verifies the connected IP).
    public static func serverNameIndication(for host: String) -> String? {
        IPAddress(host) == nil ? host : nil
    }


    private struct IdentityRecord: Codable {
        var agentID: UUID
        var tenantID: UUID
        var servers: [String]
        /// What the full checks found for the files of `fingerprint` (absent in records of older agents).
        var verified: VerifiedRecord?

        enum CodingKeys: String, CodingKey {
            case agentID = "agent_id"
            case tenantID = "tenant_id"
            case servers
            case verified
        }
    }

    /// The result of checking key, certificate and CA together, kept so a start need not parse them again.
    private struct VerifiedRecord: Codable {
        var fingerprint: String
        var caPin: String
        var notValidBefore: Int64
        var notValidAfter: Int64

        enum CodingKeys: String, CodingKey {
            case fingerprint = "sha256"
            case caPin = "ca_pin"
            case notValidBefore = "not_valid_before"
            case notValidAfter = "not_valid_after"
        }
    }
}

/// Why the agent's credentials could not be loaded, assembled or saved.
public enum AgentCredentialsError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A credential file could not be read or written.
    case file(CredentialFileError)
    /// The credentials do not fit together or cannot be parsed.
    case invalid(String)

    /// A human-readable explanation of the failure.
    public var description: String {
        switch self {
        case .file(let error): return "agent credentials: \(error)"
        case .invalid(let reason): return "invalid agent credentials: \(reason)"
        }
    }
}

/// TLS for enrollment: trusts a server only if it presents the CA certificate matching the operator's pin and a
/// serving certificate signed by that CA, valid now and for the host the agent dialled.
///
/// Create one per enrollment attempt, call ``makeHandler(serverHost:)`` in the channel initializer, and after
/// the handshake read ``verifiedCACertificatePEM`` to save as `ca.pem`.
public final class EnrollmentTLS: Sendable {
    /// The pin the server's CA must match.
    public let pin: CAPin
    /// The shared TLS context (no client certificate, no trust roots).
    public let sslContext: NIOSSLContext
    private let state: Mutex<State>

    private struct State {
        var verifiedCA: [UInt8]?
        var failure: String?
    }

    /// Creates the enrollment TLS state for a pin.
    public init(pin: CAPin) throws {
        self.pin = pin
        self.sslContext = try NIOSSLContext(configuration: AgentCredentials.makeEnrollmentTLSConfiguration())
        self.state = Mutex(State())
    }

    /// A client TLS handler for one connection to `serverHost` (a DNS name or an IP address, without port).
    ///
    /// Its verification callback accepts the server only if the chain it presents contains the pinned CA and
    /// the leaf is a different certificate, signed by that CA, currently valid, and valid for `serverHost`.
    public func makeHandler(serverHost: String) throws -> NIOSSLClientHandler {
        let isIP = IPAddress(serverHost) != nil
        let pin = self.pin
        return try NIOSSLClientHandler(
            context: sslContext,
            serverHostname: isIP ? nil : serverHost,
            customVerificationCallback: { presented, promise in
                let ders: [[UInt8]]
                do {
                    ders = try presented.map { try $0.toDERBytes() }
                } catch {
                    self.state.withLock { $0.failure = "cannot read the server's certificates: \(error)" }
                    promise.succeed(.failed)
                    return
                }
                promise.completeWithTask {
                    let outcome = await EnrollmentTLS.verify(
                        presented: ders,
                        pin: pin,
                        serverHostname: isIP ? nil : serverHost,
                        serverIP: isIP ? serverHost : nil
                    )
                    switch outcome {
                    case .success(let caDER):
                        self.state.withLock {
                            $0.verifiedCA = caDER
                            $0.failure = nil
                        }
                        return .certificateVerified
                    case .failure(let reason):
                        self.state.withLock { $0.failure = "server \(serverHost): \(reason.description)" }
                        return .failed
                    }
                }
            }
        )
    }

    /// The CA certificate (DER) seen and verified during a handshake, or nil before one succeeded.
    public var verifiedCACertificateDER: [UInt8]? {
        state.withLock { $0.verifiedCA }
    }

    /// The CA certificate seen and verified during a handshake, in PEM form, ready to save as `ca.pem`.
    public var verifiedCACertificatePEM: String? {
        guard let der = verifiedCACertificateDER, let certificate = try? Certificate(derEncoded: der) else {
            return nil
        }
        return try? certificate.serializeAsPEM().pemString
    }

    /// Why the last refused server was refused, for the operator (the TLS error itself only says
    /// "certificate verify failed"); nil when no server was refused since the last success.
    public var lastVerificationFailure: String? {
        state.withLock { $0.failure }
    }

    /// Checks a presented chain against the pin; returns the pinned CA's DER when the server is trusted.
    ///
    /// With `ignoringValidityTimes` the certificates' not-before/not-after are not compared with this host's clock
    /// (signature, CA and name still are): for an agent whose clock is known to be wrong.
    static func verify(
        presented: [[UInt8]],
        pin: CAPin,
        serverHostname: String?,
        serverIP: String?,
        ignoringValidityTimes: Bool = false
    ) async -> Result<[UInt8], EnrollmentVerificationFailure> {
        guard let leafDER = presented.first else {
            return .failure(.noCertificate)
        }
        guard let caDER = presented.dropFirst().first(where: { pin.matches(derBytes: $0) }) else {
            return .failure(
                .noCertificateMatchesPin(pin: pin, presented: presented.map { CAPin.compute(derBytes: $0) })
            )
        }
        guard let leaf = try? Certificate(derEncoded: leafDER), let ca = try? Certificate(derEncoded: caDER) else {
            return .failure(.notVerifiable("unreadable certificate"))
        }
        guard leaf != ca else {
            return .failure(.notVerifiable("it presented the CA certificate itself instead of a serving certificate"))
        }
        var verifier = Verifier(rootCertificates: CertificateStore([ca])) {
            if ignoringValidityTimes { RFC5280Policy.withValidityCheckDisabled() } else { RFC5280Policy() }
            ServerIdentityPolicy(serverHostname: serverHostname, serverIP: serverIP)
        }
        switch await verifier.validate(leaf: leaf, intermediates: CertificateStore()) {
        case .validCertificate:
            return .success(caDER)
        case .couldNotValidate(let failures):
            let reasons = Set(failures.map { String(describing: $0.policyFailureReason) }).sorted()
            return .failure(
                .notVerifiable(
                    reasons.isEmpty
                        ? "its certificate is not signed by the pinned CA" : reasons.joined(separator: "; ")
                )
            )
        }
    }
}

/// Why a server was refused during enrollment.
public enum EnrollmentVerificationFailure: Error, Sendable, Hashable, CustomStringConvertible {
    /// The server presented no certificate.
    case noCertificate
    /// No certificate in the server's chain matches the pin.
    case noCertificateMatchesPin(pin: CAPin, presented: [CAPin])
    /// The serving certificate does not verify against the pinned CA (signature, validity or name).
    case notVerifiable(String)

    /// A human-readable explanation for the operator.
    public var description: String {
        switch self {
        case .noCertificate:
            return "the server presented no certificate"
        case .noCertificateMatchesPin(let pin, let presented):
            return "the server's CA does not match the pin \(pin) (the server presented certificates \(presented.map(\.description).joined(separator: ", "))); check --ca-pin and the server address"
        case .notVerifiable(let reason):
            return "the server's certificate does not verify against the pinned CA: \(reason)"
        }
    }
}
