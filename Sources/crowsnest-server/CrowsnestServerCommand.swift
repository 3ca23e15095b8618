import ArgumentParser
import CrowsnestServer
import CrowsnestWire
import Foundation
import Logging
import Metrics
import Prometheus

/// Options shared by every subcommand: where the configuration and the data live.
struct ServerOptions: ParsableArguments {
    @Option(name: .long, help: "YAML configuration file.")
    var config: String?

    @Option(name: .long, help: "Data directory (CA, certificates, embedded PostgreSQL). Default /var/lib/crowsnest.")
    var dataDir: String?

    @Option(name: .long, help: "PostgreSQL URL; without it the server runs an embedded cluster in the data directory.")
    var databaseURL: String?

    @Option(name: .long, help: "Log lines as text (default) or json (one object per line, for Loki or Elasticsearch).")
    var logFormat: String?

    func load(extra: [String: String?] = [:]) throws -> ServerConfiguration {
        var flags: [String: String?] = ["data_dir": dataDir, "database_url": databaseURL, "log_format": logFormat]
        flags.merge(extra) { _, new in new }
        do {
            return try ServerConfiguration.load(file: config, environment: ProcessInfo.processInfo.environment, flags: flags)
        } catch let error as ConfigurationError {
            throw ValidationError("configuration: \(error.message)")
        }
    }
}

@main
struct CrowsnestServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "crowsnest-server",
        abstract: "Crowsnest central server: agent gateway, ingest, API.",
        subcommands: [Serve.self, Tenant.self, Token.self, APIKey.self, User.self, Agent.self, Backup.self, Restore.self])
}

/// `backup --output DIR`: the database as one pg_dump file and the secret key beside it, while the server runs.
struct Backup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a backup (the database as one pg_dump file, and a copy of the secret key) into a new directory.")
    @OptionGroup var options: ServerOptions
    @Option(name: .long, help: "Directory to write the backup into (created; must not hold a backup yet).") var output: String

    func run() async throws {
        let output = self.output
        try await withDatabaseBackup(options) { backup, _ in
            let bytes = try await backup.backup(to: output)
            print("backup written to \(output) (\(bytes) bytes of database, and the secret key); restore with: "
                + "crowsnest-server restore --input \(output) --data-dir NEW_DIRECTORY")
        }
    }
}

/// `restore --input DIR`: a backup into an empty database (a new data directory, or an empty external one).
struct Restore: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Restore a backup into an empty database: a new data directory, or an external database with no tables.")
    @OptionGroup var options: ServerOptions
    @Option(name: .long, help: "Directory a backup was written into.") var input: String

    func run() async throws {
        let input = self.input
        try await withDatabaseBackup(options) { backup, configuration in
            try await backup.restore(from: input)
            print("restored \(input); start the server on it: crowsnest-server serve"
                + (configuration.databaseURL == nil ? " --data-dir \(configuration.dataDirectory)" : ""))
        }
    }
}

/// Runs a backup or restore with the configuration's database, a failure printed as one line.
func withDatabaseBackup(_ options: ServerOptions, _ action: (DatabaseBackup, ServerConfiguration) async throws -> Void) async throws {
    let configuration = try options.load()
    let logger = bootstrapLogging(level: configuration.logLevel == .info ? .warning : configuration.logLevel, format: configuration.logFormat)
    do {
        try await action(DatabaseBackup(configuration: configuration, logger: logger), configuration)
    } catch let error as DatabaseBackupError {
        throw AdminFailure(message: error.description)
    }
}

/// Sets up logging once for the process.
func bootstrapLogging(level: Logger.Level, format: LogFormat = .text) -> Logger {
    LoggingSystem.bootstrap { label in
        switch format {
        case .text:
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        case .json:
            var handler = JSONLogHandler(label: label)
            handler.logLevel = level
            return handler
        }
    }
    return Logger(label: "crowsnest.server")
}

