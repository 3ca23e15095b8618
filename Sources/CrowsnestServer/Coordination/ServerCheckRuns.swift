import CrowsnestProbes
import CrowsnestWire
import Foundation
import Logging
import NIOCore
import NIOPosix
import PostgresNIO
import Synchronization

/// Runs the slots of server-run checks (`run_on: {"mode":"server"}`) that this replica leased, through the
/// server's SSRF guard (no loopback, private, carrier-grade NAT, link-local or metadata address, nor this
/// machine's own, unless the tenant allowed the network), and records their results fenced by the slot's token,
/// as an agent's would be.
public final class ServerCheckRuns: Sendable {
    /// One leased slot to run.
    public struct Run: Sendable {
        public var check: DueCheck
        public var slot: SlotAssignment
        public var allowedNetworks: [IPNetwork]
    }

    /// Runs in flight at most.
    public let concurrency: Int
    /// Results gathered within this long are recorded in one statement.
    public let flushEvery: Duration
    private let client: PostgresClient
    private let prober: Prober
    private let replicaName: String
    private let logger: Logger
    private let ownAddresses: [IPAddress]
    private let queue: AsyncStream<Run>
    private let input: AsyncStream<Run>.Continuation
    private let pending = Mutex<[(tenantID: UUID, result: Crowsnest_V1_CheckResult)]>([])

    public init(client: PostgresClient, replicaName: String, concurrency: Int = 32, flushEvery: Duration = .milliseconds(200),
                prober: Prober = Prober(), logger: Logger) {
        self.client = client
        self.replicaName = replicaName
        self.concurrency = concurrency
        self.flushEvery = flushEvery
        self.prober = prober
        self.logger = logger
        self.ownAddresses = Self.localAddresses()
        (queue, input) = AsyncStream.makeStream(of: Run.self)
    }

    /// This machine's interface addresses: server-run checks must not reach the server itself.
    static func localAddresses() -> [IPAddress] {
        ((try? System.enumerateDevices()) ?? []).compactMap { device in
            IPNetwork.bytes(of: device.address).flatMap(IPAddress.init(bytes:))
        }
    }

    /// This machine's host name, the runner name of its results ("server" when it has none).
    public static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count) == 0 else { return "server" }
        let name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return name.isEmpty ? "server" : name
    }

    public func enqueue(_ run: Run) { input.yield(run) }

    /// Ends the queue: `run` returns once the runs already started are recorded.
    public func finish() { input.finish() }

    public func run() async {
        await withDiscardingTaskGroup { group in
            group.addTask {
                while !Task.isCancelled {
                    do { try await Task.sleep(for: self.flushEvery) } catch { return }
                    await self.flush()
                }
            }
            await withTaskGroup(of: Void.self) { runs in
                var running = 0
                for await run in queue {
                    if running >= concurrency {
                        await runs.next()
                        running -= 1
                    }
                    running += 1
                    runs.addTask { await self.execute(run) }
                }
            }
            group.cancelAll()
        }
        await flush()
    }

    func execute(_ run: Run) async {
        let check = run.check
        let outcome = await prober.run(
            type: check.type, target: check.target, options: check.optionTexts, timeout: .milliseconds(check.timeoutMs),
            addressGuard: AddressGuard(runner: .server, allowedNetworks: run.allowedNetworks, ownAddresses: ownAddresses))
        var result = outcome.checkResult(checkID: check.checkID.uuidString.lowercased(), token: UInt64(run.slot.token),
                                         slotUnixMs: Int64((run.slot.slotAt.timeIntervalSince1970 * 1000).rounded()))
        _ = result.sanitize()
        pending.withLock { $0.append((check.tenantID, result)) }
    }

    /// Records the results gathered so far, per tenant; on failure they are kept for the next try.
    func flush() async {
        let taken = pending.withLock { all in
            defer { all = [] }
            return all
        }
        guard !taken.isEmpty else { return }
        do {
            try await PartitionStore(client: client, logger: logger).ensurePartitions(forMillis: taken.map(\.result.slotUnixMs))
            let byTenant = Dictionary(grouping: taken, by: \.tenantID)
            try await client.withConnection { connection in
                for (tenantID, entries) in byTenant {
                    _ = try await CheckStore.recordRunResults(entries.map(\.result), tenantID: tenantID, agentID: nil,
                                                              on: connection, logger: self.logger)
                }
            }
        } catch {
            pending.withLock { $0.insert(contentsOf: taken, at: 0) }
            logger.error("cannot record server-run check results; retrying", metadata: [
                "results": "\(taken.count)", "error": "\(String(reflecting: error))",
            ])
        }
    }
}
