import CrowsnestWire
import Foundation
import Logging
import Metrics
import NIOCore
import NIOSSL
import X509

/// Runs one agent connection: enrollment, or `Hello` → `Welcome` → batches and acks.
///
/// Identity and tenant come from the client certificate only. A batch is acknowledged only after the
/// ingest transaction committed; when the database fails the session ends without an ack, so the batch stays
/// in the agent's spool and is sent again after reconnecting.
public struct AgentSessionHandler: Sendable {
    public let agents: AgentStore
    public let ingest: IngestWriter
    public let enrollment: AgentEnrollment
    public let logger: Logger
    /// Heartbeat interval told to agents in `Welcome`.
    public var heartbeatSeconds: UInt32 = 15
    /// The replicas' agent addresses told to agents in `Welcome` (empty: agents keep theirs).
    public var serverAddresses: [String] = []
    /// How long one database step (enrolling, recording a hello, storing a batch) may take before the session gives
    /// up. PostgresClient waits for a connection indefinitely while the database is down; without this deadline a
    /// session would hang instead of telling the agent to retry later (its batches stay in its spool).
    public var storageTimeout: Duration = .seconds(20)
    /// Unacknowledged batches an agent may have in flight (told in `Welcome`); also how many a session queues.
    /// One and a half groups (`maxBatchesPerTransaction`): the next group fills while one is written, which is all
    /// the writer needs; a deeper window only makes a replaying agent's batches wait longer for their acks (the
    /// ingest benchmark: 32 gave the same throughput with ack p99 0.78–0.87 s, 24 gave 0.56–0.67 s).
    public var ackWindow: UInt32 = 24
    /// At most this many queued batches, and about this many container samples, go into one ingest transaction.
    public var maxBatchesPerTransaction = 16
    /// Caps on unauthenticated connections and enrollment attempts, shared with the gateway's pipeline.
    public var admission: ConnectionAdmission?
    /// How often a session checks that it is still the agent's live session and the agent is not revoked.
    public var sessionCheckInterval: Duration = .seconds(2)
    public var maxSamplesPerTransaction = 5_000
    /// The sessions of this replica that the check coordinator may give runs (nil: no coordination, as in tools).
    public var liveSessions: LiveSessions?

    private let batchesCommitted = Counter(label: "crowsnest_ingest_batches_total", dimensions: [("outcome", "committed")])
    private let batchesReplayed = Counter(label: "crowsnest_ingest_batches_total", dimensions: [("outcome", "replay")])
    private let batchesPartial = Counter(label: "crowsnest_ingest_batches_total", dimensions: [("outcome", "partial")])
    private let batchesRefused = Counter(label: "crowsnest_ingest_batches_total", dimensions: [("outcome", "refused")])
    private let samplesCommitted = Counter(label: "crowsnest_ingest_container_samples_total")
    private let sessionsRefused = Counter(label: "crowsnest_gateway_sessions_refused_total")
    private let connectedAgents = Meter(label: "crowsnest_gateway_connected_agents")
    private let ackDuration = Timer(label: "crowsnest_ingest_ack")
    private let spoolDropped = Counter(label: "crowsnest_agent_spool_dropped_batches_total")

    public init(agents: AgentStore, ingest: IngestWriter, enrollment: AgentEnrollment, logger: Logger) {
        self.agents = agents
        self.ingest = ingest
        self.enrollment = enrollment
        self.logger = logger
    }

    /// Reasons a session ends early; each is sent to the agent in `Goodbye` (with its code) or `Reject`.
    struct SessionEnd: Error, CustomStringConvertible, Equatable {
        var reason: String
        var reject = false
        var permanent = false
        var code: Crowsnest_V1_GoodbyeCode = .protocolError
        var description: String { reason }
    }

    /// The Goodbye code for a stream that could not be read as frames: a frame that does not decode (or is
    /// over the limit) is counted by the agent against its first unacknowledged batch; anything else is a
    /// protocol error.
    static func goodbyeCode(for error: FrameError) -> Crowsnest_V1_GoodbyeCode {
        switch error {
        case .malformedPayload, .frameTooLarge: return .malformedBatch
        case .emptyFrame, .truncated, .emptyMessage: return .protocolError
        }
    }

    /// Largest batch sequence accepted: sequences are stored as PostgreSQL bigint.
    static let maximumSeq = UInt64(Int64.max)

