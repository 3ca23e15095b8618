import CrowsnestAgent
import CrowsnestWire
import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import SwiftProtobuf
import Synchronization

/// One enrolled agent that sends made-up but realistic sweeps: `containerCount` running containers whose
/// counters grow a little every tick, plus the host, one tick (1 s of simulated time) per batch.
final class SimulatedAgent: @unchecked Sendable {
    let index: Int
    let credentials: AgentCredentials
    let sslContext: NIOSSLContext
    let containerCount: Int
    /// Next sequence number to send minus one; raised to the server's committed sequence on `Welcome`.
    var seq: UInt64 = 0
    /// Tick time of the next batch, unix ms.
    var tsMillis: Int64
    private var counters: [Counters]
    private var random: UInt64
    private let dockerIDs: [String]
    private let names: [String]
    private let startedAt: Int64
    /// Each container's unchanging fields, serialized once.
    private var staticBytes: [[UInt8]] = []

    private struct Counters {
        var cpu: UInt64 = 0
        var throttledPeriods: UInt64 = 0
        var throttledNs: UInt64 = 0
        var rxBytes: UInt64 = 0
        var txBytes: UInt64 = 0
        var rxPackets: UInt64 = 0
        var txPackets: UInt64 = 0
        var readBytes: UInt64 = 0
        var writeBytes: UInt64 = 0
        var readOps: UInt64 = 0
        var writeOps: UInt64 = 0
    }

    init(index: Int, credentials: AgentCredentials, containerCount: Int, startMillis: Int64) throws {
        self.index = index
        self.credentials = credentials
        self.sslContext = try NIOSSLContext(configuration: try credentials.makeClientTLSConfiguration())
        self.containerCount = containerCount
        self.tsMillis = startMillis
        self.random = 0x9E37_79B9_7F4A_7C15 &* UInt64(index + 1)
        self.counters = Array(repeating: Counters(), count: containerCount)
        self.names = (0..<containerCount).map { "bench-a\(index)-svc\($0)" }
        self.dockerIDs = (0..<containerCount).map { i in
            String(repeating: String(format: "%08x", (index << 16) | i), count: 8)
        }
        self.startedAt = startMillis - 86_400_000
        self.staticBytes = try (0..<containerCount).map { try staticSample($0).serializedBytes() }
    }

    private func next(_ bound: UInt64) -> UInt64 {
        random ^= random << 13
        random ^= random >> 7
        random ^= random << 17
        return random % bound
    }

    /// One container's figures at one tick: what changes from sweep to sweep.
    struct Tick {
        var cpu: UInt64, throttledPeriods: UInt64, throttledNs: UInt64
        var memoryUsage: UInt64, memoryWorkingSet: UInt64
        var rxBytes: UInt64, txBytes: UInt64, rxPackets: UInt64, txPackets: UInt64
        var readBytes: UInt64, writeBytes: UInt64, readOps: UInt64, writeOps: UInt64
        var pids: UInt64
    }

    /// Advances to the next sweep: the next sequence number and time, and every container's grown counters.
    private func advance() -> (seq: UInt64, tsMillis: Int64, ticks: [Tick]) {
        seq += 1
        let ts = tsMillis
        tsMillis += 1000
        var ticks: [Tick] = []
        ticks.reserveCapacity(containerCount)
        for i in 0..<containerCount {
            counters[i].cpu += 5_000_000 + next(40_000_000)
            counters[i].rxBytes += 2_000 + next(50_000)
            counters[i].txBytes += 1_000 + next(30_000)
            counters[i].rxPackets += 10 + next(100)
            counters[i].txPackets += 8 + next(80)
            counters[i].readBytes += next(8) == 0 ? 4096 * next(16) : 0
            counters[i].writeBytes += 4096 * next(8)
            counters[i].readOps += next(4)
            counters[i].writeOps += next(8)
            if next(20) == 0 {
                counters[i].throttledPeriods += 1
                counters[i].throttledNs += next(5_000_000)
            }
            let memory = (100 << 20) + next(50 << 20)
            let c = counters[i]
            ticks.append(Tick(
                cpu: c.cpu, throttledPeriods: c.throttledPeriods, throttledNs: c.throttledNs,
                memoryUsage: memory, memoryWorkingSet: memory - (10 << 20),
                rxBytes: c.rxBytes, txBytes: c.txBytes, rxPackets: c.rxPackets, txPackets: c.txPackets,
                readBytes: c.readBytes, writeBytes: c.writeBytes, readOps: c.readOps, writeOps: c.writeOps,
                pids: 3 + next(20)))
        }
        return (seq, ts, ticks)
    }

