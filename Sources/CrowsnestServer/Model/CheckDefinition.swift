import CrowsnestWire
import Foundation

/// What a check probes.
public enum CheckType: String, CaseIterable, Sendable, Codable {
    case http, tcp, dns, tls, postgres, nginx, docker, push
}

/// Where a check runs.
public enum CheckPlacement: Equatable, Sendable {
    /// Any connected agent of the tenant.
    case any
    /// Agents carrying every one of these `key=value` labels.
    case labels([String])
    /// Every agent carrying these labels (all agents when empty); down when at least `quorum` report down.
    case all(labels: [String], quorum: Int)
    /// The server replicas (public endpoints).
    case server

    /// The `run_on` object as stored and served.
    public var json: JSONValue {
        switch self {
        case .any: return .object(["mode": .string("any")])
        case .server: return .object(["mode": .string("server")])
        case .labels(let labels):
            return .object(["mode": .string("labels"), "labels": .array(labels.map(JSONValue.string))])
        case .all(let labels, let quorum):
            return .object(["mode": .string("all"), "labels": .array(labels.map(JSONValue.string)),
                            "quorum": .integer(Int64(quorum))])
        }
    }
}

/// An HTTP status range, inclusive (`200-299`, or one code as `204`).
public struct HTTPStatusRange: Equatable, Sendable {
    public var lower: Int
    public var upper: Int

    public var text: String { lower == upper ? "\(lower)" : "\(lower)-\(upper)" }
}

/// Options of an `http` check.
public struct HTTPCheckOptions: Equatable, Sendable {
    public var method = "GET"
    public var headers: [String: String] = [:]
    public var body: String?
    public var expectedStatus = [HTTPStatusRange(lower: 200, upper: 299)]
    public var keyword: String?
    /// The check fails when `keyword` is present instead of absent.
    public var keywordAbsent = false
    public var regex: String?
    public var jsonPath: String?
    public var jsonEquals: JSONValue?
    public var maxLatencyMs: Int?
    public var followRedirects = true
    /// The check fails when the server's certificate expires within this many days (https only).
    public var certificateMinDays: Int?
    /// Whether the certificate must be trusted and for the host (https only); false accepts self-signed and
    /// expired certificates and still reports the chain's earliest expiry.
    public var verifyTLS = true
}

/// Options of a `dns` check.
public struct DNSCheckOptions: Equatable, Sendable {
    public var recordType = "A"
    /// Answers that must all be present; empty = any answer will do.
    public var expected: [String] = []
    /// `host[:port]` of the resolver to ask; nil = the runner's own resolver.
    public var resolver: String?
}

/// Options of a `tls` check.
public struct TLSCheckOptions: Equatable, Sendable {
    /// SNI and the name the certificate must match; nil = the target's host.
    public var serverName: String?
    /// The check fails when a certificate in the chain expires within this many days.
    public var minDays: Int?
}

/// Type-specific options of a check; the case is the check's type.
public enum CheckOptions: Equatable, Sendable {
    case http(HTTPCheckOptions)
    case tcp
    case dns(DNSCheckOptions)
    case tls(TLSCheckOptions)
    case postgres(maxReplicationLagSeconds: Double?)
    case nginx
    case docker(requireHealthy: Bool)
    /// A push check is down when no call arrived within interval + `graceSeconds`.
    case push(graceSeconds: Int)

    public var type: CheckType {
        switch self {
        case .http: return .http
        case .tcp: return .tcp
        case .dns: return .dns
        case .tls: return .tls
        case .postgres: return .postgres
        case .nginx: return .nginx
        case .docker: return .docker
        case .push: return .push
        }
    }

    /// The `options` object as stored and served, defaults included.
    public var json: JSONValue {
        var object: [String: JSONValue] = [:]
        switch self {
        case .http(let http):
            object["method"] = .string(http.method)
            if !http.headers.isEmpty { object["headers"] = .object(http.headers.mapValues(JSONValue.string)) }
            object["body"] = http.body.map(JSONValue.string)
            object["expected_status"] = .array(http.expectedStatus.map { .string($0.text) })
            object["keyword"] = http.keyword.map(JSONValue.string)
            if http.keyword != nil { object["keyword_absent"] = .bool(http.keywordAbsent) }
            object["regex"] = http.regex.map(JSONValue.string)
            object["json_path"] = http.jsonPath.map(JSONValue.string)
            object["json_equals"] = http.jsonEquals
            object["max_latency_ms"] = http.maxLatencyMs.map { .integer(Int64($0)) }
            object["follow_redirects"] = .bool(http.followRedirects)
            object["certificate_min_days"] = http.certificateMinDays.map { .integer(Int64($0)) }
            if !http.verifyTLS { object["verify_tls"] = .bool(false) }
        case .dns(let dns):
            object["record_type"] = .string(dns.recordType)
            if !dns.expected.isEmpty { object["expected"] = .array(dns.expected.map(JSONValue.string)) }
            object["resolver"] = dns.resolver.map(JSONValue.string)
        case .tls(let tls):
            object["server_name"] = tls.serverName.map(JSONValue.string)
            object["min_days"] = tls.minDays.map { .integer(Int64($0)) }
        case .postgres(let lag):
            object["max_replication_lag_seconds"] = lag.map { $0 == $0.rounded() ? .integer(Int64($0)) : .number($0) }
        case .docker(let requireHealthy):
            object["require_healthy"] = .bool(requireHealthy)
        case .push(let grace):
            object["grace_seconds"] = .integer(Int64(grace))
        case .tcp, .nginx:
            break
        }
        return .object(object)
    }
}

/// A validated check definition: everything an operator sets, nothing the server keeps about it.
/// Built only by `CheckDefinition.parse` (Model/CheckValidation.swift), so every instance is within bounds.
public struct CheckDefinition: Equatable, Sendable {
    public var name: String
    /// '' for push checks.
    public var target: String
    public var intervalSeconds: Int
    public var timeoutMs: Int
    public var retries: Int
    /// `.server` for push checks (they have no placement).
    public var placement: CheckPlacement
    public var options: CheckOptions

    public var type: CheckType { options.type }
}
