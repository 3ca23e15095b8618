import CrowsnestWire
import XCTest

final class AddressGuardTests: XCTestCase {
    private func address(_ text: String, file: StaticString = #filePath, line: UInt = #line) -> IPAddress {
        guard let address = IPAddress(text) else {
            XCTFail("\(text) is not an address", file: file, line: line)
            return IPAddress("0.0.0.0")!
        }
        return address
    }

    func testClassesOfIPv4AndIPv6Addresses() {
        let expected: [(String, AddressClass)] = [
            ("93.184.216.34", .publicUnicast), ("2606:2800:220:1::1", .publicUnicast),
            ("127.0.0.1", .loopback), ("127.255.0.9", .loopback), ("::1", .loopback),
            ("10.1.2.3", .privateNetwork), ("172.16.0.1", .privateNetwork), ("172.31.255.255", .privateNetwork),
            ("192.168.1.1", .privateNetwork), ("fd12:3456::1", .privateNetwork),
            ("172.32.0.1", .publicUnicast), ("100.64.0.1", .carrierGradeNAT), ("100.127.255.255", .carrierGradeNAT),
            ("100.128.0.1", .publicUnicast),
            ("169.254.1.1", .linkLocal), ("fe80::1", .linkLocal),
            ("169.254.169.254", .metadata), ("169.254.170.2", .metadata), ("100.100.100.200", .metadata),
            ("fd00:ec2::254", .metadata),
            ("0.0.0.0", .unspecified), ("0.1.2.3", .unspecified), ("::", .unspecified),
            ("224.0.0.1", .multicastOrBroadcast), ("255.255.255.255", .multicastOrBroadcast), ("ff02::1", .multicastOrBroadcast),
            ("240.0.0.1", .reserved), ("198.18.0.1", .reserved),
        ]
        for (text, addressClass) in expected {
            XCTAssertEqual(AddressGuard.classify(address(text)), addressClass, text)
        }
    }

    func testIPv6FormsOfAnIPv4AddressAreJudgedAsThatAddress() throws {
        for text in ["::ffff:127.0.0.1", "::127.0.0.1", "64:ff9b::7f00:1", "2002:7f00:1::1"] {
            let embedded = try XCTUnwrap(AddressGuard.embeddedIPv4(in: address(text)), text)
            XCTAssertEqual(embedded.text, "127.0.0.1", text)
            XCTAssertNotNil(AddressGuard(runner: .server).refusal(for: address(text)), "\(text) is loopback in disguise")
        }
        XCTAssertNotNil(AddressGuard(runner: .agent).refusal(for: address("::ffff:169.254.169.254")))
        XCTAssertNil(AddressGuard.embeddedIPv4(in: address("::1")), "::1 is IPv6 loopback, not 0.0.0.1")
        XCTAssertNil(AddressGuard.embeddedIPv4(in: address("2606:2800:220:1::1")))
    }

    func testServerRunChecksReachOnlyPublicAddresses() {
        let guardOfServer = AddressGuard(runner: .server)
        XCTAssertNil(guardOfServer.refusal(for: address("93.184.216.34")))
        for text in ["127.0.0.1", "10.0.0.5", "192.168.1.1", "100.64.0.1", "169.254.169.254", "169.254.1.1", "fe80::1",
                     "fd12::1", "0.0.0.0", "224.0.0.1", "240.0.0.1"] {
            XCTAssertNotNil(guardOfServer.refusal(for: address(text)), text)
        }
        let message = guardOfServer.refusal(for: address("10.0.0.5")) ?? ""
        XCTAssertTrue(message.contains("private") && message.contains("checks the server runs")
                      && message.contains("tenant allow-network TENANT 10.0.0.5/32"), message)
    }

    func testTheServersOwnAddressesAreRefusedForServerRunChecks() {
        let own = address("203.0.113.10")
        XCTAssertNotNil(AddressGuard(runner: .server, ownAddresses: [own]).refusal(for: own))
        XCTAssertNil(AddressGuard(runner: .agent, ownAddresses: [own]).refusal(for: own), "agents are elsewhere")
        XCTAssertNil(AddressGuard(runner: .server).refusal(for: own))
    }

    func testAgentRunChecksReachLoopbackAndPrivateButNotLinkLocalOrMetadata() {
        let guardOfAgent = AddressGuard(runner: .agent)
        for text in ["127.0.0.1", "::1", "10.0.0.5", "192.168.1.1", "100.64.0.1", "fd12::1", "93.184.216.34"] {
            XCTAssertNil(guardOfAgent.refusal(for: address(text)), text)
        }
        for text in ["169.254.169.254", "169.254.1.1", "fe80::1", "fd00:ec2::254", "100.100.100.200", "0.0.0.0", "::",
                     "255.255.255.255"] {
            XCTAssertNotNil(guardOfAgent.refusal(for: address(text)), text)
        }
        let message = guardOfAgent.refusal(for: address("169.254.169.254")) ?? ""
        XCTAssertTrue(message.contains("cloud metadata") && message.contains("checks an agent runs"), message)
    }

    func testAnAllowedNetworkOpensExactlyThatNetwork() throws {
        let allowed = try XCTUnwrap(IPNetwork("10.20.0.0/16"))
        let guardOfServer = AddressGuard(runner: .server, allowedNetworks: [allowed])
        XCTAssertNil(guardOfServer.refusal(for: address("10.20.3.4")))
        XCTAssertNil(guardOfServer.refusal(for: address("::ffff:10.20.3.4")), "the IPv4-mapped form too")
        XCTAssertNotNil(guardOfServer.refusal(for: address("10.21.0.1")), "a neighbouring network stays closed")
        let metadata = AddressGuard(runner: .agent, allowedNetworks: [try XCTUnwrap(IPNetwork("169.254.169.254/32"))])
        XCTAssertNil(metadata.refusal(for: address("169.254.169.254")))
        XCTAssertNotNil(metadata.refusal(for: address("169.254.169.253")))
    }

    func testAddressesFromBytesPrintAsTheyParse() throws {
        XCTAssertEqual(IPAddress(bytes: [10, 0, 0, 1])?.text, "10.0.0.1")
        XCTAssertEqual(IPAddress(bytes: try XCTUnwrap(IPAddress("2001:db8::1")).bytes)?.text, "2001:db8::1")
        XCTAssertNil(IPAddress(bytes: [1, 2, 3]))
    }
}
