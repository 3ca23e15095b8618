import Metrics
import Prometheus

/// The server's swift-metrics backend: a Prometheus registry in which every metric is named and described the way
/// `promtool check metrics` wants — counters end in `_total`, durations in `_seconds`, each has a `# HELP` line —
/// including the ones libraries make under their own labels (Hummingbird's request metrics), which are renamed
/// here. A label not in `ServerMetricNames.known` keeps its (sanitised) name and says so in its help text.
public struct ServerMetricsFactory: MetricsFactory {
    public let registry: PrometheusCollectorRegistry

    public init(registry: PrometheusCollectorRegistry) {
        self.registry = registry
    }

    /// Request durations: 1 ms to 10 s.
    static let durationBuckets: [Duration] = [
        .milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
        .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10),
    ]
    static let valueBuckets: [Double] = [1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000]

    public func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        registry.makeCounter(descriptor: ServerMetricNames.descriptor(label, kind: .counter), labels: Self.sanitized(dimensions))
    }

    public func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler {
        registry.makeCounter(descriptor: ServerMetricNames.descriptor(label, kind: .counter), labels: Self.sanitized(dimensions))
    }

    public func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        guard aggregate else {
            return registry.makeGauge(descriptor: ServerMetricNames.descriptor(label, kind: .gauge), labels: Self.sanitized(dimensions))
        }
        return registry.makeValueHistogram(descriptor: ServerMetricNames.descriptor(label, kind: .histogram),
                                           labels: Self.sanitized(dimensions), buckets: Self.valueBuckets)
    }

    public func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        registry.makeGauge(descriptor: ServerMetricNames.descriptor(label, kind: .gauge), labels: Self.sanitized(dimensions))
    }

    public func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        registry.makeDurationHistogram(descriptor: ServerMetricNames.descriptor(label, kind: .duration),
                                       labels: Self.sanitized(dimensions), buckets: Self.durationBuckets)
    }

    public func destroyCounter(_ handler: any CounterHandler) {
        if let counter = handler as? Prometheus.Counter { registry.unregisterCounter(counter) }
    }

    public func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {
        if let counter = handler as? Prometheus.Counter { registry.unregisterCounter(counter) }
    }

    public func destroyRecorder(_ handler: any RecorderHandler) {
        if let gauge = handler as? Prometheus.Gauge { registry.unregisterGauge(gauge) }
        if let histogram = handler as? ValueHistogram { registry.unregisterValueHistogram(histogram) }
    }

    public func destroyMeter(_ handler: any MeterHandler) {
        if let gauge = handler as? Prometheus.Gauge { registry.unregisterGauge(gauge) }
    }

    public func destroyTimer(_ handler: any TimerHandler) {
        if let histogram = handler as? DurationHistogram { registry.unregisterDurationHistogram(histogram) }
    }

    /// Label names as Prometheus allows them (`http.request.method` → `http_request_method`).
    static func sanitized(_ dimensions: [(String, String)]) -> [(String, String)] {
        dimensions.map { (ServerMetricNames.sanitized($0.0), $0.1) }
    }
}

/// Every metric the server exports: the label the code (or a library) makes it under, its Prometheus name and
/// what it counts.
public enum ServerMetricNames {
    public enum Kind {
        case counter, gauge, histogram, duration
    }

    struct Known {
        let name: String
        let unit: String
        let help: String
    }

