import CrowsnestWire
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The options of an `http` check as they travel in `Assign.options` (each a JSON text, keyed by the name the API
/// uses), with the API's defaults for those left out.
struct HTTPProbeOptions: Sendable {
    var method = "GET"
    var headers: [(String, String)] = []
    var body: String?
    var expectedStatus: [ClosedRange<Int>] = [200...299]
    var keyword: String?
    var keywordAbsent = false
    var regex: String?
    var jsonPath: JSONPath?
    var jsonEquals: JSONValue?
    var maxLatencyMs: Double?
    var followRedirects = true
    var certificateMinDays: Int?

    /// Whether the server's certificate must be trusted by the system's roots and be for the URL's host; when
    /// false any certificate is accepted and the whole chain's earliest expiry is reported.
    var verifyTLS = true

    init(_ texts: [String: String]) throws {
        let options = ProbeOptions(texts)
        func value(_ name: String) throws -> JSONValue? { try options.value(name) }
        func string(_ name: String) throws -> String? { try options.string(name) }
        func integer(_ name: String) throws -> Int? { try options.integer(name) }
        func bool(_ name: String) throws -> Bool? { try options.bool(name) }
        if let method = try string("method") { self.method = method.uppercased() }
        if case .object(let headers)? = try value("headers") {
            for name in headers.keys.sorted() {
                guard case .string(let text)? = headers[name] else { throw ProbeFailure("header \(name) must be a string") }
                self.headers.append((name, text))
            }
        }
        body = try string("body")
        if case .array(let ranges)? = try value("expected_status") {
            expectedStatus = try ranges.map { entry in
                guard case .string(let text) = entry else { throw ProbeFailure("expected_status entries must be strings like 200-299") }
                let bounds = text.split(separator: "-", maxSplits: 1).map { Int($0) }
                guard let lower = bounds.first ?? nil, let upper = bounds.count == 2 ? bounds[1] : lower, lower <= upper else {
                    throw ProbeFailure("expected_status entry \(text) is not a status or range like 200-299")
                }
                return lower...upper
            }
        }
        keyword = try string("keyword")
        keywordAbsent = try bool("keyword_absent") ?? false
        regex = try string("regex")
        if let path = try string("json_path") {
            guard let parsed = JSONPath(path) else { throw ProbeFailure("json_path \(path) is not a JSONPath") }
            jsonPath = parsed
        }
        jsonEquals = try value("json_equals")
        maxLatencyMs = try options.number("max_latency_ms")
        followRedirects = try bool("follow_redirects") ?? true
        certificateMinDays = try integer("certificate_min_days")
        verifyTLS = try bool("verify_tls") ?? true
    }
}
