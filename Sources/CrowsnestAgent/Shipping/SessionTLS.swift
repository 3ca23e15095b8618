import CrowsnestWire
import NIOCore
import NIOSSL
import X509

/// How the agent checks the server of a session: the serving certificate must be signed by the CA saved at
/// enrollment (the pinned one) and name the address dialled.
///
/// A certificate outside its validity period *at this host's clock* is still accepted, with a warning that blames
/// the clock: the pinned CA vouches for it, and a host whose clock is years off must not be cut off for good (its
/// batches are judged by the server's time window instead, and `Welcome` tells it how far off it is).
enum SessionTLS {
    /// What the check concluded, for the log.
    enum Outcome: Sendable {
        case verified
        case verifiedDespiteClock(reason: String)
        case refused(reason: String)
    }

    /// A TLS handler for one connection to `serverHost`; `report` hears every outcome but a plain success.
    static func makeHandler(context: NIOSSLContext, caPin: CAPin, serverHost: String,
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