    /// Why a batch breaks the protocol (and ends the session), or nil when it does not.
    static func protocolViolation(in batch: Crowsnest_V1_SampleBatch) -> String? {
        if batch.seq == 0 { return "batch sequence 0 is not allowed (sequences start at 1)" }
        if batch.seq > maximumSeq { return "batch sequence \(batch.seq) is above the largest allowed, \(maximumSeq)" }
        if !(1...3600).contains(batch.intervalSeconds) {
            return "batch interval \(batch.intervalSeconds) s is outside 1–3600 s"
        }
        return nil
    }

    public func handle(_ connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>) async {
        await handle(connection, shutdown: nil)
    }

    /// Runs the connection; `shutdown` lets the gateway end an established session gracefully.
    func handle(_ connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>, shutdown: SessionShutdown?) async {
        var logger = self.logger
        let client = admission?.clientAddress(of: connection.channel) ?? connection.channel.remoteAddress
        logger[metadataKey: "peer.address"] = "\(client.map { "\($0)" } ?? "unknown")"
        do {
            try await connection.executeThenClose { inbound, outbound in
                var session = FrameChannel(inbound: inbound, outbound: outbound)
                session.reusesRepeatedContainerSamples = true  // every sweep repeats its containers' names, images and labels
                let sender = session.sender
                do {
                    guard let (sessionID, machine, facts) = try await handshake(&session, connection: connection, logger: &logger),
                          let identity = machine.identity
                    else { return }
                    liveSessions?.register(LiveAgent(tenantID: identity.tenantID, agentID: identity.agentID, sessionID: sessionID,
                                                     hostname: facts.hostname, labels: facts.labels,
                                                     send: { try await sender.send($0) }))
                    connectedAgents.increment()
                    defer {
                        liveSessions?.unregister(agentID: identity.agentID, sessionID: sessionID)
                        connectedAgents.decrement()
                    }
                    try await receiveBatches(from: session, machine: machine, sender: sender, identity: identity,
                                             sessionID: sessionID, shutdown: shutdown, logger: logger)
                } catch let end as SessionEnd where end.code == .shuttingDown {
                    logger.info("agent session ended: this server is shutting down; the agent moves to another")
                    var goodbye = Crowsnest_V1_Goodbye()
                    goodbye.reason = end.reason
                    goodbye.code = end.code
                    try? await sender.send(.with(.goodbye(goodbye)))
                } catch let end as SessionEnd {
                    sessionsRefused.increment()
                    logger.warning("agent session refused", metadata: ["reason": "\(end.reason)"])
                    if end.reject {
                        var reject = Crowsnest_V1_Reject()
                        reject.reason = end.reason
                        reject.permanent = end.permanent
                        try? await sender.send(.with(.reject(reject)))
                    } else {
                        var goodbye = Crowsnest_V1_Goodbye()
                        goodbye.reason = end.reason
                        goodbye.code = end.code
                        try? await sender.send(.with(.goodbye(goodbye)))
                    }
                } catch let error as FrameError {
                    sessionsRefused.increment()
                    logger.warning("agent sent invalid frames; closing", metadata: ["reason": "\(error)"])
                    var goodbye = Crowsnest_V1_Goodbye()
                    goodbye.reason = "protocol error: \(error)"
                    goodbye.code = Self.goodbyeCode(for: error)
                    try? await sender.send(.with(.goodbye(goodbye)))
                }
            }
        } catch {
            // A connection closed before its TLS handshake finished is what a load balancer's TCP health check
            // looks like (every few seconds, per balancer): not worth an info line each time.
            if "\(error)".contains("EOF during handshake") {
                logger.debug("connection closed during the TLS handshake (a load balancer's health check?)",
                             metadata: ["reason": "\(error)"])
            } else {
                logger.info("agent connection closed", metadata: ["reason": "\(error)"])
            }
        }
    }

    /// What the Hello said that the check coordinator needs.
    struct HelloFacts {
        var hostname = ""
        var labels: Set<String> = []
    }

