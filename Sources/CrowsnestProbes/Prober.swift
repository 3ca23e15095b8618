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

    /// Where a run of this check is best started (`Task(executorPreference:)`, `addTask(executorPreference:)`): the
    /// thread its run waits on from start to result, so no other thread is woken per run (most of a probe's CPU
    /// cost otherwise). Plain HTTP and TCP checks wait on the socket poller's thread; the others on one of the
    /// prober's event loops (the next in turn), where their channels live.
    @available(macOS 15.0, *)
    public func makeExecutor(type: String, target: String) -> any TaskExecutor {
        #if os(Linux)
        if let poller = Self.poller(type: type, target: target) { return poller }
        #endif
        return EventLoopTaskExecutor(group.next())
    }

    /// Suspends until `deadline` on a timer of the thread behind `executor` (one from `makeExecutor`), which is then
    /// the thread that wakes; throws `CancellationError` when the task is cancelled first. For callers that pace
    /// runs themselves.
    public func sleep(until deadline: ContinuousClock.Instant, on executor: any TaskExecutor) async throws {
        #if os(Linux)
        if let poller = executor as? SocketExchangePoller {
            try await poller.sleep(until: deadline)
            return
        }
        #endif
        try await EventLoopClock(on: (executor as? EventLoopTaskExecutor)?.eventLoop ?? group.any()).sleep(until: deadline)
    }

    #if os(Linux)
    /// The socket poller, for a check whose run needs nothing but its sockets: TCP, and HTTP to an `http://` URL (a
    /// redirect to HTTPS still works from there, through a channel).
    static func poller(type: String, target: String) -> SocketExchangePoller? {
        guard type == "tcp" || (type == "http" && HTTPResponseParser.equalsIgnoringCase(bytes: target.utf8.prefix(7), "http://"))
        else { return nil }
        return SocketExchangePoller.shared
    }
    #endif

    public func run(type: String, target: String, options: [String: String], timeout: Duration,
                    addressGuard: AddressGuard) async -> ProbeOutcome {
        let start = ContinuousClock.now
        #if os(Linux)
        if let poller = Self.poller(type: type, target: target) {
            // The run on the poller's thread, its deadline one of the poller's timers: the answer resumes it where it
            // was read. A caller started on `makeExecutor` is on that thread already.
            let loop = group.next()
            let attempt = Task(executorPreference: poller) {
                await self.attempt(type: type, target: target, options: options, timeout: timeout,
                                   addressGuard: addressGuard, on: loop, start: start)
            }
            let timer = poller.schedule(at: start + timeout) { attempt.cancel() }
            let outcome = await withTaskCancellationHandler {
                await attempt.value
            } onCancel: {
                attempt.cancel()
            }
            poller.cancelTimer(timer)
            return outcome
        }
        #endif
        // The whole run on one event loop (see EventLoopTaskExecutor), its deadline a timer of that loop: no
        // thread wake-ups between the loop and the global executor, no timer thread. A caller already on one of
        // the group's loops (started on `makeExecutor`) keeps its loop.
        let loop = group.any()
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
        let timer = loop.scheduleTask(in: EventLoopClock.timeAmount(timeout)) { attempt.cancel() }
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
