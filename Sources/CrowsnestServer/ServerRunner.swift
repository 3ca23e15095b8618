import CrowsnestWire
import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOSSL
import PostgresNIO
import Prometheus
import ServiceLifecycle
import UnixSignals
import Synchronization

/// Runs `crowsnest-server serve`: database, CA, agent gateway and HTTP API under one service group that
/// stops gracefully on SIGTERM/SIGINT.
public struct ServerRunner: Sendable {
    public var configuration: ServerConfiguration
    public var logger: Logger
    public var metricsRegistry: PrometheusCollectorRegistry
    /// Called with the bound addresses once both listeners are up (tests bind port 0).
    public var onReady: @Sendable (_ agentAddress: SocketAddress, _ httpPort: Int) -> Void = { _, _ in }
    /// Signals that stop the server; tests pass none and cancel instead.
    public var shutdownSignals: [UnixSignal] = [.sigterm, .sigint]

    public init(configuration: ServerConfiguration, logger: Logger, metricsRegistry: PrometheusCollectorRegistry) {
        self.configuration = configuration
        self.logger = logger
        self.metricsRegistry = metricsRegistry
    }

    public func run() async throws {
        let configuration = self.configuration
        let logger = self.logger
        let registry = metricsRegistry
        let onReady = self.onReady
        let signals = self.shutdownSignals
        try await ServerDatabase.withPools(configuration, logger: logger) { admin, pools in
            // Agents' sessions use the ingest pool, the HTTP API its own: neither can starve the other.
            let client = pools.ingest
            let secretKey = try configuration.loadSecretKey()
            let authority = try await configuration.loadAuthority(client: admin, logger: logger)
            logger.info("certificate authority ready", metadata: ["ca.pin": "\(authority.caPin)"])
            let agentDownloads = try await configuration.prepareAgentDownloads(caPin: authority.caPin.description, client: admin, logger: logger)
            let tls = try ServerTLS.makeGatewayConfiguration(ca: authority)
            let partitions = PartitionStore(client: client, logger: logger)
            var enrollment = AgentEnrollment(client: client, authority: authority, logger: logger)
            enrollment.certificateValidity = configuration.agentCertificateDays * 86_400
            var sessions = AgentSessionHandler(
                agents: AgentStore(client: client, logger: logger),
                ingest: IngestWriter(client: client, partitions: partitions, logger: logger),
                enrollment: enrollment,
                logger: logger)
            let liveSessions = LiveSessions()
            sessions.liveSessions = liveSessions
            sessions.serverAddresses = configuration.agentAddresses
            sessions.admission = ConnectionAdmission(
                limits: .init(enrollmentsPerMinutePerAddress: configuration.enrollmentsPerMinutePerAddress), logger: logger)
            let readiness = Readiness()
            let gatewayBound = BoundAddresses()
            var gatewayConfiguration = GatewayConfiguration(host: configuration.agentListen.host, port: configuration.agentListen.port)
            gatewayConfiguration.trustedProxies = configuration.trustedProxies
            let gateway = try AgentGateway(
                configuration: gatewayConfiguration,
                tlsConfiguration: tls, sessions: sessions, logger: logger,
                onBound: { address in
                    if let port = gatewayBound.agentBound(address) { onReady(address, port) }
                })
            let api = pools.api
            let web = (templates: try WebTemplates.bundled(),
                       settings: WebSettings(secureCookies: configuration.publicURL?.scheme?.lowercased() == "https",
                                             publicOrigin: configuration.publicURL?.absoluteString.lowercased(),
                                             agentAddress: configuration.agentAddresses.first
                                                 ?? "\(configuration.publicURL?.host ?? "SERVER"):\(configuration.agentListen.port)"))
            let router = makeAPIRouter(database: api, registry: registry, readiness: { await readiness.isReady(api) },
                                       requestsPerMinute: configuration.apiRequestsPerMinute, web: web,
                                       trustedProxies: configuration.trustedProxies, secretKey: secretKey,
                                       agentDownloads: agentDownloads, logger: logger)
            let http = Application(
                router: router,
                // A request head within 10 s (60 s between keep-alive requests), bodies up to 1 MiB, and nothing
                // read for a minute closes the connection.
                server: HTTPRequestLimits().http1Server(logger: logger),
                configuration: .init(address: .hostname(configuration.httpListen.host, port: configuration.httpListen.port),
                                     serverName: "crowsnest"),
                onServerRunning: { channel in
                    if let port = channel.localAddress?.port, let agent = gatewayBound.httpBound(port) { onReady(agent, port) }
                },
                logger: logger)
            let (names, ips) = ServerConfiguration.splitServerNames(configuration.serverNames)
            let renewal = ServingCertificateRenewal(logger: logger, check: ServingCertificateRenewal.check(
                gateway: gateway, authority: authority, directory: configuration.dataDirectory, serverNames: names,
                serverIPs: ips, logger: logger))
            // One id per process: its replica:{id} term shares server-run checks and singleton jobs among replicas.
            let replicaID = UUID()
            var coordination = CheckCoordinator.Configuration()
            coordination.replicaID = replicaID
            coordination.replicaName = ServerCheckRuns.hostName()
            coordination.leaseTTL = .seconds(configuration.checkLeaseTTLSeconds)
            coordination.responsiveWithin = .seconds(configuration.agentSilenceLimitSeconds)
            let coordinator = CheckCoordinator(configuration: coordination, client: client, sessions: liveSessions, logger: logger)
            var housekeepingConfiguration = HousekeepingJob.Configuration()
            housekeepingConfiguration.replicaID = replicaID
            housekeepingConfiguration.rawRetentionDays = configuration.rawRetentionDays
            housekeepingConfiguration.spanRetentionDays = configuration.spanRetentionDays
            let housekeeping = HousekeepingJob(configuration: housekeepingConfiguration, client: client, logger: logger)
            var alertConfiguration = AlertJob.Configuration()
            alertConfiguration.replicaID = replicaID
            let alerts = AlertJob(configuration: alertConfiguration, client: client, logger: logger)
            let alertDelivery = AlertDelivery(client: client, secretKey: secretKey, logger: logger)
            let poolMonitor = DatabasePoolMonitor(client: pools.api, pools: pools.settings, logger: logger)
            // Started together; stopped in reverse order: jobs, coordinator, renewal, HTTP, gateway, then the pools.
            let group = ServiceGroup(configuration: .init(services: [pools.ingest, pools.api, gateway, http, renewal, coordinator,
                                                                     housekeeping, alerts, alertDelivery, poolMonitor],
                                                          gracefulShutdownSignals: signals,
                                                          logger: logger))
            try await group.run()
        }
    }
}

/// Remembers which listener came up first, so `onReady` fires once when both are bound.
final class BoundAddresses: Sendable {
    private let state = Mutex<(agent: SocketAddress?, http: Int?)>((nil, nil))

    /// Returns the HTTP port when it is already known.
    func agentBound(_ address: SocketAddress) -> Int? {
        state.withLock { value in
            value.agent = address
            return value.http
        }
    }

    /// Returns the agent address when it is already known.
    func httpBound(_ port: Int) -> SocketAddress? {
        state.withLock { value in
            value.http = port
            return value.agent
        }
    }
}

/// `/readyz`: the database answers and the schema is migrated.
actor Readiness {
    func isReady(_ client: PostgresClient) async -> Bool {
        do {
            // PostgresClient waits for a connection forever while the database is down: answer "not ready" instead.
            return try await withDeadline(.seconds(3)) {
                try await SchemaStore.isMigrated(client, logger: Logger(label: "crowsnest.readiness"))
            }
        } catch {
            return false
        }
    }
}
