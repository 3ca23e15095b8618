import CrowsnestWire
import Foundation
import Hummingbird

// JSON bodies of the read routes. Encoding is written out by hand so that an unknown figure is an
// explicit `null` (the synthesized conformance would leave the key out), timestamps are RFC 3339
// strings and the keys are the snake_case names of the contract in DESIGN.md.

/// `{"id","kind","name"}`: which target a response is about.
struct TargetJSON: Encodable, Sendable {
    let descriptor: TargetDescriptor

    enum CodingKeys: String, CodingKey { case id, kind, name }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(self.descriptor.id.description, forKey: .id)
        try container.encode(self.descriptor.id.kind, forKey: .kind)
        try container.encode(self.descriptor.name, forKey: .name)
    }
}

/// The figure keys shared by `metrics/{target}` and each point of its history.
enum MetricsFigureKeys: String, CodingKey {
    case ts
    case cpuPercent = "cpu_percent"
    case memoryBytes = "memory_bytes"
    case memoryLimitBytes = "memory_limit_bytes"
    case netRxBytesPerSecond = "net_rx_bytes_per_second"
    case netTxBytesPerSecond = "net_tx_bytes_per_second"
    case blockReadBytesPerSecond = "block_read_bytes_per_second"
    case blockWriteBytesPerSecond = "block_write_bytes_per_second"
    case pids
}

extension MetricsPoint {
    /// Writes `ts` and every figure (null when unknown) into `container`.
    func encodeFigures(into container: inout KeyedEncodingContainer<MetricsFigureKeys>) throws {
        try container.encode(RFC3339.string(from: self.ts), forKey: .ts)
        try container.encode(self.cpuPercent, forKey: .cpuPercent)
        try container.encode(self.memoryBytes, forKey: .memoryBytes)
        try container.encode(self.memoryLimitBytes, forKey: .memoryLimitBytes)
        try container.encode(self.netRxBytesPerSecond, forKey: .netRxBytesPerSecond)
        try container.encode(self.netTxBytesPerSecond, forKey: .netTxBytesPerSecond)
        try container.encode(self.blockReadBytesPerSecond, forKey: .blockReadBytesPerSecond)
        try container.encode(self.blockWriteBytesPerSecond, forKey: .blockWriteBytesPerSecond)
        try container.encode(self.pids, forKey: .pids)
    }
}

/// One history point: `{"ts", …figures…}`.
struct MetricsPointJSON: Encodable, Sendable {
    let point: MetricsPoint

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: MetricsFigureKeys.self)
        try self.point.encodeFigures(into: &container)
    }
}

/// `GET /api/v1/metrics/{target}`: the target and its latest figures, flat.
struct LatestMetricsResponse: ResponseEncodable, Sendable {
    let target: TargetDescriptor
    let point: MetricsPoint

    enum CodingKeys: String, CodingKey { case target }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(TargetJSON(descriptor: self.target), forKey: .target)
        var figures = encoder.container(keyedBy: MetricsFigureKeys.self)
        try self.point.encodeFigures(into: &figures)
    }
}

/// `GET /api/v1/metrics/{target}/history`.
struct MetricsHistoryResponse: ResponseEncodable, Sendable {
    let target: TargetDescriptor
    let stepSeconds: Int
    let points: [MetricsPoint]

    enum CodingKeys: String, CodingKey {
        case target
        case stepSeconds = "step_seconds"
        case points
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(TargetJSON(descriptor: self.target), forKey: .target)
        try container.encode(self.stepSeconds, forKey: .stepSeconds)
        try container.encode(self.points.map(MetricsPointJSON.init), forKey: .points)
    }
}

/// One container of the infrastructure view.
struct ContainerJSON: Encodable, Sendable {
    let container: ContainerSummary

    enum CodingKeys: String, CodingKey {
        case id, name, image, state, health
        case dockerID = "docker_id"
        case exitCode = "exit_code"
        case restartCount = "restart_count"
        case oomKilled = "oom_killed"
        case startedAt = "started_at"
        case finishedAt = "finished_at"
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(self.container.targetID.description, forKey: .id)
        try c.encode(self.container.name, forKey: .name)
        try c.encode(self.container.image, forKey: .image)
        try c.encode(self.container.dockerID, forKey: .dockerID)
        try c.encode(self.container.state, forKey: .state)
        try c.encode(self.container.health, forKey: .health)
        try c.encode(self.container.exitCode, forKey: .exitCode)
        try c.encode(self.container.restartCount, forKey: .restartCount)
        try c.encode(self.container.oomKilled, forKey: .oomKilled)
        try c.encode(self.container.startedAt.map(RFC3339.string(from:)), forKey: .startedAt)
        try c.encode(self.container.finishedAt.map(RFC3339.string(from:)), forKey: .finishedAt)
    }
}

/// One host of the infrastructure view, with its containers.
struct HostJSON: Encodable, Sendable {
    let host: HostSummary

