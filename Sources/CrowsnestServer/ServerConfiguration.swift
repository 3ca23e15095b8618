import CrowsnestWire
import Foundation
import Logging
import PostgresNIO

/// Everything `crowsnest-server` needs to run, merged from YAML file, `CROWSNEST_*` environment and flags.
public struct ServerConfiguration: Sendable {
    /// Where the CA, serving certificate and (embedded mode) the PostgreSQL cluster live.
    public var dataDirectory: String
    /// External PostgreSQL; nil means the embedded cluster in the data directory.
    public var databaseURL: String?
    public var agentListen: (host: String, port: Int)
    public var httpListen: (host: String, port: Int)
    /// Extra DNS names and IP addresses for the serving certificate (agents verify the name they dial).
    public var serverNames: [String]
    /// Unprivileged user that runs the embedded PostgreSQL when the server runs as root.
    public var postgresUser: String?
    /// The file holding the server's secret key (seals the CA's private key in the database). Default for the
    /// embedded database: `secret.key` in the data directory, created on first start; `serve` with a database
    /// URL requires it (every replica needs the same file). Administrative commands do not need it.
    public var secretKeyFile: String?
    public var logLevel: Logger.Level
    /// Lifetime of the agent certificates the server issues, in days (decimals allowed); agents renew over their
    /// live session after two thirds of it.
    public var agentCertificateDays: Double = 365
    /// Load balancers (CIDR) whose PROXY protocol v2 header the agent gateway believes.
    public var trustedProxies: [IPNetwork] = []
    /// Enrollment attempts accepted per client address per minute (a fleet behind one NAT enrolls through one).
    public var enrollmentsPerMinutePerAddress: Int = 30
    /// The ttl of check leases: a dead runner's checks move after about this long.
    public var checkLeaseTTLSeconds: Int = 10
    /// An agent not heard from (no batch, no heartbeat) for this long gets no check runs and its checks move.
    public var agentSilenceLimitSeconds: Int = 35
    /// `host:port` of every replica's agent gateway as agents should dial it, told to agents in `Welcome` so they
    /// can reach any replica (empty: agents keep the addresses they enrolled with).
    public var agentAddresses: [String] = []
    /// Requests one API key may make per minute (every replica counts against the same window); 429 beyond.
    public var apiRequestsPerMinute: Int = APIRateLimitMiddleware.defaultRequestsPerMinute
    /// Raw samples and check results are kept this many days; status spans `span_retention_days`.
    public var rawRetentionDays: Int = 30
    public var spanRetentionDays: Int = 400
    /// Most entries in `agent_addresses`.
    public static let maximumAgentAddresses = 16

    /// Settings a configuration file may hold.
    public static let knownKeys: Set<String> = [
        "data_dir", "database_url", "agent_listen", "http_listen", "server_names", "postgres_user", "log_level",
        "secret_key_file", "agent_certificate_days", "trusted_proxies", "enrollments_per_minute",
        "check_lease_ttl_seconds", "agent_silence_limit_seconds", "agent_addresses", "api_requests_per_minute",
        "raw_retention_days", "span_retention_days",
    ]

    public static let defaultDataDirectory = "/var/lib/crowsnest"

