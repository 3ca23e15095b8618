import CrowsnestWire

/// How a session with a server ended, which decides how the agent reconnects.
public enum SessionEnd: Sendable, Equatable, CustomStringConvertible {
    /// A transient failure (connection lost, server unavailable, timeout): reconnect with backoff.
    case retry(reason: String)
    /// Another session of this agent took over: wait at least `ReconnectPolicy.takenOverPause`.
    case takenOver(reason: String)
    /// The server refused this agent for good (revoked, unsupported protocol): stop shipping.
    case permanent(reason: String)
    /// The server could not decode the first unacknowledged batch: count a refusal against that record.
    case malformedBatch(reason: String)
    /// The server is shutting down (after storing and acknowledging what it received): go to the next server at
    /// once, without backing off.
    case serverShuttingDown(reason: String)

    public var description: String {
        switch self {
        case .retry(let reason), .takenOver(let reason), .permanent(let reason), .malformedBatch(let reason),
             .serverShuttingDown(let reason):
            return reason
        }
    }
}

/// The agent's side of one session, as a state machine: events in, actions out, the clock passed in. It owns
/// the protocol rules (Hello → Welcome, the ack window, heartbeats, response deadlines, what a Goodbye code
/// means) and nothing else; `Shipper` performs the actions on the socket, the spool and the sequence store, so
/// these rules are tested without sockets.
public struct ShipperSession: Sendable {
    public struct Settings: Sendable {
        /// Batches in flight at most (the server's `ack_window` lowers it).
        public var window: Int
        /// The server must answer within this time (Welcome, acks); twice this without any frame ends the session.
        public var responseTimeout: Duration
        public init(window: Int = 32, responseTimeout: Duration = .seconds(45)) {
            self.window = window
            self.responseTimeout = responseTimeout
        }
    }

    public enum Event: Sendable {
        /// A frame from the server.
        case frame(Crowsnest_V1_Frame)
        /// The heartbeat timer fired.
        case tick
        /// New batches were appended to the spool.
        case spoolGrew
        /// The connection ended (nil: cleanly).
        case closed(error: String?)
    }

    public enum Action: Sendable, Equatable {
        /// Send `Hello` (carrying `lastAckedSeq`).
        case sendHello
        /// The session is established: reconcile the spool and the sequence with what the server committed, then
        /// report the spool's acknowledged position with `established(acknowledgedSeq:)`.
        case establish(Crowsnest_V1_Welcome)
        /// Send spooled records with a sequence above `after`, at most `limit`, then report `sent(upTo:)`.
        case sendRecords(after: UInt64, limit: Int)
        /// Drop records up to `seq` from the spool.
        case acknowledge(upTo: UInt64)
        /// The server signed a new certificate: keep it (with the key the request was made for).
        case renewed(Crowsnest_V1_RenewResponse)
        case sendHeartbeat
        /// The server assigned a check run: hand it to the check runner.
        case runCheck(Crowsnest_V1_Assign)
        /// End the session (close the connection).
        case end(SessionEnd)
    }

    private enum State: Sendable {
        case awaitingWelcome(since: ContinuousClock.Instant)
        case established(Established)
        case ended
    }

    private struct Established: Sendable {
        var window: Int
        var acked: UInt64
        var lastSent: UInt64
        /// When the oldest unanswered batch was sent (nil: nothing in flight).
        var awaitingSince: ContinuousClock.Instant?
        var lastHeard: ContinuousClock.Instant
    }

    public let settings: Settings
    private var state: State
    /// Whether any batch was acknowledged in this session (the reconnect backoff resets on it).
    public private(set) var receivedAck = false
    /// When `Welcome` arrived (nil until then).
    public private(set) var establishedAt: ContinuousClock.Instant?

    public init(settings: Settings, now: ContinuousClock.Instant) {
        self.settings = settings
        self.state = .awaitingWelcome(since: now)
    }

    /// The first actions of a session.
    public func start() -> [Action] { [.sendHello] }

    /// After `.establish`: where the spool's acknowledged position is now; returns what to send.
    public mutating func established(acknowledgedSeq: UInt64) -> [Action] {
        guard case .established(var session) = state else { return [] }
        session.acked = acknowledgedSeq
        session.lastSent = max(session.lastSent, acknowledgedSeq)
        state = .established(session)
        return [.sendRecords(after: session.lastSent, limit: room(session))]
    }

    /// After `.sendRecords`: the highest sequence actually written (unchanged when there was nothing to send).
    public mutating func sent(upTo seq: UInt64, now: ContinuousClock.Instant) {
        guard case .established(var session) = state, seq > session.lastSent else { return }
        session.lastSent = seq
        if session.awaitingSince == nil { session.awaitingSince = now }
        state = .established(session)
    }

    public mutating func handle(_ event: Event, now: ContinuousClock.Instant) -> [Action] {
        switch state {
        case .ended:
            return []
        case .awaitingWelcome(let since):
            return handleBeforeWelcome(event, since: since, now: now)
        case .established(let session):
            return handleEstablished(event, session: session, now: now)
        }
    }