    /// The host part of a sweep at `tsMillis` (the time after the batch's own tick, as the sampler reports it).
    private func hostSample(tsMillis: Int64) -> Crowsnest_V1_HostSample {
        var host = Crowsnest_V1_HostSample()
        host.cpuCount = 8
        host.cpuTotalNs = UInt64(tsMillis) * 8_000_000
        host.cpuIdleNs = host.cpuTotalNs / 2
        host.cpuIowaitNs = host.cpuTotalNs / 100
        host.cpuUserNs = host.cpuTotalNs / 3
        host.cpuSystemNs = host.cpuTotalNs / 10
        host.load1 = 1.25
        host.load5 = 1.1
        host.load15 = 0.9
        host.memoryTotalBytes = 32 << 30
        host.memoryAvailableBytes = 20 << 30
        host.uptimeSeconds = UInt64(tsMillis / 1000) - 1_700_000_000
        host.bootID = "5c0ffee0-0000-4000-8000-00000000000\(index % 10)"
        for (mount, device) in [("/", "/dev/sda1"), ("/var/lib/docker", "/dev/sdb1")] {
            var fs = Crowsnest_V1_Filesystem()
            fs.mountpoint = mount
            fs.device = device
            fs.fstype = "ext4"
            fs.sizeBytes = 500 << 30
            fs.freeBytes = 200 << 30
            fs.availableBytes = 180 << 30
            host.filesystems.append(fs)
        }
        for name in ["eth0", "docker0"] {
            var interface = Crowsnest_V1_NetInterface()
            interface.name = name
            interface.rxBytes = UInt64(tsMillis) * 10
            interface.txBytes = UInt64(tsMillis) * 7
            host.interfaces.append(interface)
        }
        return host
    }

    /// The parts of container `i`'s sample that never change (identity, labels, limits).
    private func staticSample(_ i: Int) -> Crowsnest_V1_ContainerSample {
        var sample = Crowsnest_V1_ContainerSample()
        sample.dockerID = dockerIDs[i]
        sample.name = names[i]
        sample.image = "registry.example.com/team/service-\(i % 7):1.4.\(i % 3)"
        sample.labels = ["com.docker.compose.project": "bench\(index)", "com.docker.compose.service": "svc\(i)"]
        sample.state = "running"
        sample.health = i % 4 == 0 ? "healthy" : "none"
        sample.startedAtUnixMs = startedAt
        sample.cpuLimitCores = 2
        sample.memoryLimitBytes = 512 << 20
        sample.hasStats_p = true
        sample.statsSource = "cgroup-v2"
        return sample
    }

    /// The next sweep as a message, built field by field with SwiftProtobuf (the reference the frames are
    /// checked against).
    func makeBatch() -> Crowsnest_V1_SampleBatch {
        let (seq, ts, ticks) = advance()
        var batch = Crowsnest_V1_SampleBatch()
        batch.seq = seq
        batch.tsUnixMs = ts
        batch.intervalSeconds = 1
        batch.host = hostSample(tsMillis: ts + 1000)
        batch.containers.reserveCapacity(containerCount)
        for (i, tick) in ticks.enumerated() {
            var sample = staticSample(i)
            sample.cpuUsageNs = tick.cpu
            sample.cpuThrottledPeriods = tick.throttledPeriods
            sample.cpuThrottledNs = tick.throttledNs
            sample.memoryUsageBytes = tick.memoryUsage
            sample.memoryWorkingSetBytes = tick.memoryWorkingSet
            sample.netRxBytes = tick.rxBytes
            sample.netTxBytes = tick.txBytes
            sample.netRxPackets = tick.rxPackets
            sample.netTxPackets = tick.txPackets
            sample.blockReadBytes = tick.readBytes
            sample.blockWriteBytes = tick.writeBytes
            sample.blockReadOps = tick.readOps
            sample.blockWriteOps = tick.writeOps
            sample.pids = tick.pids
            batch.containers.append(sample)
        }
        return batch
    }

