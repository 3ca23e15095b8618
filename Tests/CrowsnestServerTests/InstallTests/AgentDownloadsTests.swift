@testable import CrowsnestServer
import Crypto
import Foundation
import XCTest

/// The rendered install script and the pasted line: what they carry, and what they refuse to carry.
final class AgentDownloadsTests: XCTestCase {
    private var directory = ""

    override func setUpWithError() throws {
        directory = NSTemporaryDirectory() + "crowsnest-downloads-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().path
        for file in ["install.sh", "crowsnest-agent.service", "agent.yaml"] {
            try FileManager.default.copyItem(atPath: repository + "/agent/" + file, toPath: directory + "/" + file)
        }
        try Data("not really an agent\n".utf8).write(to: URL(fileURLWithPath: directory + "/crowsnest-agent"))
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: directory)
    }

    private func sha256(_ data: Data) -> String {
        SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
    }

    func testTheShippedTemplateIsRenderedWithEveryValueAndTheSumsOfWhatItDownloads() throws {
        let downloads = try AgentDownloads.load(directory: directory, publicURL: URL(string: "https://monitor.example.com/")!,
                                                agentServers: ["a.example.com:7443", "b.example.com:7443"], caPin: "sha256:abcd")
        let script = downloads.installScript
        XCTAssertTrue(script.contains("SERVER_URL='https://monitor.example.com'\n"), "no trailing slash")
        XCTAssertTrue(script.contains("AGENT_SERVERS='a.example.com:7443,b.example.com:7443'\n"))
        XCTAssertTrue(script.contains("CA_PIN='sha256:abcd'\n"))
        let binary = try Data(contentsOf: URL(fileURLWithPath: directory + "/crowsnest-agent"))
        XCTAssertTrue(script.contains("AGENT_SHA256='\(sha256(binary))'\n"))
        let unit = try Data(contentsOf: URL(fileURLWithPath: directory + "/crowsnest-agent.service"))
        XCTAssertTrue(script.contains("UNIT_SHA256='\(sha256(unit))'\n"))
        XCTAssertFalse(script.contains("'@@"), "a placeholder is left")
        XCTAssertEqual(downloads.installScriptSHA256, sha256(Data(script.utf8)))
    }

    func testAValueThatWouldBreakOutOfItsQuotesOrAnUnfilledPlaceholderIsRefused() {
        XCTAssertThrowsError(try AgentDownloads.render(template: "A='@@A@@'\n", values: ["A": "x'; rm -rf /; '"])) { error in
            XCTAssertTrue("\(error)".contains("would hold a quote"), "\(error)")
        }
        XCTAssertThrowsError(try AgentDownloads.render(template: "A='@@A@@'\n", values: ["A": "line\nbreak"]))
        XCTAssertThrowsError(try AgentDownloads.render(template: "A='@@A@@'\nB='@@B@@'\n", values: ["A": "a"])) { error in
            XCTAssertTrue("\(error)".contains("'@@B@@'"), "\(error)")
        }
        XCTAssertEqual(try AgentDownloads.render(template: "A='@@A@@'\n", values: ["A": "a"]), "A='a'\n")
    }

    func testAMissingFileTurnsTheInstallOffNamingTheFile() throws {
        try FileManager.default.removeItem(atPath: directory + "/crowsnest-agent")
        XCTAssertThrowsError(try AgentDownloads.load(directory: directory, publicURL: URL(string: "https://m.example.com")!,
                                                     agentServers: ["m.example.com:7443"], caPin: "sha256:ab")) { error in
            XCTAssertTrue("\(error)".contains(directory + "/crowsnest-agent is missing"), "\(error)")
        }
    }

    func testTheLineChecksTheScriptBeforeRunningItAndKeepsTheTokenOffTheCommandLine() {
        let line = InstallLine.line(publicURL: "https://m.example.com/", scriptSHA256: "ab12", token: "cne_0123")
        XCTAssertEqual(line, "f=$(mktemp) && { curl -fsSL 'https://m.example.com/install.sh' || wget -qO- 'https://m.example.com/install.sh'; }"
            + " > \"$f\" && echo 'ab12  '\"$f\" | sha256sum -c --quiet - && CROWSNEST_ENROLLMENT_TOKEN='cne_0123' sh \"$f\";"
            + " s=$?; rm -f \"$f\"; [ $s -eq 0 ]")
    }
}
