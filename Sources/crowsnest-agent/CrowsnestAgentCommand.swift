import ArgumentParser
import CrowsnestAgent
import CrowsnestWire
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging

@main
enum AgentMain {
    static func main() async {
        await CrowsnestAgentCommand.main(Array(ProcessArguments.current().dropFirst()))
    }
}

struct CrowsnestAgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "crowsnest-agent",
        abstract: "Crowsnest agent: samples Docker containers and the host, ships them to the server.",
        version: AgentRunner.version,
        subcommands: [Enroll.self, Run.self])
}

func bootstrapLogging(level: Logger.Level) -> Logger {
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = level
        return handler
    }
    return Logger(label: "crowsnest.agent")
}

/// Configuration problems print as one line and exit non-zero.
func loadConfiguration(file: String?, flags: [String: String?]) throws -> AgentConfiguration {
    do {
        return try AgentConfiguration.load(file: file, environment: ProcessInfo.processInfo.environment, flags: flags)
    } catch let error as ConfigurationError {
        throw ValidationError("configuration: \(error.message)")
    }
}

struct Enroll: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Get a client certificate from the server with a one-time token.")

    @Option(name: .long, help: "Server address(es), HOST:PORT[,HOST:PORT…].") var server: String
    @Option(name: .long, help: "Enrollment token from 'crowsnest-server token create' (visible in ps: prefer --token-file or CROWSNEST_ENROLLMENT_TOKEN).") var token: String?
    @Option(name: .long, help: "File holding the enrollment token.") var tokenFile: String?
    @Option(name: .long, help: "CA pin, sha256:HEX, from 'crowsnest-server token create'.") var caPin: String
    @Option(name: .long, help: "State directory (default /var/lib/crowsnest-agent).") var stateDir: String?
    @Option(name: .long, help: "YAML configuration file.") var config: String?

    func run() async throws {
        let configuration = try loadConfiguration(file: config, flags: ["state_dir": stateDir])
        let logger = bootstrapLogging(level: configuration.logLevel)
        var servers: [ServerAddress] = []
        for text in server.split(separator: ",") {
            guard let address = ServerAddress(String(text)) else { throw ValidationError("--server: expected HOST:PORT, got '\(text)'") }
            servers.append(address)
        }
        guard !servers.isEmpty else { throw ValidationError("--server: at least one HOST:PORT is required") }
        let pin: CAPin
        do { pin = try CAPin.parse(caPin) } catch { throw ValidationError("--ca-pin: \(error)") }
        let token = try Self.token(flag: self.token, file: tokenFile,
                                   environment: ProcessInfo.processInfo.environment["CROWSNEST_ENROLLMENT_TOKEN"])
        let facts = HostFactsReader.read(procRoot: configuration.procRoot)
        let credentials = try await Enroller(servers: servers, token: token, pin: pin,
                                             stateDirectory: configuration.stateDirectory, logger: logger)
            .enroll(host: facts, agentVersion: AgentRunner.version)
        print("enrolled as agent \(credentials.identity.agentID.uuidString.lowercased()); credentials saved in \(configuration.stateDirectory)")
    }

    /// The token from exactly one of --token, --token-file and CROWSNEST_ENROLLMENT_TOKEN.
    static func token(flag: String?, file: String?, environment: String?) throws -> String {
        let given = [flag != nil, file != nil, environment?.isEmpty == false].filter { $0 }.count
        guard given == 1 else {
            throw ValidationError(given == 0
                ? "an enrollment token is required: --token-file FILE, CROWSNEST_ENROLLMENT_TOKEN or --token"
                : "give the enrollment token once: --token, --token-file or CROWSNEST_ENROLLMENT_TOKEN, not several")
        }
        if let file {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                throw ValidationError("--token-file: cannot read \(file)")
            }
            let token = text.trimmingWhitespace()
            guard !token.isEmpty else { throw ValidationError("--token-file: \(file) is empty") }
            return token
        }
        return (flag ?? environment ?? "").trimmingWhitespace()
    }
}

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Sample and ship until stopped.")

    @Option(name: .long, help: "YAML configuration file.") var config: String?
    @Option(name: .long, help: "State directory (default /var/lib/crowsnest-agent).") var stateDir: String?
    @Option(name: .long, help: "Sampling interval in seconds, 1–3600 (default 30).") var interval: String?
    @Option(name: .long, help: "Override the server address(es) saved at enrollment.") var server: String?

    func run() async throws {
        let configuration = try loadConfiguration(file: config, flags: ["state_dir": stateDir, "interval": interval, "servers": server])
        let logger = bootstrapLogging(level: configuration.logLevel)
        try await AgentRunner(configuration: configuration, logger: logger).run()
    }
}