    /// Enrolls an agent without a certificate (returns nil), or checks `Hello` and sends `Welcome` (returns the
    /// agent's identity and the session's state machine, with the session's frame limit raised).
    private func handshake(_ session: inout FrameChannel, connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>,
                           logger: inout Logger) async throws -> (sessionID: UUID, machine: AgentSessionStateMachine, facts: HelloFacts)? {
        guard let first = try await session.next() else { return nil }
        connection.channel.pipeline.fireUserInboundEventTriggered(ConnectionAdmission.Event.firstFrameReceived)
        // Behind a trusted load balancer the client's address is known now (its PROXY header came before TLS).
        if let client = admission?.clientAddress(of: connection.channel) { logger[metadataKey: "peer.address"] = "\(client)" }
        let peer: AgentSessionStateMachine.Peer
        if let certificate = try await connection.channel.nioSSL_peerCertificate().get() {
            do {
                peer = .agent(try AgentCertificateIdentity.parse(certificate: try Certificate(derEncoded: try certificate.toDERBytes())))
            } catch {
                peer = .unreadable(reason: "\(error)")
            }
        } else {
            peer = .anonymous
        }
        var machine = AgentSessionStateMachine(heartbeatSeconds: heartbeatSeconds, ackWindow: ackWindow,
                                               serverAddresses: serverAddresses)
        var actions = machine.firstFrame(first, peer: peer, nowMillis: Self.nowMillis())
        let sessionID = UUID()
        var facts = HelloFacts()
        while !actions.isEmpty {
            let action = actions.removeFirst()
            switch action {
            case .enroll(let request):
                try await enroll(request, session: session, connection: connection, logger: logger)
                return nil
            case .recordHello(let hello, let clockOffset):
                if case .agent(let identity) = peer {
                    logger[metadataKey: "agent.id"] = "\(identity.agentID.uuidString.lowercased())"
                    logger[metadataKey: "tenant.id"] = "\(identity.tenantID.uuidString.lowercased())"
                }
                guard let identity = machine.identity else { continue }
                facts.hostname = hello.host.hostname
                facts.labels = Set(hello.labels)
                var record: AgentRecord?
                var storageFailed = false
                do {
                    let agents = self.agents
                    record = try await withDeadline(storageTimeout) {
                        try await agents.recordHello(tenantID: identity.tenantID, agentID: identity.agentID, hello: hello,
                                                     sessionID: sessionID, clockOffsetMillis: clockOffset)
                    }
                } catch {
                    logger.error("cannot record agent hello: database unavailable", metadata: ["error": "\(String(reflecting: error))"])
                    storageFailed = true
                }
                if let clockOffset, clockOffset.magnitude > 2_000 {
                    logger.warning("agent clock differs from the server's; its batch times are off by as much",
                                   metadata: ["agent.clock_offset_ms": "\(clockOffset)"])
                }
                if record?.cloneSuspected == true {
                    logger.warning("sessions of this agent alternate between two boot ids: two hosts share its identity (cloned VM or state directory?)")
                }
                actions += machine.helloRecorded(record, storageFailed: storageFailed, clockOffsetMillis: clockOffset,
                                                 nowMillis: Self.nowMillis())
                if let record { logger[metadataKey: "agent.hostname"] = "\(record.hostname)" }
            case .welcome(let welcome):
                try await session.send(.with(.welcome(welcome)))
                session.maximumFrameLength = FrameLimits.established
                connection.channel.pipeline.fireUserInboundEventTriggered(ConnectionAdmission.Event.authenticated)
                logger.info("agent session established", metadata: ["agent.committed_seq": "\(welcome.committedSeq)"])
                return (sessionID, machine, facts)
            case .end(let end):
                throw end
            case .queue, .send, .recordClockOffset, .renew, .close:
                continue  // not produced before the session is established
            }
        }
        return nil
    }

    /// Enrollment: consume the token, sign the CSR, answer (rate-limited per address).
    private func enroll(_ request: Crowsnest_V1_EnrollRequest, session: FrameChannel,
                        connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>, logger: Logger) async throws {
        let address = ConnectionAdmission.addressKey(admission?.clientAddress(of: connection.channel) ?? connection.channel.remoteAddress)
        if let admission, !admission.allowEnrollment(from: address) {
            throw SessionEnd(reason: "too many enrollment attempts from \(address); retry in a minute", reject: true)
        }
        do {
            let enrollment = self.enrollment
            let response = try await withDeadline(storageTimeout) { try await enrollment.enroll(request) }
            logger.info("agent enrolled", metadata: ["agent.id": "\(response.agentID)", "tenant.id": "\(response.tenantID)",
                                                     "agent.hostname": "\(request.host.hostname)"])
            try await session.send(.with(.enrollResponse(response)))
            // Done: the connection no longer counts as unauthenticated.
            connection.channel.pipeline.fireUserInboundEventTriggered(ConnectionAdmission.Event.authenticated)
        } catch let error as StoreError {
            throw SessionEnd(reason: "enrollment refused: \(error.message)", reject: true, permanent: true)
        } catch let error as CertificateAuthorityError {
            throw SessionEnd(reason: "enrollment refused: \(error)", reject: true, permanent: true)
        } catch is DeadlineExceeded {
            throw SessionEnd(reason: "server storage is unavailable; retry enrollment later", reject: true)
        } catch {
            // A database failure is not the agent's fault: say so (retryable) rather than just closing.
            logger.error("cannot enroll agent: storage failed", metadata: ["error": "\(String(reflecting: error))"])
            throw SessionEnd(reason: "server storage failed during enrollment; retry enrollment later", reject: true)
        }
    }

