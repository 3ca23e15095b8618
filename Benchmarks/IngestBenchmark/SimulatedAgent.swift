import CrowsnestAgent
import CrowsnestWire
import Foundation
import NIOCore
import NIOPosix
import NIOSSL
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
    }

    private func next(_ bound: UInt64) -> UInt64 {
        random ^= random << 13
        random ^= random >> 7
        random ^= random << 17
        return random % bound
    }

    /// The next sweep as a batch with the next sequence number.
    func makeBatch() -> Crowsnest_V1_SampleBatch {
        seq += 1
        var batch = Crowsnest_V1_SampleBatch()
        batch.seq = seq
        batch.tsUnixMs = tsMillis
        batch.intervalSeconds = 1
        tsMillis += 1000
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
        batch.host = host
        batch.containers.reserveCapacity(containerCount)
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
            sample.cpuUsageNs = counters[i].cpu
            sample.cpuThrottledPeriods = counters[i].throttledPeriods
            sample.cpuThrottledNs = counters[i].throttledNs
            sample.memoryUsageBytes = (100 << 20) + next(50 << 20)
            sample.memoryWorkingSetBytes = sample.memoryUsageBytes - (10 << 20)
            sample.netRxBytes = counters[i].rxBytes
            sample.netTxBytes = counters[i].txBytes
            sample.netRxPackets = counters[i].rxPackets
            sample.netTxPackets = counters[i].txPackets
            sample.blockReadBytes = counters[i].readBytes
            sample.blockWriteBytes = counters[i].writeBytes
            sample.blockReadOps = counters[i].readOps
            sample.blockWriteOps = counters[i].writeOps
            sample.pids = 3 + next(20)
            sample.statsSource = "cgroup-v2"
            batch.containers.append(sample)
        }
        return batch
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
func runSession(agent: SimulatedAgent, port: Int, window: Int, counters: AckCounters) async throws -> [Double] {
    let context = agent.sslContext
    let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .channelOption(.socketOption(.tcp_nodelay), value: 1)
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
            let batch = agent.makeBatch()
            sentAt[batch.seq] = .now
            try await outbound.write(try FrameCodec.encode(.with(.batch(batch))))
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
