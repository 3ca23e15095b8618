import CrowsnestWire
import Foundation
import Hummingbird
import Logging
import PostgresNIO

/// `GET /api/v1/sla/report?period=YYYY-MM&format=json|csv|html`: the SLA report of every service of the tenant
/// for one calendar month (default: the current one), as JSON, CSV, or a printable HTML page.
struct SLAReportRoutes: Sendable {
    let database: PostgresClient
    let logger: Logger

    enum Format: String, CaseIterable { case json, csv, html }

    func register(on group: RouterGroup<APIRequestContext>) {
        group.get("sla/report") { request, context -> Response in
            let caller = try context.requireCaller()
            let query = request.uri.queryParameters
            let now = Date()
            let (period, format) = try Self.parameters(period: query.get("period"), format: query.get("format"), now: now)
            let (tenant, services) = try await UptimeReports(client: self.database, logger: self.logger)
                .report(tenantID: caller.tenantID, period: period, now: now)
            let report = SLAReportDocument(tenant: tenant, period: period, generatedAt: now, services: services)
            switch format {
            case .json:
                return try report.response(from: request, context: context)
            case .csv:
                return report.csvResponse
            case .html:
                return report.htmlResponse
            }
        }
    }

    /// The current UTC month.
    static func currentPeriod(now: Date) -> ReportPeriod {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        return ReportPeriod(year: calendar.component(.year, from: now), month: calendar.component(.month, from: now))
    }

    /// `period` (YYYY-MM, not after the current month; default the current UTC month) and `format` (default json).
    static func parameters(period periodText: String?, format formatText: String?, now: Date) throws -> (ReportPeriod, Format) {
        let format: Format
        if let formatText {
            guard let parsed = Format(rawValue: formatText) else {
                throw APIError.badRequest("format must be one of json, csv, html (got \"\(formatText)\")")
            }
            format = parsed
        } else {
            format = .json
        }
        let current = currentPeriod(now: now)
        guard let periodText else { return (current, format) }
        guard let period = ReportPeriod(periodText) else {
            throw APIError.badRequest("period must be a month as YYYY-MM, such as 2025-01 (got \"\(periodText)\")")
        }
        guard (period.year, period.month) <= (current.year, current.month) else {
            throw APIError.badRequest("period \(period) has not begun: ask for \(current) or an earlier month")
        }
        return (period, format)
    }
}

/// An SLA report as the three formats show it; every figure comes from `ServiceSLA`, so they agree.
struct SLAReportDocument: ResponseEncodable, Sendable {
    let tenant: String
    let period: ReportPeriod
    let generatedAt: Date
    let services: [ServiceSLA]

