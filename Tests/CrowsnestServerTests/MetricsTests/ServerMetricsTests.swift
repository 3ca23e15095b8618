import Metrics
import Foundation
import Prometheus
import XCTest

@testable import CrowsnestServer

/// The server's `/metrics` as Prometheus tooling reads it: every metric the server (and Hummingbird) makes has a
/// HELP line, counters end in `_total`, durations in `_seconds`, and `promtool check metrics` (Debian's
/// prometheus package) finds nothing to complain about.
final class ServerMetricsTests: XCTestCase {
    /// Every known metric made through the factory as the code makes it, with a value, and the exposition text.
    private func exposition() -> String {
        let registry = PrometheusCollectorRegistry()
        let factory = ServerMetricsFactory(registry: registry)
        for (label, known) in ServerMetricNames.known {
            let dimensions: [(String, String)] = label.hasPrefix("hb.") || label.hasPrefix("http.")
                ? [("http.request.method", "GET"), ("http.route", "/api/v1/checks/{id}"), ("http.response.status_code", "200")]
                : [("outcome", "committed")]
            switch known.unit {
            case "total": factory.makeCounter(label: label, dimensions: dimensions).increment(by: 3)
            case "seconds": factory.makeTimer(label: label, dimensions: dimensions).recordNanoseconds(12_000_000)
            default: factory.makeMeter(label: label, dimensions: dimensions).set(2.0)
            }
        }
        // One made under a label nobody described: still valid, and says so.
        factory.makeCounter(label: "some.library.events", dimensions: []).increment(by: 1)
        var bytes: [UInt8] = []
        registry.emit(into: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    func testEveryMetricIsDescribedAndNamedWithItsUnit() throws {
        let text = exposition()
        let types = text.split(separator: "\n").filter { $0.hasPrefix("# TYPE ") }.map { $0.split(separator: " ") }
        XCTAssertEqual(types.count, ServerMetricNames.known.count + 1, text)
        for type in types {
            let (name, kind) = (String(type[2]), String(type[3]))
            XCTAssertTrue(text.contains("# HELP \(name) "), "\(name) has a HELP line")
            if kind == "counter" { XCTAssertTrue(name.hasSuffix("_total"), "counter \(name) ends in _total") }
            if kind == "histogram" { XCTAssertTrue(name.hasSuffix("_seconds"), "histogram \(name) carries its unit") }
            XCTAssertTrue(name.hasPrefix("crowsnest_") || name == "some_library_events_total", "\(name) is the server's")
        }
        XCTAssertTrue(text.contains(#"crowsnest_http_requests_total{http_request_method="GET",http_route="/api/v1/checks/{id}",http_response_status_code="200"} 3"#), text)
        XCTAssertTrue(text.contains("crowsnest_http_request_duration_seconds_bucket"), "Hummingbird's duration, in seconds")
        XCTAssertFalse(text.contains("hb_") || text.contains("http_server_"), "no library names left")
        XCTAssertTrue(text.contains("# HELP some_library_events_total Made under the label some.library.events"), text)
    }

    func testPromtoolFindsNothingToComplainAbout() throws {
        let promtool = ["/usr/bin/promtool", "/usr/local/bin/promtool"].first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let promtool else {
            let hint = "promtool is missing (scripts/ensure-packages.sh installs Debian's prometheus package)"
            if ProcessInfo.processInfo.environment["CI"] == "true" { return XCTFail(hint) }
            throw XCTSkip(hint)
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: promtool)
        process.arguments = ["check", "metrics"]
        let input = Pipe(), output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = output
        try process.run()
        input.fileHandleForWriting.write(Data(exposition().utf8))
        try input.fileHandleForWriting.close()
        let said = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, said)
        XCTAssertEqual(said.trimmingCharacters(in: .whitespacesAndNewlines), "", "promtool's complaints")
    }

    /// The Grafana dashboard in deploy/ graphs only metrics the server exports (a renamed metric breaks it here).
    func testTheGrafanaDashboardQueriesOnlyMetricsTheServerExports() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path + "/deploy/grafana/crowsnest-server.json"
        let dashboard = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
        let panels = try XCTUnwrap(dashboard["panels"] as? [[String: Any]])
        XCTAssertGreaterThanOrEqual(panels.count, 10)
        let exported = Set(ServerMetricNames.known.values.map { [$0.name, $0.unit].filter { !$0.isEmpty }.joined(separator: "_") })
        let pattern = try Regex("crowsnest_[a-z_]+")
        var used: Set<String> = []
        for panel in panels {
            for target in panel["targets"] as? [[String: Any]] ?? [] {
                let expression = try XCTUnwrap(target["expr"] as? String)
                for match in expression.matches(of: pattern) {
                    var name = String(expression[match.range])
                    for suffix in ["_bucket", "_count", "_sum"] where name.hasSuffix(suffix) && !exported.contains(name) {
                        name.removeLast(suffix.count)
                    }
                    used.insert(name)
                }
            }
        }
        XCTAssertEqual(used.subtracting(exported), [], "queried but not exported")
        XCTAssertTrue(used.contains("crowsnest_gateway_connected_agents") && used.contains("crowsnest_ingest_ack_duration_seconds"))
    }
}
