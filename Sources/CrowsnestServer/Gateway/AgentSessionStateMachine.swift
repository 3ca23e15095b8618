import CrowsnestWire
import Foundation

/// The server's side of one agent session as a state machine: frames and lookup results in, actions out, the
/// clock passed in. It owns the protocol rules (what the first frame may be, when to welcome or refuse, what an
/// established session does with each frame, which Goodbye code ends it); `AgentSessionHandler` owns the socket,
/// the tasks and the database, performs the actions, and feeds the results back. Tested without sockets.
struct AgentSessionStateMachine: Sendable {
    /// Who the peer is, from its TLS client certificate.
    enum Peer: Sendable, Equatable {
        /// No certificate: only enrollment is possible.
        case anonymous
        case agent(AgentCertificateIdentity)
        /// A certificate without an agent identity in it.
        case unreadable(reason: String)
    }

    /// What the handler does next.
    enum Action: Sendable, Equatable {
        /// Enroll (consume the token, sign the CSR) and answer with the response, then close.
        case enroll(Crowsnest_V1_EnrollRequest)
        /// Record the Hello (host facts, session id, clock offset) and report the agent's record back.
        case recordHello(Crowsnest_V1_Hello, clockOffsetMillis: Int64?)
        /// Send `Welcome` and raise the frame limit: the session is established.
        case welcome(Crowsnest_V1_Welcome)
        /// Queue a batch for storage (its encoded size counts against the inbox's byte bound).
        case queue(Crowsnest_V1_SampleBatch, bytes: Int)
        case send(Crowsnest_V1_Frame)
        /// Remember the agent's clock offset (it moved by more than half a second).
        case recordClockOffset(Int64)
        /// Sign a new certificate for the session's identity and answer with it.
        case renew(Crowsnest_V1_RenewRequest)
        /// The agent said goodbye: store what came before, then close.
        case close
        /// End the session with a Goodbye or Reject.
        case end(AgentSessionHandler.SessionEnd)
    }

    private enum State: Sendable {
        case awaitingFirstFrame
        case enrolling
        case awaitingHelloRecord(AgentCertificateIdentity)
        case established(AgentCertificateIdentity, lastClockOffset: Int64?)
        case ended
    }

    /// Settings told to the agent in `Welcome`.
    let heartbeatSeconds: UInt32
    let ackWindow: UInt32
    let serverAddresses: [String]
    private var state: State = .awaitingFirstFrame

    init(heartbeatSeconds: UInt32, ackWindow: UInt32, serverAddresses: [String] = []) {
        self.heartbeatSeconds = heartbeatSeconds
        self.serverAddresses = serverAddresses
        self.ackWindow = ackWindow
    }

    /// The identity once the Hello was accepted.
    var identity: AgentCertificateIdentity? {
        switch state {
        case .awaitingHelloRecord(let identity), .established(let identity, _): return identity
        case .awaitingFirstFrame, .enrolling, .ended: return nil
        }
    }

    /// The first frame of a connection.
    mutating func firstFrame(_ frame: Crowsnest_V1_Frame, peer: Peer, nowMillis: Int64) -> [Action] {
        guard case .awaitingFirstFrame = state else { return end(.init(reason: "internal: first frame twice")) }
        switch peer {
        case .anonymous:
            guard case .enrollRequest(let request) = frame.message else {
                return end(.init(reason: "no client certificate: connect with the certificate issued at enrollment, or enroll first",
                                 reject: true, permanent: true))
            }
            state = .enrolling
            return [.enroll(request)]
        case .unreadable(let reason):
            return end(.init(reason: "client certificate carries no agent identity: \(reason)", reject: true, permanent: true))
        case .agent(let identity):
            guard case .hello(var hello) = frame.message else {
                return end(.init(reason: "expected hello as the first frame, got \(frame.messageName)"))
            }
            let version = hello.protocolVersion
            guard version == FrameLimits.protocolVersion || version == FrameLimits.protocolVersion - 1 else {
                return end(.init(reason: "protocol version \(version) is not supported (server speaks \(FrameLimits.protocolVersion - 1) and \(FrameLimits.protocolVersion))",
                                 reject: true, permanent: true))
            }
            hello.sanitize()
            state = .awaitingHelloRecord(identity)
            let offset: Int64? = hello.agentTimeUnixMs == 0 ? nil : hello.agentTimeUnixMs &- nowMillis
            return [.recordHello(hello, clockOffsetMillis: offset)]
        }
    }

