import CrowsnestWire
import Foundation
import Logging
import PostgresNIO
import XCTest

@testable import CrowsnestServer

/// The labels an agent sends in `Hello` are what the server keeps for it (checks are placed by them), after the
/// wire's cleaning dropped the malformed ones.
final class AgentLabelsStoreTests: XCTestCase {
    private let logger = Logger(label: "crowsnest.tests.agent-labels")

    private func storedLabels(_ client: PostgresClient, agentID: UUID) async throws -> [String] {
        var labels: [String] = []
        for try await value in try await client.query("SELECT labels FROM agents WHERE id = \(agentID)", logger: logger)
            .decode([String].self) {
            labels = value
        }
        return labels
    }

    /// A tenant and one agent of it, as enrollment leaves them.
    private func makeAgent(_ client: PostgresClient) async throws -> (tenantID: UUID, agentID: UUID) {
        let tenantID = try await TenantStore(client: client, logger: logger).create(name: "acme")
        let agentID = UUID()
        try await client.query(
            "INSERT INTO agents (tenant_id, id, hostname) VALUES (\(tenantID), \(agentID), 'host-1')", logger: logger)
        return (tenantID, agentID)
    }

    func testHelloLabelsAreStoredAndReplacedByTheNextSessionsLabels() async throws {
        try await TestPostgres.withTestDatabase { client in
            let (tenantID, agentID) = try await makeAgent(client)
            let agents = AgentStore(client: client, logger: logger)
            var hello = Crowsnest_V1_Hello()
            hello.labels = ["region=eu-west", "env=prod", "env=prod"]
            hello.sanitize()
            _ = try await agents.recordHello(tenantID: tenantID, agentID: agentID, hello: hello)
            let first = try await storedLabels(client, agentID: agentID)
            XCTAssertEqual(first, ["env=prod", "region=eu-west"], "stored once each, in a stable order")

            hello.labels = ["env=staging"]
            hello.sanitize()
            _ = try await agents.recordHello(tenantID: tenantID, agentID: agentID, hello: hello)
            let second = try await storedLabels(client, agentID: agentID)
            XCTAssertEqual(second, ["env=staging"], "a session's labels replace the previous session's")
        }
    }

    func testMalformedLabelsFromAnAgentAreDroppedWholeAndCounted() async throws {
        try await TestPostgres.withTestDatabase { client in
            let (tenantID, agentID) = try await makeAgent(client)
            var hello = Crowsnest_V1_Hello()
            hello.labels = ["env=prod", "no-equals-sign", "bad key=x", "tab=a\tb", String(repeating: "k", count: 101) + "=v"]
                + (0..<30).map { "n\($0)=v" }
            let dropped = hello.sanitize()
            XCTAssertEqual(hello.labels.count, AgentLabels.maximumCount, "at most 20 labels are kept")
            XCTAssertTrue(hello.labels.contains("env=prod"))
            XCTAssertFalse(hello.labels.contains { AgentLabels.problem($0) != nil }, "no malformed label survives")
            XCTAssertEqual(dropped, 35 - 20, "every label dropped is counted")
            _ = try await AgentStore(client: client, logger: logger).recordHello(tenantID: tenantID, agentID: agentID, hello: hello)
            let stored = try await storedLabels(client, agentID: agentID)
            XCTAssertEqual(stored, hello.labels)
        }
    }
}
