import CrowsnestWire
import Foundation
import XCTest

@testable import CrowsnestServer

/// The server's session rules without sockets or a database: frames in, actions out, the clock passed in.
final class AgentSessionStateMachineTests: XCTestCase {
    private let identity = AgentCertificateIdentity(agentID: UUID(), tenantID: UUID())
    private let now: Int64 = 1_710_072_000_000

    private func hello(version: UInt32 = FrameLimits.protocolVersion, agentTime: Int64 = 0) -> Crowsnest_V1_Frame {
        var hello = Crowsnest_V1_Hello()
        hello.protocolVersion = version
        hello.host.hostname = "h\u{0}ost"
        hello.agentTimeUnixMs = agentTime
        return .with(.hello(hello))
    }

    private func record(committed: UInt64 = 7, revoked: Bool = false) -> AgentRecord {
        AgentRecord(tenantID: identity.tenantID, agentID: identity.agentID, hostname: "host", committedSeq: committed,
                    revoked: revoked, committedBatchTsMillis: 1_234)
    }

    private func established() -> AgentSessionStateMachine {
        var machine = AgentSessionStateMachine(heartbeatSeconds: 15, ackWindow: 32)
        _ = machine.firstFrame(hello(), peer: .agent(identity), nowMillis: now)
        _ = machine.helloRecorded(record(), storageFailed: false, clockOffsetMillis: nil, nowMillis: now)
        return machine
    }

    private func endReason(_ actions: [AgentSessionStateMachine.Action]) -> AgentSessionHandler.SessionEnd? {
        if case .end(let end)? = actions.first { return end }
        return nil
    }

    func testAnonymousPeersMayOnlyEnroll() {
        var machine = AgentSessionStateMachine(heartbeatSeconds: 15, ackWindow: 32)
        let refused = endReason(machine.firstFrame(hello(), peer: .anonymous, nowMillis: now))
        XCTAssertEqual(refused?.reject, true)
        XCTAssertEqual(refused?.permanent, true)
        var enrolling = AgentSessionStateMachine(heartbeatSeconds: 15, ackWindow: 32)
        let request = Crowsnest_V1_EnrollRequest()
        XCTAssertEqual(enrolling.firstFrame(.with(.enrollRequest(request)), peer: .anonymous, nowMillis: now), [.enroll(request)])
    }

    func testAHelloIsCleanedCarriesTheClockOffsetAndOnlySupportedVersionsPass() {
        var machine = AgentSessionStateMachine(heartbeatSeconds: 15, ackWindow: 32)
        let actions = machine.firstFrame(hello(agentTime: now - 5_000), peer: .agent(identity), nowMillis: now)
        guard case .recordHello(let cleaned, let offset)? = actions.first else { return XCTFail("\(actions)") }
        XCTAssertEqual(cleaned.host.hostname, "host")
        XCTAssertEqual(offset, -5_000)
        for version in [FrameLimits.protocolVersion + 1, FrameLimits.protocolVersion + 5] {
            var other = AgentSessionStateMachine(heartbeatSeconds: 15, ackWindow: 32)
            XCTAssertEqual(endReason(other.firstFrame(hello(version: version), peer: .agent(identity), nowMillis: now))?.permanent, true)
        }
        var wrongFirst = AgentSessionStateMachine(heartbeatSeconds: 15, ackWindow: 32)
        let batch = endReason(wrongFirst.firstFrame(.with(.batch(Crowsnest_V1_SampleBatch())), peer: .agent(identity), nowMillis: now))
        XCTAssertEqual(batch?.code, .protocolError)
        var unreadable = AgentSessionStateMachine(heartbeatSeconds: 15, ackWindow: 32)
        XCTAssertEqual(endReason(unreadable.firstFrame(hello(), peer: .unreadable(reason: "x"), nowMillis: now))?.permanent, true)
    }

