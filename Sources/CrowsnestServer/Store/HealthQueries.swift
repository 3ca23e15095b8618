import Foundation
import Logging
import PostgresNIO

/// A Docker event of a container that changed its state or health, as the agent saw it.
public struct ContainerStateChange: Sendable, Equatable {
    /// Docker's event time.
    public var ts: Date
    /// `start`, `die`, `oom`, `kill`, `restart`, `stop` or `health_status`.
    public var action: String
    /// Free text from the event (e.g. `healthy` for a health_status event); '' when none.
    public var detail: String
    /// Exit code for `die` events; nil otherwise.
    public var exitCode: Int?
}

/// A span of one state of a target (`status_spans`); `endedAt` nil while it is still open.
public struct StatusSpan: Sendable, Equatable {
    /// `up`, `degraded`, `down`, `unknown` or `maintenance`.
    public var state: String
    /// When the state began.
    public var startedAt: Date
    /// When it ended; nil when current.
    public var endedAt: Date?
    /// Why (exit code, OOM kill, health output, agent offline, …); '' when none.
    public var cause: String
}

/// Read-side queries for the health view: recent container events and status spans, confined to one tenant.
public struct HealthQueries: Sendable {
    /// The Docker event actions that tell a state or health change; others (exec_start, …) are noise here.
    public static let stateChangeActions = ["start", "die", "oom", "kill", "restart", "stop", "health_status"]

    private let database: PostgresClient
    private let logger: Logger

    /// Creates the queries on a running `PostgresClient`.
    public init(database: PostgresClient, logger: Logger) {
        self.database = database
        self.logger = logger
    }

    /// The container's most recent state and health changes, newest first, at most `limit`.
    /// Docker's `health_status: healthy` spelling counts as `health_status` too.
    public func containerChanges(tenantID: UUID, agentID: UUID, name: String, limit: Int = 50) async throws -> [ContainerStateChange] {
        let rows = try await self.database.query(
            """
            SELECT ts, action, detail, exit_code
            FROM container_events
            WHERE tenant_id = \(tenantID) AND agent_id = \(agentID) AND name = \(name)
              AND (action = ANY(\(Self.stateChangeActions)) OR action LIKE 'health_status%')
            ORDER BY ts DESC, action
            LIMIT \(Int64(limit))
            """,
            logger: self.logger
        )
        var changes: [ContainerStateChange] = []
        for try await (ts, action, detail, exitCode) in rows.decode((Date, String, String, Int32?).self) {
            var action = action
            var detail = detail
            // Docker names health events "health_status: healthy"; report action and status apart.
            if action.hasPrefix("health_status:") {
                let status = action.dropFirst("health_status:".count).trimmingCharacters(in: .whitespaces)
                action = "health_status"
                if detail.isEmpty { detail = status }
            }
            changes.append(ContainerStateChange(ts: ts, action: action, detail: detail, exitCode: exitCode.map(Int.init)))
        }
        return changes
    }

    /// The target's most recent status spans, newest first, at most `limit`.
    public func statusSpans(tenantID: UUID, targetID: TargetID, limit: Int = 50) async throws -> [StatusSpan] {
        let rows = try await self.database.query(
            """
            SELECT state, started_at, ended_at, cause
            FROM status_spans
            WHERE tenant_id = \(tenantID) AND target_id = \(targetID.description)
            ORDER BY started_at DESC
            LIMIT \(Int64(limit))
            """,
            logger: self.logger
        )
        var spans: [StatusSpan] = []
        for try await (state, startedAt, endedAt, cause) in rows.decode((String, Date, Date?, String).self) {
            spans.append(StatusSpan(state: state, startedAt: startedAt, endedAt: endedAt, cause: cause))
        }
        return spans
    }
}
