import CrowsnestWire
import XCTest

@testable import CrowsnestAgent

/// The agent's session rules without sockets: a clock passed in, frames in, actions out.
final class ShipperSessionTests: XCTestCase {
    private let t0 = ContinuousClock.now

    private func welcome(committed: UInt64 = 0, window: UInt32 = 4) -> Crowsnest_V1_Frame {
        var welcome = Crowsnest_V1_Welcome()
        welcome.committedSeq = committed
        welcome.settings.ackWindow = window
        return .with(.welcome(welcome))
    }

    private func ack(_ seq: UInt64) -> Crowsnest_V1_Frame {
        var ack = Crowsnest_V1_Ack()
        ack.seq = seq
        return .with(.ack(ack))
    }

    private func goodbye(_ code: Crowsnest_V1_GoodbyeCode) -> Crowsnest_V1_Frame {
        var goodbye = Crowsnest_V1_Goodbye()
        goodbye.reason = "because"
        goodbye.code = code
        return .with(.goodbye(goodbye))
    }

    /// A session established with the spool acknowledged up to `acked`.
    private func established(acked: UInt64 = 0, window: UInt32 = 4) -> (ShipperSession, [ShipperSession.Action]) {
        var session = ShipperSession(settings: .init(window: 32, responseTimeout: .seconds(45)), now: t0)
        XCTAssertEqual(session.start(), [.sendHello])
        let actions = session.handle(.frame(welcome(committed: acked, window: window)), now: t0)
        guard case .establish = actions.first else {
            XCTFail("expected establish, got \(actions)")
            return (session, [])
        }
        return (session, session.established(acknowledgedSeq: acked))
    }

    func testTheHeartbeatFollowsTheServersWelcomeWithinBounds() {
        XCTAssertEqual(Shipper.heartbeatInterval(asked: 10, otherwise: .seconds(15)), .seconds(10))
        XCTAssertEqual(Shipper.heartbeatInterval(asked: 0, otherwise: .seconds(15)), .seconds(15), "an older server says nothing")
        XCTAssertEqual(Shipper.heartbeatInterval(asked: 1, otherwise: .seconds(15)), .seconds(5))
        XCTAssertEqual(Shipper.heartbeatInterval(asked: 3600, otherwise: .seconds(15)), .seconds(30))
    }

    func testWelcomeEstablishesAndSendsUpToTheServersWindow() {
        let (_, actions) = established(acked: 10, window: 4)
        XCTAssertEqual(actions, [.sendRecords(after: 10, limit: 4)], "the smaller of our window and the server's")
    }

    func testAcksMoveTheWindowAndOnlyAcknowledgedRecordsAreDropped() {
        var (session, _) = established(acked: 0, window: 4)
        session.sent(upTo: 4, now: t0)
        XCTAssertEqual(session.handle(.spoolGrew, now: t0), [.sendRecords(after: 4, limit: 0)], "window full")
        XCTAssertEqual(session.handle(.frame(ack(2)), now: t0), [.acknowledge(upTo: 2), .sendRecords(after: 4, limit: 2)])
        XCTAssertTrue(session.receivedAck)
    }

    func testAnAssignedCheckRunGoesToTheCheckRunner() {
        var (session, _) = established()
        var assign = Crowsnest_V1_Assign()
        assign.checkID = "c1"
        assign.fencingToken = 7
        XCTAssertEqual(session.handle(.frame(.with(.assign(assign))), now: t0), [.runCheck(assign)])
    }

    func testAnAckForABatchNeverSentEndsTheSession() {
        var (session, _) = established()
        session.sent(upTo: 3, now: t0)
        let actions = session.handle(.frame(ack(9)), now: t0)
        guard case .end(.retry(let reason)) = actions.first else { return XCTFail("\(actions)") }
        XCTAssertTrue(reason.contains("never sent"), reason)
    }

    func testNoAckWithinTheResponseTimeoutEndsTheSession() {
        var (session, _) = established()
        session.sent(upTo: 1, now: t0)
        XCTAssertEqual(session.handle(.tick, now: t0 + .seconds(30)), [.sendHeartbeat, .sendRecords(after: 1, limit: 3)])
        let late = session.handle(.tick, now: t0 + .seconds(46))
        guard case .end(.retry(let reason)) = late.first else { return XCTFail("\(late)") }
        XCTAssertTrue(reason.contains("no acknowledgement"), reason)
        XCTAssertEqual(session.handle(.tick, now: t0 + .seconds(50)), [], "an ended session does nothing more")
    }

