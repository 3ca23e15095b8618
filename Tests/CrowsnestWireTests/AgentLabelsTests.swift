import CrowsnestWire
import XCTest

final class AgentLabelsTests: XCTestCase {
    func testValidLabels() {
        for label in ["env=prod", "region=eu-west-1", "team/app.kubernetes.io_x=", "k=value with spaces", "a=b=c"] {
            XCTAssertNil(AgentLabels.problem(label), label)
        }
        XCTAssertNil(AgentLabels.problem(String(repeating: "k", count: 100) + "=" + String(repeating: "v", count: 200)))
    }

    func testEachRefusalSaysWhatIsWrong() throws {
        let cases: [(String, String)] = [
            ("prod", "must be key=value"),
            ("=prod", "must be key=value"),
            ("bad key=x", "must have a key of at most 100 letters"),
            ("clé=x", "must have a key of at most 100 letters"),
            (String(repeating: "k", count: 101) + "=v", "must have a key of at most 100 letters"),
            ("k=" + String(repeating: "v", count: 201), "must have a value of at most 200 characters"),
            ("k=a\nb", "without control characters"),
        ]
        for (label, expected) in cases {
            let problem = try XCTUnwrap(AgentLabels.problem(label), label)
            XCTAssertTrue(problem.contains(expected), "\(label): \(problem)")
        }
    }

    func testAHugeLabelIsQuotedShortInTheMessage() throws {
        let problem = try XCTUnwrap(AgentLabels.problem(String(repeating: "x", count: 100_000)))
        XCTAssertLessThan(problem.count, 200)
    }
}
