import CrowsnestWire
import NIOCore
import NIOSSL
import X509

/// How the agent checks the server of a session: the serving certificate must be signed by the CA saved at
/// enrollment (the pinned one) and name the address dialled.
///
/// Normally BoringSSL checks it during the handshake, with the saved CA as the only trust root
/// (``makeHandlers(context:serverHost:onRefusal:)``). When it refuses, the next attempt checks with
/// swift-certificates instead (``makeCarefulHandler(context:caPin:serverHost:report:)``), which says exactly why,
/// and accepts a certificate that is outside its validity period only *at this host's clock*, with a warning that
/// blames the clock: the pinned CA vouches for it, and a host whose clock is years off must not be cut off for
/// good (its batches are judged by the server's time window instead, and `Welcome` tells it how far off it is).
/// The careful check is not the default because its code would stay resident in every agent.
enum SessionTLS {
    /// What the careful check concluded, for the log.
    enum Outcome: Sendable {
        case verified
        case verifiedDespiteClock(reason: String)
        case refused(reason: String)
    }

    /// The handlers for one connection to `serverHost` checked by BoringSSL: the TLS handler, then a watch that
    /// calls `onRefusal` when the server's certificate was refused (the error still reaches the session).
    static func makeHandlers(context: NIOSSLContext, serverHost: String,
                             onRefusal: @escaping @Sendable () -> Void) throws -> [any ChannelHandler] {
        [try NIOSSLClientHandler(context: context, serverHostname: AgentCredentials.serverNameIndication(for: serverHost)),
         CertificateRefusalWatch(onRefusal: onRefusal)]
    }

    /// Whether `error` says the server's certificate was refused: not signed by the trusted CA, outside its
    /// validity period, or not for the name or address dialled.
    static func isCertificateRefusal(_ error: any Error) -> Bool {
        if let extra = error as? NIOSSLExtraError { return extra == .failedToValidateHostname }
        if let ssl = error as? NIOSSLError, case .handshakeFailed(let reason) = ssl {
            return String(describing: reason).contains("CERTIFICATE_VERIFY_FAILED")
        }
        return false
    }

    /// Tells the shipper when BoringSSL refused the server's certificate, passing every error on.
    final class CertificateRefusalWatch: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        typealias InboundOut = ByteBuffer
        let onRefusal: @Sendable () -> Void

        init(onRefusal: @escaping @Sendable () -> Void) { self.onRefusal = onRefusal }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            if SessionTLS.isCertificateRefusal(error) { onRefusal() }
            context.fireErrorCaught(error)
        }
    }

    /// A TLS handler for one connection to `serverHost` checked by swift-certificates; `report` hears every
    /// outcome but a plain success.
    static func makeCarefulHandler(context: NIOSSLContext, caPin: CAPin, serverHost: String,
                                   report: @escaping @Sendable (Outcome) -> Void) throws -> NIOSSLClientHandler {
        let isIP = IPAddress(serverHost) != nil
        let hostname = isIP ? nil : serverHost
        let ip = isIP ? serverHost : nil
        return try NIOSSLClientHandler(context: context, serverHostname: hostname, customVerificationCallback: { presented, promise in
            guard let ders = try? presented.map({ try $0.toDERBytes() }) else {
                report(.refused(reason: "cannot read the server's certificates"))
                promise.succeed(.failed)
                return
            }
            promise.completeWithTask {
                let outcome = await verify(presented: ders, caPin: caPin, serverHostname: hostname, serverIP: ip)
                if case .verified = outcome {} else { report(outcome) }
                if case .refused = outcome { return .failed }
                return .certificateVerified
            }
        })
    }

    /// Checks a presented chain (leaf first, DER): against the clock first, then without it.
    static func verify(presented: [[UInt8]], caPin: CAPin, serverHostname: String?, serverIP: String?) async -> Outcome {
        switch await EnrollmentTLS.verify(presented: presented, pin: caPin, serverHostname: serverHostname, serverIP: serverIP) {
        case .success:
            return .verified
        case .failure(let strict):
            switch await EnrollmentTLS.verify(presented: presented, pin: caPin, serverHostname: serverHostname,
                                              serverIP: serverIP, ignoringValidityTimes: true) {
            case .success:
                return .verifiedDespiteClock(reason: strict.description)
            case .failure(let failure):
                return .refused(reason: failure.description)
            }
        }
    }
}
