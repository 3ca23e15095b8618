import CrowsnestWire
import Foundation
import NIOCore
import PostgresNIO
import XCTest

@testable import CrowsnestServer

/// Frames recorded from the previous agent release (commit 7294d0f, before the protocol gained sweep parts,
/// missing containers, Goodbye codes, renewal and the clock fields) still decode and store on today's server.
///
/// `Fixtures/agent-0.1-spool` is the spool directory of that agent (version 0.1.0), enrolled with today's server;
/// after a first live session (its batches 1–6 committed and acknowledged, hence `acknowledged 6` in `spool.state`)
/// the server was stopped and the agent ran on at a 1 s interval against three busybox containers (`fx-running`,
/// `fx-labelled` with label `fx.role=labelled`, `fx-exited` with exit code 3), so batches 7–21 are still pending there.
/// Each record's payload is a serialized `Frame` carrying a `SampleBatch`, exactly what the agent sends after
/// reconnecting.
///
/// The server test target does not link CrowsnestAgent, so `SpoolFixtureReader` below reads the segment format
/// itself (the record layout of `SpoolRecordFormat` in Sources/CrowsnestAgent/Spool/SpoolRecord.swift). Do not
/// regenerate the fixture with a newer agent: its whole point is that it was written by the old one.
final class PreviousAgentFrameTests: XCTestCase {
    static let fixtureDirectory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()  // IngestTests
        .deletingLastPathComponent()  // CrowsnestServerTests
        .appendingPathComponent("Fixtures/agent-0.1-spool", isDirectory: true)

    /// Every pending record of the fixture, decoded with today's `FrameCodec`, with its spool sequence.
    private func fixtureBatches(file: StaticString = #filePath, line: UInt = #line) throws -> [(record: SpoolFixtureReader.Record, frame: Crowsnest_V1_Frame, batch: Crowsnest_V1_SampleBatch)] {
        XCTAssertEqual(try SpoolFixtureReader.acknowledgedSeq(in: Self.fixtureDirectory), 6, file: file, line: line)
        let records = try SpoolFixtureReader.pendingRecords(in: Self.fixtureDirectory)
        XCTAssertEqual(records.map(\.seq), Array(7...21), "the fixture's pending batches", file: file, line: line)
        var result: [(SpoolFixtureReader.Record, Crowsnest_V1_Frame, Crowsnest_V1_SampleBatch)] = []
        for record in records {
            let frame = try FrameCodec.decodeFrame(ByteBuffer(bytes: record.payload))
            guard case .batch(let batch) = frame.message else {
                XCTFail("record \(record.seq) holds a \(frame.messageName) frame, not a batch", file: file, line: line)
                continue
            }
            result.append((record, frame, batch))
        }
        return result
    }