    /// The next sweep as one length-prefixed `Frame`, written as protobuf bytes directly: each container's
    /// unchanging fields were serialized once (`staticBytes`), only the counters are encoded per sweep.
    ///
    /// A real agent encodes its sweep on its own host; here 8 simulated agents share 2 CPUs with the server and
    /// PostgreSQL, so their encoding is kept out of the way, as the COPY ceiling's rows are formatted before its
    /// clock starts. `checkFrameEncoding` compares the bytes with the SwiftProtobuf-built message at start.
    func makeBatchFrame() -> (seq: UInt64, frame: ByteBuffer) {
        let (seq, ts, ticks) = advance()
        let tags = WireTags.shared
        var batch: [UInt8] = []
        batch.reserveCapacity(containerCount * 360 + 512)
        ProtobufBytes.appendVarintField(tags.batchSeq, seq, to: &batch)
        ProtobufBytes.appendVarintField(tags.batchTs, UInt64(bitPattern: ts), to: &batch)
        ProtobufBytes.appendVarintField(tags.batchInterval, 1, to: &batch)
        let host: [UInt8] = (try? hostSample(tsMillis: ts + 1000).serializedBytes()) ?? []
        ProtobufBytes.appendLengthDelimited(tags.batchHost, host, to: &batch)
        var sample: [UInt8] = []
        sample.reserveCapacity(512)
        for (i, tick) in ticks.enumerated() {
            sample.removeAll(keepingCapacity: true)
            sample.append(contentsOf: staticBytes[i])
            for (tag, value) in zip(tags.tickFields, [
                tick.cpu, tick.throttledPeriods, tick.throttledNs, tick.memoryUsage, tick.memoryWorkingSet,
                tick.rxBytes, tick.txBytes, tick.rxPackets, tick.txPackets,
                tick.readBytes, tick.writeBytes, tick.readOps, tick.writeOps, tick.pids,
            ]) where value != 0 {
                ProtobufBytes.appendVarintField(tag, value, to: &sample)
            }
            ProtobufBytes.appendLengthDelimited(tags.batchContainers, sample, to: &batch)
        }
        var frame: [UInt8] = []
        frame.reserveCapacity(batch.count + 8)
        ProtobufBytes.appendLengthDelimited(tags.frameBatch, batch, to: &frame)
        return (seq, FrameCodec.frame(serialized: frame))
    }

    /// Fails when `makeBatchFrame` and `makeBatch` disagree on a sweep (a proto change the direct encoder missed).
    func checkFrameEncoding() throws {
        let (savedSeq, savedTs, savedCounters, savedRandom) = (seq, tsMillis, counters, random)
        let (_, frame) = makeBatchFrame()
        (seq, tsMillis, counters, random) = (savedSeq, savedTs, savedCounters, savedRandom)
        let reference = makeBatch()
        (seq, tsMillis, counters, random) = (savedSeq, savedTs, savedCounters, savedRandom)
        var reader = FrameReader(maximumFrameLength: FrameLimits.established)
        reader.append(frame)
        guard let decoded = try reader.next(), case .batch(let batch) = decoded.message, batch == reference else {
            throw BenchmarkError("the simulated agent's directly written frame does not decode to the reference batch")
        }
    }

