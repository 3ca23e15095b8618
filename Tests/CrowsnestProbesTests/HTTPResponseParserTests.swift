import NIOCore
import XCTest

@testable import CrowsnestProbes

/// The probes' hand-written HTTP/1.1 response reader, fed each response whole and split at every byte.
final class HTTPResponseParserTests: XCTestCase {
    /// Parses `text` fed in pieces of `step` bytes, then the connection's close; nil when no answer came.
    private func parse(_ text: String, step: Int = .max, isHEAD: Bool = false, limit: Int = 1 << 20,
                       file: StaticString = #filePath, line: UInt = #line) throws -> HTTPResponseParser? {
        var parser = HTTPResponseParser(isHEAD: isHEAD, maximumBodyBytes: limit)
        let bytes = Array(text.utf8)
        var index = 0
        var complete = false
        while index < bytes.count && !complete {
            let end = min(bytes.count, index + min(step, bytes.count))
            complete = try bytes[index..<end].withUnsafeBytes { try parser.feed($0) }
            index = end
        }
        if !complete { complete = try parser.finishAtClose() }
        return complete ? parser : nil
    }

    /// The same response read whole and one byte at a time gives the same status, headers and body.
    private func assertParses(_ text: String, status: Int, body: String, isHEAD: Bool = false,
                              file: StaticString = #filePath, line: UInt = #line) throws {
        for step in [Int.max, 1, 7] {
            let parsed = try XCTUnwrap(try parse(text, step: step, isHEAD: isHEAD), "step \(step)", file: file, line: line)
            XCTAssertEqual(parsed.status, status, "step \(step)", file: file, line: line)
            XCTAssertEqual(String(decoding: parsed.body, as: UTF8.self), body, "step \(step)", file: file, line: line)
        }
    }

    func testBodiesFramedByLengthByChunksAndByTheEndOfTheConnection() throws {
        try assertParses("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhelloEXTRA", status: 200, body: "hello")
        try assertParses("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: 1\r\n\r\n",
                         status: 200, body: "hello, world")
        try assertParses("HTTP/1.0 200 OK\r\nServer: old\r\n\r\nuntil the end", status: 200, body: "until the end")
        // Bare LF line ends, as some small servers send them.
        try assertParses("HTTP/1.1 404 Not Found\nContent-Length: 2\n\nno", status: 404, body: "no")
        // Framing headers in any case, lists of codings (chunked last counts), a length repeated with the same value.
        try assertParses("HTTP/1.1 200 OK\r\nTRANSFER-ENCODING: gzip,  Chunked \r\n\r\n3\r\nabc\r\n0\r\n\r\n", status: 200, body: "abc")
        try assertParses("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked, gzip\r\n\r\nto the end", status: 200, body: "to the end")
        try assertParses("HTTP/1.1 200 OK\r\ncontent-length: 3, 3\r\nContent-Length: 3\r\n\r\nabcdef", status: 200, body: "abc")
        // Empty list elements do not count (RFC 9110 section 5.6.1), as in NIO's `canonicalForm`.
        try assertParses("HTTP/1.1 200 OK\r\nContent-Length: 3,\r\n\r\nabcdef", status: 200, body: "abc")
        try assertParses("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked,\r\n\r\n3\r\nabc\r\n0\r\n\r\n", status: 200, body: "abc")
        try assertParses("HTTP/1.1 200 OK\r\nTransfer-Encoding:\r\nContent-Length: 2\r\n\r\nabcdef", status: 200, body: "ab")
        let parsed = try XCTUnwrap(try parse("HTTP/1.1 302 Found\r\nlocation:  /next \r\nContent-Length: 0\r\n\r\n"))
        XCTAssertEqual(parsed.headers.first(name: "Location"), "/next")
    }

    func testInterimAnswersAreSkippedAndSomeAnswersHaveNoBody() throws {
        try assertParses("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok", status: 201, body: "ok")
        try assertParses("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", status: 200, body: "", isHEAD: true)
        try assertParses("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", status: 204, body: "")
        try assertParses("HTTP/1.1 304 Not Modified\r\n\r\n", status: 304, body: "")
    }

    func testTheBodyIsReadUpToItsLimitOnly() throws {
        let text = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789"
        var parser = HTTPResponseParser(isHEAD: false, maximumBodyBytes: 4)
        let complete = try Array(text.utf8).prefix(text.utf8.count - 3).withUnsafeBytes { try parser.feed($0) }
        XCTAssertTrue(complete, "the limit ends the read before the body does")
        XCTAssertEqual(String(decoding: parser.body, as: UTF8.self), "0123")
    }

    func testNoAnswerIsNotAnError() throws {
        XCTAssertNil(try parse(""))
    }