    /// The CSV as a download (`sla-YYYY-MM.csv`).
    var csvResponse: Response {
        var headers = HTTPFields()
        headers[.contentType] = "text/csv; charset=utf-8"
        headers[.contentDisposition] = "attachment; filename=\"sla-\(period).csv\""
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: csv)))
    }

    /// The printable page. Nothing runs on it: no scripts, no remote anything; only its own inline style.
    var htmlResponse: Response {
        var headers = HTTPFields()
        headers[.contentType] = "text/html; charset=utf-8"
        headers[.contentSecurityPolicy] = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        headers[.xContentTypeOptions] = "nosniff"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: html)))
    }

    /// The per-service columns, in order, shared by JSON and CSV.
    static let columns = ["name", "objective_percent", "availability_percent", "met", "error_budget_minutes",
                          "error_budget_used_minutes", "error_budget_left_minutes", "incident_count", "downtime_seconds",
                          "mttr_seconds", "longest_incident_seconds", "unknown_seconds", "maintenance_seconds", "time_zone",
                          "period_start", "period_end"]

    static func values(_ service: ServiceSLA) -> [JSONValue] {
        [.string(service.name), .number(service.objectivePercent), service.availabilityPercent.map(JSONValue.number) ?? .null,
         service.met.map(JSONValue.bool) ?? .null, .number(service.errorBudgetMinutes), .number(service.errorBudgetUsedMinutes),
         .number(service.errorBudgetLeftMinutes), .integer(Int64(service.incidentCount)), .number(service.downtimeSeconds),
         service.mttrSeconds.map(JSONValue.number) ?? .null, .number(service.longestIncidentSeconds),
         .number(service.unknownSeconds), .number(service.maintenanceSeconds), .string(service.timeZone),
         .string(RFC3339.string(from: Date(unixMicros: service.periodStartMicros))),
         .string(RFC3339.string(from: Date(unixMicros: service.periodEndMicros)))]
    }

    var json: JSONValue {
        .object(["tenant": .string(tenant), "period": .string(period.description),
                 "generated_at": .string(RFC3339.string(from: generatedAt)),
                 "services": .array(services.map { .object(Dictionary(uniqueKeysWithValues: zip(Self.columns, Self.values($0)))) })])
    }

    func encode(to encoder: any Encoder) throws {
        try json.encode(to: encoder)
    }

    /// RFC 4180 CSV, one row per service; a cell a spreadsheet would take for a formula is prefixed with `'`.
    var csv: String {
        var lines = [Self.columns.joined(separator: ",")]
        for service in services {
            lines.append(Self.values(service).map { value in
                switch value {
                case .null: return ""
                case .bool(let flag): return flag ? "true" : "false"
                case .integer(let number): return String(number)
                case .number(let number): return Self.plain(number)
                case .string(let text): return Self.csvCell(text)
                default: return ""
                }
            }.joined(separator: ","))
        }
        return lines.joined(separator: "\r\n") + "\r\n"
    }

    static func csvCell(_ text: String) -> String {
        var text = text
        if let first = text.unicodeScalars.first, "=+-@\t\r".unicodeScalars.contains(first) { text = "'" + text }
        guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return text }
        return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    /// A number as JSON writes it (no exponent for ordinary figures).
    static func plain(_ number: Double) -> String {
        number == number.rounded() && abs(number) < 1e15 ? String(Int64(number)) : String(number)
    }

    /// A printable page: one table, every value escaped, nothing loaded or run.
    var html: String {
        func escape(_ text: String) -> String {
            var result = ""
            for character in text {
                switch character {
                case "&": result += "&amp;"
                case "<": result += "&lt;"
                case ">": result += "&gt;"
                case "\"": result += "&quot;"
                case "'": result += "&#39;"
                default: result.append(character)
                }
            }
            return result
        }
        func fixed(_ value: Double?, _ digits: Int) -> String {
            value.map { String(format: "%.\(digits)f", $0) } ?? "—"
        }
        var rows = ""
        for service in services {
            let verdict = service.met.map { $0 ? "met" : "breached" } ?? "no data"
            rows += """
                <tr class="\(verdict == "breached" ? "breached" : "")"><th scope="row">\(escape(service.name))</th>\
                <td>\(fixed(service.objectivePercent, 3)) %</td><td>\(fixed(service.availabilityPercent, 3)) %</td>\
                <td>\(verdict)</td><td>\(fixed(service.errorBudgetMinutes, 1))</td><td>\(fixed(service.errorBudgetUsedMinutes, 1))</td>\
                <td>\(fixed(service.errorBudgetLeftMinutes, 1))</td><td>\(service.incidentCount)</td>\
                <td>\(fixed(service.downtimeSeconds, 0))</td><td>\(fixed(service.mttrSeconds, 0))</td>\
                <td>\(fixed(service.longestIncidentSeconds, 0))</td><td>\(fixed(service.unknownSeconds, 0))</td>\
                <td>\(fixed(service.maintenanceSeconds, 0))</td><td>\(escape(service.timeZone))</td></tr>

                """
        }
        return """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
            <title>SLA report \(escape(period.description)) — \(escape(tenant))</title>
            <style>
            body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #111; }
            table { border-collapse: collapse; width: 100%; }
            th, td { border: 1px solid #bbb; padding: 4px 8px; text-align: right; }
            th[scope=row], thead th:first-child { text-align: left; }
            tr.breached td { background: #fde8e8; }
            @media print { body { margin: 0; } }
            </style></head>
            <body>
            <h1>SLA report \(escape(period.description))</h1>
            <p>For <strong>\(escape(tenant))</strong>, generated \(escape(RFC3339.string(from: generatedAt))). Availability is up-time over \
            up-time plus down-time inside each service's business hours; unknown and maintenance time are shown apart and left out. \
            Budgets and downtime in minutes and seconds as headed.</p>
            <table>
            <thead><tr><th>Service</th><th>Objective</th><th>Availability</th><th>Result</th><th>Budget (min)</th>\
            <th>Budget used (min)</th><th>Budget left (min)</th><th>Incidents</th><th>Downtime (s)</th><th>MTTR (s)</th>\
            <th>Longest incident (s)</th><th>Unknown (s)</th><th>Maintenance (s)</th><th>Time zone</th></tr></thead>
            <tbody>
            \(rows)</tbody>
            </table>
            </body></html>

            """
    }
}