    func hello() -> Crowsnest_V1_Hello {
        var hello = Crowsnest_V1_Hello()
        hello.protocolVersion = FrameLimits.protocolVersion
        hello.agentVersion = "crowsnest-bench"
        hello.host.hostname = "bench-host-\(index)"
        hello.host.os = "Debian GNU/Linux 12 (bookworm)"
        hello.host.kernel = "6.1.0"
        hello.host.architecture = "x86_64"
        hello.host.cpuCount = 8
        hello.host.memoryTotalBytes = 32 << 30
        hello.host.dockerVersion = "24.0.7"
        hello.bootID = "5c0ffee0-0000-4000-8000-00000000000\(index % 10)"
        hello.lastAckedSeq = seq
        return hello
    }
}

/// What the simulated agents have had acknowledged so far, shared with the clock-keeping main task.
final class AckCounters: Sendable {
    let samples = Atomic<Int>(0)
    let batches = Atomic<Int>(0)
    let stop = Atomic<Bool>(false)
}

struct BenchmarkError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// One mTLS session of a simulated agent: `Hello`, `Welcome`, then batches with up to `window` unacknowledged,
/// until `counters.stop` is set and every sent batch is acknowledged. Returns the ack latencies in seconds.
func runSession(agent: SimulatedAgent, port: Int, window: Int, counters: AckCounters,
                encodeWithSwiftProtobuf: Bool = false) async throws -> [Double] {
    let context = agent.sslContext
    let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .channelOption(.tcpOption(.tcp_nodelay), value: 1)
        .connect(host: "127.0.0.1", port: port) { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: context, serverHostname: nil))
                return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
            }
        }
    return try await channel.executeThenClose { inbound, outbound in
        var iterator = inbound.makeAsyncIterator()
        var reader = FrameReader(maximumFrameLength: FrameLimits.established)
        func nextFrame() async throws -> Crowsnest_V1_Frame {
            while true {
                if let frame = try reader.next() { return frame }
                guard let bytes = try await iterator.next() else { throw BenchmarkError("server closed the connection") }
                reader.append(bytes)
            }
        }
        try await outbound.write(try FrameCodec.encode(.with(.hello(agent.hello()))))
        let welcome: Crowsnest_V1_Welcome
        switch try await nextFrame().message {
        case .welcome(let message): welcome = message
        case .reject(let reject): throw BenchmarkError("server rejected agent \(agent.index): \(reject.reason)")
        case .goodbye(let goodbye): throw BenchmarkError("server said goodbye to agent \(agent.index): \(goodbye.reason)")
        default: throw BenchmarkError("unexpected first frame")
        }
        agent.seq = max(agent.seq, welcome.committedSeq)
        let window = max(1, min(window, Int(welcome.settings.ackWindow == 0 ? 32 : welcome.settings.ackWindow)))
        var sentAt: [UInt64: ContinuousClock.Instant] = [:]
        var latencies: [Double] = []
        func sendOne() async throws {
            if encodeWithSwiftProtobuf {
                let batch = agent.makeBatch()
                sentAt[batch.seq] = .now
                try await outbound.write(try FrameCodec.encode(.with(.batch(batch))))
            } else {
                let (seq, frame) = agent.makeBatchFrame()
                sentAt[seq] = .now
                try await outbound.write(frame)
            }
        }
        for _ in 0..<window { try await sendOne() }
        while !sentAt.isEmpty {
            let frame = try await nextFrame()
            switch frame.message {
            case .ack(let ack):
                // Acks are cumulative in meaning; the server acks each batch in order.
                for seq in sentAt.keys where seq <= ack.seq {
                    let elapsed = ContinuousClock.now - sentAt.removeValue(forKey: seq)!
                    latencies.append(Double(elapsed.components.attoseconds) / 1e18 + Double(elapsed.components.seconds))
                    counters.samples.add(agent.containerCount, ordering: .relaxed)
                    counters.batches.add(1, ordering: .relaxed)
                }
                if !counters.stop.load(ordering: .relaxed) { try await sendOne() }
            case .heartbeat, .assign:
                continue
            case .goodbye(let goodbye):
                throw BenchmarkError("server said goodbye to agent \(agent.index): \(goodbye.reason)")
            case .reject(let reject):
                throw BenchmarkError("server rejected agent \(agent.index): \(reject.reason)")
            default:
                continue
            }
        }
        var goodbye = Crowsnest_V1_Goodbye()
        goodbye.reason = "benchmark done"
        try? await outbound.write(try FrameCodec.encode(.with(.goodbye(goodbye))))
        return latencies
    }
}

