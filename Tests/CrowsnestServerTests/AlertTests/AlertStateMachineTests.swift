import CrowsnestWire
import XCTest

@testable import CrowsnestServer

/// The alert state machine on hand-made spans: fires once after `for_seconds`, recovers once, reminds at its
/// interval, and turns a flapping target into one "flapping" and one "stopped flapping" with nothing between.
final class AlertStateMachineTests: XCTestCase {
    private static let second: Int64 = 1_000_000
    private static let now: Int64 = 1_800_000_000 * second

    private func rule(_ extra: [String: JSONValue] = [:]) throws -> AlertRuleDefinition {
        var body: [String: JSONValue] = ["name": .string("r"), "targets": .array([.string("h-0c0ffee0-0000-4000-8000-000000000001")]),
                                         "channels": .array([.string("n-0c0ffee0-0000-4000-8000-000000000002")]), "for_seconds": .integer(60)]
        body.merge(extra) { $1 }
        return try AlertRuleDefinition.parse(.object(body))
    }

    /// Spans from `(state, seconds before now it started)`, each ending where the next starts, the last open.
    private func spans(_ steps: [(SpanState, Int64)]) -> [SpanInterval] {
        steps.enumerated().map { index, step in
            SpanInterval(state: step.0, startMicros: Self.now - step.1 * Self.second,
                         endMicros: index + 1 < steps.count ? Self.now - steps[index + 1].1 * Self.second : nil)
        }
    }

    func testFiresOnceTheConditionHeldForItsDurationAndRecoversOnce() throws {
        let rule = try rule()
        let early = AlertStateMachine.evaluate(rule: rule, spans: spans([(.up, 600), (.down, 59)]), previous: nil, nowMicros: Self.now)
        XCTAssertEqual(early, .init(state: nil, notifications: []), "down for 59 s of 60: pending, nothing said")
        let fired = AlertStateMachine.evaluate(rule: rule, spans: spans([(.up, 600), (.down, 60)]), previous: nil, nowMicros: Self.now)
        XCTAssertEqual(fired.notification, .firing)
        XCTAssertEqual(fired.state?.status, .firing)
        XCTAssertEqual(fired.state?.activeSinceMicros, Self.now - 60 * Self.second, "since the outage began")
        let still = AlertStateMachine.evaluate(rule: rule, spans: spans([(.up, 600), (.down, 90)]), previous: fired.state, nowMicros: Self.now)
        XCTAssertEqual(still, .init(state: fired.state, notifications: []), "once, not every round")
        let recovered = AlertStateMachine.evaluate(rule: rule, spans: spans([(.up, 600), (.down, 90), (.up, 5)]), previous: fired.state,
                                                   nowMicros: Self.now)
        XCTAssertEqual(recovered, .init(state: nil, notifications: [.resolved]))
        let quiet = try self.rule(["send_resolved": .bool(false)])
        XCTAssertEqual(AlertStateMachine.evaluate(rule: quiet, spans: spans([(.down, 90), (.up, 5)]), previous: fired.state, nowMicros: Self.now),
                       .init(state: nil, notifications: []), "send_resolved false: the recovery is not announced")
    }

    func testAConditionMadeOfSeveralSpansCountsFromTheFirstAndOtherStatesDoNotCount() throws {
        let rule = try rule(["states": .array([.string("down"), .string("unknown")])])
        let joined = AlertStateMachine.evaluate(rule: rule, spans: spans([(.up, 600), (.down, 70), (.unknown, 30)]), previous: nil,
                                                nowMicros: Self.now)
        XCTAssertEqual(joined.notification, .firing, "down then unknown: one condition for 70 s")
        XCTAssertEqual(joined.state?.activeSinceMicros, Self.now - 70 * Self.second)
        let degraded = AlertStateMachine.evaluate(rule: rule, spans: spans([(.up, 600), (.degraded, 300)]), previous: nil, nowMicros: Self.now)
        XCTAssertNil(degraded.notification, "degraded is not one of the rule's states")
        XCTAssertNil(AlertStateMachine.evaluate(rule: rule, spans: [], previous: nil, nowMicros: Self.now).notification, "no spans, nothing")
    }