    func testEveryRecordOfThePreviousAgentDecodesAsAValidBatch() throws {
        let batches = try fixtureBatches()
        var previousSeq: UInt64 = 0
        var previousTs: Int64 = 0
        for (record, frame, batch) in batches {
            let context = "batch \(batch.seq)"
            XCTAssertGreaterThan(batch.seq, 0, context)
            XCTAssertEqual(batch.seq, record.seq, "the batch carries the sequence it was spooled under")
            XCTAssertGreaterThan(batch.seq, previousSeq, "sequences rise")
            XCTAssertGreaterThan(batch.tsUnixMs, previousTs, "sweep times rise")
            previousSeq = batch.seq
            previousTs = batch.tsUnixMs
            XCTAssertEqual(batch.intervalSeconds, 1, context)
            XCTAssertNil(AgentSessionHandler.protocolViolation(in: batch), "the gateway accepts \(context)")
            XCTAssertTrue(batch.hasHost, "\(context) has host figures")
            XCTAssertGreaterThan(batch.host.cpuTotalNs, 0, context)
            XCTAssertGreaterThan(batch.host.memoryTotalBytes, 0, context)
            XCTAssertEqual(batch.containersUnavailableReason, "", "\(context): Docker was reachable")
            XCTAssertFalse(batch.containers.isEmpty, "\(context) has containers")
            for container in batch.containers {
                XCTAssertFalse(container.name.isEmpty, context)
                XCTAssertFalse(container.dockerID.isEmpty, context)
                XCTAssertFalse(container.state.isEmpty, context)
            }
            // Fields this server added after that release arrive at their defaults: one part of one, nothing missing.
            XCTAssertEqual(batch.part, 0, context)
            XCTAssertEqual(batch.partCount, 0, context)
            XCTAssertTrue(batch.missing.isEmpty, context)
            XCTAssertEqual(batch.truncatedValues, 0, context)
            XCTAssertEqual(batch.deadLetteredBatches, 0, context)
            // The old schema is a subset of today's: nothing is left over as an unknown field.
            XCTAssertTrue(frame.unknownFields.data.isEmpty, context)
            XCTAssertTrue(batch.unknownFields.data.isEmpty, context)
            XCTAssertTrue(batch.host.unknownFields.data.isEmpty, context)
            XCTAssertTrue(batch.host.filesystems.allSatisfy { $0.unknownFields.data.isEmpty }, context)
            XCTAssertTrue(batch.host.interfaces.allSatisfy { $0.unknownFields.data.isEmpty }, context)
            XCTAssertTrue(batch.containers.allSatisfy { $0.unknownFields.data.isEmpty }, context)
            XCTAssertTrue(batch.events.allSatisfy { $0.unknownFields.data.isEmpty }, context)
            // Nothing in them needs the server's cleaning.
            var cleaned = batch
            XCTAssertEqual(cleaned.sanitize(), 0, context)
            XCTAssertEqual(cleaned, batch, context)
        }
        // What the recording ran against: a running, a labelled and an exited busybox container.
        let names = Set(batches.flatMap { $0.batch.containers.map(\.name) })
        XCTAssertEqual(names, ["fx-running", "fx-labelled", "fx-exited"])
        let last = try XCTUnwrap(batches.last?.batch)
        let labelled = try XCTUnwrap(last.containers.first { $0.name == "fx-labelled" })
        XCTAssertEqual(labelled.labels["fx.role"], "labelled")
        XCTAssertEqual(labelled.state, "running")
        XCTAssertTrue(labelled.hasStats_p, "a running container has counters")
        let exited = try XCTUnwrap(last.containers.first { $0.name == "fx-exited" })
        XCTAssertEqual(exited.state, "exited")
        XCTAssertEqual(exited.exitCode, 3)
    }

    func testReencodingWithTodaysTypesRoundTrips() throws {
        for (record, frame, _) in try fixtureBatches() {
            let bytes: [UInt8] = try frame.serializedBytes()
            let again = try FrameCodec.decodeFrame(ByteBuffer(bytes: bytes))
            XCTAssertEqual(again, frame, "record \(record.seq)")
            // Same content, same size (map entries may come out in another order, so bytes are not compared).
            XCTAssertEqual(bytes.count, record.payload.count, "record \(record.seq)")
        }
    }

    func testTodaysWriterStoresEveryBatchOfThePreviousAgent() async throws {
        let batches = try fixtureBatches().map(\.batch)
        let latest = try XCTUnwrap(batches.map(\.tsUnixMs).max())
        // The server's clock a minute after the last sweep: every batch is inside the accepted window.
        let window = IngestTimeWindow(now: { latest + 60_000 })
        let logger = IngestFixtures.logger
        try await TestPostgres.withTestDatabase { client in
            let (tenantID, agentID) = try await IngestFixtures.seedAgent(client)
            let writer = IngestWriter(client: client, partitions: PartitionStore(client: client, logger: logger),
                                      logger: logger, timeWindow: window)
            // As the gateway does after a reconnect: the whole backlog in one group, with one session's memory.
            var memory = CounterMemory()
            let outcomes = try await writer.write(group: batches, tenantID: tenantID, agentID: agentID, memory: &memory)
            XCTAssertEqual(outcomes, batches.map { .committed(containerSamples: $0.containers.count) })

            let counts = try await IngestFixtures.counts(client)
            XCTAssertEqual(counts["container_samples"], Int64(batches.reduce(0) { $0 + $1.containers.count }))
            XCTAssertEqual(counts["host_samples"], Int64(batches.count))
            XCTAssertEqual(counts["containers"], Int64(Set(batches.flatMap { $0.containers.map(\.name) }).count))
            let rejections = try await IngestFixtures.integer(client, "SELECT count(*) FROM ingest_rejections")
            XCTAssertEqual(rejections, 0)
            let committed = try await IngestFixtures.integer(
                client, "SELECT committed_seq FROM agents WHERE id = \(agentID)")
            XCTAssertEqual(committed, Int64(try XCTUnwrap(batches.last).seq))

            let labelRows = try await client.query(
                "SELECT labels->>'fx.role', state FROM containers WHERE name = 'fx-labelled'", logger: logger)
            var sawLabelled = false
            for try await (role, state) in labelRows.decode((String?, String).self) {
                sawLabelled = true
                XCTAssertEqual(role, "labelled")
                XCTAssertEqual(state, "running")
            }
            XCTAssertTrue(sawLabelled, "the labelled container is stored with its label")
            let exitedState = try await client.query(
                "SELECT state FROM containers WHERE name = 'fx-exited'", logger: logger)
            var sawExited = false
            for try await state in exitedState.decode(String.self) {
                sawExited = true
                XCTAssertEqual(state, "exited")
            }
            XCTAssertTrue(sawExited, "the exited container is stored")

            // The agent resending the same backlog (its acks lost) changes nothing.
            var replayMemory = CounterMemory()
            let replays = try await writer.write(group: batches, tenantID: tenantID, agentID: agentID,
                                                 memory: &replayMemory)
            XCTAssertEqual(replays, batches.map { _ in .replay })
            let countsAfterReplay = try await IngestFixtures.counts(client)
            XCTAssertEqual(countsAfterReplay, counts)
        }
    }
}