/// Runs an administrative action against the database, printing one clear line on failure.
func administer<T: Sendable>(_ options: ServerOptions, _ action: @escaping @Sendable (ServerAdministration, ServerConfiguration) async throws -> T) async throws -> T {
    let configuration = try options.load()
    let logger = bootstrapLogging(level: configuration.logLevel == .info ? .warning : configuration.logLevel, format: configuration.logFormat)
    do {
        return try await ServerDatabase.with(configuration, logger: logger) { client in
            try await action(ServerAdministration(client: client, logger: logger), configuration)
        }
    } catch let error as StoreError {
        throw AdminFailure(message: error.message)
    } catch let error as AdminFailure {
        throw error
    } catch {
        throw AdminFailure(message: DatabaseConnection.describe(error))
    }
}

/// A refused administrative action; ArgumentParser prints it as one line and exits non-zero.
struct AdminFailure: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

func printJSONObject(_ object: [String: Any]) throws {
    let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
    print(String(decoding: data, as: UTF8.self))
}

func printJSON(_ object: [String: String]) throws {
    let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
    print(String(decoding: data, as: UTF8.self))
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the server.")

    @OptionGroup var options: ServerOptions

    @Option(name: .long, help: "Agent gateway address, HOST:PORT (default 0.0.0.0:7443).")
    var agentListen: String?

    @Option(name: .long, help: "HTTP API address, HOST:PORT (default 0.0.0.0:8080).")
    var httpListen: String?

    func run() async throws {
        let configuration = try options.load(extra: ["agent_listen": agentListen, "http_listen": httpListen])
        let logger = bootstrapLogging(level: configuration.logLevel, format: configuration.logFormat)
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(ServerMetricsFactory(registry: registry))
        try await ServerRunner(configuration: configuration, logger: logger, metricsRegistry: registry).run()
    }
}

struct Tenant: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Manage tenants.", subcommands: [Create.self, AllowNetwork.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a tenant.")
        @OptionGroup var options: ServerOptions
        @Argument(help: "Tenant name (unique).") var name: String
        @Flag(name: .long, help: "Print one JSON object.") var json = false

        func run() async throws {
            let name = self.name
            let id = try await administer(options) { admin, _ in try await admin.createTenant(name: name) }
            if json { try printJSON(["tenant": name, "id": id.uuidString.lowercased()]) } else { print("created tenant \(name) (\(id.uuidString.lowercased()))") }
        }
    }

    struct AllowNetwork: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "allow-network",
            abstract: "Let a tenant's checks reach a network the SSRF guard refuses (loopback, private, link-local, metadata).")
        @OptionGroup var options: ServerOptions
        @Argument(help: "Tenant name.") var name: String
        @Argument(help: "An address or CIDR network, e.g. 10.20.0.0/16 or fd00::/8.") var cidr: String
        @Flag(name: .long, help: "Print one JSON object.") var json = false

        func run() async throws {
            let (name, cidr) = (self.name, self.cidr)
            let (network, added) = try await administer(options) { admin, _ in try await admin.allowNetwork(tenant: name, cidr: cidr) }
            if json {
                try printJSONObject(["tenant": name, "network": network.description, "added": added])
            } else {
                print(added ? "tenant \(name)'s checks may now reach \(network)" : "tenant \(name)'s checks could already reach \(network)")
            }
        }
    }
}