    func testTheRecordedHelloDecidesBetweenWelcomeAndRefusal() {
        var machine = AgentSessionStateMachine(heartbeatSeconds: 15, ackWindow: 32)
        _ = machine.firstFrame(hello(), peer: .agent(identity), nowMillis: now)
        let actions = machine.helloRecorded(record(committed: 7), storageFailed: false, clockOffsetMillis: nil, nowMillis: now)
        guard case .welcome(let welcome)? = actions.first else { return XCTFail("\(actions)") }
        XCTAssertEqual(welcome.committedSeq, 7)
        XCTAssertEqual(welcome.committedBatchTsUnixMs, 1_234)
        XCTAssertEqual(welcome.serverTimeUnixMs, now)
        XCTAssertEqual(welcome.settings.ackWindow, 32)
        XCTAssertEqual(welcome.agentID, identity.agentID.uuidString.lowercased())

        for (record, storageFailed, permanent, code) in [(nil, false, true, Crowsnest_V1_GoodbyeCode.protocolError),
                                                          (self.record(revoked: true), false, true, .protocolError),
                                                          (nil, true, false, .retryLater)] as [(AgentRecord?, Bool, Bool, Crowsnest_V1_GoodbyeCode)] {
            var other = AgentSessionStateMachine(heartbeatSeconds: 15, ackWindow: 32)
            _ = other.firstFrame(hello(), peer: .agent(identity), nowMillis: now)
            let end = endReason(other.helloRecorded(record, storageFailed: storageFailed, clockOffsetMillis: nil, nowMillis: now))
            XCTAssertEqual(end?.reject, true)
            XCTAssertEqual(end?.permanent, permanent)
            XCTAssertEqual(end?.code, code)
        }
    }

    func testEstablishedFramesQueueAnswerOrEndTheSession() {
        var machine = established()
        var batch = Crowsnest_V1_SampleBatch()
        batch.seq = 1
        batch.intervalSeconds = 30
        XCTAssertEqual(machine.frame(.with(.batch(batch)), bytes: 99, nowMillis: now), [.queue(batch, bytes: 99)])
        let renew = Crowsnest_V1_RenewRequest()
        XCTAssertEqual(machine.frame(.with(.renewRequest(renew)), bytes: 1, nowMillis: now), [.renew(renew)])
        batch.seq = 0
        XCTAssertEqual(endReason(machine.frame(.with(.batch(batch)), bytes: 1, nowMillis: now))?.code, .protocolError)

        var other = established()
        XCTAssertEqual(endReason(other.frame(.with(.welcome(Crowsnest_V1_Welcome())), bytes: 1, nowMillis: now))?.reason,
                       "unexpected welcome frame in an established session")
        var leaving = established()
        XCTAssertEqual(leaving.frame(.with(.goodbye(Crowsnest_V1_Goodbye())), bytes: 1, nowMillis: now), [.close])
    }

    func testHeartbeatsAreAnsweredAndTheClockOffsetRecordedOnlyWhenItMoves() {
        var machine = established()
        var heartbeat = Crowsnest_V1_Heartbeat()
        heartbeat.sentUnixMs = now + 3_000
        let first = machine.frame(.with(.heartbeat(heartbeat)), bytes: 1, nowMillis: now)
        XCTAssertEqual(first.count, 2)
        XCTAssertEqual(first.last, .recordClockOffset(3_000))
        heartbeat.sentUnixMs = now + 3_200 + 15_000
        XCTAssertEqual(machine.frame(.with(.heartbeat(heartbeat)), bytes: 1, nowMillis: now + 15_000).count, 1, "moved 200 ms: not recorded")
        heartbeat.sentUnixMs = now + 30_000 - 2_000
        XCTAssertEqual(machine.frame(.with(.heartbeat(heartbeat)), bytes: 1, nowMillis: now + 30_000).last, .recordClockOffset(-2_000))
    }

    func testExtremeIntegersFromAnAgentNeitherCrashNorPass() {
        var machine = AgentSessionStateMachine(heartbeatSeconds: 15, ackWindow: 32)
        XCTAssertEqual(endReason(machine.firstFrame(hello(version: .max), peer: .agent(identity), nowMillis: now))?.permanent, true)
        var skewed = AgentSessionStateMachine(heartbeatSeconds: 15, ackWindow: 32)
        guard case .recordHello(_, let offset)? = skewed.firstFrame(hello(agentTime: .min), peer: .agent(identity), nowMillis: now).first
        else { return XCTFail("a hello with any clock is recorded") }
        XCTAssertNotNil(offset)
        var beating = established()
        var heartbeat = Crowsnest_V1_Heartbeat()
        heartbeat.sentUnixMs = .min
        XCTAssertEqual(beating.frame(.with(.heartbeat(heartbeat)), bytes: 1, nowMillis: now).count, 2)
        heartbeat.sentUnixMs = .max
        let answer = beating.frame(.with(.heartbeat(heartbeat)), bytes: 1, nowMillis: now)
        guard case .send? = answer.first else { return XCTFail("the heartbeat is answered: \(answer)") }
        var unknown = established()
        XCTAssertEqual(unknown.frame(Crowsnest_V1_Frame(), bytes: 1, nowMillis: now), [], "a frame type of a newer agent is ignored")
    }
}