    private mutating func handleBeforeWelcome(_ event: Event, since: ContinuousClock.Instant, now: ContinuousClock.Instant) -> [Action] {
        switch event {
        case .frame(let frame):
            switch frame.message {
            case .welcome(let welcome):
                let serverWindow = welcome.settings.ackWindow == 0 ? 32 : Int(welcome.settings.ackWindow)
                state = .established(Established(window: max(1, min(settings.window, serverWindow)), acked: 0, lastSent: 0,
                                                 awaitingSince: nil, lastHeard: now))
                establishedAt = now
                return [.establish(welcome)]
            case .reject(let reject):
                return end(reject.permanent ? .permanent(reason: "server rejected the session: \(reject.reason)")
                                            : .retry(reason: "server rejected the session: \(reject.reason)"))
            case .goodbye(let goodbye):
                return end(Self.sessionEnd(for: goodbye))
            default:
                return end(.retry(reason: "server sent \(frame.messageName) before welcome"))
            }
        case .closed(let error):
            return end(.retry(reason: "server closed the connection before welcome\(error.map { ": \($0)" } ?? "")"))
        case .tick:
            if now - since > settings.responseTimeout {
                return end(.retry(reason: "server did not answer hello within \(settings.responseTimeout)"))
            }
            return []
        case .spoolGrew:
            return []
        }
    }

    private mutating func handleEstablished(_ event: Event, session: Established, now: ContinuousClock.Instant) -> [Action] {
        var session = session
        switch event {
        case .frame(let frame):
            session.lastHeard = now
            switch frame.message {
            case .ack(let ack):
                guard ack.seq <= session.lastSent else {
                    state = .established(session)
                    return end(.retry(reason: "server acknowledged batch \(ack.seq), which was never sent (last sent \(session.lastSent))"))
                }
                receivedAck = true
                if ack.seq > session.acked { session.acked = ack.seq }
                session.awaitingSince = session.lastSent > session.acked ? now : nil
                state = .established(session)
                return [.acknowledge(upTo: ack.seq), .sendRecords(after: session.lastSent, limit: room(session))]
            case .heartbeat:
                state = .established(session)
                return []
            case .assign(let assign):
                state = .established(session)
                return [.runCheck(assign)]
            case .renewResponse(let response):
                state = .established(session)
                return [.renewed(response)]
            case .goodbye(let goodbye):
                return end(Self.sessionEnd(for: goodbye))
            case .reject(let reject):
                return end(reject.permanent ? .permanent(reason: "server rejected the session: \(reject.reason)")
                                            : .retry(reason: "server rejected the session: \(reject.reason)"))
            default:
                return end(.retry(reason: "server sent an unexpected \(frame.messageName) frame"))
            }
        case .spoolGrew:
            return [.sendRecords(after: session.lastSent, limit: room(session))]
        case .tick:
            if let since = session.awaitingSince, now - since > settings.responseTimeout {
                return end(.retry(reason: "no acknowledgement from the server for \(settings.responseTimeout); reconnecting"))
            }
            if now - session.lastHeard > settings.responseTimeout * 2 {
                return end(.retry(reason: "server silent for \(settings.responseTimeout * 2); reconnecting"))
            }
            return [.sendHeartbeat, .sendRecords(after: session.lastSent, limit: room(session))]
        case .closed(let error):
            return end(.retry(reason: "server closed the connection\(error.map { ": \($0)" } ?? "")"))
        }
    }

    /// How many more batches may be in flight.
    private func room(_ session: Established) -> Int {
        max(0, session.window - Int(clamping: session.lastSent &- session.acked))
    }

    private mutating func end(_ reason: SessionEnd) -> [Action] {
        state = .ended
        return [.end(reason)]
    }

    /// What a server's Goodbye means for reconnecting.
    static func sessionEnd(for goodbye: Crowsnest_V1_Goodbye) -> SessionEnd {
        let reason = "server closed the session: \(goodbye.reason)"
        switch goodbye.code {
        case .takenOver: return .takenOver(reason: reason)
        case .revoked: return .permanent(reason: reason)
        case .malformedBatch: return .malformedBatch(reason: reason)
        case .shuttingDown: return .serverShuttingDown(reason: reason)
        case .unspecified, .retryLater, .protocolError, .UNRECOGNIZED: return .retry(reason: reason)
        }
    }
}

/// When to reconnect after a session ended: jittered exponential backoff that resets only after a session that
/// was acknowledged at least once or lasted `resetAfter`, so a server that welcomes and then refuses at once is
/// not hammered; never sooner than `takenOverPause` after another session took over.
public struct ReconnectPolicy: Sendable {
    public var backoff: Backoff
    public var resetAfter: Duration
    public var takenOverPause: Duration
    /// The most a reconnect waits after a server said it is shutting down.
    public var shuttingDownJitter: Duration

    public init(backoff: Backoff = Backoff(), resetAfter: Duration = .seconds(60), takenOverPause: Duration = .seconds(60),
                shuttingDownJitter: Duration = .milliseconds(500)) {
        self.backoff = backoff
        self.resetAfter = resetAfter
        self.takenOverPause = takenOverPause
        self.shuttingDownJitter = shuttingDownJitter
    }

    /// The pause before the next attempt after a session that ended with `end`.
    public mutating func delay<Random: RandomNumberGenerator>(after end: SessionEnd, receivedAck: Bool,
                                                               sessionLength: Duration?, using random: inout Random) -> Duration {
        if receivedAck || (sessionLength.map { $0 >= resetAfter } ?? false) {
            backoff.reset()
        }
        if case .serverShuttingDown = end {
            // Straight to the next server; the jitter keeps a fleet from arriving there in the same millisecond.
            backoff.reset()
            let most = max(0, Int64(shuttingDownJitter / .milliseconds(1)))
            return .milliseconds(Int64.random(in: 0...most, using: &random))
        }
        let delay = backoff.nextDelay(using: &random)
        if case .takenOver = end { return max(delay, takenOverPause) }
        return delay
    }

    public mutating func delay(after end: SessionEnd, receivedAck: Bool, sessionLength: Duration?) -> Duration {
        var random = SystemRandomNumberGenerator()
        return delay(after: end, receivedAck: receivedAck, sessionLength: sessionLength, using: &random)
    }
}
