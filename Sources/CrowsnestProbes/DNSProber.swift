import CrowsnestWire
import NIOCore
import NIOPosix
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// `dns` checks: ask a resolver for the target name's records of one type (over UDP, again over TCP when the
/// answer is truncated) and check that it answers, and that every expected answer is among the records.
/// A resolver named in the check is an address the probe sends to, so it goes through the SSRF guard; the
/// runner's own resolver (the first `nameserver` in /etc/resolv.conf) is the operator's, and is not.
struct DNSProber: Sendable {
    static let resolvConfPath = "/etc/resolv.conf"
    /// How often a UDP query is sent again while no answer came.
    static let resendInterval = Duration.seconds(1)

    let dialer: ProbeDialer
    let resolver: GuardedResolver
    let group: any EventLoopGroup

    func probe(_ target: String, options: [String: String], deadline: ContinuousClock.Instant) async throws -> ProbeOutcome {
        let start = ContinuousClock.now
        let options = ProbeOptions(options)
        let typeName = try options.string("record_type") ?? "A"
        guard let type = DNSMessage.RecordType(name: typeName) else {
            throw ProbeFailure("record type \(typeName) is not one a dns check asks for")
        }
        let expected = try options.strings("expected")
        let server: SocketAddress
        if let given = try options.string("resolver") {
            let hostPort = try ProbeHostPort(given, defaultPort: 53)
            guard let first = try await resolver.resolve(host: hostPort.host, port: hostPort.port).first else {
                throw ProbeFailure("resolver \(given) resolves to no address")
            }
            server = first
        } else {
            server = try Self.systemResolver()
        }
        let id = UInt16.random(in: 0...UInt16.max)
        let query = try DNSMessage.query(id: id, name: target, type: type)
        var answer = try await exchangeUDP(query, id: id, server: server)
        var transport = "udp"
        if answer.truncated {
            answer = try await exchangeTCP(query, id: id, server: server, deadline: deadline)
            transport = "tcp"
        }
        var outcome = ProbeOutcome(ok: true, latencyMs: (ContinuousClock.now - start).milliseconds)
        let records = answer.answers.filter { $0.type == type.rawValue }.compactMap(\.text)
        outcome.details["answers"] = ProbeText.bounded(records.joined(separator: ", "))
        outcome.details["resolver"] = ProbeDialer.describe(server)
        outcome.details["transport"] = transport
        outcome.figures["answer_count"] = Double(records.count)
        if let problem = Self.judge(answer, records: records, type: type, name: target, expected: expected) {
            outcome.ok = false
            outcome.error = problem
        }
        return outcome
    }

    static func judge(_ answer: DNSMessage, records: [String], type: DNSMessage.RecordType, name: String,
                      expected: [String]) -> String? {
        guard answer.rcode == 0 else {
            let code = DNSMessage.rcodeNames[answer.rcode] ?? "rcode \(answer.rcode)"
            return answer.rcode == 3 ? "\(name) does not exist (NXDOMAIN)" : "the resolver answered \(code) for \(name)"
        }
        guard !records.isEmpty else { return "\(name) has no \(type.name) records" }
        let missing = expected.filter { wanted in !records.contains { Self.same($0, wanted, type: type) } }
        guard missing.isEmpty else {
            return ProbeText.bounded("\(name) \(type.name) is \(records.joined(separator: ", ")), without \(missing.joined(separator: ", "))")
        }
        return nil
    }

    /// An answer equals an expected value: addresses by their bytes, names without case or a trailing dot, an MX
    /// by its name alone or with its preference.
    static func same(_ record: String, _ wanted: String, type: DNSMessage.RecordType) -> Bool {
        func name(_ text: String) -> String {
            let lower = text.lowercased()
            return lower.hasSuffix(".") ? String(lower.dropLast()) : lower
        }
        switch type {
        case .a, .aaaa:
            guard let left = IPAddress(record), let right = IPAddress(wanted) else { return false }
            return left.bytes == right.bytes
        case .cname, .ns: return name(record) == name(wanted)
        case .mx:
            let host = record.split(separator: " ", maxSplits: 1).last.map(String.init) ?? record
            return name(record) == name(wanted) || name(host) == name(wanted)
        case .txt: return record == wanted
        }
    }

