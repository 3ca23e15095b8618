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
    /// `text` (for people) or `json` (one object per line, for Loki or Elasticsearch).
    public var logFormat: LogFormat = .text
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
    /// Where people reach the web pages; nil when not configured. HTTPS makes the session cookies `Secure`.
    public var publicURL: URL? = nil
    /// The directory holding what a new host downloads for the one-line install (the static agent binary
    /// `crowsnest-agent`, `crowsnest-agent.service`, `agent.yaml`, the `install.sh` template); nil: the
    /// `agent-downloads` directory next to the server's executable. Missing files turn the one-line install off.
    public var agentDownloadsDirectory: String? = nil
    /// Most entries in `agent_addresses`.
    public static let maximumAgentAddresses = 16

    /// Settings a configuration file may hold.
    public static let knownKeys: Set<String> = [
        "data_dir", "database_url", "agent_listen", "http_listen", "server_names", "postgres_user", "log_level", "log_format",
        "secret_key_file", "agent_certificate_days", "trusted_proxies", "enrollments_per_minute",
        "check_lease_ttl_seconds", "agent_silence_limit_seconds", "agent_addresses", "api_requests_per_minute",
        "raw_retention_days", "span_retention_days", "public_url", "agent_downloads",
    ]

    public static let defaultDataDirectory = "/var/lib/crowsnest"

    /// Merges the layers; one `ConfigurationError` line for the first bad value.
    public static func load(file: String?, environment: [String: String], flags: [String: String?]) throws -> ServerConfiguration {
        let layers = try LayeredConfiguration(file: file, environment: environment, flags: flags, knownKeys: knownKeys)
        let levelText = layers.string("log_level", default: "info")
        guard let level = Logger.Level(rawValue: levelText) else {
            throw ConfigurationError("\(layers.source(of: "log_level")): log level must be one of trace, debug, info, notice, warning, error, critical; got '\(levelText)'")
        }
        let formatText = layers.string("log_format", default: "text")
        guard let format = LogFormat(rawValue: formatText) else {
            throw ConfigurationError("\(layers.source(of: "log_format")): log format must be text or json; got '\(formatText)'")
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
        let enrollments = try layers.wholeNumber("enrollments_per_minute", default: 30, in: 1...100_000,
                                                 meaning: "enrollment attempts per address and minute")
        let ttl = try layers.wholeNumber("check_lease_ttl_seconds", default: 10, in: 2...300, meaning: "check lease ttl", unit: "seconds")
        let silence = try layers.wholeNumber("agent_silence_limit_seconds", default: 35, in: 2...3600,
                                             meaning: "agent silence limit", unit: "seconds")
        let apiLimit = try layers.wholeNumber("api_requests_per_minute", default: APIRateLimitMiddleware.defaultRequestsPerMinute,
                                              in: 1...10_000_000, meaning: "API requests per key and minute")
        let rawDays = try layers.wholeNumber("raw_retention_days", default: 30, in: 1...3650, meaning: "raw sample retention", unit: "days")
        let spanDays = try layers.wholeNumber("span_retention_days", default: 400, in: 1...36500, meaning: "span retention", unit: "days")
        let publicURL = try Self.publicURL(layers)
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
        var downloads = layers.string("agent_downloads")
        if downloads?.isEmpty == true { downloads = nil }
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
            logFormat: format,
            agentCertificateDays: certificateDays,
            trustedProxies: trustedProxies,
            enrollmentsPerMinutePerAddress: enrollments,
            checkLeaseTTLSeconds: ttl,
            agentSilenceLimitSeconds: silence,
            agentAddresses: agentAddresses,
            apiRequestsPerMinute: apiLimit,
            rawRetentionDays: rawDays,
            spanRetentionDays: spanDays,
            publicURL: publicURL,
            agentDownloadsDirectory: downloads.map { URL(fileURLWithPath: $0).standardizedFileURL.path })
    }

    /// `public_url`: where people reach the web pages (`https://monitor.example.com`), scheme and host with an
    /// optional port, nothing after. Cookies are `Secure` when it is HTTPS.
    static func publicURL(_ layers: LayeredConfiguration) throws -> URL? {
        guard let text = layers.string("public_url"), !text.isEmpty else { return nil }
        let trimmed = text.hasSuffix("/") ? String(text.dropLast()) : text
        guard let url = URL(string: trimmed), let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https",
              let host = url.host, !host.isEmpty, url.path.isEmpty, url.query == nil, url.fragment == nil, url.user == nil else {
            throw ConfigurationError("\(layers.source(of: "public_url")): the public URL must be http:// or https:// with a host and nothing after it (e.g. https://monitor.example.com); got '\(text)'")
        }
        return url
    }
}

extension ServerConfiguration {
    /// Loads (or on first start creates) the CA and serving certificate, with the configured extra names:
    /// entries that parse as IP addresses become IP SANs, the rest DNS names.
    public static func loadAuthority(dataDirectory: String, serverNames: [String], logger: Logger) throws -> CertificateAuthority {
        let (names, ips) = splitServerNames(serverNames)
        return try CertificateAuthority.loadOrCreate(directory: dataDirectory, serverNames: names, serverIPs: ips, logger: logger)
    }

    /// The server's secret key: it seals the CA's private key and alert channels' secrets in the database. The
    /// embedded database keeps it in the data directory (created on the first start); with a database URL every
    /// replica reads the same `secret_key_file`.
    public func loadSecretKey() throws -> SecretKey {
        if let secretKeyFile {
            return databaseURL == nil ? try SecretKey.loadOrCreate(path: secretKeyFile) : try SecretKey.load(path: secretKeyFile)
        } else if databaseURL == nil {
            return try SecretKey.loadOrCreate(path: dataDirectory + "/" + SecretKey.defaultFileName)
        }
        throw SecretKeyError("serving with a database URL needs secret_key_file (CROWSNEST_SECRET_KEY_FILE): the CA's "
            + "private key and alert channels' secrets are kept in the database sealed with it, and every replica needs the same file")
    }

    /// The CA from the database (created, or imported from the data directory, on the first start) and the
    /// serving certificate in the data directory, issued from it for the configured names.
    public func loadAuthority(client: PostgresClient, logger: Logger) async throws -> CertificateAuthority {
        let secret = try loadSecretKey()
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
