import NIOCore
import NIOPosix
#if canImport(Glibc)
import Glibc
#endif

/// A stub DNS server on 127.0.0.1 (UDP and TCP on one ephemeral port) for `dns` check tests. It answers from a
/// fixed zone: `www.test` A 192.0.2.10 and 192.0.2.11, AAAA 2001:db8::10; `alias.test` CNAME www.test;
/// `test` MX 10 mail.test and NS ns1.test; `txt.test` TXT "v=spf1 -all"; `big.test` A (truncated over UDP, whole
/// over TCP); `spoof.test` A 192.0.2.99, sent after a forged answer with the wrong id; anything else NXDOMAIN;
/// `fail.test` SERVFAIL.
final class TestDNSServer: Sendable {
    let udp: any Channel
    let tcp: any Channel
    let port: Int

    /// Binds UDP on a free port, then TCP on the same number; the kernel picks the UDP port without
    /// knowing TCP's, so when that number is taken for TCP the pair is tried again on a new port.
    static func start() async throws -> TestDNSServer {
        let group = MultiThreadedEventLoopGroup.singleton
        var attempt = 0
        while true {
            attempt += 1
            let udp = try await DatagramBootstrap(group: group)
                .channelInitializer { $0.pipeline.addHandler(UDPResponder()) }
                .bind(host: "127.0.0.1", port: 0).get()
            let port = udp.localAddress!.port!
            do {
                let tcp = try await ServerBootstrap(group: group)
                    .childChannelInitializer { channel in
                        channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(TCPResponder()) }
                    }
                    .bind(host: "127.0.0.1", port: port).get()
                return TestDNSServer(udp: udp, tcp: tcp, port: port)
            } catch let error as IOError where error.errnoCode == EADDRINUSE && attempt < 20 {
                try? await udp.close()
            }
        }
    }

    private init(udp: any Channel, tcp: any Channel, port: Int) {
        (self.udp, self.tcp, self.port) = (udp, tcp, port)
    }

    func stop() async {
        try? await udp.close()
        try? await tcp.close()
    }

    var address: String { "127.0.0.1:\(port)" }

    enum Data {
        case address([UInt8]), name(String), mx(UInt16, String), text(String)
    }

    /// The answer to `query` as one message; `overTCP` decides whether `big.test` is truncated.
    static func answer(_ query: ByteBuffer, id overrideID: UInt16? = nil, overTCP: Bool) -> ByteBuffer? {
        let bytes = Array(query.readableBytesView)
        guard bytes.count > 12 else { return nil }
        var at = 12
        var labels: [String] = []
        while at < bytes.count, bytes[at] != 0 {
            let count = Int(bytes[at])
            guard at + 1 + count <= bytes.count else { return nil }
            labels.append(String(decoding: bytes[(at + 1)..<(at + 1 + count)], as: UTF8.self).lowercased())
            at += 1 + count
        }
        guard at + 5 <= bytes.count else { return nil }
        let question = bytes[12..<(at + 5)]
        let type = UInt16(bytes[at + 1]) << 8 | UInt16(bytes[at + 2])
        let name = labels.joined(separator: ".")
        var rcode: UInt16 = 0
        var truncated = false
        var records: [(UInt16, Data)] = []
        switch (name, type) {
        case ("www.test", 1): records = [(1, .address([192, 0, 2, 10])), (1, .address([192, 0, 2, 11]))]
        case ("www.test", 28): records = [(28, .address([0x20, 0x01, 0x0d, 0xb8] + Array(repeating: 0, count: 11) + [0x10]))]
        case ("alias.test", _): records = [(5, .name("www.test"))] + (type == 1 ? [(1, .address([192, 0, 2, 10]))] : [])
        case ("test", 15): records = [(15, .mx(10, "mail.test"))]
        case ("test", 2): records = [(2, .name("ns1.test"))]
        case ("txt.test", 16): records = [(16, .text("v=spf1 -all"))]
        case ("big.test", 1):
            if overTCP { records = (1...60).map { (1, .address([198, 51, 100, UInt8($0)])) } } else { truncated = true }
        case ("spoof.test", 1): records = [(1, .address([192, 0, 2, 99]))]
        case ("fail.test", _): rcode = 2
        case (_, _) where name.hasSuffix("test") && ["www.test", "alias.test", "test", "txt.test", "big.test"].contains(name): break
        default: rcode = 3
        }
        var out = ByteBuffer()
        out.writeInteger(overrideID ?? (UInt16(bytes[0]) << 8 | UInt16(bytes[1])))
        out.writeInteger(UInt16(0x8180) | rcode | (truncated ? 0x0200 : 0))
        out.writeInteger(UInt16(1))
        out.writeInteger(UInt16(records.count))
        out.writeInteger(UInt16(0))
        out.writeInteger(UInt16(0))
        out.writeBytes(question)
        for (recordType, data) in records {
            out.writeInteger(UInt16(0xC00C))
            out.writeInteger(recordType)
            out.writeInteger(UInt16(1))
            out.writeInteger(UInt32(60))
            var rdata = ByteBuffer()
            func writeName(_ name: String) {
                for label in name.split(separator: ".") {
                    rdata.writeInteger(UInt8(label.utf8.count))
                    rdata.writeString(String(label))
                }
                rdata.writeInteger(UInt8(0))
            }
            switch data {
            case .address(let address): rdata.writeBytes(address)
            case .name(let name): writeName(name)
            case .mx(let preference, let name):
                rdata.writeInteger(preference)
                writeName(name)
            case .text(let text):
                rdata.writeInteger(UInt8(text.utf8.count))
                rdata.writeString(text)
            }
            out.writeInteger(UInt16(rdata.readableBytes))
            out.writeBuffer(&rdata)
        }
        return out
    }

    final class UDPResponder: ChannelInboundHandler, Sendable {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>
        typealias OutboundOut = AddressedEnvelope<ByteBuffer>

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let envelope = unwrapInboundIn(data)
            let bytes = Array(envelope.data.readableBytesView)
            guard bytes.count > 2 else { return }
            let id = UInt16(bytes[0]) << 8 | UInt16(bytes[1])
            if String(decoding: bytes, as: UTF8.self).contains("spoof"),
               let forged = TestDNSServer.answer(envelope.data, id: id &+ 1, overTCP: false) {
                var bogus = forged
                // The forged answer says 203.0.113.66: the probe must not take it.
                let end = bogus.writerIndex
                bogus.setBytes([203, 0, 113, 66], at: end - 4)
                context.write(wrapOutboundOut(AddressedEnvelope(remoteAddress: envelope.remoteAddress, data: bogus)), promise: nil)
            }
            if let answer = TestDNSServer.answer(envelope.data, overTCP: false) {
                context.writeAndFlush(wrapOutboundOut(AddressedEnvelope(remoteAddress: envelope.remoteAddress, data: answer)), promise: nil)
            }
        }
    }

    final class TCPResponder: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        private var received = ByteBuffer()

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var chunk = unwrapInboundIn(data)
            received.writeBuffer(&chunk)
            guard let length = received.getInteger(at: received.readerIndex, as: UInt16.self),
                  received.readableBytes >= 2 + Int(length) else { return }
            received.moveReaderIndex(forwardBy: 2)
            let query = received.readSlice(length: Int(length))!
            guard var answer = TestDNSServer.answer(query, overTCP: true) else { return }
            var framed = ByteBuffer()
            framed.writeInteger(UInt16(answer.readableBytes))
            framed.writeBuffer(&answer)
            context.writeAndFlush(wrapOutboundOut(framed), promise: nil)
        }
    }
}
