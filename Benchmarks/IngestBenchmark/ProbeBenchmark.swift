import CrowsnestAgent
import CrowsnestProbes
import CrowsnestWire
import Foundation

/// `crowsnest-bench --probe-target URL`: the CPU the agent's HTTP prober spends per 1,000 probes (a new connection
/// each, as a check run makes), at a fixed rate, measured with getrusage on this process alone.
struct ProbeBenchmark {
    var type: String
    var target: String
    var rate: Double
    var duration: Double
    var warmup: Double
    var paceOnEventLoop = false

    func measure() async throws {
        let prober = Prober()
        let guardAgent = AddressGuard(runner: .agent)
        let failures = Failures()
        // As the agent's CheckRunner does: every run started on the thread it waits on (`makeExecutor`: the socket
        // poller for plain HTTP and TCP, an event loop for the rest), here paced by a timer of that same thread
        // (with `--probe-pacing loop`, of an event loop instead, the thread the agent's Assign frames arrive on).
        let executor = prober.makeExecutor(type: type, target: target)
        let pacing: any TaskExecutor = paceOnEventLoop ? prober.makeExecutor(type: "none", target: "") : executor
        func fire(for seconds: Double) async -> Int {
            let count = Int(seconds * rate)
            let start = ContinuousClock.now
            // Discarding: a plain task group keeps every finished run until the group ends, and that heap growth
            // (a page every other probe) was counted as the prober's CPU. The agent's CheckRunner keeps at most
            // its concurrency limit of finished runs.
            await withDiscardingTaskGroup { group in
                for index in 0..<count {
                    let due = start + .milliseconds(Int64(Double(index) * 1000 / rate))
                    try? await prober.sleep(until: due, on: pacing)
                    group.addTask(executorPreference: executor) {
                        let outcome = await prober.run(type: type, target: target, options: [:], timeout: .seconds(5),
                                                       addressGuard: guardAgent)
                        if !outcome.ok, type == "http" { await failures.add(outcome.error) }
                    }
                }
            }
            return count
        }
        let (probes, cpu) = await withTaskExecutorPreference(pacing) {
            _ = await fire(for: warmup)
            let before = Self.cpuSeconds()
            let probes = await fire(for: duration)
            return (probes, Self.cpuSeconds() - before)
        }
        let failed = await failures.count
        print(String(format: "\(type) probes: %d at %.0f/s, %d failed; CPU %.3f s = %.3f s per 1,000 probes",
                     probes, rate, failed, cpu, cpu / Double(probes) * 1000))
        if let first = await failures.first { print("first failure: \(first)") }
    }

    static func cpuSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
    }
}

actor Failures {
    var count = 0
    var first: String?
    func add(_ error: String) {
        count += 1
        if first == nil { first = error }
    }
}