/// A minimal, read-only reader of the agent's spool directory, following `SpoolRecordFormat`
/// (Sources/CrowsnestAgent/Spool/SpoolRecord.swift): `NNNNNNNNNNNN.seg` files of records, each a 20-byte header
/// (big-endian magic 0x434E5331 "CNS1", payload length u32, sequence u64, CRC-32C u32 of the 8 sequence bytes then
/// the payload) followed by the payload; `spool.state` holds the acknowledged sequence. Unlike the agent's `Spool`
/// it repairs nothing: any damage is an error, since a fixture must be intact.
enum SpoolFixtureReader {
    struct Record: Equatable {
        var seq: UInt64
        var payload: [UInt8]
    }

    struct Damaged: Error, CustomStringConvertible {
        var description: String
    }

    static let magic: UInt32 = 0x434E_5331
    static let headerSize = 20

    /// Records above the acknowledged sequence, oldest first.
    static func pendingRecords(in directory: URL) throws -> [Record] {
        let acknowledged = try acknowledgedSeq(in: directory)
        let segments = try FileManager.default.contentsOfDirectory(atPath: directory.path)
            .filter { $0.hasSuffix(".seg") }
            .sorted()
        guard !segments.isEmpty else { throw Damaged(description: "no .seg file in \(directory.path)") }
        var records: [Record] = []
        for name in segments {
            let bytes = [UInt8](try Data(contentsOf: directory.appendingPathComponent(name)))
            var offset = 0
            while offset < bytes.count {
                guard bytes.count - offset >= headerSize else {
                    throw Damaged(description: "\(name): torn header at offset \(offset)")
                }
                let recordMagic = UInt32(bigEndian(bytes, offset, 4))
                let length = Int(bigEndian(bytes, offset + 4, 4))
                let seq = bigEndian(bytes, offset + 8, 8)
                let checksum = UInt32(bigEndian(bytes, offset + 16, 4))
                guard recordMagic == magic else { throw Damaged(description: "\(name): bad magic at offset \(offset)") }
                let start = offset + headerSize
                guard bytes.count - start >= length else {
                    throw Damaged(description: "\(name): torn payload of record \(seq) at offset \(offset)")
                }
                let payload = Array(bytes[start..<(start + length)])
                let expected = crc32c(payload, seed: crc32c(bytes[(offset + 8)..<(offset + 16)]))
                guard checksum == expected else { throw Damaged(description: "\(name): CRC mismatch in record \(seq)") }
                if seq > acknowledged { records.append(Record(seq: seq, payload: payload)) }
                offset = start + length
            }
        }
        return records
    }

    /// The `acknowledged` line of `spool.state` (0 when the file is absent).
    static func acknowledgedSeq(in directory: URL) throws -> UInt64 {
        let url = directory.appendingPathComponent("spool.state")
        guard FileManager.default.fileExists(atPath: url.path) else { return 0 }
        let text = try String(contentsOf: url, encoding: .utf8)
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ")
            if fields.count == 2, fields[0] == "acknowledged", let value = UInt64(fields[1]) { return value }
        }
        throw Damaged(description: "spool.state has no acknowledged line")
    }

    static func bigEndian(_ bytes: [UInt8], _ offset: Int, _ width: Int) -> UInt64 {
        bytes[offset..<(offset + width)].reduce(UInt64(0)) { ($0 << 8) | UInt64($1) }
    }

    /// CRC-32C (Castagnoli, reflected 0x82F63B78), continuing from `seed`.
    static func crc32c<Bytes: Sequence>(_ bytes: Bytes, seed: UInt32 = 0) -> UInt32 where Bytes.Element == UInt8 {
        var crc = ~seed
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = (crc & 1) != 0 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
        }
        return ~crc
    }
}
