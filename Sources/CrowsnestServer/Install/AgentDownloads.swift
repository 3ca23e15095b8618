import Crypto
import Logging
import PostgresNIO
import Foundation

/// What a new host downloads for the one-line install: the static agent binary the server was packaged with, its
/// systemd unit, the example configuration, and `install.sh` rendered with their SHA-256 sums, the agent
/// addresses and the CA pin, so the checksum in the pasted line vouches for everything the script installs.
/// Read and hashed once at start from the `agent_downloads` directory.
public struct AgentDownloads: Sendable {
    /// A file of the downloads directory and the path it is served under.
    public struct File: Sendable, Equatable {
        public let name: String
        public let route: String
        public let contentType: String
    }

    public static let binary = File(name: "crowsnest-agent", route: "downloads/crowsnest-agent-linux-x86_64",
                                    contentType: "application/octet-stream")
    public static let unit = File(name: "crowsnest-agent.service", route: "downloads/crowsnest-agent.service",
                                  contentType: "text/plain; charset=utf-8")
    public static let configuration = File(name: "agent.yaml", route: "downloads/agent.yaml",
                                           contentType: "text/plain; charset=utf-8")
    /// The template; served rendered at `/install.sh`.
    public static let installTemplateName = "install.sh"
    public static let served = [binary, unit, configuration]

    /// The directory the files are served from.
    public let directory: String
    /// `install.sh` with every value filled in, as served.
    public let installScript: String
    /// SHA-256 (hex) of `installScript`: what the install line checks before running it.
    public let installScriptSHA256: String
    /// SHA-256 (hex) of each served file, by name.
    public let fileSHA256: [String: String]

    /// Why the downloads cannot be served.
    public struct Unavailable: Error, CustomStringConvertible {
        public let description: String
    }

    /// Reads and hashes the files in `directory` and renders `install.sh` for agents that dial `agentServers`
    /// and pin `caPin`, downloading from `publicURL`.
    public static func load(directory: String, publicURL: URL, agentServers: [String], caPin: String) throws -> AgentDownloads {
        var sums: [String: String] = [:]
        for file in served + [File(name: installTemplateName, route: "", contentType: "")] {
            let path = directory + "/" + file.name
            guard FileManager.default.isReadableFile(atPath: path) else {
                throw Unavailable(description: "\(path) is missing or unreadable (deploy/build-images.sh stages the agent binary, its unit, agent.yaml and install.sh there)")
            }
            if file.name != installTemplateName { sums[file.name] = try sha256(ofFileAt: path) }
        }
        guard let template = FileManager.default.contents(atPath: directory + "/" + installTemplateName)
            .flatMap({ String(data: $0, encoding: .utf8) }) else {
            throw Unavailable(description: "\(directory)/\(installTemplateName) is not UTF-8 text")
        }
        let base = publicURL.absoluteString.hasSuffix("/") ? String(publicURL.absoluteString.dropLast()) : publicURL.absoluteString
        let script = try render(template: template, values: [
            "SERVER_URL": base,
            "AGENT_SERVERS": agentServers.joined(separator: ","),
            "CA_PIN": caPin,
            "AGENT_SHA256": sums[binary.name] ?? "",
            "UNIT_SHA256": sums[unit.name] ?? "",
            "CONFIG_SHA256": sums[configuration.name] ?? "",
        ])
        return AgentDownloads(directory: directory, installScript: script,
                              installScriptSHA256: hex(SHA256.hash(data: Data(script.utf8))), fileSHA256: sums)
    }

    /// Fills every `@@NAME@@` of the template. A value is written between single quotes in the script, so one
    /// holding a quote, a backslash or a line break is refused, and so is a placeholder left unfilled.
    static func render(template: String, values: [String: String]) throws -> String {
        var script = template
        for (name, value) in values.sorted(by: { $0.key < $1.key }) {
            guard !value.contains(where: { $0 == "'" || $0 == "\\" || $0.isNewline }) else {
                throw Unavailable(description: "the install script's \(name) would hold a quote, backslash or line break: \(value.debugDescription)")
            }
            script = script.replacingOccurrences(of: "@@\(name)@@", with: value)
        }
        if let range = script.range(of: #"'@@[A-Z0-9_]+@@'"#, options: .regularExpression) {
            throw Unavailable(description: "the install script template has a value the server does not fill: \(script[range])")
        }
        return script
    }

