import CrowsnestWire
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// What one probe run found: the fields of a `CheckResult` before the slot and token are attached.
public struct ProbeOutcome: Sendable, Equatable {
    public var ok: Bool
    /// From the start of the run to its answer (or failure), milliseconds.
    public var latencyMs: Double
    /// Why the run failed, for the operator; empty when ok.
    public var error: String
    /// The last HTTP response's status (0: none).
    public var httpStatus: Int = 0
    /// Earliest expiry among the certificates seen, unix milliseconds (0: no certificate).
    public var certificateNotAfterUnixMs: Int64 = 0
    /// Named figures (connection counts, counters, lag seconds).
    public var figures: [String: Double] = [:]
    /// Named texts (DNS answers, the container state seen, the final URL).
    public var details: [String: String] = [:]

    public init(ok: Bool, latencyMs: Double, error: String = "") {
        self.ok = ok
        self.latencyMs = latencyMs
        self.error = error
    }

    public static func failure(_ reason: String, latencyMs: Double) -> ProbeOutcome {
        ProbeOutcome(ok: false, latencyMs: latencyMs, error: reason)
    }
}

/// A probe could not run or its answer failed the check; `reason` is shown to the operator as the result's error.
public struct ProbeFailure: Error, CustomStringConvertible, Sendable, Equatable {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}

extension ProbeOutcome {
    /// The wire result of this run of `checkID`'s slot under `token`, stamped now.
    public func checkResult(checkID: String, token: UInt64, slotUnixMs: Int64) -> Crowsnest_V1_CheckResult {
        var result = Crowsnest_V1_CheckResult()
        result.checkID = checkID
        result.fencingToken = token
        result.slotUnixMs = slotUnixMs
        result.tsUnixMs = Int64(Date().timeIntervalSince1970 * 1000)
        result.ok = ok
        result.latencyMs = latencyMs
        result.error = error
        result.httpStatus = UInt32(clamping: httpStatus)
        result.certNotAfterUnixMs = certificateNotAfterUnixMs
        result.figures = figures
        result.details = details
        return result
    }
}

/// Bounds on the texts a probe reports, which may hold what a peer sent (names, health output, DNS answers).
enum ProbeText {
    /// Most characters of an error or a detail.
    static let maximumLength = 1024

    /// At most `maximumLength` characters (Unicode scalars) of `value`, with "…" when cut.
    static func bounded(_ value: String) -> String {
        let scalars = value.unicodeScalars
        guard scalars.count > maximumLength else { return value }
        return String(String.UnicodeScalarView(scalars.prefix(maximumLength))) + "…"
    }
}
