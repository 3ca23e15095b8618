import Crypto
import CrowsnestProbes
import CrowsnestWire
import Foundation
import Logging
import Metrics
import PostgresNIO
import ServiceLifecycle

/// Delivers the outbox, on every replica: claims due notifications (`SKIP LOCKED`, so never two replicas at once),
/// sends each to its channel through the server's SSRF guard (an HTTP POST written for the channel's kind, or a
/// mail over SMTP), and records the outcome. A 2xx answer (or SMTP's 250) delivers it; a 4xx other than 408 and
/// 429, or a 5xx SMTP reply, gives up on it (the receiver refused it, and will again); anything else is tried
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
    private let smtp: SMTPClient
    private let delivered = Counter(label: "crowsnest_alert_notifications_total", dimensions: [("outcome", "delivered")])
    private let retried = Counter(label: "crowsnest_alert_notifications_total", dimensions: [("outcome", "retried")])
    private let givenUp = Counter(label: "crowsnest_alert_notifications_total", dimensions: [("outcome", "given_up")])
    private let ownAddresses: [IPAddress]
    private let logger: Logger

    public init(configuration: Configuration = .init(), client: PostgresClient, secretKey: SecretKey, prober: Prober = Prober(),
                logger: Logger) {
        self.configuration = configuration
        self.client = client
        self.secretKey = secretKey
        self.prober = prober
        self.smtp = SMTPClient()
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

    /// How one attempt ended.
    enum Attempt: Equatable {
        case delivered
        /// The receiver refused it and will again (a 4xx answer, a 5xx SMTP reply): not tried again.
        case refused(String)
        /// Worth another try (no answer, a 5xx, a timeout).
        case failed(String)
    }

    func deliver(_ notification: ClaimedAlertNotification, store: AlertStore) async {
        let metadata: Logger.Metadata = ["tenant.id": "\(notification.tenantID)", "notification.id": "\(notification.id)",
                                         "alert_channel.id": "\(notification.channelID)", "attempt": "\(notification.attempts)"]
        do {
            guard let channel = try await AlertChannelStore(client: client, logger: logger)
                .settings(tenantID: notification.tenantID, id: notification.channelID, secretKey: secretKey) else {
                try await store.markFailed(tenantID: notification.tenantID, id: notification.id, error: "the alert channel was deleted")
                return
            }
            let allowed = try await TenantStore(client: client, logger: logger).allowedNetworks(tenantID: notification.tenantID)
            let addressGuard = AddressGuard(runner: .server, allowedNetworks: allowed, ownAddresses: ownAddresses)
            let attempt = await send(notification, to: channel, addressGuard: addressGuard)
            switch attempt {
            case .delivered:
                delivered.increment()
                try await store.markDelivered(tenantID: notification.tenantID, id: notification.id)
                logger.info("alert notification delivered", metadata: metadata.merging(["alert_channel.type": "\(channel.kind.rawValue)"]) { $1 })
            case .refused(let error):
                givenUp.increment()
                try await store.markFailed(tenantID: notification.tenantID, id: notification.id, error: error)
                logger.error("alert notification refused by its receiver; given up", metadata: metadata.merging(["error": "\(error)"]) { $1 })
            case .failed(let error) where notification.attempts >= configuration.maximumAttempts:
                givenUp.increment()
                try await store.markFailed(tenantID: notification.tenantID, id: notification.id, error: error)
                logger.error("alert notification given up after \(notification.attempts) attempts",
                             metadata: metadata.merging(["error": "\(error)"]) { $1 })
            case .failed(let error):
                retried.increment()
                try await store.retry(tenantID: notification.tenantID, id: notification.id, after: Self.backoff(attempts: notification.attempts), error: error)
                logger.warning("alert notification not delivered; trying again", metadata: metadata.merging(["error": "\(error)"]) { $1 })
            }
        } catch {
            // The claim lapses and the notification is tried again, until it is out of attempts; a channel whose
            // settings this server cannot open (another secret key) will not get better.
            let permanent = error is SecretKeyError || (error as? StoreError)?.code == .invalid
            if permanent || notification.attempts >= configuration.maximumAttempts {
                try? await store.markFailed(tenantID: notification.tenantID, id: notification.id, error: "\(error)")
                logger.error("alert notification given up", metadata: metadata.merging(["error": "\(String(reflecting: error))"]) { $1 })
            } else {
                logger.error("alert notification could not be handled; it will be tried again",
                             metadata: metadata.merging(["error": "\(String(reflecting: error))"]) { $1 })
            }
        }
    }

    /// One attempt, written the way the channel's receiver reads it.
    func send(_ notification: ClaimedAlertNotification, to channel: AlertChannelSettings, addressGuard: AddressGuard) async -> Attempt {
        let payload = (try? JSONValue.parse(Data(notification.payload.utf8))) ?? .object([:])
        var headers: [String: JSONValue] = ["Content-Type": .string("application/json"), "User-Agent": .string("crowsnest-alerts")]
        let body: String
        switch channel.kind {
        case .email:
            guard let server = channel.smtp else { return .refused("the email channel has no SMTP server") }
            let mail = SMTPMail(from: channel.from, to: channel.to,
                                text: AlertMessages.email(payload, from: channel.from, to: channel.to, now: Date()))
            do {
                try await smtp.send(mail, via: server, addressGuard: addressGuard, timeout: configuration.timeout)
                return .delivered
            } catch let failure as SMTPFailure {
                return failure.permanent ? .refused(failure.reason) : .failed(failure.reason)
            } catch {
                return .failed("\(error)")
            }
        case .webhook:
            body = notification.payload
            let timestamp = String(Int64(Date().timeIntervalSince1970))
            headers["X-Crowsnest-Notification-Id"] = .string(notification.id.uuidString.lowercased())
            headers["X-Crowsnest-Timestamp"] = .string(timestamp)
            headers["X-Crowsnest-Signature"] = .string(WebhookSignature.header(secret: channel.secret, timestamp: timestamp, body: body))
        case .slack:
            body = AlertMessages.slack(payload)
        case .discord:
            body = AlertMessages.discord(payload)
        case .alertmanager:
            body = AlertMessages.alertmanager(payload, repostSeconds: channel.repostSeconds ?? AlertChannelDefinition.defaultRepostSeconds,
                                              now: Date())
        }
        let outcome = await prober.run(
            type: "http", target: channel.url,
            options: ["method": JSONValue.string("POST").jsonText, "headers": JSONValue.object(headers).jsonText,
                      "body": JSONValue.string(body).jsonText, "follow_redirects": "false", "expected_status": #"["200-299"]"#],
            timeout: configuration.timeout, addressGuard: addressGuard)
        if outcome.ok { return .delivered }
        let status = outcome.httpStatus
        return (400..<500).contains(status) && status != 408 && status != 429 ? .refused(outcome.error) : .failed(outcome.error)
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
