import CrowsnestWire
import Foundation
import NIOSSL
import PostgresNIO
import X509
import XCTest

@testable import CrowsnestServer

/// The agent gateway end to end: real TLS on loopback, real PostgreSQL, the server in-process.
final class GatewayTests: XCTestCase {
    private func withGateway(storageTimeout: Duration = .seconds(20),
                             _ body: (GatewayHarness) async throws -> Void) async throws {
        try await TestPostgres.withTestDatabase { client in
            try await GatewayHarness.run(client: client, storageTimeout: storageTimeout, body)
        }
    }

    private func count(_ client: PostgresClient, _ query: PostgresQuery) async throws -> Int64 {
        try await IngestFixtures.integer(client, query)
    }

    /// Sends Hello and returns the Welcome (failing the test on anything else).
    private func establish(_ wire: inout AgentWire, file: StaticString = #filePath, line: UInt = #line) async throws -> Crowsnest_V1_Welcome? {
        try await wire.send(GatewayHarness.hello())
        let answer = await wire.nextOrEnd()
        guard case .success(let frame) = answer, case .welcome(let welcome) = frame.message else {
            XCTFail("expected welcome, got \(answer)", file: file, line: line)
            return nil
        }
        return welcome
    }

    /// Every frame until the server closes, as "ack N" and "goodbye CODE: REASON".
    private func framesUntilTheEnd(_ wire: inout AgentWire) async -> [String] {
        var frames: [String] = []
        while case .success(let frame) = await wire.nextOrEnd() {
            switch frame.message {
            case .ack(let ack): frames.append("ack \(ack.seq)")
            case .goodbye(let goodbye): frames.append("goodbye \(goodbye.code): \(goodbye.reason)")
            default: frames.append(frame.messageName)
            }
        }
        return frames
    }

    private func batch(seq: UInt64, tsMillis: Int64 = 1_710_072_000_000) -> Crowsnest_V1_Frame {
        .with(.batch(IngestFixtures.batch(
            seq: seq, tsMillis: tsMillis,
            containers: [IngestFixtures.container("web", cpuNanos: 1_000), IngestFixtures.container("db", cpuNanos: 2_000)],
            events: [IngestFixtures.event("web", "start", atMicros: (tsMillis - 1_000) * 1000)],
            host: IngestFixtures.host())))
    }

    // MARK: Enrollment

    func testEnrollmentWithAValidTokenReturnsACertificateAndCreatesTheAgent() async throws {
        try await withGateway { gateway in
            let tenantID = try await gateway.createTenant()
            let token = try await gateway.createToken(tenantID: tenantID)
            let answer = try await gateway.connect(tls: try gateway.enrollmentTLS) { wire in
                try await wire.send(try GatewayHarness.enrollRequest(token: token))
                return await wire.nextOrEnd()
            }
            guard case .success(let frame) = answer, case .enrollResponse(let response) = frame.message else {
                return XCTFail("expected an enroll response, got \(answer)")
            }
            XCTAssertEqual(response.tenantID, tenantID.uuidString.lowercased())
            XCTAssertEqual(response.caCertificatePem, gateway.ca.caCertificatePEM)
            let identity = try AgentCertificateIdentity.parse(certificate: try Certificate(pemEncoded: response.certificatePem))
            XCTAssertEqual(identity.agentID.uuidString.lowercased(), response.agentID)
            XCTAssertEqual(identity.tenantID, tenantID)
            let agentID = try XCTUnwrap(UUID(uuidString: response.agentID))
            let rows = try await count(gateway.client,
                                       "SELECT count(*) FROM agents WHERE id = \(agentID) AND tenant_id = \(tenantID) AND hostname = 'new-host'")
            XCTAssertEqual(rows, 1)
        }
    }

    func testAReusedTokenIsRejectedPermanentlyAndCreatesNoSecondAgent() async throws {
        try await withGateway { gateway in
            let tenantID = try await gateway.createTenant()
            let token = try await gateway.createToken(tenantID: tenantID)
            let first = try await gateway.connect(tls: try gateway.enrollmentTLS) { wire in
                try await wire.send(try GatewayHarness.enrollRequest(token: token))
                return await wire.nextOrEnd()
            }
            guard case .success(let frame) = first, case .enrollResponse = frame.message else {
                return XCTFail("the first enrollment failed: \(first)")
            }
            let second = try await gateway.connect(tls: try gateway.enrollmentTLS) { wire in
                try await wire.send(try GatewayHarness.enrollRequest(token: token))
                return await wire.nextOrEnd()
            }
            guard case .success(let again) = second, case .reject(let reject) = again.message else {
                return XCTFail("expected reject, got \(second)")
            }
            XCTAssertTrue(reject.permanent)
            XCTAssertTrue(reject.reason.contains("already used"), reject.reason)
            let agents = try await count(gateway.client, "SELECT count(*) FROM agents")
            XCTAssertEqual(agents, 1)
        }
    }

