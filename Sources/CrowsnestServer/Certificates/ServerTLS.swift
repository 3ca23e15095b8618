import CrowsnestWire
import NIOCore
import NIOSSL
import X509

/// TLS settings for the agent gateway.
public enum ServerTLS {
    /// The gateway's TLS configuration.
    ///
    /// - TLS 1.2 minimum; TLS 1.3 is negotiated whenever the agent supports it.
    /// - Serves the chain [serving certificate, CA certificate], so an agent that is not enrolled yet sees the CA
    ///   and can check it against its pin.
    /// - Client certificates are optional (`.optionalVerification`): an enrolling agent connects without one, but
    ///   a certificate that is presented must chain to our CA (the only trust root) and be valid for client
    ///   authentication, or the handshake fails.
    ///
    /// Connections without a client certificate must be limited to enrollment by the caller: use
    /// ``agentIdentity(of:)`` on the peer certificate to tell them apart.
    public static func makeGatewayConfiguration(ca: CertificateAuthority) throws -> TLSConfiguration {
        let serverCertificate = try NIOSSLCertificate(bytes: Array(ca.serverCertificatePEM.utf8), format: .pem)
        let caCertificate = try NIOSSLCertificate(bytes: ca.caCertificateDER, format: .der)
        let key = try NIOSSLPrivateKey(bytes: Array(ca.serverPrivateKeyPEM.utf8), format: .pem)
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: [.certificate(serverCertificate), .certificate(caCertificate)],
            privateKey: .privateKey(key)
        )
        configuration.minimumTLSVersion = .tlsv12
        configuration.certificateVerification = .optionalVerification
        configuration.trustRoots = .certificates([caCertificate])
        configuration.sendCANameList = true
        return configuration
    }

    /// Reads the agent identity from a peer certificate that the gateway's handshake has verified.
    public static func agentIdentity(of peerCertificate: NIOSSLCertificate) throws -> AgentCertificateIdentity {
        try AgentCertificateIdentity.parse(derBytes: peerCertificate.toDERBytes())
    }

    /// Reads the agent identity of a gateway connection once its TLS handshake has completed.
    ///
    /// - Returns: the identity, or nil when the agent presented no client certificate (an enrolling agent).
    public static func agentIdentity(of channel: any Channel) async throws -> AgentCertificateIdentity? {
        guard let certificate = try await channel.nioSSL_peerCertificate().get() else {
            return nil
        }
        return try agentIdentity(of: certificate)
    }
}
