import Foundation
import XCTest

@testable import CrowsnestWire

/// YAML file < CROWSNEST_* environment < flags, with one-line errors naming where a bad value came from.
final class LayeredConfigurationTests: XCTestCase {
    private let known: Set<String> = ["state_dir", "interval", "server", "log_level", "agent_listen"]
    private var directory = ""

    override func setUpWithError() throws {
        directory = NSTemporaryDirectory() + "cn-config-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: directory)
    }

    private func file(_ text: String) throws -> String {
        let path = directory + "/config.yaml"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    private func error(_ body: () throws -> Any) -> String? {
        do {
            _ = try body()
            return nil
        } catch let error as ConfigurationError {
            return error.description
        } catch {
            return "not a ConfigurationError: \(error)"
        }
    }

    func testFlagsBeatEnvironmentWhichBeatsTheFile() throws {
        let path = try file("state_dir: /from/file\ninterval: 10\nlog_level: debug\n")
        let configuration = try LayeredConfiguration(
            file: path, environment: ["CROWSNEST_INTERVAL": "20", "CROWSNEST_STATE_DIR": "/from/env"],
            flags: ["state_dir": "/from/flag", "interval": nil], knownKeys: known)
        XCTAssertEqual(configuration.string("state_dir"), "/from/flag")
        XCTAssertEqual(try configuration.integer("interval", default: 30, range: 1...3600), 20, "an unset flag does not override")
        XCTAssertEqual(configuration.string("log_level"), "debug")
        XCTAssertEqual(configuration.source(of: "state_dir"), "--state-dir")
        XCTAssertEqual(configuration.source(of: "interval"), "environment variable CROWSNEST_INTERVAL")
        XCTAssertEqual(configuration.source(of: "log_level"), "\(path): log_level")
    }

    func testDefaultsApplyWhenNothingIsSet() throws {
        let configuration = try LayeredConfiguration(file: nil, environment: ["UNRELATED": "x"], flags: [:], knownKeys: known)
        XCTAssertEqual(configuration.string("state_dir", default: "/var/lib/x"), "/var/lib/x")
        XCTAssertEqual(try configuration.integer("interval", default: 30, range: 1...3600), 30)
        XCTAssertNil(configuration.list("server"))
        XCTAssertEqual(configuration.source(of: "interval"), "default")
    }

    func testEnvironmentVariablesForUnknownKeysAreIgnored() throws {
        let configuration = try LayeredConfiguration(
            file: nil, environment: ["CROWSNEST_NOT_A_SETTING": "1"], flags: [:], knownKeys: known)
        XCTAssertTrue(configuration.values.isEmpty)
    }

    func testAnUnknownKeyInTheFileIsAOneLineErrorNamingFileAndKey() throws {
        let path = try file("state_dir: /x\nintervall: 10\n")
        let message = try XCTUnwrap(error { try LayeredConfiguration(file: path, environment: [:], flags: [:], knownKeys: self.known) })
        XCTAssertTrue(message.contains(path), message)
        XCTAssertTrue(message.contains("'intervall'"), message)
        XCTAssertFalse(message.contains("\n"), message)
    }

    func testInvalidYAMLIsAOneLineError() throws {
        let path = try file("state_dir: [unclosed\ninterval: 10\n  - : :\n")
        let message = try XCTUnwrap(error { try LayeredConfiguration(file: path, environment: [:], flags: [:], knownKeys: self.known) })
        XCTAssertTrue(message.contains(path), message)
        XCTAssertTrue(message.contains(", line 1: setting 'state_dir': the list opened with '[' is not closed on the same line"), message)
        XCTAssertFalse(message.contains("\n"), message)
    }

    func testAFileThatIsNotAMappingIsAnError() throws {
        let path = try file("- state_dir\n- interval\n")
        let message = try XCTUnwrap(error { try LayeredConfiguration(file: path, environment: [:], flags: [:], knownKeys: self.known) })
        XCTAssertTrue(message.contains("must be a mapping"), message)
    }

    func testAMissingFileIsAnErrorNamingIt() throws {
        let path = directory + "/missing.yaml"
        let message = try XCTUnwrap(error { try LayeredConfiguration(file: path, environment: [:], flags: [:], knownKeys: self.known) })
        XCTAssertTrue(message.contains("cannot read configuration file \(path)"), message)
        XCTAssertFalse(message.contains("\n"), message)
    }

    func testAnEmptyFileSetsNothing() throws {
        let path = try file("# only a comment\n")
        let configuration = try LayeredConfiguration(file: path, environment: [:], flags: [:], knownKeys: known)
        XCTAssertTrue(configuration.values.isEmpty)
    }

    func testAnEmptyValueInTheFileCountsAsUnset() throws {
        // `state_dir:` with nothing after it is YAML null: the setting is left at its default.
        let path = try file("state_dir:\ninterval: 5\n")
        let configuration = try LayeredConfiguration(file: path, environment: [:], flags: [:], knownKeys: known)
        XCTAssertNil(configuration.string("state_dir"))
        XCTAssertEqual(try configuration.integer("interval", default: 30, range: 1...3600), 5)
    }

    func testYAMLScalarsAndListsBecomeStrings() throws {
        let path = try file("interval: 15\nlog_level: true\nserver:\n  - a.example:7443\n  - b.example:7443\n")
        let configuration = try LayeredConfiguration(file: path, environment: [:], flags: [:], knownKeys: known)
        XCTAssertEqual(configuration.string("interval"), "15")
        XCTAssertEqual(configuration.string("log_level"), "true")
        XCTAssertEqual(configuration.list("server"), ["a.example:7443", "b.example:7443"])
    }

    func testADateLikeValueStaysTheTextTheOperatorWrote() throws {
        let path = try file("state_dir: 2024-01-01\n")
        let configuration = try LayeredConfiguration(file: path, environment: [:], flags: [:], knownKeys: known)
        XCTAssertEqual(configuration.string("state_dir"), "2024-01-01")
    }

    func testANestedMappingIsAnError() throws {
        let path = try file("server:\n  host: a\n")
        let message = try XCTUnwrap(error { try LayeredConfiguration(file: path, environment: [:], flags: [:], knownKeys: self.known) })
        XCTAssertTrue(message.contains("'server'"), message)
    }

    func testAnIntegerOutOfRangeNamesTheFlag() throws {
        let configuration = try LayeredConfiguration(file: nil, environment: [:], flags: ["interval": "0"], knownKeys: known)
        let message = try XCTUnwrap(error { try configuration.integer("interval", default: 30, range: 1...3600) })
        XCTAssertTrue(message.hasPrefix("--interval:"), message)
        XCTAssertTrue(message.contains("1 to 3600"), message)
        XCTAssertTrue(message.contains("'0'"), message)
    }

    func testANonNumericIntegerNamesTheEnvironmentVariable() throws {
        let configuration = try LayeredConfiguration(
            file: nil, environment: ["CROWSNEST_INTERVAL": "30s"], flags: [:], knownKeys: known)
        let message = try XCTUnwrap(error { try configuration.integer("interval", default: 30, range: 1...3600) })
        XCTAssertTrue(message.hasPrefix("environment variable CROWSNEST_INTERVAL:"), message)
    }

    func testAnIntegerOutOfRangeInTheFileNamesFileAndKey() throws {
        let path = try file("interval: 99999\n")
        let configuration = try LayeredConfiguration(file: path, environment: [:], flags: [:], knownKeys: known)
        let message = try XCTUnwrap(error { try configuration.integer("interval", default: 30, range: 1...3600) })
        XCTAssertTrue(message.hasPrefix("\(path): interval:"), message)
    }

    func testHostPortParsesNamesIPv4AndBracketedIPv6() throws {
        XCTAssertEqual(HostPort.parse("example.com:7443").map { "\($0.host) \($0.port)" }, "example.com 7443")
        XCTAssertEqual(HostPort.parse("10.0.0.1:80").map { "\($0.host) \($0.port)" }, "10.0.0.1 80")
        XCTAssertEqual(HostPort.parse("[::1]:7443").map { "\($0.host) \($0.port)" }, "::1 7443")
        XCTAssertEqual(HostPort.parse("[fe80::1%eth0]:9").map { "\($0.host) \($0.port)" }, "fe80::1%eth0 9")
        XCTAssertEqual(HostPort.parse(" :8080 ").map { "\($0.host) \($0.port)" }, "0.0.0.0 8080")
        XCTAssertEqual(HostPort.parse(":8080", defaultHost: "").map { "\($0.host) \($0.port)" }, " 8080")
        XCTAssertEqual(HostPort.parse("127.0.0.1:0")?.port, 0)
    }

    func testHostPortRejectsBadPortsAndShapes() {
        for text in ["example.com", "example.com:", "example.com:65536", "example.com:-1", "example.com:http",
                     "example.com:+80", "[::1]", "[::1]7443", "[::1:7443", "::1]:7443x", "", "::1:7443", "2001:db8::1:80"] {
            XCTAssertNil(HostPort.parse(text), "'\(text)' should not parse")
        }
    }

    func testABadHostPortNamesWhereItCameFrom() throws {
        let configuration = try LayeredConfiguration(
            file: nil, environment: ["CROWSNEST_AGENT_LISTEN": "0.0.0.0:99999"], flags: [:], knownKeys: known)
        let message = try XCTUnwrap(error { try configuration.hostPort("agent_listen", default: "0.0.0.0:7443") })
        XCTAssertTrue(message.hasPrefix("environment variable CROWSNEST_AGENT_LISTEN:"), message)
        XCTAssertTrue(message.contains("0.0.0.0:99999"), message)
        let fallback = try configuration.hostPort("server", default: "[::1]:7443")
        XCTAssertEqual(fallback.host, "::1")
        XCTAssertEqual(fallback.port, 7443)
    }
}