struct Token: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Manage enrollment tokens.", subcommands: [Create.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create an enrollment token (single-use unless --uses says more) and print the CA pin.")
        @OptionGroup var options: ServerOptions
        @Option(name: .long, help: "Tenant the enrolled agent will belong to.") var tenant: String
        @Option(name: .long, help: "How many agents the token may enroll (default 1; up to 100000, for a fleet).") var uses: Int = 1
        @Option(name: .long, help: "How long the token lives: 30m, 12h or 7d (default 24h; at most 365d).") var expires: String?
        @Option(name: .long, help: "Hours until the token expires (the older form of --expires).") var expiresInHours: Int?
        @Flag(name: .long, help: "Print one JSON object.") var json = false

        func run() async throws {
            guard EnrollmentTokenStore.usesRange.contains(uses) else {
                throw ValidationError("--uses must be between 1 and \(EnrollmentTokenStore.usesRange.upperBound)")
            }
            let lifetime: Duration
            switch (expires, expiresInHours) {
            case (let text?, nil):
                guard let parsed = TokenLifetime.parse(text) else {
                    throw ValidationError("--expires must be a number and a unit: 30m, 12h or 7d, at most 365d (got '\(text)')")
                }
                lifetime = parsed
            case (nil, let hours?):
                guard (1...24 * 365).contains(hours) else { throw ValidationError("--expires-in-hours must be between 1 and 8760") }
                lifetime = .seconds(hours * 3600)
            case (nil, nil):
                lifetime = EnrollmentTokenStore.defaultLifetime
            case (_?, _?):
                throw ValidationError("give --expires or --expires-in-hours, not both")
            }
            let (tenant, uses) = (self.tenant, self.uses)
            let (token, pin, line) = try await administer(options) { admin, _ in
                let (token, pin) = try await admin.createEnrollmentToken(tenant: tenant, lifetime: lifetime, uses: uses)
                return (token, pin, try await admin.installLine(token: token))
            }
            if json {
                var object = ["token": token, "ca_pin": pin]
                if case .success(let line) = line { object["install_line"] = line }
                try printJSON(object)
            } else {
                print("token:  \(token)\(uses > 1 ? " (enrolls up to \(uses) agents)" : "")\nca pin: \(pin)")
                switch line {
                case .success(let line):
                    print("paste on the new host, as root:\n\(line)")
                case .failure(let missing):
                    print("enroll: CROWSNEST_ENROLLMENT_TOKEN=\(token) crowsnest-agent enroll --server HOST:7443 --ca-pin \(pin)\n"
                        + "(\(missing.reason))")
                }
            }
        }
    }
}

struct APIKey: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "apikey", abstract: "Manage API keys.",
                                                    subcommands: [Create.self, List.self, Revoke.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create an API key (printed once).")
        @OptionGroup var options: ServerOptions
        @Option(name: .long, help: "Tenant the key belongs to.") var tenant: String
        @Option(name: .long, help: "admin or read.") var role: String = "read"
        @Option(name: .long, help: "Days until the key stops working (default: never).") var expiresInDays: Int?
        @Flag(name: .long, help: "Print one JSON object.") var json = false

        func run() async throws {
            guard let role = APIKeyRole(rawValue: role) else { throw ValidationError("--role must be admin or read, got '\(role)'") }
            if let days = expiresInDays, !(1...3650).contains(days) {
                throw ValidationError("--expires-in-days must be between 1 and 3650, got \(days)")
            }
            let expiresAt = expiresInDays.map { Date().addingTimeInterval(Double($0) * 86_400) }
            let tenant = self.tenant
            let key = try await administer(options) { admin, _ in
                try await admin.createAPIKey(tenant: tenant, role: role, expiresAt: expiresAt)
            }
            if json { try printJSON(["key": key]) } else { print(key) }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List a tenant's API keys (ids and state; secrets are never stored).")
        @OptionGroup var options: ServerOptions
        @Option(name: .long, help: "Tenant whose keys to list.") var tenant: String
        @Flag(name: .long, help: "Print one JSON object.") var json = false

        func run() async throws {
            let tenant = self.tenant
            let keys = try await administer(options) { admin, _ in try await admin.listAPIKeys(tenant: tenant) }
            let rows: [[String: Any]] = keys.map { key in
                ["id": key.id.uuidString.lowercased(), "role": key.role, "created_at": RFC3339.string(from: key.createdAt),
                 "expires_at": key.expiresAt.map(RFC3339.string(from:)) ?? NSNull(),
                 "revoked_at": key.revokedAt.map(RFC3339.string(from:)) ?? NSNull()]
            }
            if json { try printJSONObject(["keys": rows]) } else {
                for key in keys {
                    let state = key.revokedAt != nil ? "revoked" : (key.expiresAt.map { $0 < Date() } == true ? "expired" : "active")
                    print("\(key.id.uuidString.lowercased())  \(key.role)  \(state)  created \(RFC3339.string(from: key.createdAt))"
                          + (key.expiresAt.map { "  expires \(RFC3339.string(from: $0))" } ?? ""))
                }
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke an API key; it stops working at once.")
        @OptionGroup var options: ServerOptions
        @Option(name: .long, help: "Tenant the key belongs to.") var tenant: String
        @Argument(help: "The key's id (from apikey list).") var id: String
        @Flag(name: .long, help: "Print one JSON object.") var json = false

        func run() async throws {
            guard let keyID = UUID(uuidString: id) else { throw ValidationError("'\(id)' is not a key id (a UUID from apikey list)") }
            let tenant = self.tenant
            try await administer(options) { admin, _ in try await admin.revokeAPIKey(tenant: tenant, keyID: keyID) }
            if json { try printJSON(["revoked": keyID.uuidString.lowercased()]) } else { print("revoked API key \(keyID.uuidString.lowercased())") }
        }
    }
}

struct User: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Manage the people who sign in to the web pages.", subcommands: [Create.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a user of a tenant. The password is read from standard input (--password-stdin) or from CROWSNEST_USER_PASSWORD, never from the command line.")
        @OptionGroup var options: ServerOptions
        @Option(name: .long, help: "Tenant the user belongs to.") var tenant: String
        @Option(name: .long, help: "The name the user signs in with (unique across tenants).") var username: String
        @Option(name: .long, help: "admin or read.") var role: String = "read"
        @Flag(name: .long, help: "Read the password from the first line of standard input.") var passwordStdin = false
        @Flag(name: .long, help: "Print one JSON object.") var json = false

        func run() async throws {
            guard let role = APIKeyRole(rawValue: role) else { throw ValidationError("--role must be admin or read, got '\(role)'") }
            let password: String
            if passwordStdin {
                guard let line = readLine(strippingNewline: true) else {
                    throw ValidationError("--password-stdin: standard input ended before a password line")
                }
                password = line
            } else if let fromEnvironment = ProcessInfo.processInfo.environment["CROWSNEST_USER_PASSWORD"] {
                password = fromEnvironment
            } else {
                throw ValidationError("no password: pass --password-stdin and type it on standard input, or set CROWSNEST_USER_PASSWORD")
            }
            let (tenant, username) = (self.tenant, self.username)
            let user = try await administer(options) { admin, _ in
                try await admin.createUser(tenant: tenant, username: username, role: role, password: password)
            }
            if json {
                try printJSON(["user": user.id.uuidString.lowercased(), "username": user.username, "role": user.role.rawValue])
            } else {
                print("created user \(user.username) (\(user.role.rawValue)) in tenant \(tenant)")
            }
        }
    }
}

