import Crypto
import CrowsnestProbes
import CrowsnestWire
import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle

/// Delivers the outbox, on every replica: claims due notifications (`SKIP LOCKED`, so never two replicas at once),
/// POSTs each to its channel through the server's SSRF guard, and records the outcome. A 2xx answer delivers it;
/// a 4xx other than 408 and 429 gives up on it (the receiver refused it, and will again); anything else is tried
/// again with backoff, up to `maximumAttempts`. A replica that dies mid-delivery leaves its claim to lapse and
/// another delivers the notification again: at least once, under the same id.
public final class AlertDelivery: Service, Sendable {
    public struct Configuration: Sendable {
        public var poll: Duration = .seconds(1)
        /// How long a claim holds: longer than one delivery's timeout.
        public var claimHold: Duration = .seconds(60)
        public var timeout: Duration = .seconds(10)
        public var batch = 16
        public var maximumAttempts = 12
        public init() {}
    }

    public let configuration: Configuration
    private let client: PostgresClient
    private let secretKey: SecretKey
    private let prober: Prober
    private let ownAddresses: [IPAddress]
    private let logger: Logger

    public init(configuration: Configuration = .init(), client: PostgresClient, secretKey: SecretKey, prober: Prober = Prober(),
                logger: Logger) {
        self.configuration = configuration
        self.client = client
        self.secretKey = secretKey
        self.prober = prober
        self.ownAddresses = ServerCheckRuns.localAddresses()
        self.logger = logger
    }

    public func run() async throws {
        var failing = false
        while !Task.isShuttingDownGracefully {
            do {
                let delivered = try await deliverDue()
                failing = false
                if delivered > 0 { continue }
            } catch {
                if !failing {
                    logger.error("alert delivery failed; retrying", metadata: ["error": "\(String(reflecting: error))"])
                    failing = true
                }
            }
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: self.configuration.poll) }
            } catch {
                break
            }
        }
    }

    /// Claims and delivers one batch; how many it claimed.
    @discardableResult
    public func deliverDue() async throws -> Int {
        let store = AlertStore(client: client, logger: logger)
        let claimed = try await store.claimDue(limit: configuration.batch, hold: configuration.claimHold)
        await withTaskGroup(of: Void.self) { group in
            for notification in claimed {
                group.addTask { await self.deliver(notification, store: store) }
            }
        }
        return claimed.count
    }

    func deliver(_ notification: ClaimedAlertNotification, store: AlertStore) async {
        let metadata: Logger.Metadata = ["tenant.id": "\(notification.tenantID)", "notification.id": "\(notification.id)",
                                         "alert_channel.id": "\(notification.channelID)", "attempt": "\(notification.attempts)"]
        do {
            guard let channel = try await AlertChannelStore(client: client, logger: logger)
                .settings(tenantID: notification.tenantID, id: notification.channelID, secretKey: secretKey) else {
                try await store.markFailed(notification.id, error: "the alert channel was deleted")
                return
            }
            let allowed = try await TenantStore(client: client, logger: logger).allowedNetworks(tenantID: notification.tenantID)
            let timestamp = String(Int64(Date().timeIntervalSince1970))
            let headers: [String: JSONValue] = [
                "Content-Type": .string("application/json"),
                "User-Agent": .string("crowsnest-alerts"),
                "X-Crowsnest-Notification-Id": .string(notification.id.uuidString.lowercased()),
                "X-Crowsnest-Timestamp": .string(timestamp),
                "X-Crowsnest-Signature": .string(WebhookSignature.header(secret: channel.secret, timestamp: timestamp, body: notification.payload)),
            ]
            let outcome = await prober.run(
                type: "http", target: channel.url,
                options: ["method": JSONValue.string("POST").jsonText, "headers": JSONValue.object(headers).jsonText,
                          "body": JSONValue.string(notification.payload).jsonText, "follow_redirects": "false",
                          "expected_status": #"["200-299"]"#],
                timeout: configuration.timeout,
                addressGuard: AddressGuard(runner: .server, allowedNetworks: allowed, ownAddresses: ownAddresses))
            if outcome.ok {
                try await store.markDelivered(notification.id)
                logger.info("alert notification delivered", metadata: metadata)
                return
            }
            let status = outcome.httpStatus
            let refused = (400..<500).contains(status) && status != 408 && status != 429
            if refused || notification.attempts >= configuration.maximumAttempts {
                try await store.markFailed(notification.id, error: outcome.error)
                logger.error("alert notification given up", metadata: metadata.merging(["error": "\(outcome.error)"]) { $1 })
            } else {
                try await store.retry(notification.id, after: Self.backoff(attempts: notification.attempts), error: outcome.error)
                logger.warning("alert notification not delivered; trying again", metadata: metadata.merging(["error": "\(outcome.error)"]) { $1 })
            }
        } catch {
            // The claim lapses and the notification is tried again, until it is out of attempts; a channel whose
            // settings this server cannot open (another secret key) will not get better.
            let permanent = error is SecretKeyError || (error as? StoreError)?.code == .invalid
            if permanent || notification.attempts >= configuration.maximumAttempts {
                try? await store.markFailed(notification.id, error: "\(error)")
                logger.error("alert notification given up", metadata: metadata.merging(["error": "\(String(reflecting: error))"]) { $1 })
            } else {
                logger.error("alert notification could not be handled; it will be tried again",
                             metadata: metadata.merging(["error": "\(String(reflecting: error))"]) { $1 })
            }
        }
    }

    /// 5 s, 10 s, 20 s … up to 10 minutes.
    static func backoff(attempts: Int) -> Duration {
        .seconds(min(600, 5 << min(max(attempts - 1, 0), 7)))
    }
}

/// The `X-Crowsnest-Signature` header of a webhook: `sha256=` and the hex HMAC-SHA256, keyed with the channel's
/// secret, of the `X-Crowsnest-Timestamp` value, a dot, and the body. Receivers recompute it and refuse old
/// timestamps, so a captured request cannot be replayed later.
public enum WebhookSignature {
    public static func header(secret: String, timestamp: String, body: String) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: Array((timestamp + "." + body).utf8), using: SymmetricKey(data: Array(secret.utf8)))
        return "sha256=" + mac.map { String(format: "%02x", $0) }.joined()
    }
}
