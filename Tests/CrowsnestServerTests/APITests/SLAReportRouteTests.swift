import CrowsnestWire
import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import PostgresNIO
import XCTest

@testable import CrowsnestServer

/// Services, maintenance windows and the monthly SLA report through the real API on a real PostgreSQL: a synthetic
/// month of spans, every figure checked against arithmetic written out here, JSON and CSV agreeing, the HTML page
/// rendered by headless Chromium.
final class SLAReportRouteTests: XCTestCase {
    private static func post(_ client: some TestClientProtocol, _ key: String, _ path: String, _ body: String) async throws -> [String: Any] {
        let response = try await client.execute(uri: path, method: .post, headers: bearer(key), body: ByteBuffer(string: body))
        XCTAssertEqual(response.status, .created, String(buffer: response.body))
        return try response.jsonObject()
    }

    private static func get(_ client: some TestClientProtocol, _ key: String, _ path: String) async throws -> TestResponse {
        try await client.execute(uri: path, method: .get, headers: bearer(key))
    }

    func testAMonthOfThreeServicesWithMaintenanceAndBusinessHours() async throws {
        try await APITestHarness.withAPI { seed, client in
            let tenant = try await seed.tenant("acme")
            let admin = try await seed.apiKey(tenant: tenant, role: .admin)
            let agent = try await seed.agent(tenant: tenant, hostname: "vps-1", lastSeenSecondsAgo: 1)
            for name in ["web", "db", "e1", "e2"] { try await seed.container(tenant: tenant, agent: agent, name: name) }
            try await seed.database.query("""
                UPDATE containers SET labels = '{"com.docker.compose.project":"shop"}' WHERE name IN ('web', 'db')
                """, logger: APITestHarness.logger)
            let checks = CheckStore(client: seed.database, logger: APITestHarness.logger)
            let check = try await checks.create(
                tenantID: tenant, submission: try CheckDefinition.parse(JSONValue.parse(Data(#"{"name":"api","type":"push"}"#.utf8))))
            func span(_ target: TargetID, _ state: String, _ start: String, _ end: String, _ cause: String = "") async throws {
                try await seed.statusSpan(tenant: tenant, target: target, state: state, startedAt: instant(start), endedAt: instant(end), cause: cause)
            }
            /// Up over [from, to) except the given down (or other) spans, in order.
            func timeline(_ target: TargetID, from: String, to: String, _ breaks: [(String, String, String)]) async throws {
                var cursor = from
                for (state, start, end) in breaks {
                    try await span(target, "up", cursor, start)
                    try await span(target, state, start, end, "\(state) on purpose")
                    cursor = end
                }
                try await span(target, "up", cursor, to)
            }
            let web = TargetID.container(agentID: agent, name: "web"), db = TargetID.container(agentID: agent, name: "db")
            let e1 = TargetID.container(agentID: agent, name: "e1"), e2 = TargetID.container(agentID: agent, name: "e2")
            let api = TargetID.check(checkID: check.id)
            let monthStart = "2025-01-31T00:00:00Z", monthEnd = "2025-03-02T00:00:00Z"
            // shop (web + db by label, any): web down 10:00–10:30 and db 10:20–10:50 on 3 Feb: one 50-minute outage;
            // db down 02:30–03:00 on 15 Feb inside the tenant-wide maintenance window 02:00–04:00; no data from
            // either on 25 Feb 00:00–01:00.
            try await timeline(web, from: monthStart, to: "2025-02-25T00:00:00Z", [("down", "2025-02-03T10:00:00Z", "2025-02-03T10:30:00Z")])
            try await span(web, "up", "2025-02-25T01:00:00Z", monthEnd)
            try await timeline(db, from: monthStart, to: "2025-02-25T00:00:00Z", [("down", "2025-02-03T10:20:00Z", "2025-02-03T10:50:00Z"),
                                                                                  ("down", "2025-02-15T02:30:00Z", "2025-02-15T03:00:00Z")])
            try await span(db, "up", "2025-02-25T01:00:00Z", monthEnd)
            // api (the check, 99.5 %, business hours Mon–Fri 09:00–17:00 in Berlin): down 30 min on Tuesday 4 Feb at
            // 13:00 Berlin (counts), 60 min on Saturday 8 Feb (does not).
            try await timeline(api, from: monthStart, to: monthEnd, [("down", "2025-02-04T12:00:00Z", "2025-02-04T12:30:00Z"),
                                                                    ("down", "2025-02-08T10:00:00Z", "2025-02-08T11:00:00Z")])
            // edge (e1 + e2 listed, all): down only while both are, 00:30–01:00 on 1 Feb.
            try await timeline(e1, from: monthStart, to: monthEnd, [("down", "2025-02-01T00:00:00Z", "2025-02-01T01:00:00Z")])
            try await timeline(e2, from: monthStart, to: monthEnd, [("down", "2025-02-01T00:30:00Z", "2025-02-01T01:30:00Z")])

            _ = try await Self.post(client, admin.secret, "/api/v1/services",
                                    #"{"name":"shop","labels":["com.docker.compose.project=shop"],"objective_percent":99.9}"#)
            _ = try await Self.post(client, admin.secret, "/api/v1/services", """
                {"name":"api","targets":["\(api)"],"objective_percent":99.5,"time_zone":"Europe/Berlin",
                 "business_hours":{"days":["mon","tue","wed","thu","fri"],"start":"09:00","end":"17:00"}}
                """)
            let edge = try await Self.post(client, admin.secret, "/api/v1/services",
                                           #"{"name":"edge","targets":["\#(e1)","\#(e2)"],"down_when":"all"}"#)
            XCTAssertEqual(edge["down_when"] as? String, "all")
            XCTAssertTrue((edge["id"] as? String ?? "").hasPrefix("s-"))
            let window = try await Self.post(client, admin.secret, "/api/v1/maintenance-windows",
                                             #"{"name":"patch night","starts_at":"2025-02-15T02:00:00Z","ends_at":"2025-02-15T04:00:00Z"}"#)
            XCTAssertTrue((window["id"] as? String ?? "").hasPrefix("m-"))

            let response = try await Self.get(client, admin.secret, "/api/v1/sla/report?period=2025-02")
            XCTAssertEqual(response.status, .ok)
            let body = try response.jsonObject()
            XCTAssertEqual(body["tenant"] as? String, "acme")
            XCTAssertEqual(body["period"] as? String, "2025-02")
            let services = try XCTUnwrap(body["services"] as? [[String: Any]])
            XCTAssertEqual(services.map { $0["name"] as? String }, ["api", "edge", "shop"])
            let byName = Dictionary(uniqueKeysWithValues: services.map { ($0["name"] as! String, $0) })

            // Independent arithmetic, in seconds.
            let month = 28.0 * 86_400
            func expect(_ name: String, objective: Double, up: Double, down: Double, unknown: Double, maintenance: Double,
                        incidents: [Double], line: UInt = #line) throws {
                let figures = try XCTUnwrap(byName[name], line: line)
                let availability = up / (up + down) * 100
                let budget = (1 - objective / 100) * (up + down) / 60
                XCTAssertEqual(try XCTUnwrap(figures["availability_percent"] as? Double), availability, accuracy: 1e-9, name, line: line)
                XCTAssertEqual(figures["objective_percent"] as? Double, objective, line: line)
                XCTAssertEqual(figures["met"] as? Bool, availability >= objective, name, line: line)
                XCTAssertEqual(try XCTUnwrap(figures["error_budget_minutes"] as? Double), budget, accuracy: 1e-9, name, line: line)
                XCTAssertEqual(try XCTUnwrap(figures["error_budget_used_minutes"] as? Double), down / 60, accuracy: 1e-9, name, line: line)
                XCTAssertEqual(try XCTUnwrap(figures["error_budget_left_minutes"] as? Double), budget - down / 60, accuracy: 1e-9, line: line)
                XCTAssertEqual(figures["incident_count"] as? Int, incidents.count, name, line: line)
                XCTAssertEqual(try XCTUnwrap(figures["downtime_seconds"] as? Double), down, accuracy: 1e-6, name, line: line)
                XCTAssertEqual(figures["mttr_seconds"] as? Double, incidents.reduce(0, +) / Double(incidents.count), name, line: line)
                XCTAssertEqual(figures["longest_incident_seconds"] as? Double, incidents.max(), name, line: line)
                XCTAssertEqual(try XCTUnwrap(figures["unknown_seconds"] as? Double), unknown, accuracy: 1e-6, name, line: line)
                XCTAssertEqual(try XCTUnwrap(figures["maintenance_seconds"] as? Double), maintenance, accuracy: 1e-6, name, line: line)
            }
            try expect("shop", objective: 99.9, up: month - 3000 - 7200 - 3600, down: 3000, unknown: 3600, maintenance: 7200,
                       incidents: [3000])
            // Business hours: 20 weekdays × 8 h in Berlin; only Tuesday's 30 minutes count, but both outages are incidents.
            try expect("api", objective: 99.5, up: 20 * 8 * 3600 - 1800, down: 1800, unknown: 0, maintenance: 0,
                       incidents: [1800, 3600])
            try expect("edge", objective: 99.9, up: month - 1800 - 7200, down: 1800, unknown: 0, maintenance: 7200, incidents: [1800])
            XCTAssertEqual(byName["shop"]?["met"] as? Bool, false, "50 minutes is more than 0.1 % of the month's known time")
            XCTAssertEqual(byName["api"]?["time_zone"] as? String, "Europe/Berlin")
            XCTAssertEqual(byName["api"]?["period_start"] as? String, "2025-01-31T23:00:00Z", "February begins at midnight in Berlin")

            // CSV: the same figures, row for row.
            let csvResponse = try await Self.get(client, admin.secret, "/api/v1/sla/report?period=2025-02&format=csv")
            XCTAssertEqual(csvResponse.status, .ok)
            XCTAssertEqual(csvResponse.headers[.contentType], "text/csv; charset=utf-8")
            let lines = String(buffer: csvResponse.body).split(separator: "\r\n").map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
            XCTAssertEqual(lines.first, SLAReportDocument.columns)
            XCTAssertEqual(lines.count, 4)
            for row in lines.dropFirst() {
                let json = try XCTUnwrap(byName[row[0]])
                for (column, cell) in zip(SLAReportDocument.columns, row) {
                    if column == "met" {
                        XCTAssertEqual(cell, (json[column] as? Bool).map { $0 ? "true" : "false" } ?? "", "\(row[0]).met")
                        continue
                    }
                    switch json[column] {
                    case let number as Double: XCTAssertEqual(Double(cell) ?? .nan, number, accuracy: 1e-9, "\(row[0]).\(column)")
                    case let flag as Bool: XCTAssertEqual(cell, flag ? "true" : "false")
                    case let text as String: XCTAssertEqual(cell, text)
                    default: XCTAssertEqual(cell, "", "\(row[0]).\(column) is null")
                    }
                }
            }

            // HTML: rendered by headless Chromium with no console message, showing the same numbers.
            let htmlResponse = try await Self.get(client, admin.secret, "/api/v1/sla/report?period=2025-02&format=html")
            XCTAssertEqual(htmlResponse.status, .ok)
            XCTAssertNotNil(htmlResponse.headers[.contentSecurityPolicy])
            let dom = try ChromiumRender.dumpDOM(html: String(buffer: htmlResponse.body))
            for service in services {
                let availability = String(format: "%.3f", service["availability_percent"] as! Double)
                XCTAssertTrue(dom.contains(">\(availability) %<"), "\(service["name"]!): \(availability) not on the page")
                XCTAssertTrue(dom.contains(">\(service["incident_count"]!)<"))
            }
            XCTAssertTrue(dom.contains(">breached<") && dom.contains(">met<"))
        }
    }

    func testHostileNamesAreEscapedAndBadParametersAreRefusedNamingThem() async throws {
        try await APITestHarness.withAPI { seed, client in
            let tenant = try await seed.tenant("<b>acme</b>")
            let admin = try await seed.apiKey(tenant: tenant, role: .admin)
            let reader = try await seed.apiKey(tenant: tenant, role: .read)
            let agent = try await seed.agent(tenant: tenant, hostname: "vps-1", lastSeenSecondsAgo: 1)
            _ = try await Self.post(client, admin.secret, "/api/v1/services",
                                    #"{"name":"=HYPERLINK(\"http://evil\")<script>alert(1)</script>","targets":["h-\#(agent.uuidString.lowercased())"]}"#)
            let html = String(buffer: try await Self.get(client, admin.secret, "/api/v1/sla/report?format=html").body)
            XCTAssertFalse(html.contains("<script>"))
            XCTAssertFalse(html.contains("<b>acme"))
            XCTAssertTrue(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"))
            let csv = String(buffer: try await Self.get(client, admin.secret, "/api/v1/sla/report?format=csv").body)
            XCTAssertTrue(csv.contains("\n\"'=HYPERLINK(\"\"http://evil\"\")<script>alert(1)</script>\","), csv)

            let cases: [(String, String)] = [
                ("?period=2025-13", "period must be a month as YYYY-MM"),
                ("?period=last-month", "period must be a month as YYYY-MM"),
                ("?period=2999-01", "period 2999-01 has not begun"),
                ("?format=pdf", "format must be one of json, csv, html"),
            ]
            for (query, message) in cases {
                let response = try await Self.get(client, admin.secret, "/api/v1/sla/report\(query)")
                XCTAssertEqual(response.status, .badRequest, query)
                XCTAssertTrue(try response.apiError().message.contains(message), query)
            }
            // Read keys read, but change nothing.
            let refused = try await client.execute(uri: "/api/v1/services", method: .post, headers: bearer(reader.secret),
                                                   body: ByteBuffer(string: #"{"name":"x","targets":[]}"#))
            XCTAssertEqual(refused.status, .forbidden)
            let bad: [(String, String)] = [
                (#"{"name":"x"}"#, "targets or labels must name at least one target"),
                (#"{"name":"x","targets":["h-\#(UUID().uuidString)"]}"#, "targets[0] names nothing this tenant has"),
                (#"{"name":"x","labels":["a=b"],"down_when":"k_of_n"}"#, "k is required with down_when k_of_n"),
                (#"{"name":"x","labels":["a=b"],"objective_percent":120}"#, "objective_percent must be a number from 1 to 100"),
                (#"{"name":"x","labels":["a=b"],"time_zone":"Mars/Olympus"}"#, "time_zone must be an IANA time zone name"),
                (#"{"name":"x","labels":["a=b"],"business_hours":{"days":["mon"],"start":"17:00","end":"09:00"}}"#, "business_hours.end must be after start"),
                (#"{"name":"x","labels":["a=b"],"colour":"red"}"#, "colour is not a known field"),
            ]
            for (body, message) in bad {
                let response = try await client.execute(uri: "/api/v1/services", method: .post, headers: bearer(admin.secret),
                                                        body: ByteBuffer(string: body))
                XCTAssertEqual(response.status, .badRequest, body)
                XCTAssertTrue(try response.apiError().message.contains(message), "\(body): \(String(buffer: response.body))")
            }
            let badWindows: [(String, String)] = [
                (#"{"name":"w","starts_at":"2025-02-15T04:00:00Z","ends_at":"2025-02-15T02:00:00Z"}"#, "ends_at must be after starts_at"),
                (#"{"name":"w"}"#, "starts_at is required"),
                (#"{"name":"w","recurrence":{"days":["sun"],"start":"02:00"}}"#, "recurrence.duration_minutes is required"),
                (#"{"name":"w","services":["s-\#(UUID().uuidString.lowercased())"],"starts_at":"2025-02-15T02:00:00Z","ends_at":"2025-02-15T04:00:00Z"}"#,
                 "services[0] names no service of this tenant"),
            ]
            for (body, message) in badWindows {
                let response = try await client.execute(uri: "/api/v1/maintenance-windows", method: .post, headers: bearer(admin.secret),
                                                        body: ByteBuffer(string: body))
                XCTAssertEqual(response.status, .badRequest, body)
                XCTAssertTrue(try response.apiError().message.contains(message), "\(body): \(String(buffer: response.body))")
            }
            let count = try await DefinitionStore(.maintenanceWindows, client: seed.database, logger: APITestHarness.logger).list(tenantID: tenant)
            XCTAssertEqual(count.count, 0, "nothing stored for a refused window")
        }
    }

    func testATenantHasAtMostAThousandMaintenanceWindows() async throws {
        try await APITestHarness.withAPI { seed, client in
            let tenant = try await seed.tenant(), other = try await seed.tenant()
            let admin = try await seed.apiKey(tenant: tenant, role: .admin)
            let otherAdmin = try await seed.apiKey(tenant: other, role: .admin)
            let limit = DefinitionStore.Table.maintenanceWindows.maximumPerTenant
            XCTAssertEqual(limit, 1000)
            // One short of the limit straight into the table, the last one through the API.
            try await seed.database.query("""
                INSERT INTO maintenance_windows (tenant_id, id, name, definition)
                SELECT \(tenant), gen_random_uuid(), 'w' || n,
                       '{"name":"w","recurrence":{"days":["sun"],"start":"02:00","duration_minutes":60}}'::jsonb
                FROM generate_series(1, \(limit - 1)) n
                """, logger: APITestHarness.logger)
            let body = #"{"name":"last","recurrence":{"days":["sat"],"start":"02:00","duration_minutes":30}}"#
            let last = try await client.execute(uri: "/api/v1/maintenance-windows", method: .post, headers: bearer(admin.secret),
                                                body: ByteBuffer(string: body))
            XCTAssertEqual(last.status, .created, String(buffer: last.body))
            let refused = try await client.execute(uri: "/api/v1/maintenance-windows", method: .post, headers: bearer(admin.secret),
                                                   body: ByteBuffer(string: #"{"name":"one too many","starts_at":"2025-02-15T02:00:00Z","ends_at":"2025-02-15T04:00:00Z"}"#))
            XCTAssertEqual(refused.status, .conflict, "the limit is a conflict with what is stored, not a bad request")
            XCTAssertEqual(try refused.apiError().message,
                           "the tenant already has 1000 maintenance windows, the most it may have; delete one first")
            let stored = try await DefinitionStore(.maintenanceWindows, client: seed.database, logger: APITestHarness.logger).list(tenantID: tenant)
            XCTAssertEqual(stored.count, limit)
            // Another tenant's count is its own.
            let theirs = try await client.execute(uri: "/api/v1/maintenance-windows", method: .post, headers: bearer(otherAdmin.secret),
                                                  body: ByteBuffer(string: body))
            XCTAssertEqual(theirs.status, .created)
            // A thousand weekly windows still give a timeline (each turned into intervals once per request).
            let agent = try await seed.agent(tenant: tenant, hostname: "busy", lastSeenSecondsAgo: 1)
            let timeline = try await client.execute(uri: "/api/v1/uptime/h-\(agent.uuidString.lowercased())/timeline", method: .get,
                                                    headers: bearer(admin.secret))
            XCTAssertEqual(timeline.status, .ok, String(buffer: timeline.body))
        }
    }

    func testServicesAndWindowsOfAnotherTenantAreNotFound() async throws {
        try await APITestHarness.withAPI { seed, client in
            let mine = try await seed.tenant(), theirs = try await seed.tenant()
            let myKey = try await seed.apiKey(tenant: mine, role: .admin)
            let theirKey = try await seed.apiKey(tenant: theirs, role: .admin)
            let theirAgent = try await seed.agent(tenant: theirs, hostname: "theirs", lastSeenSecondsAgo: 1)
            let service = try await Self.post(client, theirKey.secret, "/api/v1/services",
                                              #"{"name":"secret","targets":["h-\#(theirAgent.uuidString.lowercased())"]}"#)
            let window = try await Self.post(client, theirKey.secret, "/api/v1/maintenance-windows",
                                             #"{"name":"theirs","recurrence":{"days":["sun"],"start":"02:00","duration_minutes":60}}"#)
            for path in ["/api/v1/services/\(service["id"]!)", "/api/v1/maintenance-windows/\(window["id"]!)"] {
                for method in [HTTPRequest.Method.get, .put, .delete] {
                    let response = try await client.execute(uri: path, method: method, headers: bearer(myKey.secret),
                                                            body: ByteBuffer(string: #"{"name":"mine","labels":["a=b"],"recurrence":{"days":["sun"],"start":"02:00","duration_minutes":60}}"#))
                    XCTAssertTrue([.notFound, .badRequest].contains(response.status), "\(method) \(path): \(response.status)")
                    XCTAssertFalse(String(buffer: response.body).contains("secret"))
                }
            }
            let list = try await Self.get(client, myKey.secret, "/api/v1/services")
            XCTAssertEqual((try list.jsonObject()["services"] as? [Any])?.count, 0)
            // Their host cannot be named in my service, and their services are not in my report.
            let named = try await client.execute(uri: "/api/v1/services", method: .post, headers: bearer(myKey.secret),
                                                 body: ByteBuffer(string: #"{"name":"x","targets":["h-\#(theirAgent.uuidString.lowercased())"]}"#))
            XCTAssertEqual(named.status, .badRequest)
            let report = try await Self.get(client, myKey.secret, "/api/v1/sla/report")
            XCTAssertEqual((try report.jsonObject()["services"] as? [Any])?.count, 0)
            // Their own key still sees it: the 404s above were about the tenant, not the id.
            let ownRead = try await Self.get(client, theirKey.secret, "/api/v1/services/\(service["id"]!)")
            XCTAssertEqual(ownRead.status, .ok)
        }
    }
}

/// Chromium is not installed: `scripts/ensure-packages.sh` installs Debian's `chromium`.
struct ChromiumMissing: Error, CustomStringConvertible {
    var description: String { "chromium is not installed (scripts/ensure-packages.sh installs Debian's chromium)" }
}

/// Renders HTML in Debian's headless Chromium and returns the DOM it built; fails when Chromium is missing or
/// the page logged anything to its console (a script, a blocked resource, a policy violation).
enum ChromiumRender {
    static func dumpDOM(html: String) throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("crowsnest-chromium-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let page = directory.appendingPathComponent("page.html")
        try html.write(to: page, atomically: true, encoding: .utf8)
        guard let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first(where: FileManager.default.isExecutableFile) else {
            throw ChromiumMissing()
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: chromium)
        process.arguments = ["--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
                             "--user-data-dir=\(directory.path)/profile", "--dump-dom", page.absoluteString]
        let output = Pipe(), errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        let dom = output.fileHandleForReading.readDataToEndOfFile()
        let log = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, log)
        let console = log.split(separator: "\n").filter { $0.contains("CONSOLE") }
        XCTAssertEqual(console, [], "the page logged to its console")
        return String(decoding: dom, as: UTF8.self)
    }
}
