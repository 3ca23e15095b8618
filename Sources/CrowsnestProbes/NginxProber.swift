import CrowsnestWire
import NIOCore
import Synchronization

/// `nginx` checks: fetch nginx's `stub_status` page and report its counters (active, reading, writing, waiting
/// connections; accepts, handled, requests) and requests per second since the previous run of the same page.
/// The check fails when the page does not answer 200 or is not a `stub_status` page.
struct NginxProber: Sendable {
    let http: HTTPProber
    let history: NginxRequestHistory

    func probe(_ target: String, deadline: ContinuousClock.Instant) async throws -> ProbeOutcome {
        let start = ContinuousClock.now
        let url = try ProbeURL(target)
        let response = try await http.exchange(url, method: "GET", headers: [], body: nil, verifyTLS: false, deadline: deadline)
        let latency = (ContinuousClock.now - start).milliseconds
        guard response.status == 200 else {
            return .failure("HTTP \(response.status) from the stub_status page, expected 200", latencyMs: latency)
        }
        guard let status = NginxStubStatus(String(decoding: response.body, as: UTF8.self)) else {
            return .failure("the page is not nginx's stub_status (expected \"Active connections: …\")", latencyMs: latency)
        }
        var outcome = ProbeOutcome(ok: true, latencyMs: latency)
        outcome.httpStatus = 200
        outcome.figures = status.figures
        if let rate = history.rate(of: target, requests: status.requests, at: start) {
            outcome.figures["requests_per_second"] = rate
        }
        return outcome
    }
}

/// The figures of an nginx `stub_status` page.
struct NginxStubStatus: Equatable {
    var active: UInt64
    var accepts: UInt64
    var handled: UInt64
    var requests: UInt64
    var reading: UInt64
    var writing: UInt64
    var waiting: UInt64

    /// Nil when `text` is not a stub_status page.
    init?(_ text: String) {
        let words = text.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\r" || $0 == "\t" })
        func number(after label: String) -> UInt64? {
            guard let index = words.firstIndex(where: { $0 == label }), index + 1 < words.count else { return nil }
            return UInt64(words[index + 1])
        }
        guard let active = number(after: "connections:"), let header = words.firstIndex(of: "requests"),
              header + 3 < words.count,
              let accepts = UInt64(words[header + 1]), let handled = UInt64(words[header + 2]),
              let requests = UInt64(words[header + 3]),
              let reading = number(after: "Reading:"), let writing = number(after: "Writing:"),
              let waiting = number(after: "Waiting:")
        else { return nil }
        (self.active, self.accepts, self.handled, self.requests) = (active, accepts, handled, requests)
        (self.reading, self.writing, self.waiting) = (reading, writing, waiting)
    }

    var figures: [String: Double] {
        ["active": Double(active), "accepts": Double(accepts), "handled": Double(handled), "requests": Double(requests),
         "reading": Double(reading), "writing": Double(writing), "waiting": Double(waiting)]
    }
}

/// The last request count seen per stub_status page, so each run can report requests per second. Bounded: past
/// `capacity` pages the oldest half is forgotten (their next run reports no rate, once).
final class NginxRequestHistory: Sendable {
    static let capacity = 4096
    private let seen = Mutex<[String: (requests: UInt64, at: ContinuousClock.Instant)]>([:])

    init() {}

    /// Requests per second since the previous run of `page`; nil on the first run, or when the counter went
    /// backwards (nginx restarted).
    func rate(of page: String, requests: UInt64, at instant: ContinuousClock.Instant) -> Double? {
        seen.withLock { seen in
            let previous = seen[page]
            if seen.count >= Self.capacity, previous == nil {
                let oldest = seen.sorted { $0.value.at < $1.value.at }.prefix(Self.capacity / 2).map(\.key)
                for key in oldest { seen[key] = nil }
            }
            seen[page] = (requests, instant)
            guard let previous, requests >= previous.requests else { return nil }
            let seconds = (instant - previous.at).milliseconds / 1000
            guard seconds > 0 else { return nil }
            // The probe's own request is counted by nginx: leave it out.
            return (Double(requests - previous.requests) - 1).clamped(atLeast: 0) / seconds
        }
    }
}

extension Double {
    fileprivate func clamped(atLeast lower: Double) -> Double { Swift.max(self, lower) }
}
