import CrowsnestWire
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import Synchronization
import XCTest

@testable import CrowsnestServer

/// What operators read: JSON log lines (one object per line, hostile text kept as text) and a request id on
/// every response, errors included.
final class OperatorLoggingTests: XCTestCase {
    func testJSONLinesCarryTheFieldsAndEscapeWhatTheyHold() throws {
        let lines = Mutex<[String]>([])
        var handler = JSONLogHandler(label: "crowsnest.server") { line in lines.withLock { $0.append(line) } }
        handler.logLevel = .info
        handler[metadataKey: "agent.id"] = "a-1"
        var logger = Logger(label: "crowsnest.server") { _ in handler }
        logger.logLevel = .info
        logger.info("container renamed", metadata: ["container.name": "web\"\n<script>\u{0}", "message": "not the message"])
        logger.debug("not written")
        let written = lines.withLock { $0 }
        XCTAssertEqual(written.count, 1)
        let line = try XCTUnwrap(written.first)
        XCTAssertTrue(line.hasSuffix("}\n") && !line.dropLast().contains("\n"), "one line: \(line)")
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String])
        XCTAssertEqual(object["level"], "info")
        XCTAssertEqual(object["logger"], "crowsnest.server")
        XCTAssertEqual(object["message"], "container renamed", "metadata never overwrites the fixed fields")
        XCTAssertEqual(object["agent.id"], "a-1")
        XCTAssertEqual(object["container.name"], "web\"\n<script>\u{0}", "hostile text round-trips as text")
        XCTAssertNotNil(RFC3339.date(from: try XCTUnwrap(object["ts"])))
    }

    func testEveryResponseCarriesARequestIDAndAPlainCallerIDIsKept() async throws {
        try await APITestHarness.withDatabaselessAPI(ready: true) { client in
            let first = try await client.execute(uri: "/healthz", method: .get)
            let id = try XCTUnwrap(first.headers[RequestID.headerName])
            XCTAssertEqual(id.count, 20)
            let second = try await client.execute(uri: "/healthz", method: .get)
            XCTAssertNotEqual(second.headers[RequestID.headerName], id, "a new one each time")
            let kept = try await client.execute(uri: "/no/such/route", method: .get, headers: [RequestID.headerName: "lb-7f3a.2"])
            XCTAssertEqual(kept.status, .notFound)
            XCTAssertEqual(kept.headers[RequestID.headerName], "lb-7f3a.2", "the proxy's id, on an error too")
            let hostile = try await client.execute(uri: "/healthz", method: .get, headers: [RequestID.headerName: "a b<script>"])
            XCTAssertNotEqual(hostile.headers[RequestID.headerName], "a b<script>", "not echoed: replaced")
        }
    }
}
