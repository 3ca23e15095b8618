import CrowsnestServer
import CrowsnestWire
import Foundation
import Logging
import NIOCore
import PostgresNIO

/// Where the time of one ingest transaction goes, measured from one task (no contention): the statements
/// `IngestWriter` issues in steady state, each timed on its own inside one transaction per batch.
/// The host-sample insert and the NUL filtering are private to `IngestWriter` and not repeated here; the
/// container-sample COPY uses the same columns and text format.
func profileTransaction(agent: SimulatedAgent, client: PostgresClient, batches: Int, logger: Logger) async throws -> [(String, Double)] {
    let identity = agent.credentials.identity
    var totals: [String: Double] = [:]
    let order = ["BEGIN + agents lock and UPDATE (committed seq)", "COPY 100 container_samples", "containers upsert (100 rows) + removed_at",
                 "status_spans open-span lookup", "COMMIT", "whole transaction"]
    let clock = ContinuousClock()
    func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }
    try await PartitionStore(client: client, logger: logger).ensurePartitions(forMillis: [agent.tsMillis, agent.tsMillis + Int64(batches) * 1000])
    try await client.withConnection { connection in
        for _ in 0..<batches {
            let batch = agent.makeBatch()
            let start = clock.now
            var mark = start
            func lap(_ name: String) {
                let now = clock.now
                totals[name, default: 0] += seconds(now - mark)
                mark = now
            }
            try await connection.query("BEGIN", logger: logger)
            _ = try await AgentStore.lockCommittedSeq(tenantID: identity.tenantID, agentID: identity.agentID,
                                                      on: connection, logger: logger)
            try await AgentStore.recordCommitted(tenantID: identity.tenantID, agentID: identity.agentID, seq: batch.seq,
                                                 spoolDroppedBatches: 0, containersUnavailableReason: "",
                                                 intervalSeconds: batch.intervalSeconds, on: connection, logger: logger)
            lap(order[0])
            var buffer = ByteBuffer()
            let tenant = identity.tenantID.uuidString
            let agentText = identity.agentID.uuidString
            let ts = IngestBenchmark.timestamp(Date(timeIntervalSince1970: Double(batch.tsUnixMs) / 1000))
            for sample in batch.containers {
                let values: [UInt64] = [sample.cpuUsageNs, sample.cpuThrottledPeriods, sample.cpuThrottledNs, sample.memoryUsageBytes,
                                        sample.memoryWorkingSetBytes, sample.memoryLimitBytes, sample.netRxBytes, sample.netTxBytes,
                                        sample.netRxPackets, sample.netTxPackets, sample.netRxErrors, sample.netTxErrors,
                                        sample.netRxDropped, sample.netTxDropped, sample.blockReadBytes, sample.blockWriteBytes,
                                        sample.blockReadOps, sample.blockWriteOps, sample.pids]
                let fields = [tenant, agentText, sample.name, ts, sample.dockerID, sample.state] + values.map { String($0) }
                    + ["1.5", "2048.0", "1024.0", "0.0", "4096.0"]
                buffer.writeString(fields.joined(separator: "\t") + "\n")
            }
            let rows = buffer
            try await connection.copyFrom(table: "container_samples", columns: SampleStore.containerSampleColumns, logger: logger) { writer in
                try await writer.write(rows)
            }
            lap(order[1])
            try await ContainerStore.upsert(batch.containers, tsMillis: batch.tsUnixMs, tenantID: identity.tenantID, agentID: identity.agentID, on: connection, logger: logger)
            lap(order[2])
            let targets = batch.containers.map { TargetID.container(agentID: identity.agentID, name: $0.name).description }
            _ = try await StatusSpanStore.openSpans(tenantID: identity.tenantID, targetIDs: targets, on: connection, logger: logger)
            lap(order[3])
            try await connection.query("COMMIT", logger: logger)
            lap(order[4])
            totals[order[5], default: 0] += seconds(clock.now - start)
        }
    }
    return order.map { ($0, totals[$0, default: 0] / Double(batches) * 1000) }
}