    static func nowMillis() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    /// The established session: a reader task takes frames off the connection (answering heartbeats itself) and
    /// queues batches; this task stores whatever has queued up in one transaction and then acknowledges each of
    /// those batches — only after COMMIT. A storage failure ends the session without acks for the unstored batches.
    private func receiveBatches(from session: sending FrameChannel, machine: sending AgentSessionStateMachine, sender: FrameSender,
                                identity: AgentCertificateIdentity, sessionID: UUID, shutdown: SessionShutdown?,
                                logger: Logger) async throws {
        let inbox = SessionInbox(capacity: max(1, Int(ackWindow)))
        shutdown?.attach(inbox)
        // Leaving this scope (normally or by an error) cancels the reader and waits for it.
        let heard: @Sendable () -> Void = { [liveSessions] in
            liveSessions?.heard(agentID: identity.agentID, sessionID: sessionID)
        }
        async let reading: Void = Self.readFrames(from: session, machine: machine, into: inbox, sender: sender,
                                                  identity: identity, agents: agents, enrollment: enrollment,
                                                  heard: heard, logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { [agents, sessionCheckInterval] in
                await Self.watchSession(sessionID, identity: identity, agents: agents, into: inbox,
                                        every: sessionCheckInterval, logger: logger)
            }
            // The watcher runs as long as the session does, and no longer.
            defer { group.cancelAll() }
            do {
                try await storeBatches(from: inbox, sender: sender, identity: identity, logger: logger)
            } catch {
                await inbox.cancel()
                throw error
            }
        }
        await inbox.cancel()
        await reading
    }

    /// Checks every `interval` that this is still the agent's live session: another Hello with the same
    /// certificate takes over (this one ends with `TAKEN_OVER`), a revoked agent is cut off (`REVOKED`).
    private static func watchSession(_ sessionID: UUID, identity: AgentCertificateIdentity, agents: AgentStore,
                                     into inbox: SessionInbox, every interval: Duration, logger: Logger) async {
        while !Task.isCancelled {
            do { try await Task.sleep(for: interval) } catch { return }
            let state: AgentSessionState
            do {
                state = try await withDeadline(interval) {
                    try await agents.sessionState(tenantID: identity.tenantID, agentID: identity.agentID, sessionID: sessionID)
                }
            } catch {
                continue  // the database is slow or down: storing batches will say so
            }
            switch state {
            case .current:
                continue
            case .takenOver:
                logger.warning("another session of this agent took over; closing this one")
                await inbox.push(.failed(SessionEnd(reason: "another session of this agent took over (the same certificate connected again)",
                                                    code: .takenOver)))
                return
            case .revoked, .unknown:
                logger.notice("agent revoked; closing its session")
                await inbox.push(.failed(SessionEnd(reason: "agent \(identity.agentID) has been revoked", permanent: true,
                                                    code: .revoked)))
                return
            }
        }
    }

