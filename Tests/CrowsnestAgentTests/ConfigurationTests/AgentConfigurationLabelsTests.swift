import CrowsnestWire
import XCTest

@testable import CrowsnestAgent

/// `labels` in the agent's configuration: parsed from the file, the environment or a flag, checked with the
/// shared rule, refused with one line naming the label and where it came from.
final class AgentConfigurationLabelsTests: XCTestCase {
    func testLabelsFromTheEnvironmentAreSortedAndUnique() throws {
        let configuration = try AgentConfiguration.load(
            file: nil, environment: ["CROWSNEST_LABELS": "region=eu-west, env=prod,env=prod"], flags: [:])
        XCTAssertEqual(configuration.labels, ["env=prod", "region=eu-west"])
    }

    func testNoLabelsByDefault() throws {
        XCTAssertEqual(try AgentConfiguration.load(file: nil, environment: [:], flags: [:]).labels, [])
    }

    func testAMalformedLabelIsRefusedNamingItAndItsSource() {
        XCTAssertThrowsError(try AgentConfiguration.load(
            file: nil, environment: ["CROWSNEST_LABELS": "env=prod,production"], flags: [:])) { error in
            let message = String(describing: error)
            XCTAssertTrue(message.contains("label 2"), message)
            XCTAssertTrue(message.contains("must be key=value"), message)
            XCTAssertTrue(message.contains("CROWSNEST_LABELS"), message)
        }
    }

    func testMoreThanTwentyLabelsAreRefused() {
        let labels = (0..<21).map { "k\($0)=v" }.joined(separator: ",")
        XCTAssertThrowsError(try AgentConfiguration.load(file: nil, environment: ["CROWSNEST_LABELS": labels], flags: [:])) {
            XCTAssertTrue(String(describing: $0).contains("at most 20 labels"), String(describing: $0))
        }
    }
}
