import CrowsnestWire
import Foundation

/// Validates the `options` object of one check type, filling in defaults; unknown options are refused by name.
struct CheckOptionsParser {
    let type: CheckType
    let target: String
    let intervalSeconds: Int
    let timeoutMs: Int

    static let httpMethods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    static let dnsRecordTypes = ["A", "AAAA", "CNAME", "MX", "TXT", "NS"]
    /// Headers the prober sets itself.
    static let reservedHeaders: Set<String> = ["content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te", "trailer"]
    static let maximumHeaders = 50
    static let maximumHeaderValueLength = 4096
    static let maximumHeaderBytes = 16 * 1024
    static let maximumBodyBytes = 64 * 1024
    static let maximumPatternLength = 1024
    static let maximumStatusRanges = 20
    static let maximumDays = 3650

    /// The option names each type takes.
    static func names(of type: CheckType) -> [String] {
        switch type {
        case .http:
            return ["method", "headers", "body", "expected_status", "keyword", "keyword_absent", "regex", "json_path",
                    "json_equals", "max_latency_ms", "follow_redirects", "certificate_min_days", "verify_tls"]
        case .dns: return ["record_type", "expected", "resolver"]
        case .tls: return ["server_name", "min_days"]
        case .postgres: return ["max_replication_lag_seconds"]
        case .docker: return ["require_healthy"]
        case .push: return ["grace_seconds"]
        case .tcp, .nginx: return []
        }
    }

    func parse(_ value: JSONValue?) throws -> CheckOptions {
        let fields = try JSONFields(value ?? .object([:]), path: "options", what: "options")
        try fields.refuseUnknown(allowed: Self.names(of: type), known: "\(type.rawValue) checks take")
        switch type {
        case .http: return .http(try http(fields))
        case .tcp: return .tcp
        case .nginx: return .nginx
        case .dns: return .dns(try dns(fields))
        case .tls:
            var tls = TLSCheckOptions()
            tls.serverName = try fields.text("server_name", required: false, maximumLength: 253)
            if let name = tls.serverName, let problem = CheckTargetSyntax.dnsNameProblem(name) {
                throw fields.error("server_name", problem)
            }
            tls.minDays = try fields.integer("min_days", in: 0...Self.maximumDays)
            return .tls(tls)
        case .postgres:
            return .postgres(maxReplicationLagSeconds: try fields.number("max_replication_lag_seconds", in: 0...86_400))
        case .docker:
            return .docker(requireHealthy: try fields.bool("require_healthy") ?? false)
        case .push:
            return .push(graceSeconds: try fields.integer("grace_seconds", in: 0...86_400) ?? intervalSeconds)
        }
    }

    private func http(_ fields: JSONFields) throws -> HTTPCheckOptions {
        var http = HTTPCheckOptions()
        if let method = try fields.text("method", required: false, maximumLength: 20) {
            guard Self.httpMethods.contains(method.uppercased()) else {
                throw fields.error("method", "must be one of \(Self.httpMethods.joined(separator: ", ")) (got \"\(method)\")")
            }
            http.method = method.uppercased()
        }
        http.headers = try headers(fields)
        if let body = try fields.text("body", required: false, maximumLength: Self.maximumBodyBytes) {
            guard body.utf8.count <= Self.maximumBodyBytes else {
                throw fields.error("body", "must be at most \(Self.maximumBodyBytes) bytes of UTF-8 (got \(body.utf8.count))")
            }
            http.body = body
        }
        if let statuses = try expectedStatus(fields) { http.expectedStatus = statuses }

        http.keyword = try fields.text("keyword", required: false, maximumLength: Self.maximumPatternLength)
        if http.keyword == "" { throw fields.error("keyword", "must not be empty (leave it out to check no keyword)") }
        if let absent = try fields.bool("keyword_absent") {
            guard http.keyword != nil else {
                throw fields.error("keyword_absent", "needs keyword: it says whether keyword must be absent instead of present")
            }
            http.keywordAbsent = absent
        }
        http.regex = try fields.text("regex", required: false, maximumLength: Self.maximumPatternLength)
        if let regex = http.regex {
            do {
                _ = try Regex(regex)
            } catch {
                throw fields.error("regex", "is not a valid regular expression: \(error)")
            }
        }

        http.jsonPath = try fields.text("json_path", required: false, maximumLength: Self.maximumPatternLength, controlCharacters: false)
        if let path = http.jsonPath, let problem = Self.jsonPathProblem(path) {
            throw fields.error("json_path", problem)
        }
        http.jsonEquals = try jsonEquals(fields)
        if http.jsonPath != nil, http.jsonEquals == nil {
            throw fields.error("json_equals", "is required with json_path: the value the JSON at that path must equal")
        }
        if http.jsonPath == nil, http.jsonEquals != nil {
            throw fields.error("json_path", "is required with json_equals: where in the JSON response to look, such as $.status")
        }

        http.maxLatencyMs = try fields.integer("max_latency_ms", in: 1...timeoutMs, note: "at most timeout_ms")
        http.followRedirects = try fields.bool("follow_redirects") ?? true
        http.certificateMinDays = try fields.integer("certificate_min_days", in: 0...Self.maximumDays)
        if http.certificateMinDays != nil, !target.lowercased().hasPrefix("https:") {
            throw fields.error("certificate_min_days", "applies only to https targets (the target is \"\(target)\")")
        }
        if let verify = try fields.bool("verify_tls") {
            guard target.lowercased().hasPrefix("https:") else {
                throw fields.error("verify_tls", "applies only to https targets (the target is \"\(target)\")")
            }
            http.verifyTLS = verify
        }
        return http
    }

