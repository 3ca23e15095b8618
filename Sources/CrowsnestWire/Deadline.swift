/// A step that did not finish within its time limit (a database or engine that is down or does not answer).
public struct DeadlineExceeded: Error, CustomStringConvertible, Sendable {
    public var timeout: Duration
    public var description: String { "no answer within \(timeout)" }
}

/// Runs `body`, cancelling it and throwing `DeadlineExceeded` when it takes longer than `timeout`.
///
/// For calls that would otherwise wait indefinitely (PostgresClient waits for a connection while the database is
/// down; a unix socket can accept and then say nothing).
/// `clock` does the waiting (the agent passes its `EventLoopClock`, see there why).
public func withDeadline<T: Sendable, C: Clock>(
    _ timeout: Duration, clock: C = ContinuousClock(), _ body: @escaping @Sendable () async throws -> T
) async throws -> T where C.Duration == Duration {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await clock.sleep(for: timeout)
            throw DeadlineExceeded(timeout: timeout)
        }
        defer { group.cancelAll() }
        return try await group.next()!
    }
}