    /// SHA-256 (hex) of a file, read in 1 MiB pieces.
    static func sha256(ofFileAt path: String) throws -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw Unavailable(description: "cannot open \(path)")
        }
        defer { try? handle.close() }
        var hasher = SHA256()
        while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty {
            hasher.update(data: chunk)
        }
        return hex(hasher.finalize())
    }

    static func hex(_ digest: some Sequence<UInt8>) -> String {
        digest.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    }
}

/// The line `token create` prints for a new host: download `install.sh` (curl, else wget) into a private
/// temporary file, check its SHA-256, run it with the enrollment token in the environment (never on a
/// command line, where every user of the host could read it), remove the file, and end with the script's status.
public enum InstallLine {
    public static func line(publicURL: String, scriptSHA256: String, token: String) -> String {
        let base = publicURL.hasSuffix("/") ? String(publicURL.dropLast()) : publicURL
        let url = "'" + base.replacingOccurrences(of: "'", with: "") + "/install.sh'"
        return "f=$(mktemp) && { curl -fsSL \(url) || wget -qO- \(url); } > \"$f\" && "
            + "echo '\(scriptSHA256)  '\"$f\" | sha256sum -c --quiet - && "
            + "CROWSNEST_ENROLLMENT_TOKEN='\(token)' sh \"$f\"; s=$?; rm -f \"$f\"; [ $s -eq 0 ]"
    }
}

extension ServerConfiguration {
    /// The `agent_downloads` directory: as configured, else `agent-downloads` next to the server's executable.
    public var resolvedAgentDownloadsDirectory: String {
        if let agentDownloadsDirectory { return agentDownloadsDirectory }
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            ?? CommandLine.arguments.first ?? "crowsnest-server"
        return URL(fileURLWithPath: executable).deletingLastPathComponent().appendingPathComponent("agent-downloads").path
    }

    /// The addresses an installed agent enrolls with: `agent_addresses`, else the public URL's host on the agent
    /// port.
    public var installAgentServers: [String] {
        if !agentAddresses.isEmpty { return agentAddresses }
        guard let host = publicURL?.host else { return [] }
        return [(host.contains(":") ? "[\(host)]" : host) + ":\(agentListen.port)"]
    }

    /// Loads what `/install.sh` serves and records `public_url` and the script's SHA-256 in the database for
    /// `token create`. Returns nil (the one-line install off, everything else working) when `public_url` is not
    /// set or the files are missing, saying why in the log.
    func prepareAgentDownloads(caPin: String, client: PostgresClient, logger: Logger) async throws -> AgentDownloads? {
        let settings = ServerSettingStore(client: client, logger: logger)
        guard let publicURL else {
            logger.notice("the one-line agent install is off: set public_url (where hosts reach this server) to turn it on")
            try await settings.set([.publicURL: nil, .installScriptSHA256: nil])
            return nil
        }
        let directory = resolvedAgentDownloadsDirectory
        do {
            let downloads = try AgentDownloads.load(directory: directory, publicURL: publicURL,
                                                    agentServers: installAgentServers, caPin: caPin)
            try await settings.set([.publicURL: publicURL.absoluteString, .installScriptSHA256: downloads.installScriptSHA256])
            logger.info("serving the agent install script", metadata: [
                "url": "\(publicURL.absoluteString)/install.sh", "sha256": "\(downloads.installScriptSHA256)",
                "agent.sha256": "\(downloads.fileSHA256[AgentDownloads.binary.name] ?? "")", "directory": "\(directory)"])
            return downloads
        } catch let unavailable as AgentDownloads.Unavailable {
            logger.warning("the one-line agent install is off: \(unavailable.description); set agent_downloads to the directory holding them")
            try await settings.set([.publicURL: publicURL.absoluteString, .installScriptSHA256: nil])
            return nil
        }
    }
}
