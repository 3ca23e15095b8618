import CrowsnestWire
import Foundation
import NIOCore
import XCTest

@testable import CrowsnestServer

/// PROXY protocol v2 from trusted load balancers: the agent's own address counts, and nobody else can claim one.
final class ProxyProtocolTests: XCTestCase {
    /// A PROXY v2 header for a TCP/IPv4 connection from `source`.
    static func header(source: [UInt8], port: UInt16 = 40_000, command: UInt8 = 0x21) -> [UInt8] {
        var bytes = ProxyProtocolHandler.signature + [command, 0x11, 0, 12]
        bytes += source + [127, 0, 0, 1] + [UInt8(port >> 8), UInt8(port & 0xFF), 0x1D, 0x13]
        return bytes
    }

    func testHeadersAreParsedAndBadOnesRefused() throws {
        var v4 = ByteBuffer(bytes: Self.header(source: [203, 0, 113, 7]) + [0x16, 0x03])
        XCTAssertEqual(ProxyProtocolHandler.parse(&v4), .parsed(try SocketAddress(ipAddress: "203.0.113.7", port: 40_000)))
        XCTAssertEqual(v4.readableBytes, 2, "the bytes after the header are left for TLS")

        var v6Bytes = ProxyProtocolHandler.signature + [0x21, 0x21, 0, 36]
        v6Bytes += [0x20, 0x01, 0x0d, 0xb8] + Array(repeating: 0, count: 11) + [1] + Array(repeating: 0, count: 16) + [0x9C, 0x40, 0x1D, 0x13]
        var v6 = ByteBuffer(bytes: v6Bytes)
        XCTAssertEqual(ProxyProtocolHandler.parse(&v6), .parsed(try SocketAddress(ipAddress: "2001:db8::1", port: 40_000)))

        var local = ByteBuffer(bytes: Self.header(source: [10, 0, 0, 1], command: 0x20))
        XCTAssertEqual(ProxyProtocolHandler.parse(&local), .parsed(nil), "LOCAL (health checks): the peer itself counts")

        var partial = ByteBuffer(bytes: Array(Self.header(source: [10, 0, 0, 1]).prefix(20)))
        XCTAssertEqual(ProxyProtocolHandler.parse(&partial), .needMoreBytes)
        var tls = ByteBuffer(bytes: [0x16, 0x03, 0x01, 0x00, 0x50])
        XCTAssertEqual(ProxyProtocolHandler.parse(&tls), .invalid, "a TLS hello is not a PROXY header")
        var version1 = ByteBuffer(bytes: ProxyProtocolHandler.signature + [0x11, 0x11, 0, 12] + Array(repeating: 0, count: 12))
        XCTAssertEqual(ProxyProtocolHandler.parse(&version1), .invalid)
        var oversized = ByteBuffer(bytes: ProxyProtocolHandler.signature + [0x21, 0x11, 0xFF, 0xFF])
        XCTAssertEqual(ProxyProtocolHandler.parse(&oversized), .invalid)
    }

    func testNetworksMatchByPrefix() throws {
        let network = try XCTUnwrap(IPNetwork("10.1.0.0/16"))
        XCTAssertTrue(network.contains([10, 1, 200, 3]))
        XCTAssertFalse(network.contains([10, 2, 0, 1]))
        XCTAssertTrue(try XCTUnwrap(IPNetwork("192.0.2.7")).contains([192, 0, 2, 7]))
        XCTAssertFalse(try XCTUnwrap(IPNetwork("2001:db8::/32")).contains([10, 1, 0, 0]), "families never match each other")
        XCTAssertNil(IPNetwork("10.0.0.0/33"))
        XCTAssertNil(IPNetwork("host.example"))
    }

    /// Through a trusted balancer the enrollment rate limit counts each agent's own address.
    func testATrustedBalancersHeaderNamesTheAddressThatIsRateLimited() async throws {
        try await TestPostgres.withTestDatabase { client in
            let limits = ConnectionAdmission.Limits(enrollmentsPerMinutePerAddress: 2)
            try await GatewayHarness.run(client: client, admissionLimits: limits,
                                         trustedProxies: [try XCTUnwrap(IPNetwork("127.0.0.0/8"))]) { gateway in
                let tenantID = try await gateway.createTenant()
                func enroll(from source: [UInt8]) async throws -> Crowsnest_V1_Frame? {
                    let token = try await gateway.createToken(tenantID: tenantID)
                    return try await gateway.connect(tls: try gateway.enrollmentTLS, proxyHeader: Self.header(source: source)) { wire in
                        try await wire.send(try GatewayHarness.enrollRequest(token: token))
                        guard case .success(let frame) = await wire.nextOrEnd() else { return nil }
                        return frame
                    }
                }
                for _ in 0..<2 {
                    guard case .enrollResponse? = try await enroll(from: [203, 0, 113, 7])?.message else { return XCTFail("enrollment failed") }
                }
                guard case .reject(let reject)? = try await enroll(from: [203, 0, 113, 7])?.message else {
                    return XCTFail("the third enrollment from one agent address within a minute must be refused")
                }
                XCTAssertTrue(reject.reason.contains("203.0.113.7"), reject.reason)
                guard case .enrollResponse? = try await enroll(from: [203, 0, 113, 8])?.message else {
                    return XCTFail("another agent behind the same balancer is not affected")
                }
            }
        }
    }

    /// A peer that is not a trusted balancer cannot claim an address: its header is taken for TLS and fails.
    func testAnUntrustedPeerCannotClaimAnAddress() async throws {
        try await TestPostgres.withTestDatabase { client in
            try await GatewayHarness.run(client: client, trustedProxies: [try XCTUnwrap(IPNetwork("10.0.0.0/8"))]) { gateway in
                do {
                    let answer = try await gateway.connect(tls: try gateway.enrollmentTLS, deadline: .seconds(10),
                                                           proxyHeader: Self.header(source: [203, 0, 113, 9])) { wire in
                        try await wire.send(try GatewayHarness.enrollRequest(token: "cne_x"))
                        return await wire.nextOrEnd()
                    }
                    guard case .failure = answer else { return XCTFail("the connection must fail, got \(answer)") }
                } catch {
                    // The TLS handshake failed: what is expected.
                }
            }
        }
    }
}
