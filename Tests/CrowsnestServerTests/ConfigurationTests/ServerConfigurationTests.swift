import CrowsnestWire
import XCTest

@testable import CrowsnestServer

/// The coordination settings of `crowsnest-server serve`: defaults, environment, and one clear line for a bad value.
final class ServerConfigurationTests: XCTestCase {
    private func load(_ environment: [String: String]) throws -> ServerConfiguration {
        try ServerConfiguration.load(file: nil, environment: environment, flags: [:])
    }

    func testCheckLeaseAndAgentSilenceHaveDefaultsAndComeFromTheEnvironment() throws {
        let defaults = try load([:])
        XCTAssertEqual(defaults.checkLeaseTTLSeconds, 10)
        XCTAssertEqual(defaults.agentSilenceLimitSeconds, 35)
        let set = try load(["CROWSNEST_CHECK_LEASE_TTL_SECONDS": "4", "CROWSNEST_AGENT_SILENCE_LIMIT_SECONDS": "6"])
        XCTAssertEqual(set.checkLeaseTTLSeconds, 4)
        XCTAssertEqual(set.agentSilenceLimitSeconds, 6)
    }

    func testOutOfRangeValuesAreRefusedWithTheSettingNamed() {
        for (name, value) in [("CROWSNEST_CHECK_LEASE_TTL_SECONDS", "1"), ("CROWSNEST_CHECK_LEASE_TTL_SECONDS", "301"),
                              ("CROWSNEST_AGENT_SILENCE_LIMIT_SECONDS", "soon"), ("CROWSNEST_AGENT_SILENCE_LIMIT_SECONDS", "0")] {
            XCTAssertThrowsError(try load([name: value])) { error in
                let text = "\(error)"
                XCTAssertTrue(text.contains(name), text)
                XCTAssertTrue(text.contains("'\(value)'"), text)
            }
        }
    }
}