    /// `headers`: an object of header names (RFC 9110 tokens) to string values.
    private func headers(_ fields: JSONFields) throws -> [String: String] {
        guard let value = fields.value("headers") else { return [:] }
        guard case .object(let object) = value else {
            throw fields.error("headers", "must be an object of header names to values (got \(value.kindDescription))")
        }
        guard object.count <= Self.maximumHeaders else {
            throw fields.error("headers", "must hold at most \(Self.maximumHeaders) headers (got \(object.count))")
        }
        var headers: [String: String] = [:]
        var bytes = 0
        for (name, item) in object.sorted(by: { $0.key < $1.key }) {
            let field = "headers.\(name)"
            let tokenCharacters = "!#$%&'*+-.^_`|~"
            guard !name.isEmpty, name.utf8.count <= 128,
                  name.unicodeScalars.allSatisfy({ $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || tokenCharacters.unicodeScalars.contains($0)) })
            else {
                throw fields.error("headers", "has an invalid header name \"\(name)\": use 1 to 128 letters, digits and !#$%&'*+-.^_`|~")
            }
            guard !Self.reservedHeaders.contains(name.lowercased()) else {
                throw fields.error(field, "is set by the prober itself and cannot be given")
            }
            guard case .string(let text) = item else {
                throw fields.error(field, "must be a string (got \(item.kindDescription))")
            }
            guard text.unicodeScalars.count <= Self.maximumHeaderValueLength,
                  !text.unicodeScalars.contains(where: { CheckTargetSyntax.isControl($0) && $0 != "\t" })
            else {
                throw fields.error(field, "must be at most \(Self.maximumHeaderValueLength) characters without line breaks or other control characters")
            }
            bytes += name.utf8.count + text.utf8.count
            headers[name] = text
        }
        guard bytes <= Self.maximumHeaderBytes else {
            throw fields.error("headers", "must total at most \(Self.maximumHeaderBytes) bytes of names and values (got \(bytes))")
        }
        return headers
    }

    /// `expected_status`: `"200-299"`, `"204"`, `204`, or a list of those.
    private func expectedStatus(_ fields: JSONFields) throws -> [HTTPStatusRange]? {
        guard let value = fields.value("expected_status") else { return nil }
        let items: [(String, JSONValue)]
        if case .array(let list) = value {
            guard (1...Self.maximumStatusRanges).contains(list.count) else {
                throw fields.error("expected_status", "must hold 1 to \(Self.maximumStatusRanges) entries (got \(list.count))")
            }
            items = list.enumerated().map { ("expected_status[\($0.offset)]", $0.element) }
        } else {
            items = [("expected_status", value)]
        }
        return try items.map { field, item in
            let problem = "must be a status code from 100 to 599 or a range such as \"200-299\""
            switch item {
            case .integer(let code) where (100...599).contains(code):
                return HTTPStatusRange(lower: Int(code), upper: Int(code))
            case .string(let text):
                let bounds = text.split(separator: "-", omittingEmptySubsequences: false)
                let codes = bounds.compactMap { $0.count == 3 ? Int($0) : nil }
                guard (1...2).contains(bounds.count), codes.count == bounds.count, codes.allSatisfy({ (100...599).contains($0) }),
                      codes.first! <= codes.last!
                else {
                    throw fields.error(field, "\(problem) (got \"\(text)\")")
                }
                return HTTPStatusRange(lower: codes.first!, upper: codes.last!)
            default:
                throw fields.error(field, "\(problem) (got \(item.kindDescription == "a number" ? "\(item.jsonText)" : item.kindDescription))")
            }
        }
    }

    /// `json_equals`: a string, number or boolean to compare the value at `json_path` with.
    private func jsonEquals(_ fields: JSONFields) throws -> JSONValue? {
        guard let value = fields.value("json_equals") else { return nil }
        switch value {
        case .string(let text):
            if let problem = JSONFields.textProblem(text, maximumLength: Self.maximumPatternLength, controlCharacters: true) {
                throw fields.error("json_equals", problem)
            }
            return value
        case .integer, .number, .bool:
            return value
        default:
            throw fields.error("json_equals", "must be a string, number or boolean (got \(value.kindDescription))")
        }
    }

    private func dns(_ fields: JSONFields) throws -> DNSCheckOptions {
        var dns = DNSCheckOptions()
        if let recordType = try fields.text("record_type", required: false, maximumLength: 10) {
            guard Self.dnsRecordTypes.contains(recordType.uppercased()) else {
                throw fields.error("record_type", "must be one of \(Self.dnsRecordTypes.joined(separator: ", ")) (got \"\(recordType)\")")
            }
            dns.recordType = recordType.uppercased()
        }
        dns.expected = try fields.textList("expected", maximumCount: 20, maximumLength: 255) ?? []
        dns.resolver = try fields.text("resolver", required: false, maximumLength: 300)
        if let resolver = dns.resolver, let problem = CheckTargetSyntax.hostOptionalPortProblem(resolver) {
            throw fields.error("resolver", problem)
        }
        return dns
    }

    /// A JSONPath of member and index steps: `$`, `$.status`, `$.items[0].name`, `$['a key']`.
    static func jsonPathProblem(_ path: String) -> String? {
        JSONPath(path) == nil
            ? "must be a JSONPath of member and index steps such as $.status or $.items[0]['a key'] (got \"\(path)\")"
            : nil
    }
}