    /// The Hello was recorded: `record` is the agent as stored (nil: not registered); nil `error` means storage
    /// worked.
    mutating func helloRecorded(_ record: AgentRecord?, storageFailed: Bool, clockOffsetMillis: Int64?, nowMillis: Int64) -> [Action] {
        guard case .awaitingHelloRecord(let identity) = state else { return end(.init(reason: "internal: hello recorded twice")) }
        if storageFailed {
            return end(.init(reason: "server storage is unavailable; retry later", reject: true, code: .retryLater))
        }
        guard let record else {
            return end(.init(reason: "agent \(identity.agentID) is not registered with this server", reject: true, permanent: true))
        }
        if record.revoked {
            return end(.init(reason: "agent \(identity.agentID) has been revoked", reject: true, permanent: true))
        }
        var welcome = Crowsnest_V1_Welcome()
        welcome.agentID = identity.agentID.uuidString.lowercased()
        welcome.tenantID = identity.tenantID.uuidString.lowercased()
        welcome.serverTimeUnixMs = nowMillis
        welcome.committedSeq = record.committedSeq
        welcome.committedBatchTsUnixMs = record.committedBatchTsMillis
        welcome.certificateRenewal = true
        welcome.eventBatches = true
        welcome.settings.heartbeatIntervalSeconds = heartbeatSeconds
        welcome.serverAddresses = serverAddresses
        welcome.settings.maxFrameBytes = UInt32(FrameLimits.established)
        welcome.settings.ackWindow = ackWindow
        state = .established(identity, lastClockOffset: clockOffsetMillis)
        return [.welcome(welcome)]
    }

    /// A frame in the established session (`bytes`: its encoded size).
    mutating func frame(_ frame: Crowsnest_V1_Frame, bytes: Int, nowMillis: Int64) -> [Action] {
        guard case .established(let identity, let lastOffset) = state else {
            return end(.init(reason: "unexpected \(frame.messageName) frame before the session was established"))
        }
        switch frame.message {
        case .batch(let batch):
            if let violation = AgentSessionHandler.protocolViolation(in: batch) {
                return end(.init(reason: violation))
            }
            return [.queue(batch, bytes: bytes)]
        case .heartbeat(let received):
            var answer = Crowsnest_V1_Heartbeat()
            answer.sentUnixMs = nowMillis
            var actions: [Action] = [.send(.with(.heartbeat(answer)))]
            if received.sentUnixMs != 0 {
                let offset = received.sentUnixMs &- nowMillis
                if lastOffset.map({ ($0 &- offset).magnitude > 500 }) ?? true {
                    state = .established(identity, lastClockOffset: offset)
                    actions.append(.recordClockOffset(offset))
                }
            }
            return actions
        case .renewRequest(let request):
            return [.renew(request)]
        case .goodbye:
            state = .ended
            return [.close]
        case .checkResults:
            // Check results arrive with leases in a later protocol step; ignored until then.
            return []
        case .none:
            // A frame type this server does not know (a newer agent): ignored, as unknown fields are.
            return []
        default:
            return end(.init(reason: "unexpected \(frame.messageName) frame in an established session"))
        }
    }

    private mutating func end(_ reason: AgentSessionHandler.SessionEnd) -> [Action] {
        state = .ended
        return [.end(reason)]
    }
}