    func testAFleetTokenEnrollsAsManyAgentsAsItAllowsAndThenNoMore() async throws {
        try await withGateway { gateway in
            let tenantID = try await gateway.createTenant()
            let token = try await EnrollmentTokenStore(client: gateway.client, logger: gateway.logger).create(tenantID: tenantID, uses: 3)
            var outcomes: [String] = []
            for _ in 0..<4 {
                let answer = try await gateway.connect(tls: try gateway.enrollmentTLS) { wire in
                    try await wire.send(try GatewayHarness.enrollRequest(token: token))
                    return await wire.nextOrEnd()
                }
                switch answer {
                case .success(let frame):
                    if case .enrollResponse = frame.message { outcomes.append("enrolled") }
                    if case .reject(let reject) = frame.message { outcomes.append("rejected: \(reject.reason)") }
                default: outcomes.append("\(answer)")
                }
            }
            XCTAssertEqual(outcomes.prefix(3), ["enrolled", "enrolled", "enrolled"])
            XCTAssertTrue(outcomes.last?.contains("already used (as many times as it allows)") == true, "\(outcomes)")
            let agents = try await count(gateway.client, "SELECT count(*) FROM agents WHERE tenant_id = \(tenantID)")
            XCTAssertEqual(agents, 3, "three distinct agents")
            do {
                _ = try await EnrollmentTokenStore(client: gateway.client, logger: gateway.logger).create(tenantID: tenantID, uses: 0)
                XCTFail("a token for no agent")
            } catch let error as StoreError {
                XCTAssertTrue(error.message.contains("1 to 100000"), error.message)
            }
        }
    }

    func testTokenLifetimesAreReadAsOperatorsWriteThem() {
        XCTAssertEqual(TokenLifetime.parse("30m"), .seconds(1800))
        XCTAssertEqual(TokenLifetime.parse("12h"), .seconds(43_200))
        XCTAssertEqual(TokenLifetime.parse("7d"), .seconds(604_800))
        XCTAssertEqual(TokenLifetime.parse("365d"), .seconds(31_536_000))
        for bad in ["366d", "0h", "-1d", "7", "7w", "d", "", "99999999999d", "1.5h"] {
            XCTAssertNil(TokenLifetime.parse(bad), bad)
        }
    }

    func testAnUnknownTokenIsRejectedAndLeavesNothingBehind() async throws {
        try await withGateway { gateway in
            _ = try await gateway.createTenant()
            let answer = try await gateway.connect(tls: try gateway.enrollmentTLS) { wire in
                try await wire.send(try GatewayHarness.enrollRequest(token: "cne_not-a-real-token"))
                return await wire.nextOrEnd()
            }
            guard case .success(let frame) = answer, case .reject(let reject) = frame.message else {
                return XCTFail("expected reject, got \(answer)")
            }
            XCTAssertTrue(reject.permanent)
            let agents = try await count(gateway.client, "SELECT count(*) FROM agents")
            XCTAssertEqual(agents, 0)
        }
    }

    func testADatabaseFailureDuringEnrollmentIsARetryableRejectAndKeepsTheToken() async throws {
        try await withGateway { gateway in
            let tenantID = try await gateway.createTenant()
            let token = try await gateway.createToken(tenantID: tenantID)
            // A real failure inside the enrollment transaction: PostgreSQL refuses the new agent row.
            try await gateway.client.query("""
                CREATE FUNCTION refuse_agents() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN RAISE EXCEPTION 'refused by test trigger'; END $$
                """, logger: IngestFixtures.logger)
            try await gateway.client.query(
                "CREATE TRIGGER refuse_agents BEFORE INSERT ON agents FOR EACH ROW EXECUTE FUNCTION refuse_agents()",
                logger: IngestFixtures.logger)
            let answer = try await gateway.connect(tls: try gateway.enrollmentTLS) { wire in
                try await wire.send(try GatewayHarness.enrollRequest(token: token))
                return await wire.nextOrEnd()
            }
            guard case .success(let frame) = answer, case .reject(let reject) = frame.message else {
                return XCTFail("expected reject, got \(answer)")
            }
            XCTAssertFalse(reject.permanent, "the agent should retry: the token is still good")
            XCTAssertTrue(reject.reason.contains("retry enrollment later"), reject.reason)
            let unused = try await count(gateway.client, "SELECT count(*) FROM enrollment_tokens WHERE used_at IS NULL")
            XCTAssertEqual(unused, 1, "the failed enrollment must not use up the token")
        }
    }

    func testAHelloWithoutAClientCertificateIsRejected() async throws {
        try await withGateway { gateway in
            let answer = try await gateway.connect(tls: try gateway.enrollmentTLS) { wire in
                try await wire.send(GatewayHarness.hello())
                return await wire.nextOrEnd()
            }
            guard case .success(let frame) = answer, case .reject(let reject) = frame.message else {
                return XCTFail("expected reject, got \(answer)")
            }
            XCTAssertTrue(reject.reason.contains("no client certificate"), reject.reason)
        }
    }

    // MARK: Sessions

    func testAnEnrolledAgentsHelloIsWelcomedWithTheCommittedSequence() async throws {
        try await withGateway { gateway in
            let tenantID = try await gateway.createTenant()
            let agent = try await gateway.enrolledAgent(tenantID: tenantID, committedSeq: 41)
            let welcome = try await gateway.connect(tls: agent.tls) { wire in try await establish(&wire) }
            XCTAssertEqual(welcome?.committedSeq, 41)
            XCTAssertEqual(welcome?.agentID, agent.agentID.uuidString.lowercased())
            XCTAssertEqual(welcome?.tenantID, tenantID.uuidString.lowercased())
            XCTAssertEqual(welcome?.settings.maxFrameBytes, UInt32(FrameLimits.established))
            let seen = try await count(gateway.client,
                                       "SELECT count(*) FROM agents WHERE id = \(agent.agentID) AND last_seen IS NOT NULL AND boot_id = 'boot-1'")
            XCTAssertEqual(seen, 1)
        }
    }

