import CrowsnestProbes
import CrowsnestWire
import Logging
import ServiceLifecycle
import UnixSignals
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Runs `crowsnest-agent run`: sampler, Docker event watcher and shipper under one service group that
/// stops gracefully on SIGTERM/SIGINT (the spool keeps whatever was not yet acknowledged).
public struct AgentRunner: Sendable {
    public static let version = "0.1.0"

    public var configuration: AgentConfiguration
    public var logger: Logger
    public var shutdownSignals: [UnixSignal] = [.sigterm, .sigint]

    public init(configuration: AgentConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    public func run() async throws {
        let configuration = self.configuration
        let logger = self.logger
        guard let credentials = try AgentCredentials.load(stateDirectory: configuration.stateDirectory) else {
            throw EnrollmentError("no credentials in \(configuration.stateDirectory): enroll first with 'crowsnest-agent enroll --server HOST:PORT --token TOKEN --ca-pin sha256:…'")
        }
        var servers = configuration.servers
        if servers.isEmpty { servers = credentials.serverAddresses.compactMap(ServerAddress.init) }
        guard !servers.isEmpty else { throw EnrollmentError("no server address configured or saved at enrollment") }

        let spool = try Spool(directory: configuration.stateDirectory + "/spool",
                              configuration: .init(maxTotalBytes: configuration.spoolMaxBytes), logger: logger)
        defer { spool.close() }
        let sequence = try SequenceStore(stateDirectory: configuration.stateDirectory)
        defer { try? sequence.close() }
        // A lost sequence file must not reuse numbers the spool already holds.
        try sequence.raise(above: spool.highestSeq)
        let deadLetters = try DeadLetterBox(stateDirectory: configuration.stateDirectory)
        let docker = DockerClient(socketPath: configuration.dockerSocket, logger: logger)
        let doorbell = Doorbell()
        let inventory = ContainerInventory(docker: docker, logger: logger)
        let events = DockerEventWatcher(docker: docker, inventory: inventory,
                                        cursor: EventCursor(stateDirectory: configuration.stateDirectory), logger: logger)
        var samplerConfiguration = Sampler.Configuration(interval: configuration.interval)
        samplerConfiguration.cgroupRoot = configuration.cgroupRoot
        samplerConfiguration.procRoot = configuration.procRoot
        samplerConfiguration.hostRoot = configuration.hostRoot
        let sampler = Sampler(configuration: samplerConfiguration, docker: docker, inventory: inventory, events: events, spool: spool,
                              sequence: sequence, deadLetters: deadLetters, doorbell: doorbell, logger: logger)
        let dockerVersion = (try? await docker.version()) ?? ""
        let facts = HostFactsReader.read(procRoot: configuration.procRoot, dockerVersion: dockerVersion)
        let bootID = (try? String(contentsOfFile: configuration.procRoot + "/sys/kernel/random/boot_id", encoding: .utf8))?
            .trimmingWhitespace() ?? ""
        var shipperConfiguration = Shipper.Configuration(servers: servers, stateDirectory: configuration.stateDirectory)
        // Servers named in the configuration stay as named; enrolled ones follow the list the servers send.
        shipperConfiguration.adoptsServerList = configuration.servers.isEmpty
        let shipper = try Shipper(
            configuration: shipperConfiguration, credentials: credentials, spool: spool, sequence: sequence,
            deadLetters: deadLetters, doorbell: doorbell,
            makeHello: {
                var hello = Crowsnest_V1_Hello()
                hello.agentVersion = AgentRunner.version
                hello.host = facts
                hello.bootID = bootID
                hello.labels = configuration.labels
                return hello
            }, logger: logger)
        logger.info("agent starting", metadata: [
            "agent.id": "\(credentials.identity.agentID.uuidString.lowercased())",
            "interval_seconds": "\(configuration.interval.components.seconds)",
            "servers": "\(servers.map(\.description).joined(separator: ","))",
            "spool.pending": "\(spool.pendingCount)",
        ])
        let eventBatches = EventBatchSender(events: events, spool: spool, sequence: sequence, doorbell: doorbell,
                                            interval: configuration.interval,
                                            serverAccepts: { shipper.serverAcceptsEventBatches }, logger: logger)
        let checks = CheckRunner(prober: Prober(containers: { inventory.probedContainers() }), spool: spool,
                                 sequence: sequence, doorbell: doorbell, interval: configuration.interval, logger: logger)
        shipper.onAssign { checks.accept($0) }
        let group = ServiceGroup(configuration: .init(services: [inventory, events, sampler, eventBatches, checks, shipper],
                                                      gracefulShutdownSignals: shutdownSignals, logger: logger))
        try await group.run()
    }
}
