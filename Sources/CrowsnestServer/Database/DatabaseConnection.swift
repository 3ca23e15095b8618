import Foundation
import Logging
import NIOSSL
import PostgresNIO

/// Why a database URL could not be turned into a connection configuration.
public struct DatabaseURLError: Error, CustomStringConvertible, Sendable {
    /// Human-readable reason, never containing the password.
    public let description: String
}

/// Builds `PostgresClient`s for the server's store, from a `postgres://` URL or from the embedded cluster.
///
/// The caller owns the client's lifetime: run `client.run()` in a task or a ServiceLifecycle service group,
/// and cancel it at shutdown.
public enum DatabaseConnection {
    /// Client configuration for a libpq-style URL:
    /// `postgres[ql]://user:password@host:port/database?sslmode=disable`.
    ///
    /// Supported query parameters: `sslmode` (`disable`, `allow`, `prefer` (default), `require`, `verify-ca`,
    /// `verify-full`, with libpq's meaning), `sslrootcert` (CA file; with `require` it then verifies the chain),
    /// `host` (a directory holding the unix socket, as in `postgres://user@/db?host=/var/run/postgresql`),
    /// `connect_timeout` (seconds) and `application_name`. The database defaults to the user name.
    public static func clientConfiguration(url: String) throws -> PostgresClient.Configuration {
        guard let components = URLComponents(string: url) else {
            throw DatabaseURLError(description: "database URL \(redact(url)) is not a valid URL")
        }
        guard let scheme = components.scheme?.lowercased(), scheme == "postgres" || scheme == "postgresql" else {
            throw DatabaseURLError(
                description: "database URL \(redact(url)) must start with postgres:// or postgresql://")
        }
        guard let username = components.user, !username.isEmpty else {
            throw DatabaseURLError(description: "database URL \(redact(url)) names no user (postgres://USER@host/db)")
        }
        let password = components.password
        var database = components.path
        if database.hasPrefix("/") { database.removeFirst() }
        if database.isEmpty { database = username }
        let port = components.port ?? 5432

        var host = components.host ?? ""
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        host = host.removingPercentEncoding ?? host

        var sslMode = "prefer"
        var rootCertificate: String?
        var connectTimeout: Int?
        var applicationName: String?
        for item in components.queryItems ?? [] {
            let value = item.value ?? ""
            switch item.name {
            case "sslmode": sslMode = value
            case "sslrootcert": rootCertificate = value
            case "host": host = value
            case "connect_timeout":
                guard let seconds = Int(value), seconds > 0 else {
                    throw DatabaseURLError(description: "database URL connect_timeout must be a positive number of seconds, got '\(value)'")
                }
                connectTimeout = seconds
            case "application_name": applicationName = value
            default:
                throw DatabaseURLError(
                    description: "database URL parameter '\(item.name)' is not supported "
                        + "(supported: sslmode, sslrootcert, host, connect_timeout, application_name)")
            }
        }

        var configuration: PostgresClient.Configuration
        if host.hasPrefix("/") {
            configuration = PostgresClient.Configuration(
                unixSocketPath: host + "/.s.PGSQL.\(port)", username: username, password: password, database: database)
        } else {
            if host.isEmpty { host = "localhost" }
            configuration = PostgresClient.Configuration(
                host: host, port: port, username: username, password: password, database: database,
                tls: try tls(mode: sslMode, rootCertificate: rootCertificate))
        }
        if let connectTimeout { configuration.options.connectTimeout = .seconds(connectTimeout) }
        if let applicationName {
            configuration.options.additionalStartupParameters.append(("application_name", applicationName))
        }
        return configuration
    }

    /// Client configuration for the embedded cluster's unix socket (user and database `crowsnest`, the password
    /// from the data directory).
    public static func clientConfiguration(embedded: EmbeddedPostgres) throws -> PostgresClient.Configuration {
        PostgresClient.Configuration(
            unixSocketPath: embedded.socketPath, username: EmbeddedPostgres.username, password: try embedded.password(),
            database: EmbeddedPostgres.databaseName)
    }

    /// A client for the database at `url`; run `client.run()` before using it.
    public static func makeClient(url: String, logger: Logger) throws -> PostgresClient {
        PostgresClient(configuration: try clientConfiguration(url: url), backgroundLogger: logger)
    }

    /// A client for the embedded cluster (which must be started); run `client.run()` before using it.
    public static func makeClient(embedded: EmbeddedPostgres, logger: Logger) throws -> PostgresClient {
        PostgresClient(configuration: try clientConfiguration(embedded: embedded), backgroundLogger: logger)
    }

    /// The URL with its password replaced by `***`, safe for logs and error messages.
    public static func redact(_ url: String) -> String {
        guard var components = URLComponents(string: url), components.password != nil else { return url }
        components.password = "***"
        return components.string ?? "<database URL>"
    }

    /// A readable one-line description of a PostgresNIO error: postgres-nio's own `description` hides the server's
    /// message, so this spells out SQLSTATE, message, detail and hint (or the connection problem).
    public static func describe(_ error: any Error) -> String {
        if let transaction = error as? PostgresTransactionError {
            if let closure = transaction.closureError { return describe(closure) }
            if let begin = transaction.beginError { return "BEGIN failed: " + describe(begin) }
            if let commit = transaction.commitError { return "COMMIT failed: " + describe(commit) }
            if let rollback = transaction.rollbackError { return "ROLLBACK failed: " + describe(rollback) }
        }
        guard let psql = error as? PSQLError else { return "\(error)" }
        if let info = psql.serverInfo {
            var text = "\(info[.severity] ?? "ERROR") \(info[.sqlState] ?? "?????"): \(info[.message] ?? "(no message)")"
            if let detail = info[.detail] { text += "; detail: \(detail)" }
            if let hint = info[.hint] { text += "; hint: \(hint)" }
            if let context = info[.locationContext] { text += "; context: \(context)" }
            return text
        }
        var text = "\(psql.code)"
        if let underlying = psql.underlying { text += ": \(underlying)" }
        return text
    }

    private static func tls(mode: String, rootCertificate: String?) throws -> PostgresClient.Configuration.TLS {
        var configuration = TLSConfiguration.makeClientConfiguration()
        if let rootCertificate { configuration.trustRoots = .file(rootCertificate) }
        switch mode {
        case "disable":
            return .disable
        case "allow", "prefer":
            configuration.certificateVerification = .none
            return .prefer(configuration)
        case "require":
            configuration.certificateVerification = rootCertificate == nil ? .none : .noHostnameVerification
            return .require(configuration)
        case "verify-ca":
            configuration.certificateVerification = .noHostnameVerification
            return .require(configuration)
        case "verify-full":
            configuration.certificateVerification = .fullVerification
            return .require(configuration)
        default:
            throw DatabaseURLError(
                description: "database URL sslmode '\(mode)' is not one of disable, allow, prefer, require, verify-ca, verify-full")
        }
    }
}