    func testABatchIsAcknowledgedOnlyAfterItsRowsAreCommitted() async throws {
        try await withGateway { gateway in
            let tenantID = try await gateway.createTenant()
            let agent = try await gateway.enrolledAgent(tenantID: tenantID)
            try await gateway.connect(tls: agent.tls) { wire in
                guard try await establish(&wire) != nil else { return }
                try await wire.send(batch(seq: 1))
                let answer = await wire.nextOrEnd()
                guard case .success(let frame) = answer, case .ack(let ack) = frame.message else {
                    return XCTFail("expected ack, got \(answer)")
                }
                XCTAssertEqual(ack.seq, 1)
                // Right after the ack, on another connection: everything is there.
                let counts = try await IngestFixtures.counts(gateway.client)
                XCTAssertEqual(counts["container_samples"], 2)
                XCTAssertEqual(counts["host_samples"], 1)
                XCTAssertEqual(counts["container_events"], 1)
                let committed = try await count(gateway.client, "SELECT committed_seq FROM agents WHERE id = \(agent.agentID)")
                XCTAssertEqual(committed, 1)

                // The same batch again (a lost ack): acknowledged, nothing written twice.
                try await wire.send(batch(seq: 1))
                guard case .success(let replay) = await wire.nextOrEnd(), case .ack(let replayAck) = replay.message else {
                    return XCTFail("expected an ack for the replay")
                }
                XCTAssertEqual(replayAck.seq, 1)
                let after = try await IngestFixtures.counts(gateway.client)
                XCTAssertEqual(after, counts)

                // Heartbeats are answered.
                try await wire.send(.with(.heartbeat(Crowsnest_V1_Heartbeat())))
                guard case .success(let beat) = await wire.nextOrEnd(), case .heartbeat = beat.message else {
                    return XCTFail("expected a heartbeat back")
                }
            }
        }
    }

    func testBatchesSentWithoutWaitingAreAllAcknowledgedInOrderAndStoredOnce() async throws {
        try await withGateway { gateway in
            let tenantID = try await gateway.createTenant()
            let agent = try await gateway.enrolledAgent(tenantID: tenantID)
            try await gateway.connect(tls: agent.tls) { wire in
                guard let welcome = try await establish(&wire) else { return }
                // A whole ack window at once, as an agent replaying its spool does: the server may store them in
                // groups, but every batch gets its own ack, in order, after its rows are committed.
                let sent = UInt64(welcome.settings.ackWindow)
                XCTAssertEqual(sent, 24, "one and a half groups of 16: at least two transactions")
                for seq in 1...sent {
                    try await wire.send(batch(seq: seq, tsMillis: 1_710_072_000_000 + Int64(seq) * 1_000))
                }
                var acked: [UInt64] = []
                while acked.count < Int(sent) {
                    guard case .success(let frame) = await wire.nextOrEnd(), case .ack(let ack) = frame.message else {
                        return XCTFail("expected \(sent) acks, got \(acked.count)")
                    }
                    acked.append(ack.seq)
                }
                XCTAssertEqual(acked, Array(1...sent))
                let counts = try await IngestFixtures.counts(gateway.client)
                XCTAssertEqual(counts["container_samples"], Int64(sent) * 2)
                XCTAssertEqual(counts["host_samples"], Int64(sent))
                let committed = try await count(gateway.client, "SELECT committed_seq FROM agents WHERE id = \(agent.agentID)")
                XCTAssertEqual(committed, Int64(sent))
                // The rates of each batch come from the batch before it, also inside one group.
                let rated = try await count(gateway.client, "SELECT count(cpu_percent) FROM container_samples WHERE name = 'web'")
                XCTAssertEqual(rated, Int64(sent) - 1)
            }
        }
    }

    func testBatchesQueuedBeforeABadFrameAreStoredAndAcknowledgedBeforeTheGoodbye() async throws {
        try await withGateway { gateway in
            let tenantID = try await gateway.createTenant()
            let agent = try await gateway.enrolledAgent(tenantID: tenantID)
            try await gateway.connect(tls: agent.tls) { wire in
                guard try await establish(&wire) != nil else { return }
                try await wire.send(batch(seq: 1))
                try await wire.send(batch(seq: 2, tsMillis: 1_710_072_001_000))
                try await wire.send(.with(.welcome(Crowsnest_V1_Welcome())))
                let frames = await framesUntilTheEnd(&wire)
                XCTAssertEqual(frames, ["ack 1", "ack 2", "goodbye protocolError: unexpected welcome frame in an established session"])
                let committed = try await count(gateway.client, "SELECT committed_seq FROM agents WHERE id = \(agent.agentID)")
                XCTAssertEqual(committed, 2)
            }
        }
    }

