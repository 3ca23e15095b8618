import CrowsnestWire
import NIOCore
import NIOPosix
import NIOSSL

/// Runs one check of any supported type against its target, within its deadline, through the SSRF guard, and
/// says what it found. Never throws: every failure (refused address, timeout, a wrong answer) is an outcome with
/// its reason, which is what the operator sees as the result's error. Used by the agent for assigned checks and by
/// the server for server-run ones.
public struct Prober: Sendable {
    /// The check types this prober runs.
    public static let supportedTypes: Set<String> = ["http", "tcp", "tls", "dns", "nginx", "postgres", "docker"]

    private let group: any EventLoopGroup
    private let tls = ProbeTLS()
    private let nginx = NginxRequestHistory()
    private let containers: ContainerSource?

    /// `containers` is where `docker` checks look (an agent's inventory); without it they fail with the reason.
    public init(group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, containers: ContainerSource? = nil) {
        self.containers = containers
        self.group = group
    }

    /// An executor on one of the prober's event loops (the next in turn). A caller that starts its runs on it
    /// (`Task(executorPreference:)`, `addTask(executorPreference:)`) keeps each run on that loop's thread from
    /// start to result: no wake-up of another thread per run, which is most of a probe's CPU cost otherwise.
    @available(macOS 15.0, *)
    public func makeExecutor() -> any TaskExecutor {
        EventLoopTaskExecutor(group.next())
    }

    public func run(type: String, target: String, options: [String: String], timeout: Duration,
                    addressGuard: AddressGuard) async -> ProbeOutcome {
        // The whole run on one event loop (see EventLoopTaskExecutor), its deadline a timer of that loop: no
        // thread wake-ups between the loop and the global executor, no timer thread. A caller already on one of
        // the group's loops (started on `makeExecutor()`) keeps its loop.
        let loop = group.any()
        let start = ContinuousClock.now
        let attempt: Task<ProbeOutcome, Never>
        if #available(macOS 15.0, *) {
            attempt = Task(executorPreference: EventLoopTaskExecutor(loop)) {
                await self.attempt(type: type, target: target, options: options, timeout: timeout,
                                   addressGuard: addressGuard, on: loop, start: start)
            }
        } else {
            attempt = Task {
                await self.attempt(type: type, target: target, options: options, timeout: timeout,
                                   addressGuard: addressGuard, on: loop, start: start)
            }
        }
        let nanoseconds = timeout.components.seconds * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000
        let timer = loop.scheduleTask(in: .nanoseconds(max(0, nanoseconds))) { attempt.cancel() }
        let outcome = await withTaskCancellationHandler {
            await attempt.value
        } onCancel: {
            attempt.cancel()
        }
        timer.cancel()
        return outcome
    }

    /// One run; cancelled at its deadline, which makes it a failure saying so.
    private func attempt(type: String, target: String, options: [String: String], timeout: Duration,
                         addressGuard: AddressGuard, on loop: any EventLoop, start: ContinuousClock.Instant) async -> ProbeOutcome {
        let deadline = start + timeout
        let resolver = GuardedResolver(addressGuard: addressGuard)
        let dialer = ProbeDialer(group: loop)
        let (tls, nginx, containers) = (self.tls, self.nginx, self.containers)
        do {
            switch type {
            case "tcp":
                return try await TCPProber(dialer: dialer, resolver: resolver).probe(target, deadline: deadline)
            case "http":
                return try await HTTPProber(dialer: dialer, resolver: resolver, tls: tls)
                    .probe(target, options: options, deadline: deadline)
            case "nginx":
                return try await NginxProber(http: HTTPProber(dialer: dialer, resolver: resolver, tls: tls), history: nginx)
                    .probe(target, deadline: deadline)
            case "postgres":
                return try await PostgresProber(dialer: dialer, resolver: resolver, tls: tls)
                    .probe(target, options: options, deadline: deadline)
            case "docker":
                return try DockerProber(containers: containers).probe(target, options: options)
            case "dns":
                return try await DNSProber(dialer: dialer, resolver: resolver, group: loop)
                    .probe(target, options: options, deadline: deadline)
            case "tls":
                return try await TLSProber(dialer: dialer, resolver: resolver, tls: tls)
                    .probe(target, options: options, deadline: deadline)
            default:
                throw ProbeFailure("checks of type \(type) are not run here yet")
            }
        } catch _ where Task.isCancelled {
            // The deadline's timer cancelled the run: whatever broke off (a closed channel, a cancelled wait) is that.
            return .failure("no answer within \(Int(timeout.milliseconds.rounded())) ms", latencyMs: timeout.milliseconds)
        } catch let failure as ProbeFailure {
            return .failure(failure.reason, latencyMs: (ContinuousClock.now - start).milliseconds)
        } catch let error as NIOSSLError {
            return .failure("TLS failed: \(error)", latencyMs: (ContinuousClock.now - start).milliseconds)
        } catch {
            return .failure("\(error)", latencyMs: (ContinuousClock.now - start).milliseconds)
        }
    }
}
