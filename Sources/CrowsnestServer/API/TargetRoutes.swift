import Foundation
import Hummingbird
import Logging
import PostgresNIO

/// `GET /api/v1/infrastructure`: the tenant's hosts and their containers with current state.
struct InfrastructureRoutes: Sendable {
    let infrastructure: InfrastructureQueries

    func register(on group: RouterGroup<APIRequestContext>) {
        group.get("infrastructure") { _, context in
            let caller = try context.requireCaller()
            return InfrastructureResponse(hosts: try await self.infrastructure.hosts(tenantID: caller.tenantID))
        }
    }
}

/// `GET /api/v1/metrics/{target}` and `GET /api/v1/metrics/{target}/history`.
struct MetricsRoutes: Sendable {
    let infrastructure: InfrastructureQueries
    let metrics: MetricsQueries

    func register(on group: RouterGroup<APIRequestContext>) {
        group.get("metrics/:target") { _, context in
            let caller = try context.requireCaller()
            let target = try await resolveSampledTarget(context: context, caller: caller, infrastructure: self.infrastructure)
            guard let point = try await self.metrics.latest(tenantID: caller.tenantID, target: target.id) else {
                throw APIError.notFound("target \(target.id) has no samples yet")
            }
            return LatestMetricsResponse(target: target, point: point)
        }
        group.get("metrics/:target/history") { request, context in
            let caller = try context.requireCaller()
            let query = request.uri.queryParameters
            // Validate before touching the database, so a bad request costs no query.
            let parameters = try MetricsHistoryParameters.parse(
                from: query.get("from"), to: query.get("to"), step: query.get("step"), agg: query.get("agg"), now: Date()
            )
            let target = try await resolveSampledTarget(context: context, caller: caller, infrastructure: self.infrastructure)
            let stepSeconds = parameters.stepSeconds(rawIntervalSeconds: target.intervalSeconds)
            let points = try await self.metrics.history(
                tenantID: caller.tenantID, target: target.id, from: parameters.from, to: parameters.to,
                stepSeconds: stepSeconds, aggregation: parameters.aggregation
            )
            return MetricsHistoryResponse(target: target, stepSeconds: stepSeconds, points: points)
        }
    }
}

/// `GET /api/v1/health/{target}`: current health and recent changes of a container or host.
struct HealthRoutes: Sendable {
    let infrastructure: InfrastructureQueries
    let health: HealthQueries

    /// How many recent changes the route returns.
    static let changeLimit = 50

    func register(on group: RouterGroup<APIRequestContext>) {
        group.get("health/:target") { request, context -> Response in
            let caller = try context.requireCaller()
            let target = try await resolveTarget(context: context, caller: caller, infrastructure: self.infrastructure)
            switch target.id {
            case .container(let agentID, let name):
                guard let container = try await self.infrastructure.container(tenantID: caller.tenantID, agentID: agentID, name: name) else {
                    throw APIError.notFound("no target with id \(target.id)")
                }
                let changes = try await self.health.containerChanges(
                    tenantID: caller.tenantID, agentID: agentID, name: name, limit: Self.changeLimit
                )
                return try ContainerHealthResponse(target: target, container: container, changes: changes)
                    .response(from: request, context: context)
            case .host(let agentID):
                guard let host = try await self.infrastructure.host(tenantID: caller.tenantID, agentID: agentID) else {
                    throw APIError.notFound("no target with id \(target.id)")
                }
                let spans = try await self.health.statusSpans(tenantID: caller.tenantID, targetID: target.id, limit: Self.changeLimit)
                return try HostHealthResponse(target: target, host: host, spans: spans)
                    .response(from: request, context: context)
            case .check:
                throw APIError.notFound("no target with id \(target.id)")
            }
        }
    }
}

/// The `{target}` path parameter resolved within the caller's tenant; 404 `not_found` when it is not a
/// target id or names nothing this tenant owns (another tenant's target looks exactly like a missing one).
func resolveTarget(context: APIRequestContext, caller: APICaller, infrastructure: InfrastructureQueries) async throws -> TargetDescriptor {
    let raw = context.parameters.get("target") ?? ""
    let text = raw.removingPercentEncoding ?? raw
    guard let id = TargetID(text), let target = try await infrastructure.describe(tenantID: caller.tenantID, target: id) else {
        throw APIError.notFound("no target with id \(text)")
    }
    return target
}

/// `resolveTarget` for routes of sampled figures (hosts and containers): a check has results, not samples.
func resolveSampledTarget(context: APIRequestContext, caller: APICaller, infrastructure: InfrastructureQueries) async throws -> TargetDescriptor {
    let target = try await resolveTarget(context: context, caller: caller, infrastructure: infrastructure)
    if case .check(let checkID) = target.id {
        throw APIError.notFound("\(target.id) is a check: it has results (/api/v1/checks/\(checkID.uuidString.lowercased())/results), not metrics")
    }
    return target
}

/// `GET /api/v1/agents/{target}/rejections`: the agent's ingest rejection log (what the server could not store
/// from it, and why), newest first; `{target}` is the host's id (`h-…`). `limit` is 1–1000, default 100.
struct AgentRoutes: Sendable {
    let infrastructure: InfrastructureQueries
    let database: PostgresClient
    let logger: Logger

    func register(on group: RouterGroup<APIRequestContext>) {
        group.get("agents/:target/rejections") { request, context in
            let caller = try context.requireCaller()
            let limit = try QueryParameter.limit(request.uri.queryParameters.get("limit"),
                                                 range: 1...IngestRejectionStore.keptPerAgent, defaultValue: 100)
            let target = try await resolveTarget(context: context, caller: caller, infrastructure: self.infrastructure)
            guard case .host(let agentID) = target.id else {
                throw APIError.notFound("\(target.id) is not a host: rejections are kept per agent (h-… ids)")
            }
            let records = try await IngestRejectionStore.list(tenantID: caller.tenantID, agentID: agentID, limit: limit,
                                                              client: self.database, logger: self.logger)
            return IngestRejectionsResponse(target: target, records: records)
        }
    }
}
