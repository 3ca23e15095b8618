import CrowsnestWire
import Foundation
import Logging
import Metrics
import ServiceLifecycle
import Synchronization

/// The lease of a singleton job (`job:{name}`): renewed every round while this replica holds it, taken when it is
/// free, released at shutdown so another replica takes the job at once instead of after a ttl. The jobs
/// (housekeeping, alert evaluation) differ only in what a round does.
final class SingletonLease: Sendable {
    let key: String
    let holder: String
    let ttl: Duration
    /// "housekeeping", "alert evaluation": for log lines.
    let job: String
    private let leases: LeaseStore
    private let logger: Logger
    private let current = Mutex<Lease?>(nil)
    private let held: Gauge

    init(key: String, replicaID: UUID, ttl: Duration, job: String, leases: LeaseStore, logger: Logger) {
        self.key = key
        self.holder = "replica:" + replicaID.uuidString.lowercased()
        self.ttl = ttl
        self.job = job
        self.leases = leases
        self.logger = logger
        self.held = Gauge(label: "crowsnest_job_lease_held", dimensions: [("job", key)])
    }

    /// Renews the lease, or takes it when free; the lease when this replica holds the job now, else nil.
    func hold() async throws -> Lease? {
        var lease = current.withLock { $0 }
        if let held = lease {
            lease = try await leases.renew(held, ttl: ttl)
            if lease == nil { logger.notice("\(job) lease lost to another replica") }
        }
        if lease == nil {
            lease = try await leases.acquire(key: key, holder: holder, ttl: ttl)
            if lease != nil { logger.info("this replica now runs \(job)") }
        }
        current.withLock { [lease] in $0 = lease }
        held.record(lease == nil ? 0 : 1)
        return lease
    }

    /// Runs `round` every `tick` (each within the ttl) until graceful shutdown, logging a failure once until a round
    /// succeeds again; then hands the lease over.
    func runRounds(tick: Duration, _ round: @escaping @Sendable () async throws -> Void) async {
        var failing = false
        while !Task.isShuttingDownGracefully {
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: tick) }
            } catch {
                break
            }
            do {
                try await withDeadline(ttl) { try await round() }
                failing = false
            } catch {
                if !failing {
                    logger.error("\(job) failed; retrying", metadata: ["error": "\(String(reflecting: error))"])
                    failing = true
                }
            }
        }
        if let lease = current.withLock({ $0 }) { _ = try? await leases.release(lease) }
        held.record(0)
    }
}