    func testNoWelcomeWithinTheResponseTimeoutEndsTheSession() {
        var session = ShipperSession(settings: .init(), now: t0)
        XCTAssertEqual(session.handle(.tick, now: t0 + .seconds(10)), [])
        guard case .end(.retry) = session.handle(.tick, now: t0 + .seconds(46)).first else { return XCTFail() }
    }

    func testGoodbyeCodesDecideHowTheAgentReconnects() {
        let cases: [(Crowsnest_V1_GoodbyeCode, String)] = [
            (.takenOver, "takenOver"), (.revoked, "permanent"), (.malformedBatch, "malformedBatch"),
            (.retryLater, "retry"), (.shuttingDown, "serverShuttingDown"), (.protocolError, "retry"), (.unspecified, "retry"),
        ]
        for (code, expected) in cases {
            var (session, _) = established()
            let actions = session.handle(.frame(goodbye(code)), now: t0)
            guard case .end(let end) = actions.first else { return XCTFail("\(code): \(actions)") }
            let kind: String
            switch end {
            case .takenOver: kind = "takenOver"
            case .permanent: kind = "permanent"
            case .malformedBatch: kind = "malformedBatch"
            case .retry: kind = "retry"
            case .serverShuttingDown: kind = "serverShuttingDown"
            }
            XCTAssertEqual(kind, expected, "\(code)")
        }
    }

    func testAPermanentRejectStopsAndATransientOneRetries() {
        var reject = Crowsnest_V1_Reject()
        reject.reason = "revoked"
        reject.permanent = true
        var session = ShipperSession(settings: .init(), now: t0)
        guard case .end(.permanent) = session.handle(.frame(.with(.reject(reject))), now: t0).first else { return XCTFail() }
        reject.permanent = false
        var again = ShipperSession(settings: .init(), now: t0)
        guard case .end(.retry) = again.handle(.frame(.with(.reject(reject))), now: t0).first else { return XCTFail() }
    }
}

/// Reconnect pauses: the backoff resets only after an acknowledged or long session; a take-over waits a minute.
final class ReconnectPolicyTests: XCTestCase {
    /// A random source that always answers the largest value, so each delay is its ceiling.
    private struct Ceiling: RandomNumberGenerator {
        mutating func next() -> UInt64 { .max }
    }

    func testAWelcomeThenRefusalLoopBacksOffInsteadOfReconnectingAtOnce() {
        var policy = ReconnectPolicy()
        var random = Ceiling()
        var delays: [Duration] = []
        for _ in 0..<6 {
            delays.append(policy.delay(after: .retry(reason: "refused"), receivedAck: false, sessionLength: .seconds(1),
                                       using: &random))
        }
        XCTAssertEqual(delays, [.milliseconds(500), .seconds(1), .seconds(2), .seconds(4), .seconds(8), .seconds(16)])
    }

    func testAnAcknowledgedOrLongSessionResetsTheBackoff() {
        var policy = ReconnectPolicy()
        var random = Ceiling()
        for _ in 0..<5 { _ = policy.delay(after: .retry(reason: "x"), receivedAck: false, sessionLength: nil, using: &random) }
        XCTAssertEqual(policy.delay(after: .retry(reason: "x"), receivedAck: true, sessionLength: .seconds(1), using: &random),
                       .milliseconds(500))
        for _ in 0..<5 { _ = policy.delay(after: .retry(reason: "x"), receivedAck: false, sessionLength: nil, using: &random) }
        XCTAssertEqual(policy.delay(after: .retry(reason: "x"), receivedAck: false, sessionLength: .seconds(61), using: &random),
                       .milliseconds(500))
    }

    func testAServerShuttingDownSendsTheAgentOnAtOnceAndForgetsEarlierFailures() {
        var policy = ReconnectPolicy()
        var random = Ceiling()
        for _ in 0..<6 { _ = policy.delay(after: .retry(reason: "x"), receivedAck: false, sessionLength: nil, using: &random) }
        XCTAssertEqual(policy.delay(after: .serverShuttingDown(reason: "x"), receivedAck: false, sessionLength: .seconds(1),
                                    using: &random), .milliseconds(500), "at most the jitter, however many failures before")
        XCTAssertEqual(policy.delay(after: .retry(reason: "x"), receivedAck: false, sessionLength: nil, using: &random),
                       .milliseconds(500), "the backoff starts over")
    }

    func testATakenOverAgentWaitsAtLeastAMinute() {
        var policy = ReconnectPolicy()
        var random = Ceiling()
        XCTAssertEqual(policy.delay(after: .takenOver(reason: "x"), receivedAck: true, sessionLength: .seconds(100), using: &random),
                       .seconds(60))
    }
}