    func testAtGracefulShutdownWhatArrivedIsStoredAndAcknowledgedThenTheAgentIsToldToMoveOn() async throws {
        try await withGateway { gateway in
            let tenantID = try await gateway.createTenant()
            let agent = try await gateway.enrolledAgent(tenantID: tenantID)
            try await gateway.connect(tls: agent.tls) { wire in
                guard try await establish(&wire) != nil else { return }
                try await wire.send(batch(seq: 1))
                try await wire.send(batch(seq: 2, tsMillis: 1_710_072_001_000))
                // Both batches are on the server's side of the connection when the shutdown begins.
                try await Task.sleep(for: .milliseconds(300))
                gateway.shutdown.triggerGracefulShutdown()
                let frames = await framesUntilTheEnd(&wire)
                XCTAssertEqual(frames, ["ack 1", "ack 2", "goodbye shuttingDown: this server is shutting down; connect to another one"])
                let committed = try await count(gateway.client, "SELECT committed_seq FROM agents WHERE id = \(agent.agentID)")
                XCTAssertEqual(committed, 2, "every acknowledged batch is stored")
            }
        }
    }

    func testARevokedAgentIsRejectedPermanently() async throws {
        try await withGateway { gateway in
            let tenantID = try await gateway.createTenant()
            let agent = try await gateway.enrolledAgent(tenantID: tenantID)
            try await gateway.client.query("UPDATE agents SET revoked_at = now() WHERE id = \(agent.agentID)", logger: gateway.logger)
            let answer = try await gateway.connect(tls: agent.tls) { wire in
                try await wire.send(GatewayHarness.hello())
                let first = await wire.nextOrEnd()
                // The gateway closes after rejecting; a batch sent anyway is never stored.
                try? await wire.send(batch(seq: 1))
                _ = await wire.nextOrEnd()
                return first
            }
            guard case .success(let frame) = answer, case .reject(let reject) = frame.message else {
                return XCTFail("expected reject, got \(answer)")
            }
            XCTAssertTrue(reject.permanent)
            XCTAssertTrue(reject.reason.contains("revoked"), reject.reason)
            let samples = try await count(gateway.client, "SELECT count(*) FROM container_samples")
            XCTAssertEqual(samples, 0)
        }
    }

    func testACertificateForAnAgentTheServerDoesNotKnowIsRejected() async throws {
        try await withGateway { gateway in
            let tenantID = try await gateway.createTenant()
            let agent = try await gateway.enrolledAgent(tenantID: tenantID)
            try await gateway.client.query("DELETE FROM agents WHERE id = \(agent.agentID)", logger: gateway.logger)
            let answer = try await gateway.connect(tls: agent.tls) { wire in
                try await wire.send(GatewayHarness.hello())
                return await wire.nextOrEnd()
            }
            guard case .success(let frame) = answer, case .reject(let reject) = frame.message else {
                return XCTFail("expected reject, got \(answer)")
            }
            XCTAssertTrue(reject.permanent)
            XCTAssertTrue(reject.reason.contains("not registered"), reject.reason)
        }
    }

    // MARK: Misbehaving peers

    func testGarbageAfterTLSGetsAGoodbyeAndStoresNothing() async throws {
        try await withGateway { gateway in
            let tenantID = try await gateway.createTenant()
            let agent = try await gateway.enrolledAgent(tenantID: tenantID)
            let (first, end) = try await gateway.connect(tls: agent.tls) { wire in
                // A plausible length, then bytes that are not a protobuf Frame.
                try await wire.send(raw: [0, 0, 0, 8, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF])
                let first = await wire.nextOrEnd()
                let end = await wire.nextOrEnd()
                return (first, end)
            }
            guard case .success(let frame) = first, case .goodbye(let goodbye) = frame.message else {
                return XCTFail("expected goodbye, got \(first)")
            }
            XCTAssertTrue(goodbye.reason.hasPrefix("protocol error"), goodbye.reason)
            XCTAssertEqual(end, .failure(EndOfConnection(reason: "closed")), "the gateway closes after its goodbye")
            let seen = try await count(gateway.client, "SELECT count(*) FROM agents WHERE last_seen IS NOT NULL")
            XCTAssertEqual(seen, 0)
            let counts = try await IngestFixtures.counts(gateway.client)
            XCTAssertEqual(counts.values.reduce(0, +), 0)
        }
    }

    func testAHugeLengthPrefixIsRefusedAtOnceWithoutWaitingForThePayload() async throws {
        try await withGateway { gateway in
            let tenantID = try await gateway.createTenant()
            let agent = try await gateway.enrolledAgent(tenantID: tenantID)
            let started = ContinuousClock.now
            let (first, end) = try await gateway.connect(tls: agent.tls, deadline: .seconds(10)) { wire in
                // Announce 4 GiB and send nothing more: the answer must come without any payload arriving.
                try await wire.send(raw: [0xFF, 0xFF, 0xFF, 0xFF])
                let first = await wire.nextOrEnd()
                let end = await wire.nextOrEnd()
                return (first, end)
            }
            guard case .success(let frame) = first, case .goodbye(let goodbye) = frame.message else {
                return XCTFail("expected goodbye, got \(first)")
            }
            XCTAssertTrue(goodbye.reason.contains("exceeds the limit"), goodbye.reason)
            XCTAssertTrue(goodbye.reason.contains("4294967295"), goodbye.reason)
            XCTAssertEqual(end, .failure(EndOfConnection(reason: "closed")))
            XCTAssertLessThan(ContinuousClock.now - started, .seconds(5), "refused before the client's deadline closed it")
        }
    }