    /// Merges the layers; one `ConfigurationError` line for the first bad value.
    public static func load(file: String?, environment: [String: String], flags: [String: String?]) throws -> ServerConfiguration {
        let layers = try LayeredConfiguration(file: file, environment: environment, flags: flags, knownKeys: knownKeys)
        let levelText = layers.string("log_level", default: "info")
        guard let level = Logger.Level(rawValue: levelText) else {
            throw ConfigurationError("\(layers.source(of: "log_level")): log level must be one of trace, debug, info, notice, warning, error, critical; got '\(levelText)'")
        }
        let dataDirectory = layers.string("data_dir", default: defaultDataDirectory)
        guard !dataDirectory.isEmpty else { throw ConfigurationError("\(layers.source(of: "data_dir")): data directory must not be empty") }
        var databaseURL = layers.string("database_url")
        if databaseURL?.isEmpty == true { databaseURL = nil }
        if let url = databaseURL {
            do { _ = try DatabaseConnection.clientConfiguration(url: url) } catch {
                throw ConfigurationError("\(layers.source(of: "database_url")): \(error)")
            }
        }
        let certificateDaysText = layers.string("agent_certificate_days", default: "365")
        guard let certificateDays = Double(certificateDaysText), certificateDays > 0, certificateDays <= 3650 else {
            throw ConfigurationError("\(layers.source(of: "agent_certificate_days")): agent certificate lifetime must be a number of days above 0 and at most 3650; got '\(certificateDaysText)'")
        }
        var trustedProxies: [IPNetwork] = []
        for text in layers.list("trusted_proxies") ?? [] {
            guard let network = IPNetwork(text) else {
                throw ConfigurationError("\(layers.source(of: "trusted_proxies")): '\(text)' is not an IP address or CIDR network (e.g. 10.0.0.0/8)")
            }
            trustedProxies.append(network)
        }
        let enrollmentsText = layers.string("enrollments_per_minute", default: "30")
        guard let enrollments = Int(enrollmentsText), (1...100_000).contains(enrollments) else {
            throw ConfigurationError("\(layers.source(of: "enrollments_per_minute")): enrollment attempts per address and minute must be a whole number from 1 to 100000; got '\(enrollmentsText)'")
        }
        let ttlText = layers.string("check_lease_ttl_seconds", default: "10")
        guard let ttl = Int(ttlText), (2...300).contains(ttl) else {
            throw ConfigurationError("\(layers.source(of: "check_lease_ttl_seconds")): check lease ttl must be a whole number of seconds from 2 to 300; got '\(ttlText)'")
        }
        let silenceText = layers.string("agent_silence_limit_seconds", default: "35")
        guard let silence = Int(silenceText), (2...3600).contains(silence) else {
            throw ConfigurationError("\(layers.source(of: "agent_silence_limit_seconds")): agent silence limit must be a whole number of seconds from 2 to 3600; got '\(silenceText)'")
        }
        let apiLimitText = layers.string("api_requests_per_minute", default: "\(APIRateLimitMiddleware.defaultRequestsPerMinute)")
        guard let apiLimit = Int(apiLimitText), (1...10_000_000).contains(apiLimit) else {
            throw ConfigurationError("\(layers.source(of: "api_requests_per_minute")): API requests per key and minute must be a whole number from 1 to 10000000; got '\(apiLimitText)'")
        }
        let rawText = layers.string("raw_retention_days", default: "30")
        guard let rawDays = Int(rawText), (1...3650).contains(rawDays) else {
            throw ConfigurationError("\(layers.source(of: "raw_retention_days")): raw sample retention must be a whole number of days from 1 to 3650; got '\(rawText)'")
        }
        let spanText = layers.string("span_retention_days", default: "400")
        guard let spanDays = Int(spanText), (1...36500).contains(spanDays) else {
            throw ConfigurationError("\(layers.source(of: "span_retention_days")): span retention must be a whole number of days from 1 to 36500; got '\(spanText)'")
        }
        let agentAddresses = layers.list("agent_addresses") ?? []
        guard agentAddresses.count <= maximumAgentAddresses else {
            throw ConfigurationError("\(layers.source(of: "agent_addresses")): at most \(maximumAgentAddresses) agent addresses; got \(agentAddresses.count)")
        }
        for address in agentAddresses {
            guard let parsed = HostPort.parse(address, defaultHost: ""), !parsed.host.isEmpty, parsed.port > 0, parsed.host != "0.0.0.0",
                  parsed.host != "::" else {
                throw ConfigurationError("\(layers.source(of: "agent_addresses")): '\(address)' is not an address agents can dial: expected HOST:PORT such as crowsnest.example.com:7443 or [2001:db8::1]:7443")
            }
        }
        let standardizedDataDirectory = URL(fileURLWithPath: dataDirectory).standardizedFileURL.path
        var secretKeyFile = layers.string("secret_key_file")
        if secretKeyFile?.isEmpty == true { secretKeyFile = nil }
        return ServerConfiguration(
            dataDirectory: standardizedDataDirectory,
            databaseURL: databaseURL,
            agentListen: try layers.hostPort("agent_listen", default: "0.0.0.0:7443"),
            httpListen: try layers.hostPort("http_listen", default: "0.0.0.0:8080"),
            serverNames: layers.list("server_names") ?? [],
            postgresUser: layers.string("postgres_user"),
            secretKeyFile: secretKeyFile.map { URL(fileURLWithPath: $0).standardizedFileURL.path },
            logLevel: level,
            agentCertificateDays: certificateDays,
            trustedProxies: trustedProxies,
            enrollmentsPerMinutePerAddress: enrollments,
            checkLeaseTTLSeconds: ttl,
            agentSilenceLimitSeconds: silence,
            agentAddresses: agentAddresses,
            apiRequestsPerMinute: apiLimit,
            rawRetentionDays: rawDays,
            spanRetentionDays: spanDays)
    }
}

extension ServerConfiguration {
    /// Loads (or on first start creates) the CA and serving certificate, with the configured extra names:
    /// entries that parse as IP addresses become IP SANs, the rest DNS names.
    public static func loadAuthority(dataDirectory: String, serverNames: [String], logger: Logger) throws -> CertificateAuthority {
        let (names, ips) = splitServerNames(serverNames)
        return try CertificateAuthority.loadOrCreate(directory: dataDirectory, serverNames: names, serverIPs: ips, logger: logger)
    }

    /// The CA from the database (created, or imported from the data directory, on the first start) and the
    /// serving certificate in the data directory, issued from it for the configured names.
    public func loadAuthority(client: PostgresClient, logger: Logger) async throws -> CertificateAuthority {
        let secret: SecretKey
        if let secretKeyFile {
            secret = databaseURL == nil ? try SecretKey.loadOrCreate(path: secretKeyFile) : try SecretKey.load(path: secretKeyFile)
        } else if databaseURL == nil {
            secret = try SecretKey.loadOrCreate(path: dataDirectory + "/" + SecretKey.defaultFileName)
        } else {
            throw SecretKeyError("serving with a database URL needs secret_key_file (CROWSNEST_SECRET_KEY_FILE): the CA's "
                + "private key is kept in the database sealed with it, and every replica needs the same file")
        }
        let (certificate, key) = try await AuthorityBootstrap.loadCA(client: client, secret: secret, dataDirectory: dataDirectory,
                                                                   logger: logger)
        let (names, ips) = Self.splitServerNames(serverNames)
        return try CertificateAuthority.withServingCertificate(caCertificate: certificate, caKey: key, directory: dataDirectory,
                                                              serverNames: names, serverIPs: ips, logger: logger)
    }

    /// An address may be written in brackets ([::1]). Text with a colon is never a DNS name: a mistyped IPv6
    /// address is reported as an invalid address instead of going into the certificate as a name.
    static func splitServerNames(_ serverNames: [String]) -> (names: [String], ips: [String]) {
        let entries = serverNames.map { $0.hasPrefix("[") && $0.hasSuffix("]") ? String($0.dropFirst().dropLast()) : $0 }
        let ips = entries.filter { IPAddress($0) != nil || $0.contains(":") }
        return (entries.filter { !ips.contains($0) }, ips)
    }
}