    static let known: [String: Known] = [
        "crowsnest_ingest_batches_total": Known(name: "crowsnest_ingest_batches", unit: "total",
                                                help: "Agent batches handled, by outcome: committed, replay (already stored), partial (some values refused), refused."),
        "crowsnest_ingest_container_samples_total": Known(name: "crowsnest_ingest_container_samples", unit: "total",
                                                          help: "Container samples stored."),
        "crowsnest_ingest_rejections_total": Known(name: "crowsnest_ingest_rejections", unit: "total",
                                                   help: "Values agents sent that the server refused and recorded with their reason."),
        "crowsnest_ingest_truncated_values_total": Known(name: "crowsnest_ingest_truncated_values", unit: "total",
                                                         help: "Strings from agents cut to their limit by the server."),
        "crowsnest_ingest_duplicate_samples_total": Known(name: "crowsnest_ingest_duplicate_samples", unit: "total",
                                                          help: "Samples skipped because one for the same container and time was stored already."),
        "crowsnest_ingest_ack": Known(name: "crowsnest_ingest_ack_duration", unit: "seconds",
                                      help: "From a group of batches being taken for storage to its acknowledgement (after COMMIT)."),
        "crowsnest_agent_spool_dropped_batches_total": Known(name: "crowsnest_agent_spool_dropped_batches", unit: "total",
                                                             help: "Batches agents report they dropped from a full spool (data lost on the host)."),
        "crowsnest_gateway_sessions_refused_total": Known(name: "crowsnest_gateway_sessions_refused", unit: "total",
                                                          help: "Agent connections ended with a Reject or Goodbye (bad certificate, revoked, protocol error...)."),
        "crowsnest_gateway_connected_agents": Known(name: "crowsnest_gateway_connected_agents", unit: "",
                                                    help: "Agent sessions established with this replica now."),
        "crowsnest_check_runs_dispatched_total": Known(name: "crowsnest_check_runs_dispatched", unit: "total",
                                                       help: "Check runs this replica leased and handed to a runner."),
        "crowsnest_check_coordinator_failed_ticks_total": Known(name: "crowsnest_check_coordinator_failed_ticks", unit: "total",
                                                                help: "Check coordinator rounds that failed (the database was unreachable, a lease was lost)."),
        "crowsnest_job_lease_held": Known(name: "crowsnest_job_lease_held", unit: "",
                                          help: "1 while this replica holds the singleton job's lease (job:housekeeping, job:alerts), else 0."),
        "crowsnest_database_pool_connections": Known(name: "crowsnest_database_pool_connections", unit: "",
                                                     help: "Connections of this replica's database pools, by pool and state, as pg_stat_activity shows them."),
        "crowsnest_database_pool_connections_max": Known(name: "crowsnest_database_pool_connections_max", unit: "",
                                                         help: "The most connections each of this replica's database pools opens."),
        "crowsnest_alert_notifications_total": Known(name: "crowsnest_alert_notifications", unit: "total",
                                                     help: "Alert notifications this replica handled, by outcome: delivered, retried, given_up."),
        // Hummingbird's MetricsMiddleware.
        "hb.requests": Known(name: "crowsnest_http_requests", unit: "total", help: "HTTP requests answered, by method, route and status."),
        "hb.request.errors": Known(name: "crowsnest_http_request_errors", unit: "total",
                                   help: "HTTP requests that ended in an error response, by method, route and error."),
        "http.server.request.duration": Known(name: "crowsnest_http_request_duration", unit: "seconds",
                                              help: "Time to answer an HTTP request, by method, route and status."),
        "http.server.active_requests": Known(name: "crowsnest_http_active_requests", unit: "",
                                             help: "HTTP requests being answered now, by method."),
    ]

    /// The descriptor of `label`: its known name and help, or the label sanitised with `_total`/`_seconds` added
    /// where its kind needs it.
    public static func descriptor(_ label: String, kind: Kind) -> MetricNameDescriptor {
        if let known = known[label] {
            return MetricNameDescriptor(metricName: known.name, unitName: known.unit, helpText: known.help)
        }
        var name = sanitized(label)
        var unit = ""
        switch kind {
        case .counter where name.hasSuffix("_total"): name.removeLast(6); unit = "total"
        case .counter: unit = "total"
        case .duration where name.hasSuffix("_seconds"): name.removeLast(8); unit = "seconds"
        case .duration: unit = "seconds"
        case .gauge, .histogram: break
        }
        return MetricNameDescriptor(metricName: name, unitName: unit, helpText: "Made under the label \(label) (not described yet).")
    }

    static func sanitized(_ text: String) -> String {
        var result = ""
        for scalar in text.unicodeScalars {
            let allowed = ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar) || ("0"..."9").contains(scalar) || scalar == "_"
            result.unicodeScalars.append(allowed ? scalar : "_")
        }
        if let first = result.unicodeScalars.first, ("0"..."9").contains(first) { result = "_" + result }
        return result.isEmpty ? "_" : result
    }
}