    func testRemindsAtItsIntervalWhileStillFiring() throws {
        let rule = try rule(["reminder_minutes": .integer(10)])
        let firing = AlertTargetState(status: .firing, activeSinceMicros: Self.now - 900 * Self.second, notifiedMicros: Self.now - 599 * Self.second)
        let down = spans([(.down, 900)])
        XCTAssertNil(AlertStateMachine.evaluate(rule: rule, spans: down, previous: firing, nowMicros: Self.now).notification)
        var due = firing
        due.notifiedMicros = Self.now - 600 * Self.second
        let reminded = AlertStateMachine.evaluate(rule: rule, spans: down, previous: due, nowMicros: Self.now)
        XCTAssertEqual(reminded.notification, .reminder)
        XCTAssertEqual(reminded.state?.notifiedMicros, Self.now, "the next reminder counts from this one")
        XCTAssertEqual(reminded.state?.activeSinceMicros, firing.activeSinceMicros)
        XCTAssertNil(AlertStateMachine.evaluate(rule: try self.rule(), spans: down, previous: due, nowMicros: Self.now).notification,
                     "no reminder_minutes, no reminders")
    }

    func testAFlappingTargetSaysFlappingOnceThenStoppedFlappingOnceCalm() throws {
        let rule = try rule(["for_seconds": .integer(0)])
        // Down and up every 5 s: four changes within two minutes.
        let flapper = spans([(.up, 600), (.down, 20), (.up, 15), (.down, 10), (.up, 5)])
        let flapping = AlertStateMachine.evaluate(rule: rule, spans: flapper, previous: nil, nowMicros: Self.now)
        XCTAssertEqual(flapping.notification, .flapping)
        XCTAssertEqual(flapping.state?.status, .flapping)
        let firingBefore = AlertTargetState(status: .firing, activeSinceMicros: Self.now - 10 * Self.second, notifiedMicros: Self.now - 10 * Self.second)
        XCTAssertEqual(AlertStateMachine.evaluate(rule: rule, spans: flapper, previous: firingBefore, nowMicros: Self.now).notification, .flapping,
                       "a firing target that starts flapping says flapping, not resolved")
        // Still changing: nothing, whatever the state.
        let more = spans([(.up, 600), (.down, 25), (.up, 20), (.down, 15), (.up, 10), (.down, 5)])
        XCTAssertNil(AlertStateMachine.evaluate(rule: rule, spans: more, previous: flapping.state, nowMicros: Self.now).notification)
        // Calm for two minutes, settled down: one "stopped flapping", and it is firing from then on.
        let settledDown = spans([(.up, 600), (.down, 200), (.up, 190), (.down, 180)])
        var state = flapping.state!
        state.notifiedMicros = Self.now - 200 * Self.second
        let stopped = AlertStateMachine.evaluate(rule: rule, spans: settledDown, previous: state, nowMicros: Self.now)
        XCTAssertEqual(stopped.notification, .flappingStopped)
        XCTAssertEqual(stopped.state?.status, .firing, "its recovery is announced later as usual")
        let settledUp = spans([(.up, 600), (.down, 200), (.up, 180)])
        let calmUp = AlertStateMachine.evaluate(rule: rule, spans: settledUp, previous: state, nowMicros: Self.now)
        XCTAssertEqual(calmUp, .init(state: nil, notifications: [.flappingStopped]), "settled up: nothing more to remember")
        // Calm, but flapping was announced less than a window ago: wait.
        var recent = flapping.state!
        recent.notifiedMicros = Self.now - 60 * Self.second
        XCTAssertNil(AlertStateMachine.evaluate(rule: rule, spans: settledUp, previous: recent, nowMicros: Self.now).notification)
    }

    func testChangesCountOnlyStateChangesInsideTheWindow() {
        let steps = [SpanInterval(state: .up, startMicros: 0, endMicros: 10), SpanInterval(state: .up, startMicros: 10, endMicros: 20, cause: "other"),
                     SpanInterval(state: .down, startMicros: 20, endMicros: 30), SpanInterval(state: .up, startMicros: 30, endMicros: nil)]
        XCTAssertEqual(AlertStateMachine.changes(steps, since: 0), 2, "a new span in the same state is no change")
        XCTAssertEqual(AlertStateMachine.changes(steps, since: 25), 1)
        XCTAssertEqual(AlertStateMachine.activeSince(steps, states: [.up]), 30)
        XCTAssertNil(AlertStateMachine.activeSince(steps, states: [.down]))
    }