    private func exchangeUDP(_ query: ByteBuffer, id: UInt16, server: SocketAddress) async throws -> DNSMessage {
        let local = server.protocol == .inet6 ? "::" : "0.0.0.0"
        let channel = try await DatagramBootstrap(group: group)
            .bind(host: local, port: 0) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<AddressedEnvelope<ByteBuffer>, AddressedEnvelope<ByteBuffer>>(wrappingChannelSynchronously: channel)
                }
            }
        return try await channel.executeThenClose { inbound, outbound in
            try await withThrowingTaskGroup(of: DNSMessage?.self) { tasks in
                tasks.addTask {
                    while !Task.isCancelled {
                        try await outbound.write(AddressedEnvelope(remoteAddress: server, data: query))
                        try await Task.sleep(for: Self.resendInterval)
                    }
                    return nil
                }
                tasks.addTask {
                    for try await envelope in inbound {
                        // Anything not from the resolver, or not the answer to this query, is ignored.
                        guard envelope.remoteAddress == server,
                              let message = try? DNSMessage(parsing: envelope.data), message.id == id else { continue }
                        return message
                    }
                    throw ProbeFailure("the resolver's socket closed without an answer")
                }
                while let result = try await tasks.next() {
                    if let message = result {
                        tasks.cancelAll()
                        return message
                    }
                }
                throw ProbeFailure("no answer from the resolver \(ProbeDialer.describe(server))")
            }
        }
    }

    private func exchangeTCP(_ query: ByteBuffer, id: UInt16, server: SocketAddress,
                             deadline: ContinuousClock.Instant) async throws -> DNSMessage {
        let (channel, _) = try await dialer.connect(to: [server], deadline: deadline) { channel in
            channel.eventLoop.makeCompletedFuture {
                try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
            }
        }
        return try await channel.executeThenClose { inbound, outbound in
            var framed = ByteBuffer()
            framed.writeInteger(UInt16(query.readableBytes))
            framed.writeImmutableBuffer(query)
            try await outbound.write(framed)
            var received = ByteBuffer()
            for try await chunk in inbound {
                received.writeImmutableBuffer(chunk)
                guard let length = received.getInteger(at: received.readerIndex, as: UInt16.self),
                      received.readableBytes >= 2 + Int(length) else { continue }
                let message = try DNSMessage(parsing: received.getSlice(at: received.readerIndex + 2, length: Int(length))!)
                guard message.id == id else { throw ProbeFailure("the resolver answered another query over TCP") }
                return message
            }
            throw ProbeFailure("the resolver closed the TCP connection without an answer")
        }
    }

    /// The first `nameserver` of /etc/resolv.conf, port 53.
    static func systemResolver(path: String = resolvConfPath) throws -> SocketAddress {
        guard let text = readSmallFile(path) else {
            throw ProbeFailure("cannot read \(path) to find a resolver; set the check's resolver option")
        }
        for line in text.split(whereSeparator: \.isNewline) {
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard words.count >= 2, words[0] == "nameserver" else { continue }
            let address = String(words[1].split(separator: "%").first ?? words[1])
            if let socketAddress = try? SocketAddress(ipAddress: address, port: 53) { return socketAddress }
        }
        throw ProbeFailure("\(path) names no nameserver; set the check's resolver option")
    }

    /// A file of at most 64 KiB as text; nil when it cannot be read.
    static func readSmallFile(_ path: String) -> String? {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        var bytes = [UInt8](repeating: 0, count: 64 * 1024)
        var filled = 0
        while filled < bytes.count {
            let count = bytes[filled...].withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count <= 0 { break }
            filled += count
        }
        return String(decoding: bytes[..<filled], as: UTF8.self)
    }
}
