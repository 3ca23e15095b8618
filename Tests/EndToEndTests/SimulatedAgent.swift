import CrowsnestAgent
import CrowsnestWire
import Foundation
import Logging
import XCTest

/// An agent whose host name and containers (names, labels, health output) the test chooses. It enrolls like a
/// real one (the agent binary's `enroll`), then puts one sweep in its spool and ships it with the agent's own
/// `Shipper` over mutual TLS. Docker refuses hostile container names; the wire does not, so this is how the tests
/// make them reach the server the way a compromised or modified agent would.
struct SimulatedAgent {
    let stateDir: String
    /// The agent's id, lowercased, as target ids use it.
    let agentID: String

    static func enroll(_ deployment: Deployment, tenant: String, name: String) throws -> SimulatedAgent {
        let token = try deployment.admin(["token", "create", "--tenant", tenant])
        let stateDir = deployment.root + "/" + name
        let enroll = Shell.run(Binaries.agent, ["enroll", "--server", "127.0.0.1:\(deployment.agentPort)", "--token", token["token"]!,
                                                "--ca-pin", token["ca_pin"]!, "--state-dir", stateDir])
        guard enroll.status == 0 else { throw DeploymentError("simulated agent enroll failed: \(enroll.error)") }
        let credentials = try XCTUnwrap(try AgentCredentials.load(stateDirectory: stateDir))
        return SimulatedAgent(stateDir: stateDir, agentID: credentials.identity.agentID.uuidString.lowercased())
    }

    /// A running container sample with the given texts and a little CPU and memory.
    static func container(name: String, labels: [String: String] = [:], health: String = "none", healthOutput: String = "",
                          state: String = "running") -> Crowsnest_V1_ContainerSample {
        var sample = Crowsnest_V1_ContainerSample()
        sample.dockerID = String(repeating: "0", count: 52) + String(format: "%012x", UInt64.random(in: 0..<(1 << 48)))
        sample.name = name
        sample.image = "example/simulated:1"
        sample.labels = labels
        sample.state = state
        sample.health = health
        sample.healthOutput = healthOutput
        sample.startedAtUnixMs = Int64(Date().timeIntervalSince1970 * 1000) - 3_600_000
        sample.hasStats_p = true
        sample.cpuUsageNs = 1_000_000_000
        sample.memoryUsageBytes = 64 << 20
        sample.memoryWorkingSetBytes = 48 << 20
        return sample
    }

    /// Sends one sweep with `containers` under `hostname` and returns once the server has acknowledged it.
    func send(hostname: String, containers: [Crowsnest_V1_ContainerSample], timeout: Duration = .seconds(30)) async throws {
        let logger = Logger(label: "simulated-agent")
        let credentials = try XCTUnwrap(try AgentCredentials.load(stateDirectory: stateDir))
        let spool = try Spool(directory: stateDir + "/spool", logger: logger)
        defer { spool.close() }
        let sequence = try SequenceStore(stateDirectory: stateDir)
        defer { try? sequence.close() }
        try sequence.raise(above: spool.highestSeq)
        var batch = Crowsnest_V1_SampleBatch()
        batch.tsUnixMs = Int64(Date().timeIntervalSince1970) * 1000
        batch.intervalSeconds = 30
        batch.host.cpuCount = 2
        batch.host.cpuTotalNs = 2_000_000_000
        batch.host.cpuIdleNs = 1_500_000_000
        batch.host.memoryTotalBytes = 1 << 30
        batch.host.memoryAvailableBytes = 1 << 29
        batch.containers = containers
        _ = try spool.appendBatch(batch, sequence: sequence)
        let shipper = try Shipper(
            configuration: .init(servers: credentials.serverAddresses.compactMap(ServerAddress.init), stateDirectory: stateDir),
            credentials: credentials, spool: spool, sequence: sequence, deadLetters: try DeadLetterBox(stateDirectory: stateDir),
            doorbell: Doorbell(),
            makeHello: {
                var hello = Crowsnest_V1_Hello()
                hello.agentVersion = "simulated"
                hello.host.hostname = hostname
                hello.host.cpuCount = 2
                return hello
            }, logger: logger)
        let shipping = Task { try await shipper.run() }
        defer { shipping.cancel() }
        let deadline = ContinuousClock.now + timeout
        while spool.pendingCount > 0 {
            guard ContinuousClock.now < deadline else { throw DeploymentError("the simulated agent's batch was not acknowledged within \(timeout)") }
            try await Task.sleep(for: .milliseconds(200))
        }
        shipping.cancel()
        _ = await shipping.result
    }
}
