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

    init(_ options: [String: String]) throws {
        func value(_ name: String) throws -> JSONValue? {
            guard let text = options[name] else { return nil }
            do {
                let value = try JSONValue.parse(Data(text.utf8))
                return value == .null ? nil : value
            } catch {
                throw ProbeFailure("option \(name) is not JSON: \(text)")
            }
        }
        func string(_ name: String) throws -> String? {
            guard let found = try value(name) else { return nil }
            guard case .string(let text) = found else { throw ProbeFailure("option \(name) must be a string") }
            return text
        }
        func integer(_ name: String) throws -> Int? {
            guard let found = try value(name) else { return nil }
            guard case .integer(let number) = found else { throw ProbeFailure("option \(name) must be an integer") }
            return Int(clamping: number)
        }
        func bool(_ name: String) throws -> Bool? {
            guard let found = try value(name) else { return nil }
            guard case .bool(let flag) = found else { throw ProbeFailure("option \(name) must be true or false") }
            return flag
        }
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
        if let limit = try value("max_latency_ms") {
            switch limit {
            case .integer(let number): maxLatencyMs = Double(number)
            case .number(let number): maxLatencyMs = number
            default: throw ProbeFailure("option max_latency_ms must be a number")
            }
        }
        followRedirects = try bool("follow_redirects") ?? true
        certificateMinDays = try integer("certificate_min_days")
    }
}
