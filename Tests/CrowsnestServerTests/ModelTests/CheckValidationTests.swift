import CrowsnestWire
import Foundation
import XCTest

@testable import CrowsnestServer

/// Check definitions as clients submit them: defaults filled in, and every refusal naming its field.
final class CheckValidationTests: XCTestCase {
    private func parse(_ json: String) throws -> CheckSubmission {
        try CheckDefinition.parse(JSONValue.parse(Data(json.utf8)))
    }

    /// The refusal of `json`; fails the test when it is accepted or refused for another reason.
    private func refusal(_ json: String, file: StaticString = #filePath, line: UInt = #line) -> CheckValidationError? {
        do {
            let accepted = try parse(json)
            XCTFail("accepted: \(json) as \(accepted)", file: file, line: line)
        } catch let error as CheckValidationError {
            return error
        } catch {
            XCTFail("not a validation error: \(error)", file: file, line: line)
        }
        return nil
    }

    /// Asserts that `json` is refused on `field`, with a message that starts with the field and contains `words`.
    private func assertRefused(_ json: String, field: String, _ words: String..., file: StaticString = #filePath, line: UInt = #line) {
        guard let error = refusal(json, file: file, line: line) else { return }
        XCTAssertEqual(error.field, field, "\(json): \(error)", file: file, line: line)
        XCTAssertTrue(error.description.hasPrefix(field), "\(error.description) does not start with \(field)", file: file, line: line)
        for word in words {
            XCTAssertTrue(error.description.contains(word), "\"\(error.description)\" lacks \"\(word)\"", file: file, line: line)
        }
    }

    private func http(_ extra: String = "", target: String = "https://example.com/health") -> String {
        #"{"name":"site","type":"http","target":"\#(target)""# + (extra.isEmpty ? "" : ",\(extra)") + "}"
    }

    private func options(_ type: String, target: String, _ options: String) -> String {
        #"{"name":"c","type":"\#(type)","target":"\#(target)","options":{\#(options)}}"#
    }

    // MARK: - Accepted, with defaults

    func testAMinimalHTTPCheckGetsEveryDefault() throws {
        let submission = try parse(http())
        let check = submission.definition
        XCTAssertEqual(check.name, "site")
        XCTAssertEqual(check.type, .http)
        XCTAssertEqual(check.intervalSeconds, 30)
        XCTAssertEqual(check.timeoutMs, 24_000, "80 % of the interval")
        XCTAssertEqual(check.retries, 0)
        XCTAssertEqual(check.placement, .any)
        XCTAssertNil(submission.paused)
        XCTAssertEqual(check.options.json, .object([
            "method": .string("GET"), "expected_status": .array([.string("200-299")]), "follow_redirects": .bool(true),
        ]))
    }

