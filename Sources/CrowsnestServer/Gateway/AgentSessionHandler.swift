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
    /// How long one database step (enrolling, recording a hello, storing a batch) may take before the session gives
    /// up. PostgresClient waits for a connection indefinitely while the database is down; without this deadline a
    /// session would hang instead of telling the agent to retry later (its batches stay in its spool).
    public var storageTimeout: Duration = .seconds(20)
    /// Unacknowledged batches an agent may have in flight (told in `Welcome`); also how many a session queues.
    public var ackWindow: UInt32 = 32
    /// At most this many queued batches, and about this many container samples, go into one ingest transaction.
    public var maxBatchesPerTransaction = 16
    /// Caps on unauthenticated connections and enrollment attempts, shared with the gateway's pipeline.
    public var admission: ConnectionAdmission?
    /// How often a session checks that it is still the agent's live session and the agent is not revoked.
    public var sessionCheckInterval: Duration = .seconds(2)
    public var maxSamplesPerTransaction = 5_000

    private let batchesCommitted = Counter(label: "crowsnest_ingest_batches_total", dimensions: [("outcome", "committed")])
    private let batchesReplayed = Counter(label: "crowsnest_ingest_batches_total", dimensions: [("outcome", "replay")])
    private let batchesPartial = Counter(label: "crowsnest_ingest_batches_total", dimensions: [("outcome", "partial")])
    private let batchesRefused = Counter(label: "crowsnest_ingest_batches_total", dimensions: [("outcome", "refused")])
    private let samplesCommitted = Counter(label: "crowsnest_ingest_container_samples_total")
    private let sessionsRefused = Counter(label: "crowsnest_gateway_sessions_refused_total")

    public init(agents: AgentStore, ingest: IngestWriter, enrollment: AgentEnrollment, logger: Logger) {
        self.agents = agents
        self.ingest = ingest
        self.enrollment = enrollment
        self.logger = logger
    }

    /// Reasons a session ends early; each is sent to the agent in `Goodbye` (with its code) or `Reject`.
    struct SessionEnd: Error, CustomStringConvertible {
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
        case .malformedPayload, .emptyMessage, .frameTooLarge: return .malformedBatch
        case .emptyFrame, .truncated: return .protocolError
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
        var logger = self.logger
        logger[metadataKey: "peer.address"] = "\(connection.channel.remoteAddress.map { "\($0)" } ?? "unknown")"
        do {
            try await connection.executeThenClose { inbound, outbound in
                var session = FrameChannel(inbound: inbound, outbound: outbound)
                let sender = session.sender
                do {
                    guard let (identity, sessionID) = try await handshake(&session, connection: connection, logger: &logger)
                    else { return }
                    try await receiveBatches(from: session, sender: sender, identity: identity, sessionID: sessionID,
                                             logger: logger)
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
            logger.info("agent connection closed", metadata: ["reason": "\(error)"])
        }
    }

    /// Enrolls an agent without a certificate (returns nil), or checks `Hello` and sends `Welcome` (returns the
    /// agent's identity, with the session's frame limit raised).
    private func handshake(_ session: inout FrameChannel, connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>,
                           logger: inout Logger) async throws -> (identity: AgentCertificateIdentity, sessionID: UUID)? {
        guard let first = try await session.next() else { return nil }
        connection.channel.pipeline.fireUserInboundEventTriggered(ConnectionAdmission.Event.firstFrameReceived)
        let peer = try await connection.channel.nioSSL_peerCertificate().get()
        guard let peer else {
            guard case .enrollRequest(let request) = first.message else {
                throw SessionEnd(reason: "no client certificate: connect with the certificate issued at enrollment, or enroll first", reject: true, permanent: true)
            }
            let address = ConnectionAdmission.addressKey(connection.channel.remoteAddress)
            if let admission, !admission.allowEnrollment(from: address) {
                throw SessionEnd(reason: "too many enrollment attempts from \(address); retry in a minute", reject: true)
            }
            do {
                let enrollment = self.enrollment
                let response = try await withDeadline(storageTimeout) { try await enrollment.enroll(request) }
                logger.info("agent enrolled", metadata: ["agent.id": "\(response.agentID)", "tenant.id": "\(response.tenantID)",
                                                         "agent.hostname": "\(request.host.hostname)"])
                try await session.send(.with(.enrollResponse(response)))
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
            return nil
        }
        let identity: AgentCertificateIdentity
        do {
            identity = try AgentCertificateIdentity.parse(certificate: try Certificate(derEncoded: try peer.toDERBytes()))
        } catch {
            throw SessionEnd(reason: "client certificate carries no agent identity: \(error)", reject: true, permanent: true)
        }
        logger[metadataKey: "agent.id"] = "\(identity.agentID.uuidString.lowercased())"
        logger[metadataKey: "tenant.id"] = "\(identity.tenantID.uuidString.lowercased())"

        guard case .hello(var hello) = first.message else {
            throw SessionEnd(reason: "expected hello as the first frame, got \(first.messageName)")
        }
        guard hello.protocolVersion == FrameLimits.protocolVersion || hello.protocolVersion + 1 == FrameLimits.protocolVersion else {
            throw SessionEnd(reason: "protocol version \(hello.protocolVersion) is not supported (server speaks \(FrameLimits.protocolVersion - 1) and \(FrameLimits.protocolVersion))", reject: true, permanent: true)
        }
        hello.sanitize()
        let cleanHello = hello
        let serverNow = Int64(Date().timeIntervalSince1970 * 1000)
        let clockOffset: Int64? = hello.agentTimeUnixMs == 0 ? nil : hello.agentTimeUnixMs &- serverNow
        let record: AgentRecord?
        let sessionID = UUID()
        do {
            let agents = self.agents
            record = try await withDeadline(storageTimeout) {
                try await agents.recordHello(tenantID: identity.tenantID, agentID: identity.agentID, hello: cleanHello,
                                             sessionID: sessionID, clockOffsetMillis: clockOffset)
            }
        } catch {
            logger.error("cannot record agent hello: database unavailable", metadata: ["error": "\(String(reflecting: error))"])
            throw SessionEnd(reason: "server storage is unavailable; retry later", reject: true, code: .retryLater)
        }
        guard let record else {
            throw SessionEnd(reason: "agent \(identity.agentID) is not registered with this server", reject: true, permanent: true)
        }
        if record.revoked {
            throw SessionEnd(reason: "agent \(identity.agentID) has been revoked", reject: true, permanent: true)
        }
        if record.cloneSuspected {
            logger.warning("sessions of this agent alternate between two boot ids: two hosts share its identity (cloned VM or state directory?)")
        }
        var welcome = Crowsnest_V1_Welcome()
        welcome.agentID = identity.agentID.uuidString.lowercased()
        welcome.tenantID = identity.tenantID.uuidString.lowercased()
        welcome.serverTimeUnixMs = Int64(Date().timeIntervalSince1970 * 1000)
        if let clockOffset, abs(clockOffset) > 2_000 {
            logger.warning("agent clock differs from the server's; its batch times are off by as much",
                           metadata: ["agent.clock_offset_ms": "\(clockOffset)"])
        }
        welcome.committedSeq = record.committedSeq
        welcome.committedBatchTsUnixMs = record.committedBatchTsMillis
        welcome.settings.heartbeatIntervalSeconds = heartbeatSeconds
        welcome.settings.maxFrameBytes = UInt32(FrameLimits.established)
        welcome.settings.ackWindow = ackWindow
        try await session.send(.with(.welcome(welcome)))
        session.maximumFrameLength = FrameLimits.established
        connection.channel.pipeline.fireUserInboundEventTriggered(ConnectionAdmission.Event.authenticated)
        logger.info("agent session established", metadata: ["agent.hostname": "\(record.hostname)",
                                                             "agent.committed_seq": "\(record.committedSeq)"])

        return (identity, sessionID)
    }

    /// The established session: a reader task takes frames off the connection (answering heartbeats itself) and
    /// queues batches; this task stores whatever has queued up in one transaction and then acknowledges each of
    /// those batches — only after COMMIT. A storage failure ends the session without acks for the unstored batches.
    private func receiveBatches(from session: sending FrameChannel, sender: FrameSender, identity: AgentCertificateIdentity,
                                sessionID: UUID, logger: Logger) async throws {
        let inbox = SessionInbox(capacity: max(1, Int(ackWindow)))
        // Leaving this scope (normally or by an error) cancels the reader and waits for it.
        async let reading: Void = Self.readFrames(from: session, into: inbox, sender: sender, identity: identity,
                                                  agents: agents, enrollment: enrollment, logger: logger)
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

    /// Reads frames until the connection ends; batches and the reason the session ends go into `inbox`, in order.
    private static func readFrames(from session: sending FrameChannel, into inbox: SessionInbox, sender: FrameSender,
                                   identity: AgentCertificateIdentity, agents: AgentStore, enrollment: AgentEnrollment,
                                   logger: Logger) async {
        var session = session
        var lastOffset: Int64?
        do {
            while let frame = try await session.next() {
                switch frame.message {
                case .batch(let batch):
                    if let violation = protocolViolation(in: batch) {
                        await inbox.push(.failed(SessionEnd(reason: violation)))
                        return
                    }
                    await inbox.push(.batch(batch), bytes: session.lastFrameBytes)
                case .heartbeat(let received):
                    var heartbeat = Crowsnest_V1_Heartbeat()
                    let now = Int64(Date().timeIntervalSince1970 * 1000)
                    heartbeat.sentUnixMs = now
                    try await sender.send(.with(.heartbeat(heartbeat)))
                    // The agent's clock against ours, kept for the API when it moved by more than half a second.
                    if received.sentUnixMs != 0 {
                        let offset = received.sentUnixMs &- now
                        if lastOffset.map({ abs($0 &- offset) > 500 }) ?? true {
                            lastOffset = offset
                            try? await agents.recordClockOffset(tenantID: identity.tenantID, agentID: identity.agentID,
                                                                 offsetMillis: offset)
                        }
                    }
                case .goodbye(let goodbye):
                    logger.info("agent said goodbye", metadata: ["reason": "\(goodbye.reason)"])
                    await inbox.push(.closed)
                    return
                case .renewRequest(let request):
                    // The session proved the identity with the current certificate: sign the new key for it.
                    do {
                        let response = try await enrollment.renew(request, identity: identity)
                        try await sender.send(.with(.renewResponse(response)))
                        logger.info("agent certificate renewed")
                    } catch {
                        logger.warning("cannot renew the agent's certificate; it keeps the current one and asks again later",
                                       metadata: ["error": "\(error)"])
                    }
                case .checkResults:
                    // Checks arrive with leases in a later protocol step; ignore until then.
                    continue
                default:
                    await inbox.push(.failed(SessionEnd(reason: "unexpected \(frame.messageName) frame in an established session")))
                    return
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
                for (batch, outcome) in zip(batches, outcomes) {
                    switch outcome {
                    case .committed(let samples):
                        batchesCommitted.increment()
                        samplesCommitted.increment(by: samples)
                    case .replay:
                        batchesReplayed.increment()
                        logger.debug("batch already committed; acknowledging replay", metadata: ["batch.seq": "\(batch.seq)"])
                    case .partial(let samples, _):
                        batchesPartial.increment()
                        samplesCommitted.increment(by: samples)
                    case .refused:
                        batchesRefused.increment()
                    }
                    var ack = Crowsnest_V1_Ack()
                    ack.seq = batch.seq
                    try await sender.send(.with(.ack(ack)))
                }
            }
            switch end {
            case .failed(let error): throw error
            case .closed: return
            case .batch, nil: continue
            }
        }
    }
}
