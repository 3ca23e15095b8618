import CrowsnestWire
import Logging
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Everything `crowsnest-agent run` needs, merged from YAML file, `CROWSNEST_*` environment and flags.
public struct AgentConfiguration: Sendable {
    /// Credentials, sequence counter and spool live here.
    public var stateDirectory: String
    /// Sampling interval; ticks align to wall-clock multiples of it.
    public var interval: Duration
    /// Servers to try in turn; empty means the ones saved at enrollment.
    public var servers: [ServerAddress]
    /// Path of the Docker Engine's unix socket.
    public var dockerSocket: String
    public var spoolMaxBytes: Int
    public var cgroupRoot: String
    public var procRoot: String
    /// Where the host's root filesystem is mounted when the agent runs in a container (`/host`), so each host
    /// filesystem is measured at `hostRoot + mountpoint`; empty on the host itself.
    public var hostRoot: String = ""
    public var logLevel: Logger.Level
    /// The operator's `key=value` labels, sent in `Hello`: checks placed by labels run on agents carrying them.
    public var labels: [String] = []

    public static let knownKeys: Set<String> = [
        "state_dir", "interval", "servers", "docker_host", "spool_max_mib", "cgroup_root", "proc_root", "log_level",
        "labels", "host_root",
    ]
    public static let defaultStateDirectory = "/var/lib/crowsnest-agent"

    public static func load(file: String?, environment: [String: String], flags: [String: String?]) throws -> AgentConfiguration {
        // DOCKER_HOST is Docker's own variable; honour it below CROWSNEST_DOCKER_HOST.
        var environment = environment
        if environment["CROWSNEST_DOCKER_HOST"] == nil, let dockerHost = environment["DOCKER_HOST"] {
            environment["CROWSNEST_DOCKER_HOST"] = dockerHost
        }
        let layers = try LayeredConfiguration(file: file, environment: environment, flags: flags, knownKeys: knownKeys)
        let levelText = layers.string("log_level", default: "info")
        guard let level = Logger.Level(rawValue: levelText) else {
            throw ConfigurationError("\(layers.source(of: "log_level")): log level must be one of trace, debug, info, notice, warning, error, critical; got '\(levelText)'")
        }
        var servers: [ServerAddress] = []
        for text in layers.list("servers") ?? [] {
            guard let address = ServerAddress(text) else {
                throw ConfigurationError("\(layers.source(of: "servers")): expected HOST:PORT, got '\(text)'")
            }
            servers.append(address)
        }
        let labels = layers.list("labels") ?? []
        guard labels.count <= AgentLabels.maximumCount else {
            throw ConfigurationError("\(layers.source(of: "labels")): at most \(AgentLabels.maximumCount) labels, got \(labels.count)")
        }
        for (index, label) in labels.enumerated() {
            if let problem = AgentLabels.problem(label) {
                throw ConfigurationError("\(layers.source(of: "labels")): label \(index + 1) \(problem)")
            }
        }
        let dockerHost = layers.string("docker_host", default: "unix://" + DockerClient.defaultSocketPath)
        let socket: String
        do {
            socket = try DockerClient.socketPath(dockerHost: dockerHost)
        } catch {
            throw ConfigurationError("\(layers.source(of: "docker_host")): \(error)")
        }
        return AgentConfiguration(
            stateDirectory: layers.string("state_dir", default: defaultStateDirectory),
            interval: .seconds(try layers.integer("interval", default: 30, range: 1...3600)),
            servers: servers,
            dockerSocket: socket,
            spoolMaxBytes: try layers.integer("spool_max_mib", default: 256, range: 1...65536) * 1024 * 1024,
            cgroupRoot: layers.string("cgroup_root", default: "/sys/fs/cgroup"),
            procRoot: layers.string("proc_root", default: "/proc"),
            hostRoot: try hostRoot(layers),
            logLevel: level,
            labels: Array(Set(labels)).sorted())
    }

    /// `host_root`: an absolute directory (`/host`), or empty (the default: the agent runs on the host).
    static func hostRoot(_ layers: LayeredConfiguration) throws -> String {
        var root = layers.string("host_root", default: "")
        while root.count > 1 && root.hasSuffix("/") { root.removeLast() }
        guard root.isEmpty || root.hasPrefix("/") else {
            throw ConfigurationError("\(layers.source(of: "host_root")): the host's root filesystem must be an absolute path such as /host; got '\(root)'")
        }
        return root == "/" ? "" : root
    }
}