    func testTheTimeoutDefaultFollowsTheInterval() throws {
        XCTAssertEqual(try parse(http(#""interval_seconds":5"#)).definition.timeoutMs, 4000)
        XCTAssertEqual(try parse(http(#""interval_seconds":86400"#)).definition.timeoutMs, 69_120_000)
        XCTAssertEqual(try parse(http(#""interval_seconds":60,"timeout_ms":60000"#)).definition.timeoutMs, 60_000)
    }

    func testEveryHTTPOptionIsKeptInCanonicalForm() throws {
        let check = try parse(http(#"""
            "interval_seconds":60,"timeout_ms":5000,"retries":2,"paused":true,
            "options":{"method":"post","headers":{"Authorization":"Bearer x","X-Trace":"1"},"body":"{\"a\":1}\n",
            "expected_status":[200,"301-302"],"keyword":"ok","keyword_absent":true,"regex":"^up ([0-9]+)$",
            "json_path":"$.items[0]['state']","json_equals":"up","max_latency_ms":5000,"follow_redirects":false,
            "certificate_min_days":14,"verify_tls":false}
            """#))
        XCTAssertEqual(check.paused, true)
        XCTAssertEqual(check.definition.retries, 2)
        XCTAssertEqual(check.definition.options.json, .object([
            "method": .string("POST"),
            "headers": .object(["Authorization": .string("Bearer x"), "X-Trace": .string("1")]),
            "body": .string("{\"a\":1}\n"),
            "expected_status": .array([.string("200"), .string("301-302")]),
            "keyword": .string("ok"), "keyword_absent": .bool(true), "regex": .string("^up ([0-9]+)$"),
            "json_path": .string("$.items[0]['state']"), "json_equals": .string("up"), "max_latency_ms": .integer(5000),
            "follow_redirects": .bool(false), "certificate_min_days": .integer(14), "verify_tls": .bool(false),
        ]))
    }

    func testEachTypeAcceptsItsTargetAndOptions() throws {
        let accepted: [(String, CheckOptions)] = [
            (options("tcp", target: "[2001:db8::1]:5432", ""), .tcp),
            (options("tcp", target: "10.0.0.7:22", ""), .tcp),
            (options("tls", target: "example.com:443", #""server_name":"www.example.com","min_days":10"#),
             .tls(TLSCheckOptions(serverName: "www.example.com", minDays: 10))),
            (options("dns", target: "example.com.", #""record_type":"mx","expected":"mail.example.com","resolver":"[2001:db8::53]:5353""#),
             .dns(DNSCheckOptions(recordType: "MX", expected: ["mail.example.com"], resolver: "[2001:db8::53]:5353"))),
            (options("dns", target: "_dmarc.example.com", #""record_type":"TXT","expected":["a","b"],"resolver":"2001:db8::53""#),
             .dns(DNSCheckOptions(recordType: "TXT", expected: ["a", "b"], resolver: "2001:db8::53"))),
            (options("postgres", target: "postgresql://monitor:pw@db.internal:5432/app?sslmode=require",
                     #""max_replication_lag_seconds":2.5"#), .postgres(maxReplicationLagSeconds: 2.5)),
            (options("nginx", target: "http://127.0.0.1:8080/nginx_status", ""), .nginx),
            (options("docker", target: "web-1", #""require_healthy":true"#), .docker(requireHealthy: true)),
            (options("docker", target: "label=com.docker.compose.service=web", ""), .docker(requireHealthy: false)),
        ]
        for (json, expected) in accepted {
            XCTAssertEqual(try parse(json).definition.options, expected, json)
        }
    }

    func testPushChecksHaveNoTargetRunOnTheServerAndDefaultTheirGraceToTheInterval() throws {
        let check = try parse(#"{"name":"nightly backup","type":"push","interval_seconds":86400}"#).definition
        XCTAssertEqual(check.target, "")
        XCTAssertEqual(check.placement, .server)
        XCTAssertEqual(check.options, .push(graceSeconds: 86400))
        // What GET shows can be sent back.
        let echoed = try parse(#"{"name":"b","type":"push","target":"","run_on":{"mode":"server"},"options":{"grace_seconds":0}}"#)
        XCTAssertEqual(echoed.definition.options, .push(graceSeconds: 0))
    }

    func testPlacements() throws {
        XCTAssertEqual(try parse(http(#""run_on":{"mode":"server"}"#)).definition.placement, .server)
        XCTAssertEqual(try parse(http(#""run_on":{"mode":"labels","labels":["env=prod","region=eu-west/1"]}"#)).definition.placement,
                       .labels(["env=prod", "region=eu-west/1"]))
        XCTAssertEqual(try parse(http(#""run_on":{"mode":"all","labels":["env=prod"],"quorum":2}"#)).definition.placement,
                       .all(labels: ["env=prod"], quorum: 2))
        XCTAssertEqual(try parse(http(#""run_on":{"mode":"all"}"#)).definition.placement, .all(labels: [], quorum: 1))
        XCTAssertEqual(try parse(http(#""run_on":null"#)).definition.placement, .any)
    }

    func testWhatTheServerSetsAndNullsAreIgnoredSoAGetCanBePutBack() throws {
        let check = try parse(http(#"""
            "id":"k-0c0ffee0-0000-4000-8000-000000000009","state":"up","last_result_at":null,"push_url":null,
            "created_at":"2025-01-31T12:00:00Z","updated_at":"2025-01-31T12:00:00Z","timeout_ms":null,"options":null
            """#)).definition
        XCTAssertEqual(check.timeoutMs, 24_000)
        XCTAssertEqual(check.options, .http(HTTPCheckOptions()))
    }

    func testAStoredDefinitionValidatesAgainUnchanged() throws {
        let original = try parse(http(#""retries":3,"run_on":{"mode":"all","labels":["a=b"],"quorum":2},"options":{"json_path":"$.ok","json_equals":true,"headers":{"A":"b"}}"#)).definition
        let body = JSONValue.object([
            "name": .string(original.name), "type": .string(original.type.rawValue), "target": .string(original.target),
            "interval_seconds": .integer(Int64(original.intervalSeconds)), "timeout_ms": .integer(Int64(original.timeoutMs)),
            "retries": .integer(Int64(original.retries)), "run_on": original.placement.json, "options": original.options.json,
        ])
        XCTAssertEqual(try CheckDefinition.parse(body).definition, original)
    }

    // MARK: - Refused: the body and the common fields

    func testTheBodyMustBeAnObjectWithKnownFields() {
        assertRefused("[]", field: "", "request body must be a JSON object", "an array")
        assertRefused(#"{"name":"a","type":"tcp","target":"h:1","intervall":5}"#, field: "intervall", "not a known field", "interval_seconds")
    }

    func testName() {
        assertRefused(#"{"type":"tcp","target":"h:1"}"#, field: "name", "is required")
        assertRefused(#"{"name":"","type":"tcp","target":"h:1"}"#, field: "name", "must not be empty")
        assertRefused(#"{"name":5,"type":"tcp","target":"h:1"}"#, field: "name", "must be a string", "a number")
        assertRefused(#"{"name":"a\nb","type":"tcp","target":"h:1"}"#, field: "name", "control characters")
        assertRefused(#"{"name":"a\u0000","type":"tcp","target":"h:1"}"#, field: "name", "NUL")
        let long = String(repeating: "é", count: 101)
        assertRefused(#"{"name":"\#(long)","type":"tcp","target":"h:1"}"#, field: "name", "at most 100 characters", "got 101")
        XCTAssertNoThrow(try parse(#"{"name":"\#(String(repeating: "é", count: 100))","type":"tcp","target":"h:1"}"#))
    }

    func testType() {
        assertRefused(#"{"name":"a","target":"h:1"}"#, field: "type", "is required")
        assertRefused(#"{"name":"a","type":"ftp","target":"h:1"}"#, field: "type", "http, tcp, dns, tls, postgres, nginx, docker, push", "\"ftp\"")
    }

    func testTargetIsRequiredAndMatchesItsType() {
        assertRefused(#"{"name":"a","type":"http"}"#, field: "target", "is required for http checks", "https://")
        assertRefused(#"{"name":"a","type":"tcp","target":""}"#, field: "target", "is required for tcp checks")
        assertRefused(http(target: "ftp://example.com/"), field: "target", "scheme http or https", "\"ftp\"")
        assertRefused(http(target: "http:///health"), field: "target", "must name a host")
        assertRefused(http(target: "example.com/health"), field: "target")
        assertRefused(http(target: "https://exa mple.com/"), field: "target", "without spaces")
        assertRefused(http(target: "https://" + String(repeating: "a", count: 2040) + ".com/"), field: "target", "at most 2048")
        assertRefused(options("nginx", target: "127.0.0.1:8080", ""), field: "target")
        assertRefused(options("tcp", target: "example.com", ""), field: "target", "port is missing")
        assertRefused(options("tcp", target: "example.com:70000", ""), field: "target", "port from 1 to 65535")
        assertRefused(options("tls", target: "2001:db8::1:443", ""), field: "target", "[2001:db8::1]:443")
        assertRefused(options("tcp", target: "-bad-.example.com:80", ""), field: "target", "DNS name")
        assertRefused(options("dns", target: "exa mple.com", ""), field: "target", "DNS name")
        assertRefused(options("dns", target: "bücher.example", ""), field: "target", "xn--")
        assertRefused(options("dns", target: String(repeating: "a", count: 64) + ".com", ""), field: "target", "1 to 63")
        assertRefused(options("postgres", target: "mysql://db/app", ""), field: "target", "postgres or postgresql")
        assertRefused(options("postgres", target: "postgres:///app?host=/var/run/postgresql", ""), field: "target", "must name a host")
        assertRefused(options("docker", target: "-web", ""), field: "target", "container name")
        assertRefused(options("docker", target: "label==x", ""), field: "target", "label=key=value")
        assertRefused(#"{"name":"a","type":"push","target":"https://example.com/"}"#, field: "target", "left out for push checks")
    }

    func testIntervalTimeoutAndRetries() {
        assertRefused(http(#""interval_seconds":4"#), field: "interval_seconds", "from 5 to 86400", "got 4")
        assertRefused(http(#""interval_seconds":86401"#), field: "interval_seconds", "from 5 to 86400")
        assertRefused(http(#""interval_seconds":"30""#), field: "interval_seconds", "a string")
        assertRefused(http(#""interval_seconds":30.5"#), field: "interval_seconds", "got 30.5")
        assertRefused(http(#""interval_seconds":1e300"#), field: "interval_seconds")
        assertRefused(http(#""timeout_ms":99"#), field: "timeout_ms", "from 100 to 30000")
        assertRefused(http(#""interval_seconds":10,"timeout_ms":10001"#), field: "timeout_ms", "from 100 to 10000", "the interval")
        assertRefused(http(#""retries":11"#), field: "retries", "from 0 to 10")
        assertRefused(http(#""retries":-1"#), field: "retries")
        assertRefused(http(#""paused":"yes""#), field: "paused", "true or false")
    }

    func testRunOn() {
        assertRefused(http(#""run_on":"any""#), field: "run_on", "must be an object")
        assertRefused(http(#""run_on":{}"#), field: "run_on.mode", "any, labels, all, server", "nothing")
        assertRefused(http(#""run_on":{"mode":"everywhere"}"#), field: "run_on.mode", "\"everywhere\"")
        assertRefused(http(#""run_on":{"mode":"labels"}"#), field: "run_on.labels", "is required with mode labels")
        assertRefused(http(#""run_on":{"mode":"labels","labels":[]}"#), field: "run_on.labels", "1 to 20")
        let many = (0...20).map { "\"k\($0)=v\"" }.joined(separator: ",")
        assertRefused(http(#""run_on":{"mode":"labels","labels":[\#(many)]}"#), field: "run_on.labels", "got 21")
        assertRefused(http(#""run_on":{"mode":"labels","labels":["env=prod","prod"]}"#), field: "run_on.labels[1]", "key=value")
        assertRefused(http(#""run_on":{"mode":"labels","labels":["=prod"]}"#), field: "run_on.labels[0]", "key=value")
        assertRefused(http(#""run_on":{"mode":"labels","labels":["e nv=prod"]}"#), field: "run_on.labels[0]", "key of at most 100")
        assertRefused(http(#""run_on":{"mode":"labels","labels":["a=b","a=b"]}"#), field: "run_on.labels[1]", "repeats")
        assertRefused(http(#""run_on":{"mode":"labels","labels":[1]}"#), field: "run_on.labels[0]", "a number")
        assertRefused(http(#""run_on":{"mode":"labels","labels":["a=b"],"quorum":2}"#), field: "run_on.quorum", "not a known field")
        assertRefused(http(#""run_on":{"mode":"any","labels":["a=b"]}"#), field: "run_on.labels", "not a known field")
        assertRefused(http(#""run_on":{"mode":"all","quorum":0}"#), field: "run_on.quorum", "from 1 to 1000")
        assertRefused(options("docker", target: "web", "").replacingOccurrences(of: "}}", with: #"},"run_on":{"mode":"server"}}"#),
                      field: "run_on.mode", "agent's own host")
        assertRefused(#"{"name":"p","type":"push","run_on":{"mode":"any"}}"#, field: "run_on", "push checks")
    }

    // MARK: - Refused: options

    func testOptionsMustBeAnObjectOfTheTypesOptions() {
        assertRefused(http(#""options":[]"#), field: "options", "must be an object")
        assertRefused(http(#""options":{"methd":"GET"}"#), field: "options.methd", "http checks take method, headers")
        assertRefused(options("tcp", target: "h:1", #""method":"GET""#), field: "options.method", "tcp checks take no options")
        assertRefused(options("nginx", target: "http://h/s", #""keyword":"x""#), field: "options.keyword", "nginx checks take no options")
        assertRefused(options("push", target: "", #""min_days":3"#), field: "options.min_days", "grace_seconds")
    }

    func testHTTPOptions() {
        let o = { (text: String) in self.http(#""options":{\#(text)}"#) }
        assertRefused(o(#""method":"FETCH""#), field: "options.method", "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS")
        assertRefused(o(#""headers":"X-A: b""#), field: "options.headers", "object of header names")
        assertRefused(o(#""headers":{"bad name":"x"}"#), field: "options.headers", "\"bad name\"")
        assertRefused(o(#""headers":{"Content-Length":"5"}"#), field: "options.headers.Content-Length", "set by the prober")
        assertRefused(o(#""headers":{"X-A":"a\r\nX-Injected: 1"}"#), field: "options.headers.X-A", "line breaks")
        assertRefused(o(#""headers":{"X-A":1}"#), field: "options.headers.X-A", "must be a string")
        let manyHeaders = (0...50).map { "\"X-\($0)\":\"v\"" }.joined(separator: ",")
        assertRefused(o(#""headers":{\#(manyHeaders)}"#), field: "options.headers", "at most 50")
        assertRefused(o(#""body":"\#(String(repeating: "a", count: 65537))""#), field: "options.body", "at most 65536")
        assertRefused(o(#""body":"\#(String(repeating: "é", count: 40000))""#), field: "options.body", "bytes of UTF-8")
        assertRefused(o(#""body":"a\u0000""#), field: "options.body", "NUL")
        assertRefused(o(#""expected_status":"99""#), field: "options.expected_status", "100 to 599", "\"99\"")
        assertRefused(o(#""expected_status":"300-200""#), field: "options.expected_status", "\"300-200\"")
        assertRefused(o(#""expected_status":"2xx""#), field: "options.expected_status")
        assertRefused(o(#""expected_status":[]"#), field: "options.expected_status", "1 to 20")
        assertRefused(o(#""expected_status":[200,true]"#), field: "options.expected_status[1]", "a boolean")
        assertRefused(o(#""expected_status":600"#), field: "options.expected_status", "got 600")
        assertRefused(o(#""keyword":"""#), field: "options.keyword", "must not be empty")
        assertRefused(o(#""keyword_absent":true"#), field: "options.keyword_absent", "needs keyword")
        assertRefused(o(#""regex":"(unclosed""#), field: "options.regex", "not a valid regular expression")
        assertRefused(o(#""regex":"\#(String(repeating: "a", count: 1025))""#), field: "options.regex", "at most 1024")
        assertRefused(o(#""json_path":"status","json_equals":1"#), field: "options.json_path", "JSONPath", "$.status")
        assertRefused(o(#""json_path":"$.a[x]","json_equals":1"#), field: "options.json_path", "JSONPath")
        assertRefused(o(#""json_path":"$.ok""#), field: "options.json_equals", "is required with json_path")
        assertRefused(o(#""json_equals":"up""#), field: "options.json_path", "is required with json_equals")
        assertRefused(o(#""json_path":"$.ok","json_equals":{"a":1}"#), field: "options.json_equals", "string, number or boolean")
        assertRefused(o(#""max_latency_ms":24001"#), field: "options.max_latency_ms", "from 1 to 24000", "timeout_ms")
        assertRefused(o(#""follow_redirects":"yes""#), field: "options.follow_redirects", "true or false")
        assertRefused(o(#""certificate_min_days":-1"#), field: "options.certificate_min_days", "from 0 to 3650")
        assertRefused(http(#""options":{"certificate_min_days":7}"#, target: "http://example.com/"),
                      field: "options.certificate_min_days", "only to https targets")
        assertRefused(http(#""options":{"verify_tls":false}"#, target: "http://example.com/"),
                      field: "options.verify_tls", "only to https targets")
        assertRefused(o(#""verify_tls":"no""#), field: "options.verify_tls", "true or false")
    }

    func testOtherTypesOptions() {
        assertRefused(options("dns", target: "example.com", #""record_type":"SRV""#), field: "options.record_type", "A, AAAA, CNAME, MX, TXT, NS")
        assertRefused(options("dns", target: "example.com", #""expected":[]"#), field: "options.expected", "1 to 20")
        assertRefused(options("dns", target: "example.com", #""expected":[""]"#), field: "options.expected[0]", "an empty string")
        assertRefused(options("dns", target: "example.com", #""expected":5"#), field: "options.expected", "a string or a list")
        assertRefused(options("dns", target: "example.com", #""resolver":"dns server!""#), field: "options.resolver")
        assertRefused(options("dns", target: "example.com", #""resolver":"9.9.9.9:0""#), field: "options.resolver", "port from 1 to 65535")
        assertRefused(options("tls", target: "example.com:443", #""server_name":"a b""#), field: "options.server_name", "DNS name")
        assertRefused(options("tls", target: "example.com:443", #""min_days":5000"#), field: "options.min_days", "from 0 to 3650")
        assertRefused(options("postgres", target: "postgres://db/app", #""max_replication_lag_seconds":-1"#),
                      field: "options.max_replication_lag_seconds", "from 0 to 86400")
        assertRefused(options("postgres", target: "postgres://db/app", #""max_replication_lag_seconds":"1""#),
                      field: "options.max_replication_lag_seconds", "must be a number")
        assertRefused(options("docker", target: "web", #""require_healthy":1"#), field: "options.require_healthy", "true or false")
        assertRefused(options("push", target: "", #""grace_seconds":86401"#), field: "options.grace_seconds", "from 0 to 86400")
    }

    func testJSONPathSyntax() {
        for good in ["$", "$.status", "$.items[0].name", "$['a key'][\"b\"]", "$.a-b_c.d"] {
            XCTAssertNil(CheckOptionsParser.jsonPathProblem(good), good)
        }
        for bad in ["", "status", "$.", "$..a", "$[", "$['a'", "$[a]", "$.a b", "$[1234567890]", "$x"] {
            XCTAssertNotNil(CheckOptionsParser.jsonPathProblem(bad), bad)
        }
    }
}