    /// Reads frames until the connection ends and performs what the state machine says for each: batches and the
    /// reason the session ends go into `inbox`, in order; heartbeats and renewals are answered here.
    private static func readFrames(from session: sending FrameChannel, machine: sending AgentSessionStateMachine,
                                   into inbox: SessionInbox, sender: FrameSender, identity: AgentCertificateIdentity,
                                   agents: AgentStore, enrollment: AgentEnrollment, heard: @Sendable () -> Void,
                                   logger: Logger) async {
        var session = session
        var machine = machine
        var renewed = false
        do {
            while true {
                let next: Crowsnest_V1_Frame?
                do {
                    next = try await session.next()
                } catch FrameError.emptyMessage {
                    // A frame type this server does not know (a newer agent): ignored, as unknown fields are.
                    logger.debug("ignored a frame of a type this server does not know")
                    continue
                }
                guard let frame = next else { break }
                heard()
                for action in machine.frame(frame, bytes: session.lastFrameBytes, nowMillis: nowMillis()) {
                    switch action {
                    case .queue(let batch, let bytes):
                        await inbox.push(.batch(batch), bytes: bytes)
                    case .send(let answer):
                        try await sender.send(answer)
                    case .recordClockOffset(let offset):
                        // Bounded: a database that does not answer must not stop the reader (heartbeats, batches).
                        _ = try? await withDeadline(.seconds(3)) {
                            try await agents.recordClockOffset(tenantID: identity.tenantID, agentID: identity.agentID,
                                                               offsetMillis: offset)
                        }
                    case .renew(let request):
                        // The session proved the identity with the current certificate: sign the new key for it,
                        // once per session (an agent asking again and again gets no more signatures).
                        guard !renewed else { continue }
                        renewed = true
                        do {
                            let response = try await withDeadline(.seconds(10)) {
                                try await enrollment.renew(request, identity: identity)
                            }
                            try await sender.send(.with(.renewResponse(response)))
                            logger.info("agent certificate renewed")
                        } catch {
                            logger.warning("cannot renew the agent's certificate; it keeps the current one and asks again later",
                                           metadata: ["error": "\(error)"])
                        }
                    case .close:
                        logger.info("agent said goodbye")
                        await inbox.push(.closed)
                        return
                    case .end(let end):
                        await inbox.push(.failed(end))
                        return
                    case .enroll, .recordHello, .welcome:
                        continue  // only before the session is established
                    }
                }
            }
            await inbox.push(.closed)
        } catch {
            await inbox.push(.failed(error))
        }
    }

    /// Stores queued batches group by group and acknowledges each after its group committed.
    private func storeBatches(from inbox: SessionInbox, sender: FrameSender, identity: AgentCertificateIdentity,
                              logger: Logger) async throws {
        var memory = CounterMemory()
        while true {
            let items = await inbox.take(maxBatches: maxBatchesPerTransaction, maxSamples: maxSamplesPerTransaction)
            guard !items.isEmpty else { return }
            var batches: [Crowsnest_V1_SampleBatch] = []
            var end: SessionInbox.Item?
            for item in items {
                if case .batch(let batch) = item { batches.append(batch) } else { end = item }
            }
            if !batches.isEmpty {
                let taken = DispatchTime.now()
                let outcomes: [IngestOutcome]
                do {
                    let (ingest, before, group) = (self.ingest, memory, batches)
                    (outcomes, memory) = try await withDeadline(storageTimeout) {
                        var memory = before
                        let outcomes = try await ingest.write(group: group, tenantID: identity.tenantID,
                                                              agentID: identity.agentID, memory: &memory)
                        return (outcomes, memory)
                    }
                } catch {
                    let seqs = batches.count == 1 ? "\(batches[0].seq)" : "\(batches[0].seq)–\(batches[batches.count - 1].seq)"
                    logger.error("cannot store batches; closing without ack so the agent keeps them",
                                 metadata: ["batch.seq": "\(seqs)", "error": "\(String(reflecting: error))"])
                    throw SessionEnd(reason: "server could not store batch \(seqs); retry later", code: .retryLater)
                }
                var acks: [Crowsnest_V1_Frame] = []
                acks.reserveCapacity(batches.count)
                for (batch, outcome) in zip(batches, outcomes) {
                    switch outcome {
                    case .committed(let samples):
                        batchesCommitted.increment()
                        samplesCommitted.increment(by: samples)
                        if batch.spoolDroppedBatches > 0 { spoolDropped.increment(by: Int64(clamping: batch.spoolDroppedBatches)) }
                    case .replay:
                        batchesReplayed.increment()
                        logger.debug("batch already committed; acknowledging replay", metadata: ["batch.seq": "\(batch.seq)"])
                    case .partial(let samples, _):
                        batchesPartial.increment()
                        samplesCommitted.increment(by: samples)
                        if batch.spoolDroppedBatches > 0 { spoolDropped.increment(by: Int64(clamping: batch.spoolDroppedBatches)) }
                    case .refused:
                        batchesRefused.increment()
                    }
                    var ack = Crowsnest_V1_Ack()
                    ack.seq = batch.seq
                    acks.append(.with(.ack(ack)))
                }
                try await sender.send(acks)
                ackDuration.recordInterval(since: taken)
            }
            switch end {
            case .failed(let error): throw error
            case .closed: return
            case .batch, nil: continue
            }
        }
    }
}