    func testRuleDefinitionsAreValidatedWithTheFieldNamed() {
        let target = JSONValue.array([.string("h-0c0ffee0-0000-4000-8000-000000000001")])
        let channels = JSONValue.array([.string("n-0c0ffee0-0000-4000-8000-000000000002")])
        let cases: [([String: JSONValue], String)] = [
            (["name": .string("r"), "channels": channels], "targets or service or labels (exactly one of them)"),
            (["name": .string("r"), "targets": target, "labels": .array([.string("a=b")]), "channels": channels], "exactly one of them"),
            (["name": .string("r"), "targets": .array([.string("x-1")]), "channels": channels], "targets[0] must be a target id"),
            (["name": .string("r"), "targets": target], "channels must name at least one alert channel"),
            (["name": .string("r"), "targets": target, "channels": .array([.string("n-nope")])], "channels[0] must be an alert channel id"),
            (["name": .string("r"), "targets": target, "channels": channels, "for_seconds": .integer(86_401)],
             "for_seconds must be an integer from 0 to 86400 (got 86401)"),
            (["name": .string("r"), "targets": target, "channels": channels, "states": .array([.string("up")])],
             "states[0] must be one of down, unknown, degraded"),
            (["name": .string("r"), "targets": target, "channels": channels, "reminder_minutes": .integer(0)], "reminder_minutes must be an integer from 1"),
            (["name": .string("r"), "targets": target, "channels": channels, "flap": .object(["changes": .integer(1)])],
             "flap.changes must be an integer from 2 to 100 (got 1)"),
            (["name": .string("r"), "targets": target, "channels": channels, "kind": .string("pager")], "kind must be state"),
            (["name": .string("r"), "targets": target, "channels": channels, "kind": .string("threshold")], "metric must be one of"),
            (["name": .string("r"), "service": .string("x"), "channels": channels], "service must be a service id"),
            (["name": .string("r"), "targets": target, "channels": channels, "colour": .string("red")], "colour"),
        ]
        for (body, message) in cases {
            XCTAssertThrowsError(try AlertRuleDefinition.parse(.object(body)), message) { error in
                XCTAssertTrue("\(error)".contains(message), "\(error) should say \(message)")
            }
        }
        let rule = try? AlertRuleDefinition.parse(.object(["name": .string("r"), "labels": .array([.string("env=prod")]), "channels": channels]))
        XCTAssertEqual(rule?.states, [.down], "down by default")
        XCTAssertEqual(rule?.forSeconds, 60)
        XCTAssertEqual(rule.map { [$0.flapChanges, $0.flapMinutes] }, [4, 2], "4 changes in 2 minutes by default")
        XCTAssertEqual(try rule.map { try AlertRuleDefinition.parse($0.json) }, rule, "the stored form reads back the same")
    }

    func testTimeInAMaintenanceWindowIsNotWatchedAndChannelsAreListedOnce() throws {
        let rule = try rule(["for_seconds": .integer(0)])
        let down = spans([(.up, 600), (.down, 120)])
        let covered = AlertJob.overlay(down, maintenance: [(Self.now - 300 * Self.second, Self.now + 3600 * Self.second)], nowMicros: Self.now)
        XCTAssertEqual(covered.last?.state, .maintenance)
        XCTAssertNil(AlertStateMachine.evaluate(rule: rule, spans: covered, previous: nil, nowMicros: Self.now).notification,
                     "down inside a maintenance window: no alert")
        let after = AlertJob.overlay(down, maintenance: [(Self.now - 900 * Self.second, Self.now - 700 * Self.second)], nowMicros: Self.now)
        XCTAssertEqual(AlertStateMachine.evaluate(rule: rule, spans: after, previous: nil, nowMicros: Self.now).notification, .firing,
                       "a window that ended before the outage changes nothing")

        XCTAssertThrowsError(try self.rule(["channels": .array([.string("n-0c0ffee0-0000-4000-8000-00000000000a"),
                                                                .string("n-0C0FFEE0-0000-4000-8000-00000000000A")])])) { error in
            XCTAssertTrue("\(error)".contains("channels[1] repeats n-0c0ffee0-0000-4000-8000-00000000000a"), "\(error)")
        }
        let mixed = try self.rule(["channels": .array([.string("n-0C0FFEE0-0000-4000-8000-00000000000A")])])
        XCTAssertEqual(mixed.channels, ["n-0c0ffee0-0000-4000-8000-00000000000a"], "kept in one form")
    }

