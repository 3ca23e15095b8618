import CrowsnestWire
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
import NIOTLS
import Synchronization
import X509

/// The TLS client contexts for probes, built on first use (loading the trust store is not free, and an agent with
/// no https checks should not pay for it) and shared: one that verifies against the system's roots and the name,
/// and one that accepts any certificate so a check can report on self-signed and expired ones.
final class ProbeTLS: Sendable {
    private let verifying = Mutex<NIOSSLContext?>(nil)
    private let inspecting = Mutex<NIOSSLContext?>(nil)

    init() {}

    func verifyingContext() throws -> NIOSSLContext {
        try Self.cached(verifying) {
            var configuration = TLSConfiguration.makeClientConfiguration()
            configuration.minimumTLSVersion = .tlsv12
            return configuration
        }
    }

    /// Verification stays on in BoringSSL (so the chain reaches `PeerChainRecorder`), but the recorder accepts
    /// every chain: trust and names are judged by the probe from what was recorded.
    func inspectingContext() throws -> NIOSSLContext {
        try Self.cached(inspecting) {
            var configuration = TLSConfiguration.makeClientConfiguration()
            configuration.minimumTLSVersion = .tlsv12
            configuration.certificateVerification = .noHostnameVerification
            configuration.trustRoots = .certificates([])
            return configuration
        }
    }

    private static func cached(_ slot: borrowing Mutex<NIOSSLContext?>, _ make: () -> TLSConfiguration) throws -> NIOSSLContext {
        try slot.withLock { cached in
            if let cached { return cached }
            do {
                let context = try NIOSSLContext(configuration: make())
                cached = context
                return context
            } catch {
                throw ProbeFailure("cannot set up TLS for probes: \(error)")
            }
        }
    }

    /// A client handler for a probe: verifying as usual, or recording the peer's chain and accepting it.
    static func clientHandler(context: NIOSSLContext, serverName: String?, recorder: PeerChainRecorder?) throws -> NIOSSLClientHandler {
        guard let recorder else { return try NIOSSLClientHandler(context: context, serverHostname: serverName) }
        return try NIOSSLClientHandler(context: context, serverHostname: serverName) { chain, promise in
            recorder.record(chain)
            promise.succeed(.certificateVerified)
        }
    }
}

/// Keeps the certificate chain a peer presented during the handshake (leaf first), for probes that report on
/// certificates they do not trust.
final class PeerChainRecorder: Sendable {
    private let chain = NIOLockedValueBox<[NIOSSLCertificate]>([])

    init() {}

    func record(_ certificates: [NIOSSLCertificate]) { chain.withLockedValue { $0 = certificates } }

    var certificates: [NIOSSLCertificate] { chain.withLockedValue { $0 } }

    /// The earliest `notAfter` in the chain, unix seconds; nil when nothing was presented.
    var earliestExpiry: Int64? { certificates.map { Int64($0.notValidAfter) }.min() }
}

/// What the leaf certificate of a chain says about names, parsed with swift-certificates.
struct LeafCertificate {
    let certificate: Certificate

    init(_ certificate: NIOSSLCertificate) throws {
        do {
            self.certificate = try Certificate(derEncoded: try certificate.toDERBytes())
        } catch {
            throw ProbeFailure("the server's certificate cannot be parsed: \(error)")
        }
    }

    /// DNS names and IP addresses the certificate is for (subject alternative names; the subject's common name
    /// only when there are none, as browsers no longer do but old internal certificates still need).
    var names: [String] {
        var names: [String] = []
        if let alternatives = try? certificate.extensions.subjectAlternativeNames {
            for name in alternatives {
                switch name {
                case .dnsName(let dns): names.append(dns.lowercased())
                case .ipAddress(let bytes):
                    if let ip = IPAddress(bytes: Array(bytes.bytes)) { names.append(ip.text) }
                default: break
                }
            }
        }
        if names.isEmpty {
            for rdn in certificate.subject {
                for attribute in rdn where attribute.type == .RDNAttributeType.commonName {
                    names.append("\(attribute.value)".lowercased())
                }
            }
        }
        return names
    }

    /// Whether the certificate is for `name` (a DNS name, with one leading `*.` label allowed to stand for one
    /// label, or an IP address).
    func matches(_ name: String) -> Bool {
        let wanted = name.lowercased().hasSuffix(".") ? String(name.lowercased().dropLast()) : name.lowercased()
        let wantedIP = IPAddress(wanted)
        return names.contains { candidate in
            if let wantedIP { return IPAddress(candidate)?.bytes == wantedIP.bytes }
            if candidate == wanted { return true }
            guard candidate.hasPrefix("*."), let dot = wanted.firstIndex(of: ".") else { return false }
            return wanted[dot...] == candidate.dropFirst() && wanted[..<dot].count > 0
        }
    }

    var subject: String { "\(certificate.subject)" }
    var issuer: String { "\(certificate.issuer)" }
}

/// Completes when a TLS handshake finishes, or fails with the reason the connection broke first (probes, and the
/// server's SMTP client after STARTTLS).
public final class HandshakeWaiter: ChannelInboundHandler, RemovableChannelHandler, Sendable {
    public typealias InboundIn = NIOAny
    private let promise: EventLoopPromise<Void>

    public init(promise: EventLoopPromise<Void>) { self.promise = promise }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted = event { promise.succeed(()) }
        context.fireUserInboundEventTriggered(event)
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise.fail(error)
        context.fireErrorCaught(error)
    }

    public func channelInactive(context: ChannelHandlerContext) {
        promise.fail(ProbeFailure("the server closed the connection during the TLS handshake"))
        context.fireChannelInactive()
    }
}