    enum CodingKeys: String, CodingKey {
        case id, hostname, state, containers
        case lastSeen = "last_seen"
        case agentVersion = "agent_version"
        case containersUnavailableReason = "containers_unavailable_reason"
        case clockOffsetMs = "clock_offset_ms"
        case truncatedValues = "truncated_values"
        case duplicateSamples = "duplicate_samples"
        case ingestRejections = "ingest_rejections"
        case deadLetteredBatches = "dead_lettered_batches"
        case cloneSuspected = "clone_suspected"
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(TargetID.host(agentID: self.host.agentID).description, forKey: .id)
        try c.encode(self.host.clockOffsetMillis, forKey: .clockOffsetMs)
        try c.encode(self.host.truncatedValues, forKey: .truncatedValues)
        try c.encode(self.host.duplicateSamples, forKey: .duplicateSamples)
        try c.encode(self.host.ingestRejections, forKey: .ingestRejections)
        try c.encode(self.host.deadLetteredBatches, forKey: .deadLetteredBatches)
        try c.encode(self.host.cloneSuspected, forKey: .cloneSuspected)
        try c.encode(self.host.hostname, forKey: .hostname)
        try c.encode(self.host.state.rawValue, forKey: .state)
        try c.encode(self.host.lastSeen.map(RFC3339.string(from:)), forKey: .lastSeen)
        try c.encode(self.host.agentVersion, forKey: .agentVersion)
        try c.encode(self.host.containersUnavailableReason, forKey: .containersUnavailableReason)
        try c.encode(self.host.containers.map(ContainerJSON.init), forKey: .containers)
    }
}

/// `GET /api/v1/infrastructure`.
struct InfrastructureResponse: ResponseEncodable, Sendable {
    let hosts: [HostSummary]

    enum CodingKeys: String, CodingKey { case hosts }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(self.hosts.map(HostJSON.init), forKey: .hosts)
    }
}

/// `GET /api/v1/health/{target}` for a container.
struct ContainerHealthResponse: ResponseEncodable, Sendable {
    let target: TargetDescriptor
    let container: ContainerSummary
    let changes: [ContainerStateChange]

    enum CodingKeys: String, CodingKey {
        case target, state, health, changes
        case healthOutput = "health_output"
    }

    enum ChangeKeys: String, CodingKey {
        case ts, action, detail
        case exitCode = "exit_code"
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(TargetJSON(descriptor: self.target), forKey: .target)
        try c.encode(self.container.state, forKey: .state)
        try c.encode(self.container.health, forKey: .health)
        try c.encode(self.container.healthOutput, forKey: .healthOutput)
        var list = c.nestedUnkeyedContainer(forKey: .changes)
        for change in self.changes {
            var item = list.nestedContainer(keyedBy: ChangeKeys.self)
            try item.encode(RFC3339.string(from: change.ts), forKey: .ts)
            try item.encode(change.action, forKey: .action)
            try item.encode(change.detail, forKey: .detail)
            try item.encode(change.exitCode, forKey: .exitCode)
        }
    }
}

/// `GET /api/v1/health/{target}` for a host: liveness plus its status spans as changes.
struct HostHealthResponse: ResponseEncodable, Sendable {
    let target: TargetDescriptor
    let host: HostSummary
    let spans: [StatusSpan]

    enum CodingKeys: String, CodingKey {
        case target, state, changes
        case lastSeen = "last_seen"
    }

    enum ChangeKeys: String, CodingKey {
        case ts, state, cause
        case endedAt = "ended_at"
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(TargetJSON(descriptor: self.target), forKey: .target)
        try c.encode(self.host.state.rawValue, forKey: .state)
        try c.encode(self.host.lastSeen.map(RFC3339.string(from:)), forKey: .lastSeen)
        var list = c.nestedUnkeyedContainer(forKey: .changes)
        for span in self.spans {
            var item = list.nestedContainer(keyedBy: ChangeKeys.self)
            try item.encode(RFC3339.string(from: span.startedAt), forKey: .ts)
            try item.encode(span.state, forKey: .state)
            try item.encode(span.endedAt.map(RFC3339.string(from:)), forKey: .endedAt)
            try item.encode(span.cause, forKey: .cause)
        }
    }
}

/// `GET /api/v1/agents/{target}/rejections`: what ingest refused from one agent, newest first.
struct IngestRejectionsResponse: ResponseEncodable, Sendable {
    let target: TargetDescriptor
    let records: [IngestRejectionRecord]

    enum CodingKeys: String, CodingKey { case target, rejections }
    enum RecordKeys: String, CodingKey {
        case part, sqlstate, reason
        case batchSeq = "batch_seq"
        case batchTs = "batch_ts"
        case recordedAt = "recorded_at"
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(TargetJSON(descriptor: self.target), forKey: .target)
        var list = c.nestedUnkeyedContainer(forKey: .rejections)
        for record in records {
            var item = list.nestedContainer(keyedBy: RecordKeys.self)
            let rejection = record.rejection
            try item.encode(rejection.batchSeq, forKey: .batchSeq)
            try item.encode(rejection.batchTsMillis == 0 ? nil
                            : RFC3339.string(from: Date(timeIntervalSince1970: Double(rejection.batchTsMillis) / 1000)),
                            forKey: .batchTs)
            try item.encode(rejection.part.rawValue, forKey: .part)
            try item.encode(rejection.sqlState, forKey: .sqlstate)
            try item.encode(rejection.reason, forKey: .reason)
            try item.encode(RFC3339.string(from: Date(timeIntervalSince1970: Double(record.recordedAtMicros) / 1_000_000)),
                            forKey: .recordedAt)
        }
    }
}