    func testASilenceHoldsBackTheFiringUntilItEndsAndARecoveryOnlyOfWhatWasAnnounced() throws {
        let rule = try rule()
        let down = spans([(.up, 600), (.down, 90)])
        let silenced = AlertStateMachine.Circumstances(silenced: true)
        let held = AlertStateMachine.evaluate(rule: rule, spans: down, previous: nil, nowMicros: Self.now, circumstances: silenced)
        XCTAssertEqual(held.notifications, [], "silenced: not announced")
        XCTAssertEqual(held.state?.status, .firing, "but remembered as firing")
        XCTAssertNil(held.state?.announcedMicros)
        let stillHeld = AlertStateMachine.evaluate(rule: rule, spans: down, previous: held.state, nowMicros: Self.now + 5 * Self.second,
                                                   circumstances: silenced)
        XCTAssertEqual(stillHeld.notifications, [])
        let ended = AlertStateMachine.evaluate(rule: rule, spans: down, previous: stillHeld.state, nowMicros: Self.now + 10 * Self.second)
        XCTAssertEqual(ended.notifications, [.firing], "the silence ended and it still fires: announced now")
        XCTAssertEqual(ended.state?.announcedMicros, Self.now + 10 * Self.second)
        XCTAssertEqual(ended.state?.activeSinceMicros, Self.now - 90 * Self.second, "since the outage began, not since the silence ended")

        let recovered = spans([(.up, 600), (.down, 90), (.up, 5)])
        XCTAssertEqual(AlertStateMachine.evaluate(rule: rule, spans: recovered, previous: held.state, nowMicros: Self.now, circumstances: silenced),
                       .init(state: nil, notifications: []), "never announced, so no recovery either")
        XCTAssertEqual(AlertStateMachine.evaluate(rule: rule, spans: recovered, previous: held.state, nowMicros: Self.now),
                       .init(state: nil, notifications: []), "silence over, but nothing was announced")
        XCTAssertEqual(AlertStateMachine.evaluate(rule: rule, spans: recovered, previous: ended.state, nowMicros: Self.now, circumstances: silenced),
                       .init(state: nil, notifications: [.resolved]), "announced before the silence: its recovery goes even during one")

        let reminding = try self.rule(["reminder_minutes": .integer(10)])
        let due = AlertTargetState(status: .firing, activeSinceMicros: Self.now - 900 * Self.second, notifiedMicros: Self.now - 600 * Self.second)
        let quiet = AlertStateMachine.evaluate(rule: reminding, spans: spans([(.down, 900)]), previous: due, nowMicros: Self.now, circumstances: silenced)
        XCTAssertEqual(quiet.notifications, [], "no reminder while silenced")
        XCTAssertEqual(quiet.state?.notifiedMicros, due.notifiedMicros)
        var heldLong = due
        heldLong.announcedMicros = nil
        let announced = AlertStateMachine.evaluate(rule: reminding, spans: spans([(.down, 900)]), previous: heldLong, nowMicros: Self.now)
        XCTAssertEqual(announced.notifications, [.firing], "held back past a reminder's due time: the firing comes first, once the silence ends")
        XCTAssertEqual(announced.state?.announcedMicros, Self.now)
        XCTAssertEqual(AlertStateMachine.evaluate(rule: reminding, spans: spans([(.down, 900)]), previous: announced.state,
                                                  nowMicros: Self.now + 60 * Self.second).notifications, [], "and no reminder right after it")
    }

