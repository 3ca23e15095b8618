import Foundation
import Hummingbird
import HummingbirdTesting
import Prometheus
import XCTest

@testable import CrowsnestServer

/// `/healthz`, `/readyz`, `/metrics` and the JSON shape of routing errors; none needs a database.
final class ServiceRoutesTests: XCTestCase {
    func testHealthzAnswersOkWithoutAKey() async throws {
        try await APITestHarness.withDatabaselessAPI(ready: false) { client in
            let response = try await client.execute(uri: "/healthz", method: .get)
            XCTAssertEqual(response.status, .ok)
            XCTAssertEqual(try response.jsonObject() as NSDictionary, ["status": "ok"])
        }
    }

    func testReadyzAnswers503WhileNotReady() async throws {
        try await APITestHarness.withDatabaselessAPI(ready: false) { client in
            let response = try await client.execute(uri: "/readyz", method: .get)
            XCTAssertEqual(response.status, .serviceUnavailable)
            XCTAssertEqual(try response.apiError().code, "unavailable")
        }
    }

    func testReadyzAnswersOkWhenReady() async throws {
        try await APITestHarness.withDatabaselessAPI(ready: true) { client in
            let response = try await client.execute(uri: "/readyz", method: .get)
            XCTAssertEqual(response.status, .ok)
            XCTAssertEqual(try response.jsonObject() as NSDictionary, ["status": "ready"])
        }
    }

    func testMetricsEmitsTheRegistryInPrometheusTextFormat() async throws {
        let registry = PrometheusCollectorRegistry()
        registry.makeCounter(name: "crowsnest_test_batches_total").increment(by: Int64(7))
        try await APITestHarness.withDatabaselessAPI(registry: registry, ready: true) { client in
            let response = try await client.execute(uri: "/metrics", method: .get)
            XCTAssertEqual(response.status, .ok)
            XCTAssertEqual(response.headers[.contentType], "text/plain; version=0.0.4; charset=utf-8")
            let text = String(buffer: response.body)
            XCTAssertTrue(text.contains("# TYPE crowsnest_test_batches_total counter"), text)
            XCTAssertTrue(text.contains("crowsnest_test_batches_total 7"), text)
        }
    }

    func testUnknownRoutesAnswerWithTheJSONErrorShape() async throws {
        try await APITestHarness.withDatabaselessAPI(ready: true) { client in
            let response = try await client.execute(uri: "/nope", method: .get)
            XCTAssertEqual(response.status, .notFound)
            let error = try response.apiError()
            XCTAssertEqual(error.code, "not_found")
            XCTAssertEqual(error.message, "no route for GET /nope")
        }
    }

    func testMissingKeyIsRefusedWithoutTouchingTheDatabase() async throws {
        try await APITestHarness.withDatabaselessAPI(ready: true) { client in
            // This router's database is unreachable: a 401 proves no query was attempted.
            let response = try await client.execute(uri: "/api/v1/infrastructure", method: .get)
            XCTAssertEqual(response.status, .unauthorized)
        }
    }
}