struct Agent: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List and revoke enrolled agents.", subcommands: [List.self, Revoke.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List enrolled agents.")
        @OptionGroup var options: ServerOptions
        @Option(name: .long, help: "Only this tenant's agents.") var tenant: String?
        @Flag(name: .long, help: "Print one JSON object.") var json = false

        func run() async throws {
            let tenant = self.tenant
            let agents = try await administer(options) { admin, _ in try await admin.listAgents(tenant: tenant) }
            let rows: [[String: Any]] = agents.map { agent in
                ["id": agent.agentID.uuidString.lowercased(), "tenant": agent.tenant, "hostname": agent.hostname,
                 "agent_version": agent.agentVersion, "enrolled_at": RFC3339.string(from: agent.enrolledAt),
                 "last_seen": agent.lastSeen.map(RFC3339.string(from:)) ?? NSNull(),
                 "revoked_at": agent.revokedAt.map(RFC3339.string(from:)) ?? NSNull(),
                 "clone_suspected": agent.cloneSuspected]
            }
            if json { try printJSONObject(["agents": rows]) } else {
                for agent in agents {
                    let state = agent.revokedAt != nil ? "revoked" : "active"
                    print("\(agent.agentID.uuidString.lowercased())  \(agent.tenant)  \(agent.hostname)  \(state)  last seen "
                          + (agent.lastSeen.map(RFC3339.string(from:)) ?? "never")
                          + (agent.cloneSuspected ? "  (two hosts seem to share this identity)" : ""))
                }
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke an agent: its session closes within seconds and it cannot reconnect.")
        @OptionGroup var options: ServerOptions
        @Argument(help: "The agent's id (from agent list).") var id: String
        @Flag(name: .long, help: "Print one JSON object.") var json = false

        func run() async throws {
            guard let agentID = UUID(uuidString: id) else { throw ValidationError("'\(id)' is not an agent id (a UUID from agent list)") }
            try await administer(options) { admin, _ in try await admin.revokeAgent(agentID) }
            if json { try printJSON(["revoked": agentID.uuidString.lowercased()]) } else { print("revoked agent \(agentID.uuidString.lowercased())") }
        }
    }
}
