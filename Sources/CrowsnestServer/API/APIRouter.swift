import CrowsnestWire
import Foundation
import Hummingbird
import Logging
import PostgresNIO
import Prometheus

/// Builds the HTTP API router: `/healthz`, `/readyz` and `/metrics` without authentication, and the
/// tenant-scoped routes under `/api/v1` behind `APIKeyAuthMiddleware` (writes need an admin key).
///
/// Every error leaves as `{"error":{"code","message"}}` (`APIErrorMiddleware`, installed first so it also
/// covers unknown routes). Further `/api/v1` routes can be added to the returned router with
/// `router.group("api/v1").add(middleware: APIKeyAuthMiddleware(keys: APIKeyStore(database:logger:)))`.
///
/// - Parameters:
///   - database: a running `PostgresClient` (its `run()` is the caller's to schedule).
///   - registry: the registry swift-metrics is bootstrapped with; `/metrics` emits it.
///   - readiness: true when the database is reachable and migrations are applied; `/readyz` answers 503 otherwise.
///   - requestsPerMinute: the most requests one API key may make in a minute (429 beyond).
///   - web: the page templates and settings; nil serves the API alone.
///   - trustedProxies: reverse proxies whose `X-Forwarded-For` names the client.
///   - secretKey: seals alert channels' secrets; without it channels cannot be created (503).
///   - agentDownloads: what `/install.sh` and `/downloads/` serve; nil: the one-line install is off (404).
///   - logger: logger for the stores' queries.
public func makeAPIRouter(
    database: PostgresClient,
    registry: PrometheusCollectorRegistry,
    readiness: @escaping @Sendable () async -> Bool,
    requestsPerMinute: Int = APIRateLimitMiddleware.defaultRequestsPerMinute,
    web: (templates: WebTemplates, settings: WebSettings)? = nil,
    trustedProxies: [IPNetwork] = [],
    secretKey: SecretKey? = nil,
    agentDownloads: AgentDownloads? = nil,
    logger: Logger
) -> Router<APIRequestContext> {
    let router = Router(context: APIRequestContext.self)
    router.add(middleware: RequestIDMiddleware())
    router.add(middleware: ForwardedHeadersMiddleware(trusted: trustedProxies))
    router.add(middleware: MetricsMiddleware())
    router.add(middleware: APIErrorMiddleware())

    router.get("healthz") { _, _ in
        jsonResponse(status: .ok, body: #"{"status":"ok"}"#)
    }
    router.get("readyz") { _, _ in
        guard await readiness() else {
            throw APIError.unavailable("not ready: the database is unreachable or migrations are not applied yet")
        }
        return jsonResponse(status: .ok, body: #"{"status":"ready"}"#)
    }
    router.get("metrics") { _, _ in
        var bytes: [UInt8] = []
        registry.emit(into: &bytes)
        return Response(
            status: .ok,
            headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(bytes: bytes))
        )
    }

    let infrastructure = InfrastructureQueries(database: database, logger: logger)
    let api = router.group("api/v1")
        .add(middleware: APIKeyAuthMiddleware(keys: APIKeyStore(database: database, logger: logger)))
        .add(middleware: APIRateLimitMiddleware(leases: LeaseStore(client: database, logger: logger), requestsPerMinute: requestsPerMinute))
    InfrastructureRoutes(infrastructure: infrastructure).register(on: api)
    MetricsRoutes(infrastructure: infrastructure, metrics: MetricsQueries(database: database, logger: logger)).register(on: api)
    HealthRoutes(infrastructure: infrastructure, health: HealthQueries(database: database, logger: logger)).register(on: api)
    AgentRoutes(infrastructure: infrastructure, database: database, logger: logger).register(on: api)
    UptimeRoutes(infrastructure: infrastructure, database: database, logger: logger).register(on: api)
    SLAReportRoutes(database: database, logger: logger).register(on: api)
    DashboardRoutes(database: database, logger: logger).register(on: api)
    DashboardMetricsRoutes(infrastructure: infrastructure, metrics: MetricsQueries(database: database, logger: logger)).register(on: api)
    for kind in [DefinitionRoutes.services, DefinitionRoutes.maintenanceWindows, DefinitionRoutes.alertRules] {
        DefinitionRoutes(kind: kind, store: DefinitionStore(kind.table, client: database, logger: logger),
                         queries: UptimeQueries(client: database, logger: logger)).register(on: api)
    }
    CheckRoutes(checks: CheckStore(client: database, logger: logger)).register(on: api)
    AlertRoutes(channels: AlertChannelStore(client: database, logger: logger), alerts: AlertStore(client: database, logger: logger),
                silences: AlertSilenceStore(client: database, logger: logger),
                secretKey: secretKey).register(on: api)
    StatusPageRoutes(tenants: TenantStore(client: database, logger: logger)).register(on: api)
    // Outside the API-key group: a push URL's token is its credential.
    PushRoutes(checks: CheckStore(client: database, logger: logger),
               partitions: PartitionStore(client: database, logger: logger),
               leases: LeaseStore(client: database, logger: logger)).register(on: router)
    if let agentDownloads {
        AgentDownloadRoutes(downloads: agentDownloads).register(on: router)
    }
    if let web {
        WebRoutes(templates: web.templates, settings: web.settings, database: database, secretKey: secretKey, logger: logger)
            .register(on: router)
    }
    return router
}

/// A JSON response from a literal body.
private func jsonResponse(status: HTTPResponse.Status, body: String) -> Response {
    Response(
        status: status,
        headers: [.contentType: "application/json; charset=utf-8"],
        body: .init(byteBuffer: ByteBuffer(string: body))
    )
}