    func testAnEstablishedSessionStillRefusesFramesAboveFourMebibytes() async throws {
        try await withGateway { gateway in
            let tenantID = try await gateway.createTenant()
            let agent = try await gateway.enrolledAgent(tenantID: tenantID)
            let first = try await gateway.connect(tls: agent.tls, deadline: .seconds(10)) { wire in
                guard try await establish(&wire) != nil else { return Result<Crowsnest_V1_Frame, EndOfConnection>.failure(.init(reason: "no welcome")) }
                let length = UInt32(FrameLimits.established + 1)
                try await wire.send(raw: withUnsafeBytes(of: length.bigEndian) { Array($0) })
                return await wire.nextOrEnd()
            }
            guard case .success(let frame) = first, case .goodbye(let goodbye) = frame.message else {
                return XCTFail("expected goodbye, got \(first)")
            }
            XCTAssertTrue(goodbye.reason.contains("exceeds the limit of \(FrameLimits.established) bytes"), goodbye.reason)
            XCTAssertEqual(goodbye.code, .malformedBatch, "the agent counts it against its oldest unacknowledged batch")
        }
    }

    // MARK: Certificate renewal

    func testAnEstablishedAgentRenewsItsCertificateAndKeepsItsIdentity() async throws {
        try await withGateway { gateway in
            let tenantID = try await gateway.createTenant()
            let agent = try await gateway.enrolledAgent(tenantID: tenantID)
            let (newKey, csr) = try GatewayHarness.makeCSR()
            let response = try await gateway.connect(tls: agent.tls) { wire -> Crowsnest_V1_RenewResponse? in
                guard try await establish(&wire) != nil else { return nil }
                var request = Crowsnest_V1_RenewRequest()
                request.csrPem = csr
                try await wire.send(.with(.renewRequest(request)))
                guard case .success(let frame) = await wire.nextOrEnd(), case .renewResponse(let response) = frame.message else {
                    return nil
                }
                return response
            }
            let renewed = try XCTUnwrap(response, "expected a renewal response")
            let certificate = try Certificate(pemEncoded: renewed.certificatePem)
            XCTAssertEqual(try AgentCertificateIdentity.parse(certificate: certificate).agentID, agent.agentID, "same agent id")
            XCTAssertEqual(certificate.publicKey, Certificate.PublicKey(newKey.publicKey), "for the new key")
            // The lifetime the harness configured (an hour), backdated five minutes (at most a tenth of it).
            XCTAssertEqual(certificate.notValidAfter.timeIntervalSince(certificate.notValidBefore), 3_600 + 300, accuracy: 5)
            let serial = try await IngestFixtures.integer(gateway.client,
                "SELECT count(*) FROM agents WHERE id = \(agent.agentID) AND certificate_serial = \("\(certificate.serialNumber)")")
            XCTAssertEqual(serial, 1, "the new serial is recorded")
            // The new certificate opens a session for the same agent.
            let tls = try GatewayHarness.clientTLS(certificatePEM: renewed.certificatePem, key: newKey, caPEM: gateway.ca.caCertificatePEM)
            let welcome = try await gateway.connect(tls: tls) { wire in try await establish(&wire) }
            XCTAssertEqual(welcome?.agentID, agent.agentID.uuidString.lowercased())
        }
    }

    // MARK: One live session per agent

    func testASecondSessionOfTheSameAgentTakesOverAndTheFirstIsToldSo() async throws {
        try await withGateway { gateway in
            let tenantID = try await gateway.createTenant()
            let agent = try await gateway.enrolledAgent(tenantID: tenantID)
            let first = try await gateway.connect(tls: agent.tls) { wire -> Crowsnest_V1_Goodbye? in
                guard try await establish(&wire) != nil else { return nil }
                try await wire.send(batch(seq: 1))
                guard case .success(let frame) = await wire.nextOrEnd(), case .ack = frame.message else { return nil }
                // The same certificate connects again (a restarted agent, or a clone of this host).
                try await gateway.connect(tls: agent.tls) { second in
                    guard try await establish(&second) != nil else { return }
                    try await second.send(batch(seq: 2, tsMillis: 1_710_072_030_000))
                    guard case .success(let frame) = await second.nextOrEnd(), case .ack(let ack) = frame.message else {
                        return XCTFail("the new session must be served")
                    }
                    XCTAssertEqual(ack.seq, 2)
                    // The old one is closed within seconds, with the code that makes its agent wait.
                    guard case .success(let bye) = await wire.nextOrEnd(), case .goodbye(let goodbye) = bye.message else {
                        return XCTFail("expected the first session to get a goodbye")
                    }
                    XCTAssertEqual(goodbye.code, .takenOver)
                }
                return nil
            }
            XCTAssertNil(first)
            let committed = try await count(gateway.client, "SELECT committed_seq FROM agents WHERE id = \(agent.agentID)")
            XCTAssertEqual(committed, 2)
        }
    }

    func testARevokedAgentsLiveSessionIsClosedAndItsReconnectRefused() async throws {
        try await withGateway { gateway in
            let tenantID = try await gateway.createTenant()
            let agent = try await gateway.enrolledAgent(tenantID: tenantID)
            let started = ContinuousClock.now
            try await gateway.connect(tls: agent.tls) { wire in
                guard try await establish(&wire) != nil else { return }
                let revoked = try await AgentStore(client: gateway.client, logger: gateway.logger).revoke(agentID: agent.agentID)
                XCTAssertTrue(revoked)
                guard case .success(let frame) = await wire.nextOrEnd(), case .goodbye(let goodbye) = frame.message else {
                    return XCTFail("expected a goodbye after revocation")
                }
                XCTAssertEqual(goodbye.code, .revoked)
            }
            XCTAssertLessThan(ContinuousClock.now - started, .seconds(5))
            let again = try await gateway.connect(tls: agent.tls) { wire -> Crowsnest_V1_Reject? in
                try await wire.send(GatewayHarness.hello())
                guard case .success(let frame) = await wire.nextOrEnd(), case .reject(let reject) = frame.message else { return nil }
                return reject
            }
            XCTAssertEqual(again?.permanent, true)
            XCTAssertTrue(again?.reason.contains("revoked") ?? false, "\(String(describing: again))")
        }
    }

