import NIOCore

/// Runs a probe's async code on one event loop — the loop its connections live on — so awaiting a channel's
/// future resumes on the same thread instead of waking a thread of the global executor for every step. Probes
/// never block (name lookups go to NIO's thread pool), so they may share the loop with its channels.
final class EventLoopTaskExecutor: TaskExecutor, @unchecked Sendable {
    let eventLoop: any EventLoop

    init(_ eventLoop: any EventLoop) { self.eventLoop = eventLoop }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        // From the loop's own thread this queues without waking anything.
        eventLoop.execute {
            job.runSynchronously(on: self.asUnownedTaskExecutor())
        }
    }
}
