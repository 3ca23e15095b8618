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

    func testAgentAddressesAreDialableHostPortsAndAtMostSixteen() throws {
        XCTAssertEqual(try load([:]).agentAddresses, [])
        let set = try load(["CROWSNEST_AGENT_ADDRESSES": "a.example.com:7443,[2001:db8::1]:7443"])
        XCTAssertEqual(set.agentAddresses, ["a.example.com:7443", "[2001:db8::1]:7443"])
        for bad in ["a.example.com", "0.0.0.0:7443", "a.example.com:0", ":7443"] {
            XCTAssertThrowsError(try load(["CROWSNEST_AGENT_ADDRESSES": bad])) { error in
                XCTAssertTrue("\(error)".contains("'\(bad)' is not an address agents can dial"), "\(error)")
            }
        }
        let many = (1...17).map { "r\($0).example.com:7443" }.joined(separator: ",")
        XCTAssertThrowsError(try load(["CROWSNEST_AGENT_ADDRESSES": many])) { error in
            XCTAssertTrue("\(error)".contains("at most 16 agent addresses; got 17"), "\(error)")
        }
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

    func testTheLogFormatIsTextUnlessJSONIsAskedForByFlagOrEnvironment() throws {
        XCTAssertEqual(try load([:]).logFormat, .text)
        XCTAssertEqual(try load(["CROWSNEST_LOG_FORMAT": "json"]).logFormat, .json)
        let flagged = try ServerConfiguration.load(file: nil, environment: ["CROWSNEST_LOG_FORMAT": "text"], flags: ["log_format": "json"])
        XCTAssertEqual(flagged.logFormat, .json, "the flag wins")
        XCTAssertThrowsError(try load(["CROWSNEST_LOG_FORMAT": "xml"])) { error in
            XCTAssertTrue("\(error)".contains("log format must be text or json; got 'xml'"), "\(error)")
        }
    }
}