    func testAnAcknowledgedAlertNeitherRemindsNorEscalatesAndAnUnacknowledgedOneEscalatesOnce() throws {
        let escalation: JSONValue = .object(["after_minutes": .integer(10), "channels": .array([.string("n-0c0ffee0-0000-4000-8000-000000000009")])])
        let rule = try rule(["reminder_minutes": .integer(5), "escalation": escalation])
        XCTAssertEqual(rule.allChannels, ["n-0c0ffee0-0000-4000-8000-000000000002", "n-0c0ffee0-0000-4000-8000-000000000009"])
        let down = spans([(.down, 3600)])
        var firing = AlertTargetState(status: .firing, activeSinceMicros: Self.now - 3600 * Self.second,
                                      notifiedMicros: Self.now - 60 * Self.second, announcedMicros: Self.now - 599 * Self.second)
        XCTAssertEqual(AlertStateMachine.evaluate(rule: rule, spans: down, previous: firing, nowMicros: Self.now).notifications, [],
                       "9 min 59 s after the announcement: not yet")
        firing.announcedMicros = Self.now - 600 * Self.second
        let escalated = AlertStateMachine.evaluate(rule: rule, spans: down, previous: firing, nowMicros: Self.now)
        XCTAssertEqual(escalated.notifications, [.escalation])
        XCTAssertEqual(escalated.state?.escalatedMicros, Self.now)
        XCTAssertEqual(AlertStateMachine.evaluate(rule: rule, spans: down, previous: escalated.state, nowMicros: Self.now + 60 * Self.second)
            .notifications, [], "once")
        let recovered = AlertStateMachine.evaluate(rule: rule, spans: spans([(.down, 3600), (.up, 1)]), previous: escalated.state, nowMicros: Self.now)
        XCTAssertEqual(recovered.notifications, [.resolved])

        var acknowledged = firing
        acknowledged.acknowledgedMicros = Self.now - 300 * Self.second
        acknowledged.notifiedMicros = Self.now - 400 * Self.second
        let calm = AlertStateMachine.evaluate(rule: rule, spans: down, previous: acknowledged, nowMicros: Self.now)
        XCTAssertEqual(calm.notifications, [], "acknowledged: no escalation, no reminder though both are due")
        XCTAssertEqual(calm.state?.acknowledgedMicros, acknowledged.acknowledgedMicros, "the acknowledgement is kept")
        let silencedEscalation = AlertStateMachine.evaluate(rule: rule, spans: down, previous: firing, nowMicros: Self.now,
                                                            circumstances: .init(silenced: true))
        XCTAssertEqual(silencedEscalation.notifications, [], "no escalation while silenced")
    }

    func testAnAlertmanagerIsToldAgainEveryRepostIntervalWhileAnnouncedAndFiring() throws {
        let rule = try rule(["reminder_minutes": .integer(5)])
        let down = spans([(.down, 3600)])
        let refresh = AlertStateMachine.Circumstances(refreshSeconds: 60)
        var firing = AlertTargetState(status: .firing, activeSinceMicros: Self.now - 3600 * Self.second,
                                      notifiedMicros: Self.now - 59 * Self.second)
        XCTAssertEqual(AlertStateMachine.evaluate(rule: rule, spans: down, previous: firing, nowMicros: Self.now, circumstances: refresh)
            .notifications, [], "59 s after the announcement")
        firing.notifiedMicros = Self.now - 60 * Self.second
        firing.announcedMicros = firing.notifiedMicros
        let refreshed = AlertStateMachine.evaluate(rule: rule, spans: down, previous: firing, nowMicros: Self.now, circumstances: refresh)
        XCTAssertEqual(refreshed.notifications, [.refresh])
        XCTAssertEqual(refreshed.state?.refreshedMicros, Self.now)
        XCTAssertEqual(refreshed.state?.notifiedMicros, firing.notifiedMicros, "a refresh is not a reminder: reminders keep their clock")
        XCTAssertEqual(AlertStateMachine.evaluate(rule: rule, spans: down, previous: refreshed.state, nowMicros: Self.now + 30 * Self.second,
                                                  circumstances: refresh).notifications, [])
        var reminderDue = refreshed.state!
        reminderDue.notifiedMicros = Self.now - 300 * Self.second
        reminderDue.refreshedMicros = Self.now - 60 * Self.second
        let reminded = AlertStateMachine.evaluate(rule: rule, spans: down, previous: reminderDue, nowMicros: Self.now, circumstances: refresh)
        XCTAssertEqual(reminded.notifications, [.reminder], "a reminder goes to the Alertmanager too: no separate refresh")
        XCTAssertEqual(reminded.state?.refreshedMicros, Self.now)
        var held = firing
        held.announcedMicros = nil
        XCTAssertEqual(AlertStateMachine.evaluate(rule: rule, spans: down, previous: held, nowMicros: Self.now,
                                                  circumstances: .init(silenced: true, refreshSeconds: 60)).notifications, [],
                       "never announced: nothing to refresh")
        XCTAssertEqual(AlertStateMachine.evaluate(rule: rule, spans: down, previous: firing, nowMicros: Self.now,
                                                  circumstances: .init(silenced: true, refreshSeconds: 60)).notifications, [.refresh],
                       "announced: refreshed even while silenced, or the Alertmanager would resolve it by itself")
    }
}
