import Foundation
import Logging
import ServiceLifecycle
import X509

/// Re-checks the gateway's serving certificate every `interval` (daily): one with less than 30 days left (or
/// other names, or another issuer) is reissued from the CA and the gateway serves new connections with it, so a
/// server that runs for a year never presents an expired certificate.
public struct ServingCertificateRenewal: Service {
    public let interval: Duration
    private let check: @Sendable (Date) throws -> Bool
    private let logger: Logger

    /// `check(now)` reissues the certificate if needed and installs it; returns true when it did.
    public init(interval: Duration = .seconds(86_400), logger: Logger, check: @escaping @Sendable (Date) throws -> Bool) {
        self.interval = interval
        self.logger = logger
        self.check = check
    }

    /// The check for a gateway: re-checks the serving certificate in `directory` (reissued from the CA when it has
    /// less than 30 days left) and, when it changed, gives the gateway the new TLS configuration.
    public static func check(gateway: AgentGateway, authority: CertificateAuthority, directory: String, serverNames: [String],
                             serverIPs: [String], logger: Logger) -> @Sendable (Date) throws -> Bool {
        let served = LockedValue(authority.serverCertificate)
        return { now in
            let renewed = try authority.renewingServingCertificate(directory: directory, serverNames: serverNames,
                                                                   serverIPs: serverIPs, logger: logger, now: now)
            guard renewed.serverCertificate != served.value else { return false }
            try gateway.updateTLS(try ServerTLS.makeGatewayConfiguration(ca: renewed))
            served.value = renewed.serverCertificate
            return true
        }
    }

    public func run() async throws {
        while !Task.isShuttingDownGracefully {
            do {
                // A graceful shutdown ends the wait at once, so the server stops promptly on SIGTERM.
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            } catch {
                return
            }
            do {
                if try check(Date()) {
                    logger.notice("serving certificate renewed; new agent connections get the new one")
                }
            } catch {
                logger.error("cannot renew the serving certificate; the current one stays in use", metadata: ["error": "\(error)"])
            }
        }
    }
}
