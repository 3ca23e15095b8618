#if os(Linux)
import CEpoll
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The poller thread as the executor of the plain HTTP and TCP runs that wait on it, with timers of its own (their
/// deadlines). A run started there connects, sends and suspends on that thread; the answer resumes it on the thread
/// that read it, and the deadline's timer is the `epoll_wait` timeout: no event loop is woken per run and no
/// timerfd is armed. Work handed over from other threads goes through `inbox` and one eventfd write.
///
/// Everything run here must not block: probes never do (name lookups go to NIO's thread pool).
extension SocketExchangePoller: TaskExecutor {
    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        if isPollerThread {
            own.jobs.append(job)  // run at the top of the poller's loop, after what it is doing now
            return
        }
        let wake = inbox.withLock { inbox in
            inbox.jobs.append(job)
            return inbox.claimWake()
        }
        if wake { signal() }
    }

    /// Runs `action` on the poller thread once `deadline` has passed, unless cancelled first with `cancelTimer`;
    /// returns the timer's number.
    func schedule(at deadline: ContinuousClock.Instant, _ action: @escaping @Sendable () -> Void) -> UInt64 {
        let id = nextID.wrappingAdd(1, ordering: .relaxed).newValue
        if isPollerThread {
            own.add(PollerTimer(deadline: deadline, id: id), action)
            return id
        }
        let wake = inbox.withLock { inbox in
            inbox.timers.append((PollerTimer(deadline: deadline, id: id), action))
            return inbox.claimWake()
        }
        if wake { signal() }  // the poller's wait may have to end sooner
        return id
    }

    /// The timer does not fire, unless it already has (or, cancelled from another thread, is firing now).
    func cancelTimer(_ id: UInt64) {
        if isPollerThread {
            own.actions[id] = nil
        } else {
            inbox.withLock { $0.cancelledTimers.append(id) }  // no hurry: taken at the poller's next round
        }
    }

    /// Suspends until `deadline`, woken by one of the poller's timers; throws `CancellationError` when the task is
    /// cancelled first.
    func sleep(until deadline: ContinuousClock.Instant) async throws {
        try Task.checkCancellation()
        let waiter = PollerSleep()
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                guard waiter.wait(continuation) else { return }
                _ = schedule(at: deadline) { waiter.end(.success(())) }
            }
        } onCancel: {
            waiter.end(.failure(CancellationError()))
        }
    }

    var isPollerThread: Bool { UInt(pthread_self()) == pollerThread.load(ordering: .acquiring) }

    private func signal() {
        var one: UInt64 = 1
        _ = write(wakeFD, &one, 8)
    }

    /// Takes what other threads handed over, runs every job and due timer (and what they enqueue in turn), and
    /// returns how long `epoll_wait` may wait: until the next timer, in milliseconds rounded up, or -1 (no timer).
    func runJobsAndTimers() -> Int32 {
        while true {
            let handed = inbox.withLock { inbox -> PollerInbox? in
                inbox.wakePending = false
                guard !inbox.isEmpty else { return nil }
                defer { inbox = PollerInbox() }
                return inbox
            }
            if let handed {
                own.jobs += handed.jobs
                for (timer, action) in handed.timers { own.add(timer, action) }
                for id in handed.cancelledTimers { own.actions[id] = nil }
            }
            var index = 0
            while index < own.jobs.count {  // a job may enqueue another: it runs in this round too
                let job = own.jobs[index]
                index += 1
                job.runSynchronously(on: asUnownedTaskExecutor())
            }
            own.jobs.removeAll(keepingCapacity: true)
            let now = ContinuousClock.now
            var fired = false
            while let first = own.timers.first {
                guard let action = own.actions[first.id] else {
                    own.timers.removeFirst()  // cancelled
                    continue
                }
                guard first.deadline <= now else { break }
                own.timers.removeFirst()
                own.actions[first.id] = nil
                action()
                fired = true
            }
            if fired || !own.jobs.isEmpty { continue }  // what the timers resumed runs before the next wait
            guard let next = own.timers.first else { return -1 }
            let (seconds, attoseconds) = (next.deadline - now).components
            let milliseconds = seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
            return Int32(clamping: max(1, milliseconds))
        }
    }
}

/// What other threads handed to the poller thread since its last round.
struct PollerInbox {
    var jobs: [UnownedJob] = []
    var timers: [(PollerTimer, @Sendable () -> Void)] = []
    var cancelledTimers: [UInt64] = []
    /// An eventfd write is on its way; later hand-overs need none until the poller takes them.
    var wakePending = false

    var isEmpty: Bool { jobs.isEmpty && timers.isEmpty && cancelledTimers.isEmpty }

    /// True for the hand-over that must wake the poller (the first since it last looked).
    mutating func claimWake() -> Bool {
        defer { wakePending = true }
        return !wakePending
    }
}

/// One timer: when, and its number (its action is kept in `PollerThreadState.actions` until it fires).
struct PollerTimer: Comparable {
    let deadline: ContinuousClock.Instant
    let id: UInt64

    static func < (a: PollerTimer, b: PollerTimer) -> Bool { (a.deadline, a.id) < (b.deadline, b.id) }
}

/// The poller thread's own jobs and timers: touched only by that thread.
final class PollerThreadState: @unchecked Sendable {
    var jobs: [UnownedJob] = []
    /// Pending timers, earliest first (a binary heap); a cancelled one stays until it comes first.
    var timers = PollerTimerHeap()
    var actions: [UInt64: @Sendable () -> Void] = [:]

    func add(_ timer: PollerTimer, _ action: @escaping @Sendable () -> Void) {
        actions[timer.id] = action
        timers.insert(timer)
    }
}

/// A binary min-heap of timers.
struct PollerTimerHeap {
    private var items: [PollerTimer] = []

    var first: PollerTimer? { items.first }
    var count: Int { items.count }

    mutating func insert(_ timer: PollerTimer) {
        items.append(timer)
        var child = items.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard items[child] < items[parent] else { break }
            items.swapAt(child, parent)
            child = parent
        }
    }

    mutating func removeFirst() {
        guard !items.isEmpty else { return }
        items.swapAt(0, items.count - 1)
        items.removeLast()
        var parent = 0
        while true {
            let left = 2 * parent + 1
            let right = left + 1
            var smallest = parent
            if left < items.count && items[left] < items[smallest] { smallest = left }
            if right < items.count && items[right] < items[smallest] { smallest = right }
            guard smallest != parent else { return }
            items.swapAt(parent, smallest)
            parent = smallest
        }
    }
}

/// One `sleep(until:)`: resumed once, by its timer or by its task's cancellation, whichever comes first.
final class PollerSleep: Sendable {
    private enum State {
        case idle
        case waiting(CheckedContinuation<Void, any Error>)
        case ended
    }

    private let state = Mutex<State>(.idle)

    /// Keeps the continuation; false when the sleep already ended (cancelled before it began), and then resumes it.
    func wait(_ continuation: CheckedContinuation<Void, any Error>) -> Bool {
        let ended = state.withLock { state -> Bool in
            if case .ended = state { return true }
            state = .waiting(continuation)
            return false
        }
        if ended { continuation.resume(throwing: CancellationError()) }
        return !ended
    }

    func end(_ result: Result<Void, any Error>) {
        let continuation = state.withLock { state -> CheckedContinuation<Void, any Error>? in
            defer { state = .ended }
            if case .waiting(let continuation) = state { return continuation }
            return nil
        }
        continuation?.resume(with: result)
    }
}
#endif