    func testSessionsAlternatingBetweenTwoBootIDsFlagTheAgentAsCloned() async throws {
        try await withGateway { gateway in
            let tenantID = try await gateway.createTenant()
            let agent = try await gateway.enrolledAgent(tenantID: tenantID)
            for (index, boot) in ["boot-a", "boot-a", "boot-b", "boot-a", "boot-b"].enumerated() {
                try await gateway.connect(tls: agent.tls) { wire in
                    var hello = GatewayHarness.hello()
                    if case .hello(var message) = hello.message { message.bootID = boot; hello = .with(.hello(message)) }
                    try await wire.send(hello)
                    _ = await wire.nextOrEnd()
                }
                let flagged = try await count(gateway.client, "SELECT clone_suspected::int FROM agents WHERE id = \(agent.agentID)")
                // A reboot (a then b) is no clone; a b a b is.
                XCTAssertEqual(flagged, index == 4 ? 1 : 0, "after session \(index + 1) (\(boot))")
            }
        }
    }

    // MARK: Poison never wedges

    /// Each kind of poison batch is acknowledged (so the agent moves on), what could be stored is stored, what
    /// was refused is in the rejection log, and the next good batch is stored as usual.
    func testPoisonBatchesAreAcknowledgedRecordedAndTheStreamMovesOn() async throws {
        try await withGateway { gateway in
            let tenantID = try await gateway.createTenant()
            let agent = try await gateway.enrolledAgent(tenantID: tenantID)
            try await gateway.connect(tls: agent.tls) { wire in
                guard try await establish(&wire) != nil else { return }
                let t0: Int64 = 1_710_072_000_000
                // 1: a NUL byte in a label, a name and health output.
                var nul = IngestFixtures.container("n\u{0}ul")
                nul.labels = ["a\u{0}b": "c\u{0}d"]
                nul.healthOutput = "x\u{0}y"
                // 2: three years ahead of the server's clock.
                // 3: the same tick as batch 1 (a clock stepped back).
                // 4: a name far over the bound.
                let frames: [Crowsnest_V1_Frame] = [
                    .with(.batch(IngestFixtures.batch(seq: 1, tsMillis: t0, containers: [nul, IngestFixtures.container("web")]))),
                    .with(.batch(IngestFixtures.batch(seq: 2, tsMillis: t0 + 3 * 365 * 86_400_000, containers: [IngestFixtures.container("web")]))),
                    .with(.batch(IngestFixtures.batch(seq: 3, tsMillis: t0, containers: [IngestFixtures.container("web")]))),
                    .with(.batch(IngestFixtures.batch(seq: 4, tsMillis: t0 + 30_000,
                                                      containers: [IngestFixtures.container(String(repeating: "x", count: 5_000)),
                                                                   IngestFixtures.container("web")]))),
                ]
                for frame in frames { try await wire.send(frame) }
                var acked: [UInt64] = []
                while acked.count < frames.count {
                    guard case .success(let frame) = await wire.nextOrEnd(), case .ack(let ack) = frame.message else {
                        return XCTFail("expected \(frames.count) acks, got \(acked)")
                    }
                    acked.append(ack.seq)
                }
                XCTAssertEqual(acked, [1, 2, 3, 4])
                let web = try await count(gateway.client, "SELECT count(*) FROM container_samples WHERE name = 'web'")
                XCTAssertEqual(web, 2, "ticks t0 and t0 + 30 s; the repeated t0 is skipped, the far-future one refused")
                let nulRows = try await count(gateway.client, "SELECT count(*) FROM containers WHERE name = 'nul' AND labels = '{\"ab\": \"cd\"}'::jsonb")
                XCTAssertEqual(nulRows, 1)
                let longName = try await count(gateway.client, "SELECT count(*) FROM containers WHERE octet_length(name) = \(WireTextBounds.nameBytes)")
                XCTAssertEqual(longName, 1)
                let rejected = try await count(gateway.client, "SELECT count(*) FROM ingest_rejections WHERE agent_id = \(agent.agentID) AND batch_seq = 2")
                XCTAssertEqual(rejected, 1)
                let duplicates = try await count(gateway.client, "SELECT duplicate_samples FROM agents WHERE id = \(agent.agentID)")
                XCTAssertEqual(duplicates, 1)
                let committed = try await count(gateway.client, "SELECT committed_seq FROM agents WHERE id = \(agent.agentID)")
                XCTAssertEqual(committed, 4)
            }
        }
    }

