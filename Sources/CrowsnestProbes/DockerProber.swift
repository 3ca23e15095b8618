import CrowsnestWire

/// A container as a `docker` check sees it on the runner's own host.
public struct ProbedContainer: Sendable, Equatable {
    public var name: String
    public var labels: [String: String]
    /// Docker's state: running, exited, restarting, paused, …
    public var state: String
    /// starting, healthy or unhealthy; nil without a health check.
    public var health: String?
    /// The last health probe's output, when unhealthy.
    public var healthOutput: String?
    public var exitCode: Int32
    public var restartCount: Int

    public init(name: String, labels: [String: String], state: String, health: String?, healthOutput: String?,
                exitCode: Int32, restartCount: Int) {
        (self.name, self.labels, self.state, self.health) = (name, labels, state, health)
        (self.healthOutput, self.exitCode, self.restartCount) = (healthOutput, exitCode, restartCount)
    }
}

/// What a runner knows about its host's containers: the agent's inventory (never a Docker call per probe), or
/// why it knows nothing (Docker not reachable).
public struct ContainerView: Sendable {
    public var containers: [ProbedContainer]
    /// Empty when the containers are known.
    public var unavailableReason: String

    public init(containers: [ProbedContainer], unavailableReason: String) {
        self.containers = containers
        self.unavailableReason = unavailableReason
    }
}

/// Where a prober reads its host's containers from.
public typealias ContainerSource = @Sendable () -> ContainerView

/// `docker` checks: the containers on the runner's own host picked by name or by `label=key[=value]` are running
/// (and healthy, with `require_healthy`). Only agents run them: a server replica has no containers to look at.
struct DockerProber: Sendable {
    let containers: ContainerSource?

    func probe(_ target: String, options: [String: String]) throws -> ProbeOutcome {
        let start = ContinuousClock.now
        guard let containers else {
            throw ProbeFailure("docker checks look at an agent's own containers; place them on agents, not on the server")
        }
        let requireHealthy = try ProbeOptions(options).bool("require_healthy") ?? false
        let view = containers()
        guard view.unavailableReason.isEmpty else {
            throw ProbeFailure("the agent cannot see its containers: \(view.unavailableReason)")
        }
        let selector = try ContainerSelector(target)
        let matched = view.containers.filter(selector.matches).sorted { $0.name < $1.name }
        var outcome = ProbeOutcome(ok: true, latencyMs: (ContinuousClock.now - start).milliseconds)
        outcome.figures["containers"] = Double(matched.count)
        outcome.figures["running"] = Double(matched.filter { $0.state == "running" }.count)
        outcome.figures["restart_count"] = Double(matched.map(\.restartCount).reduce(0, +))
        outcome.details["containers"] = ProbeText.bounded(matched.map { container in
            "\(container.name): \(container.state)" + (container.health.map { " (\($0))" } ?? "")
        }.joined(separator: ", "))
        if let problem = Self.judge(matched, selector: selector, requireHealthy: requireHealthy) {
            outcome.ok = false
            outcome.error = ProbeText.bounded(problem)
        }
        return outcome
    }

    static func judge(_ matched: [ProbedContainer], selector: ContainerSelector, requireHealthy: Bool) -> String? {
        guard !matched.isEmpty else { return "no container \(selector) on this host" }
        for container in matched {
            guard container.state == "running" else {
                let exit = container.state == "exited" ? " with code \(container.exitCode)" : ""
                return "container \(container.name) is \(container.state)\(exit)"
            }
            guard requireHealthy else { continue }
            switch container.health {
            case nil: return "container \(container.name) has no health check, and require_healthy is set"
            case "healthy"?: continue
            case let status?:
                let output = container.healthOutput.map { ": \($0)" } ?? ""
                return "container \(container.name) is \(status)\(output)"
            }
        }
        return nil
    }
}

/// A container name (a leading `/` allowed, as Docker shows it) or `label=key` / `label=key=value`.
struct ContainerSelector: CustomStringConvertible, Sendable {
    enum Kind: Sendable { case name(String), label(key: String, value: String?) }
    let kind: Kind

    init(_ text: String) throws {
        if text.hasPrefix("label=") {
            let parts = text.dropFirst("label=".count).split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let key = parts.first, !key.isEmpty else { throw ProbeFailure("target \(text) names no label key") }
            kind = .label(key: String(key), value: parts.count == 2 ? String(parts[1]) : nil)
        } else {
            let name = text.hasPrefix("/") ? String(text.dropFirst()) : text
            guard !name.isEmpty else { throw ProbeFailure("target names no container") }
            kind = .name(name)
        }
    }

    func matches(_ container: ProbedContainer) -> Bool {
        switch kind {
        case .name(let name): return container.name == name
        case .label(let key, let value):
            guard let found = container.labels[key] else { return false }
            return value == nil || found == value
        }
    }

    var description: String {
        switch kind {
        case .name(let name): return "named \(name)"
        case .label(let key, let value?): return "labelled \(key)=\(value)"
        case .label(let key, nil): return "labelled \(key)"
        }
    }
}
