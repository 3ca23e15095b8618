import Foundation

/// A service's SLA policy: the objective, whether `degraded` counts as down, optional business hours, and the
/// time zone reports are cut in (nil: the tenant's).
public struct SLAPolicy: Sendable, Equatable {
    public var objectivePercent: Double
    public var degradedCountsAsDown: Bool
    /// nil: every hour counts.
    public var businessHours: WeeklySchedule?
    public var timeZone: String?

    public init(objectivePercent: Double = 99.9, degradedCountsAsDown: Bool = false,
                businessHours: WeeklySchedule? = nil, timeZone: String? = nil) {
        self.objectivePercent = objectivePercent
        self.degradedCountsAsDown = degradedCountsAsDown
        self.businessHours = businessHours
        self.timeZone = timeZone
    }
}

/// A reporting period: one calendar month in a time zone.
public struct ReportPeriod: Sendable, Equatable, CustomStringConvertible {
    public var year: Int
    public var month: Int

    /// Parses `YYYY-MM` (years 2000–9999); nil otherwise.
    public init?(_ text: String) {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2, parts[0].count == 4, parts[1].count == 2,
              parts.allSatisfy({ $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) }),
              let year = Int(parts[0]), let month = Int(parts[1]), (2000...9999).contains(year), (1...12).contains(month)
        else { return nil }
        self.year = year
        self.month = month
    }

    public init(year: Int, month: Int) {
        self.year = year
        self.month = month
    }

    public var description: String { String(format: "%04d-%02d", year, month) }

    /// `[first midnight of the month, first midnight of the next)` in `timeZone`, unix µs.
    public func bounds(in timeZone: TimeZone) -> (start: Int64, end: Int64) {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        let start = calendar.date(from: DateComponents(year: year, month: month, day: 1))!
        let end = calendar.date(byAdding: .month, value: 1, to: start)!
        return (start.unixMicros, end.unixMicros)
    }
}

/// One service's figures in an SLA report.
public struct ServiceSLA: Sendable, Equatable {
    public var name: String
    public var objectivePercent: Double
    /// nil when the period held neither up nor down time (inside business hours).
    public var availabilityPercent: Double?
    /// nil when there is no availability to judge.
    public var met: Bool?
    public var errorBudgetMinutes: Double
    public var errorBudgetUsedMinutes: Double
    public var errorBudgetLeftMinutes: Double
    public var incidentCount: Int
    /// Down time counted against the objective (inside business hours; `degraded` too when the policy says so).
    public var downtimeSeconds: Double
    /// Mean incident duration (cut to the period), nil without incidents.
    public var mttrSeconds: Double?
    public var longestIncidentSeconds: Double
    public var unknownSeconds: Double
    public var maintenanceSeconds: Double
    /// The period's bounds in the report's time zone, and that zone.
    public var periodStartMicros: Int64
    public var periodEndMicros: Int64
    public var timeZone: String
}

/// The SLA arithmetic, on a service's timeline already combined and overlaid with maintenance windows.
public enum SLAReport {
    /// Figures of one service over `[periodStart, periodEnd)`; `spans` cover `[periodStart, min(periodEnd, now))`.
    public static func figures(name: String, policy: SLAPolicy, spans: [SpanInterval], periodStart: Int64, periodEnd: Int64,
                               timeZone: TimeZone) -> ServiceSLA {
        let measuredEnd = spans.last?.endMicros ?? periodStart
        let counted = policy.businessHours.map { hours in
            IntervalSet.intersect(spans, with: hours.intervals(from: periodStart, to: measuredEnd, timeZone: timeZone))
        } ?? spans
        let time = UptimeArithmetic.timeInStates(counted)
        let up = time.up + (policy.degradedCountsAsDown ? 0 : time.degraded)
        let down = time.down + (policy.degradedCountsAsDown ? time.degraded : 0)
        let availability = up + down > 0 ? Double(up) / Double(up + down) * 100 : nil
        let budget = (1 - policy.objectivePercent / 100) * Double(up + down) / 60_000_000
        let used = Double(down) / 60_000_000
        let outageStates: Set<SpanState> = policy.degradedCountsAsDown ? [.down, .degraded] : [.down]
        let outages = UptimeArithmetic.incidents(spans.map { span in
            var span = span
            if outageStates.contains(span.state) { span.state = .down } else if span.state == .down { span.state = .up }
            return span
        })
        let durations = outages.map { Double(($0.endMicros ?? measuredEnd) - $0.startMicros) / 1_000_000 }
        return ServiceSLA(
            name: name, objectivePercent: policy.objectivePercent, availabilityPercent: availability,
            met: availability.map { $0 >= policy.objectivePercent }, errorBudgetMinutes: budget, errorBudgetUsedMinutes: used,
            errorBudgetLeftMinutes: budget - used, incidentCount: outages.count, downtimeSeconds: Double(down) / 1_000_000,
            mttrSeconds: durations.isEmpty ? nil : durations.reduce(0, +) / Double(durations.count),
            longestIncidentSeconds: durations.max() ?? 0, unknownSeconds: Double(time.unknown) / 1_000_000,
            maintenanceSeconds: Double(time.maintenance) / 1_000_000, periodStartMicros: periodStart,
            periodEndMicros: periodEnd, timeZone: timeZone.identifier)
    }
}