    func testAnUndecodableFrameGetsMalformedBatchAndBadSequencesOrIntervalsAProtocolError() async throws {
        try await withGateway { gateway in
            let tenantID = try await gateway.createTenant()
            let agent = try await gateway.enrolledAgent(tenantID: tenantID)
            // Bytes that are not a protobuf Frame (a field with wire type 7 does not exist).
            let garbage: [UInt8] = [0, 0, 0, 3, 0xFF, 0xFF, 0xFF]
            let undecodable = try await gateway.connect(tls: agent.tls) { wire -> Crowsnest_V1_Goodbye? in
                guard try await establish(&wire) != nil else { return nil }
                try await wire.send(raw: garbage)
                guard case .success(let frame) = await wire.nextOrEnd(), case .goodbye(let goodbye) = frame.message else { return nil }
                return goodbye
            }
            XCTAssertEqual(undecodable?.code, .malformedBatch)

            var tooHigh = IngestFixtures.batch(seq: UInt64(Int64.max) + 1, tsMillis: 1_710_072_000_000)
            tooHigh.intervalSeconds = 30
            var badInterval = IngestFixtures.batch(seq: 1, tsMillis: 1_710_072_000_000)
            badInterval.intervalSeconds = 3_601
            for (batch, expected) in [(tooHigh, "above the largest allowed"), (badInterval, "outside 1–3600 s")] {
                let goodbye = try await gateway.connect(tls: agent.tls) { wire -> Crowsnest_V1_Goodbye? in
                    guard try await establish(&wire) != nil else { return nil }
                    try await wire.send(.with(.batch(batch)))
                    guard case .success(let frame) = await wire.nextOrEnd(), case .goodbye(let goodbye) = frame.message else { return nil }
                    return goodbye
                }
                XCTAssertEqual(goodbye?.code, .protocolError)
                XCTAssertTrue(goodbye?.reason.contains(expected) ?? false, "\(String(describing: goodbye))")
            }
            let committed = try await count(gateway.client, "SELECT committed_seq FROM agents WHERE id = \(agent.agentID)")
            XCTAssertEqual(committed, 0)
        }
    }

    func testTheAgentsClockOffsetIsRecordedFromHelloAndHeartbeats() async throws {
        try await withGateway { gateway in
            let tenantID = try await gateway.createTenant()
            let agent = try await gateway.enrolledAgent(tenantID: tenantID)
            try await gateway.connect(tls: agent.tls) { wire in
                var hello = GatewayHarness.hello()
                if case .hello(var message) = hello.message {
                    message.agentTimeUnixMs = Int64(Date().timeIntervalSince1970 * 1000) - 5_000
                    hello = .with(.hello(message))
                }
                try await wire.send(hello)
                guard case .success(let frame) = await wire.nextOrEnd(), case .welcome = frame.message else { return XCTFail("no welcome") }
                let behind = try await count(gateway.client, "SELECT clock_offset_ms FROM agents WHERE id = \(agent.agentID)")
                XCTAssertTrue((-6_000 ... -4_000).contains(behind), "\(behind)")
                var heartbeat = Crowsnest_V1_Heartbeat()
                heartbeat.sentUnixMs = Int64(Date().timeIntervalSince1970 * 1000) + 60_000
                try await wire.send(.with(.heartbeat(heartbeat)))
                guard case .success(let beat) = await wire.nextOrEnd(), case .heartbeat = beat.message else { return XCTFail("no heartbeat") }
                // The update runs after the answer: give it a moment.
                var ahead: Int64 = 0
                for _ in 0..<50 {
                    ahead = try await count(gateway.client, "SELECT clock_offset_ms FROM agents WHERE id = \(agent.agentID)")
                    if ahead > 0 { break }
                    try await Task.sleep(for: .milliseconds(50))
                }
                XCTAssertTrue((59_000 ... 61_000).contains(ahead), "\(ahead)")
            }
        }
    }

    func testAClientCertificateFromAnotherCAFailsTheHandshake() async throws {
        try await withGateway { gateway in
            let tenantID = try await gateway.createTenant()
            let agent = try await gateway.enrolledAgent(tenantID: tenantID)
            let otherDirectory = try TestPostgres.makeTemporaryDirectory()
            defer { try? FileManager.default.removeItem(atPath: otherDirectory) }
            let otherCA = try CertificateAuthority.loadOrCreate(directory: otherDirectory, logger: gateway.logger)
            // Same agent and tenant ids, a well-formed certificate, but signed by a CA the gateway does not trust.
            let (key, csr) = try GatewayHarness.makeCSR()
            let forged = try otherCA.signAgentCSR(csrPEM: csr, agentID: agent.agentID, tenantID: tenantID)
            let tls = try GatewayHarness.clientTLS(certificatePEM: forged, key: key, caPEM: gateway.ca.caCertificatePEM)
            var answer: Result<Crowsnest_V1_Frame, EndOfConnection>
            do {
                answer = try await gateway.connect(tls: tls, deadline: .seconds(10)) { wire in
                    try? await wire.send(GatewayHarness.hello())
                    return await wire.nextOrEnd()
                }
            } catch {
                answer = .failure(EndOfConnection(reason: "\(error)"))
            }
            guard case .failure(let end) = answer else {
                return XCTFail("the gateway answered a foreign certificate: \(answer)")
            }
            XCTAssertNotEqual(end.reason, "closed", "expected a TLS failure, got a clean close")
            let seen = try await count(gateway.client, "SELECT count(*) FROM agents WHERE last_seen IS NOT NULL")
            XCTAssertEqual(seen, 0)
        }
    }