    func testCutShortAndMalformedAnswersFailWithTheReason() throws {
        func reason(_ text: String, step: Int = .max) -> String {
            do {
                _ = try parse(text, step: step)
                return "parsed"
            } catch let failure as ProbeFailure {
                return failure.reason
            } catch {
                return "\(error)"
            }
        }
        XCTAssertEqual(reason("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"), "the connection closed in the middle of the response body")
        XCTAssertEqual(reason("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab"), "the connection closed in the middle of the response body")
        XCTAssertEqual(reason("HTTP/1.1 200 OK\r\nContent-Le"), "the connection closed before the response head was complete")
        XCTAssertEqual(reason("SSH-2.0-OpenSSH_9.2\r\n"), #"the answer is not HTTP/1.x (it began "SSH-2.0-OpenSSH_9.2")"#)
        XCTAssertEqual(reason("HTTP/1.1 2000 OK\r\n\r\n"), #"the answer is not HTTP/1.x (it began "HTTP/1.1 2000 OK")"#)
        XCTAssertEqual(reason("HTTP/1.1 200 OK\r\nno colon here\r\n\r\n"), "the response has a malformed header line")
        XCTAssertEqual(reason("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"), "the response has an invalid Content-Length")
        XCTAssertEqual(reason("HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\nab"), "the response has an invalid Content-Length")
        XCTAssertEqual(reason("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"), "the response has an invalid Content-Length")
        XCTAssertEqual(reason("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"), "the response has a malformed chunk size")
        // A signed size would be taken by Int(_:radix:); a negative one must fail, not trap.
        XCTAssertEqual(reason("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\nx"), "the response has a malformed chunk size")
        XCTAssertEqual(reason("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n+1\r\nx"), "the response has a malformed chunk size")
        XCTAssertEqual(reason("HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello"), "the response has an invalid Content-Length")
        XCTAssertEqual(reason("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n"), "the response has an invalid Content-Length")
        XCTAssertEqual(reason("HTTP/1.X 200 OK\r\n\r\n"), #"the answer is not HTTP/1.x (it began "HTTP/1.X 200 OK")"#)
        let junkAfterChunk = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab" + String(repeating: "x", count: 5000)
        XCTAssertEqual(reason(junkAfterChunk, step: 100), "the response has a chunk longer than its size")
        XCTAssertEqual(reason("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n"), "the response has a chunk longer than its size")
        // Limits at their edge: a head of exactly 64 KiB is read, one byte more is refused, whole or byte by byte.
        let prefix = "HTTP/1.1 200 OK\r\nX-Fill: "
        let suffix = "\r\nContent-Length: 0\r\n\r\n"
        let fill = HTTPResponseParser.maximumHeadBytes - prefix.utf8.count - suffix.utf8.count
        XCTAssertEqual(reason(prefix + String(repeating: "a", count: fill) + suffix), "parsed")
        XCTAssertEqual(reason(prefix + String(repeating: "a", count: fill + 1) + suffix), "the response head is larger than 64 KiB")
        XCTAssertEqual(reason(prefix + String(repeating: "a", count: fill + 1) + suffix, step: 1000), "the response head is larger than 64 KiB")
        XCTAssertEqual(reason(prefix + String(repeating: "a", count: 200_000)), "the response head is larger than 64 KiB")
        let longChunkLine = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;" + String(repeating: "x", count: 2000) + "\r\n"
        XCTAssertEqual(reason(longChunkLine, step: 100), "a chunk-size line of the response is longer than 1024 bytes")
        XCTAssertEqual(reason(longChunkLine), "a chunk-size line of the response is longer than 1024 bytes")
    }

    func testRequestsRefuseWhatWouldInjectLines() throws {
        let request = try HTTPRequestBytes.make(method: "POST", pathAndQuery: "/a?b=1", headers: [("Host", "x"), ("X-A", "b\tc")], body: "hi")
        XCTAssertEqual(String(buffer: request), "POST /a?b=1 HTTP/1.1\r\nHost: x\r\nX-A: b\tc\r\n\r\nhi")
        func reason(method: String = "GET", path: String = "/", headers: [(String, String)] = []) -> String {
            do {
                _ = try HTTPRequestBytes.make(method: method, pathAndQuery: path, headers: headers, body: nil)
                return "made"
            } catch let failure as ProbeFailure {
                return failure.reason
            } catch {
                return "\(error)"
            }
        }
        XCTAssertEqual(reason(headers: [("X-A", "b\r\nX-Injected: 1")]), "header X-A has a line break or control character in its value")
        XCTAssertEqual(reason(headers: [("X-A\r\nB", "c")]), #"header name "X-A\#r\#nB" is not a valid HTTP header name"#)
        XCTAssertEqual(reason(headers: [("", "c")]), #"header name "" is not a valid HTTP header name"#)
        XCTAssertEqual(reason(method: "GET /x HTTP/1.1\r\n"), #"method "GET /x HTTP/1.1\#r\#n" is not an HTTP method (letters, digits and !#$%&'*+-.^_`|~ only)"#)
        XCTAssertEqual(reason(path: "/a b"), "the URL's path has spaces or control characters; percent-encode them")
    }
}