/// Protobuf field keys (tag bytes) of the fields the simulated agents write directly, read from SwiftProtobuf's
/// own encoding of a message with only that field set, so they follow the generated code.
struct WireTags: Sendable {
    static let shared = WireTags()
    let frameBatch: [UInt8]
    let batchSeq: [UInt8], batchTs: [UInt8], batchInterval: [UInt8], batchHost: [UInt8], batchContainers: [UInt8]
    /// In `SimulatedAgent.Tick` order.
    let tickFields: [[UInt8]]

    private init() {
        /// The key of a varint field set to 1: the encoding minus its last byte (the value 1).
        func varintKey<M: SwiftProtobuf.Message>(_ set: (inout M) -> Void) -> [UInt8] {
            var message = M()
            set(&message)
            return Array(((try? message.serializedBytes()) ?? [0, 0]).dropLast())
        }
        /// The key of an empty length-delimited field: the encoding minus its last byte (length 0).
        func delimitedKey<M: SwiftProtobuf.Message>(_ set: (inout M) -> Void) -> [UInt8] { varintKey(set) }
        frameBatch = delimitedKey { (f: inout Crowsnest_V1_Frame) in f.batch = Crowsnest_V1_SampleBatch() }
        batchSeq = varintKey { (b: inout Crowsnest_V1_SampleBatch) in b.seq = 1 }
        batchTs = varintKey { (b: inout Crowsnest_V1_SampleBatch) in b.tsUnixMs = 1 }
        batchInterval = varintKey { (b: inout Crowsnest_V1_SampleBatch) in b.intervalSeconds = 1 }
        batchHost = delimitedKey { (b: inout Crowsnest_V1_SampleBatch) in b.host = Crowsnest_V1_HostSample() }
        batchContainers = delimitedKey { (b: inout Crowsnest_V1_SampleBatch) in
            b.containers = [Crowsnest_V1_ContainerSample()]
        }
        typealias Sample = Crowsnest_V1_ContainerSample
        tickFields = [
            varintKey { (s: inout Sample) in s.cpuUsageNs = 1 },
            varintKey { (s: inout Sample) in s.cpuThrottledPeriods = 1 },
            varintKey { (s: inout Sample) in s.cpuThrottledNs = 1 },
            varintKey { (s: inout Sample) in s.memoryUsageBytes = 1 },
            varintKey { (s: inout Sample) in s.memoryWorkingSetBytes = 1 },
            varintKey { (s: inout Sample) in s.netRxBytes = 1 },
            varintKey { (s: inout Sample) in s.netTxBytes = 1 },
            varintKey { (s: inout Sample) in s.netRxPackets = 1 },
            varintKey { (s: inout Sample) in s.netTxPackets = 1 },
            varintKey { (s: inout Sample) in s.blockReadBytes = 1 },
            varintKey { (s: inout Sample) in s.blockWriteBytes = 1 },
            varintKey { (s: inout Sample) in s.blockReadOps = 1 },
            varintKey { (s: inout Sample) in s.blockWriteOps = 1 },
            varintKey { (s: inout Sample) in s.pids = 1 },
        ]
    }
}

/// The two protobuf encodings the simulated agents write by hand: varint fields and length-delimited fields.
enum ProtobufBytes {
    static func appendVarint(_ value: UInt64, to bytes: inout [UInt8]) {
        var value = value
        while value >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        bytes.append(UInt8(value))
    }

    static func appendVarintField(_ key: [UInt8], _ value: UInt64, to bytes: inout [UInt8]) {
        bytes.append(contentsOf: key)
        appendVarint(value, to: &bytes)
    }

    static func appendLengthDelimited(_ key: [UInt8], _ payload: [UInt8], to bytes: inout [UInt8]) {
        bytes.append(contentsOf: key)
        appendVarint(UInt64(payload.count), to: &bytes)
        bytes.append(contentsOf: payload)
    }
}