    func testABadClientDoesNotDisturbAGoodClientsSession() async throws {
        try await withGateway { gateway in
            let tenantID = try await gateway.createTenant()
            let good = try await gateway.enrolledAgent(tenantID: tenantID)
            let bad = try await gateway.enrolledAgent(tenantID: tenantID)
            try await gateway.connect(tls: good.tls) { wire in
                guard try await establish(&wire) != nil else { return }
                // While the good session is open, another agent misbehaves in every way we know.
                async let oversized: Result<Crowsnest_V1_Frame, EndOfConnection> = gateway.connect(tls: bad.tls) { badWire in
                    try await badWire.send(raw: [0xFF, 0xFF, 0xFF, 0xFF])
                    return await badWire.nextOrEnd()
                }
                async let garbage: Result<Crowsnest_V1_Frame, EndOfConnection> = gateway.connect(tls: bad.tls) { badWire in
                    try await badWire.send(raw: Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
                    return await badWire.nextOrEnd()
                }
                async let halfFrame: Result<Crowsnest_V1_Frame, EndOfConnection> = gateway.connect(tls: bad.tls) { badWire in
                    try await badWire.send(GatewayHarness.hello())
                    _ = await badWire.nextOrEnd()
                    try await badWire.send(raw: [0, 0, 1, 0, 1, 2, 3])  // then hang up mid-frame
                    return .failure(EndOfConnection(reason: "hung up"))
                }
                let results = try await [oversized, garbage, halfFrame]
                for result in results.prefix(2) {
                    guard case .success(let frame) = result, case .goodbye = frame.message else {
                        return XCTFail("expected goodbye for the bad client, got \(result)")
                    }
                }
                try await wire.send(batch(seq: 7))
                guard case .success(let frame) = await wire.nextOrEnd(), case .ack(let ack) = frame.message else {
                    return XCTFail("the good session did not survive")
                }
                XCTAssertEqual(ack.seq, 7)
            }
            let goodSamples = try await count(gateway.client, "SELECT count(*) FROM container_samples WHERE agent_id = \(good.agentID)")
            XCTAssertEqual(goodSamples, 2)
            let badSamples = try await count(gateway.client, "SELECT count(*) FROM container_samples WHERE agent_id = \(bad.agentID)")
            XCTAssertEqual(badSamples, 0)
        }
    }

    // MARK: Database outage

    func testWhileTheDatabaseIsDownNothingIsAcknowledgedAndTheResentBatchIsStoredOnceAfterwards() async throws {
        try await TestPostgres.withEmbeddedCluster { cluster, _ in
            try await cluster.start()
            let configuration = try DatabaseConnection.clientConfiguration(embedded: cluster)
            try await TestPostgres.withRunningClient(configuration) { client in
                _ = try await MigrationRunner(logger: GatewayHarness.logger).migrate(client)
                try await GatewayHarness.run(client: client, storageTimeout: .seconds(3)) { gateway in
                    let tenantID = try await gateway.createTenant()
                    let agent = try await gateway.enrolledAgent(tenantID: tenantID)

                    typealias Answer = Result<Crowsnest_V1_Frame, EndOfConnection>
                    let (during, end) = try await gateway.connect(tls: agent.tls, deadline: .seconds(60)) { wire -> (Answer, Answer) in
                        guard try await establish(&wire) != nil else {
                            return (.failure(EndOfConnection(reason: "no welcome")), .failure(EndOfConnection(reason: "no welcome")))
                        }
                        try await cluster.stop()
                        XCTAssertFalse(cluster.isRunning)
                        let ready = await Readiness().isReady(client)
                        XCTAssertFalse(ready, "/readyz answers not ready (instead of hanging) while the database is down")
                        try await wire.send(batch(seq: 1))
                        let during = await wire.nextOrEnd()
                        let end = await wire.nextOrEnd()
                        return (during, end)
                    }
                    guard case .success(let frame) = during, case .goodbye(let goodbye) = frame.message else {
                        return XCTFail("expected goodbye (and no ack) while the database is down, got \(during)")
                    }
                    XCTAssertTrue(goodbye.reason.contains("could not store batch 1"), goodbye.reason)
                    XCTAssertEqual(end, .failure(EndOfConnection(reason: "closed")))

                    try await cluster.start()
                    // Like the agent: reconnect until welcomed (the pool may still be backing off), then resend.
                    var acknowledged: UInt64?
                    let deadline = ContinuousClock.now + .seconds(45)
                    while acknowledged == nil, ContinuousClock.now < deadline {
                        acknowledged = try await gateway.connect(tls: agent.tls) { wire -> UInt64? in
                            try await wire.send(GatewayHarness.hello())
                            guard case .success(let frame) = await wire.nextOrEnd(), case .welcome(let welcome) = frame.message else {
                                return nil
                            }
                            XCTAssertEqual(welcome.committedSeq, 0, "the failed batch was never committed")
                            try await wire.send(batch(seq: 1))
                            guard case .success(let reply) = await wire.nextOrEnd(), case .ack(let ack) = reply.message else {
                                return nil
                            }
                            return ack.seq
                        }
                        if acknowledged == nil { try await Task.sleep(for: .milliseconds(500)) }
                    }
                    XCTAssertEqual(acknowledged, 1)
                    let counts = try await IngestFixtures.counts(client)
                    XCTAssertEqual(counts["container_samples"], 2, "stored exactly once")
                    XCTAssertEqual(counts["host_samples"], 1)
                    XCTAssertEqual(counts["container_events"], 1)
                    let committed = try await count(client, "SELECT committed_seq FROM agents WHERE id = \(agent.agentID)")
                    XCTAssertEqual(committed, 1)
                }
            }
        }
    }
}
