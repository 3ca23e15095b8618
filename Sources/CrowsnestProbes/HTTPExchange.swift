import NIOCore
import NIOHTTP1

/// The bytes of one HTTP/1.1 request as a probe sends it, refusing what would let a check's method, path or
/// headers inject lines into the request.
///
/// Written by hand with `HTTPResponseParser` instead of NIOHTTP1's encoder, decoder and header validator: a
/// probe is one request on a new connection, and those three handlers per connection were a tenth of a probe's
/// CPU (docs/BENCHMARKS.md, section 6).
enum HTTPRequestBytes {
    static func make(method: String, pathAndQuery: String, headers: [(String, String)], body: String?) throws -> ByteBuffer {
        guard !method.isEmpty, method.utf8.allSatisfy(isTokenByte) else {
            throw ProbeFailure("method \"\(method)\" is not an HTTP method (letters, digits and !#$%&'*+-.^_`|~ only)")
        }
        guard pathAndQuery.utf8.allSatisfy({ $0 > 0x20 && $0 != 0x7F }) else {
            throw ProbeFailure("the URL's path has spaces or control characters; percent-encode them")
        }
        var buffer = ByteBuffer()
        buffer.reserveCapacity(128 + pathAndQuery.utf8.count + headers.reduce(0) { $0 + $1.0.utf8.count + $1.1.utf8.count + 4 }
                                   + (body?.utf8.count ?? 0))
        buffer.writeString(method)
        buffer.writeStaticString(" ")
        buffer.writeString(pathAndQuery)
        buffer.writeStaticString(" HTTP/1.1\r\n")
        for (name, value) in headers {
            guard !name.isEmpty, name.utf8.allSatisfy(isTokenByte) else {
                throw ProbeFailure("header name \"\(name)\" is not a valid HTTP header name")
            }
            // Field values: visible characters, spaces and tabs; no line breaks, NUL or other control characters.
            guard value.utf8.allSatisfy({ $0 >= 0x20 && $0 != 0x7F || $0 == 0x09 }) else {
                throw ProbeFailure("header \(name) has a line break or control character in its value")
            }
            buffer.writeString(name)
            buffer.writeStaticString(": ")
            buffer.writeString(value)
            buffer.writeStaticString("\r\n")
        }
        buffer.writeStaticString("\r\n")
        if let body { buffer.writeString(body) }
        return buffer
    }

    /// RFC 9110 `tchar`.
    static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        default:
            return "!#$%&'*+-.^_`|~".utf8.contains(byte)
        }
    }
}

/// Reads one HTTP/1.1 response as its bytes arrive: the final head (1xx answers skipped), then the body framed by
/// `Content-Length`, chunked transfer coding or the end of the connection, kept up to a limit. Limits are explicit:
/// a head over 64 KiB or a malformed line fails the probe with the reason instead of being read on.
struct HTTPResponseParser {
    /// Most bytes of a response head (status line and headers).
    static let maximumHeadBytes = 64 * 1024
    /// Most bytes of one chunk-size line.
    static let maximumChunkLineBytes = 1024

    private enum State: Equatable {
        case head
        case fixed(remaining: Int)
        case chunkSize
        case chunkData(remaining: Int)
        case chunkDataEnd
        case trailers
        case untilClose
        case done
    }

    let isHEAD: Bool
    let maximumBodyBytes: Int
    /// 0 until a final status line was read.
    private(set) var status = 0
    private(set) var headers = HTTPHeaders()
    private(set) var body: [UInt8] = []
    private var state = State.head
    private var sawStatusLine = false
    private var headBytes = 0
    /// Bytes of a line not complete yet (head, chunk size, trailers).
    private var partialLine: [UInt8] = []

    init(isHEAD: Bool, maximumBodyBytes: Int) {
        self.isHEAD = isHEAD
        self.maximumBodyBytes = maximumBodyBytes
    }

    var isComplete: Bool { state == .done }

    /// Takes the next bytes of the connection; true once the response is complete (or its body limit reached),
    /// after which further bytes are ignored.
    mutating func feed(_ bytes: UnsafeRawBufferPointer) throws -> Bool {
        var index = 0
        let count = bytes.count
        while index < count || state == .done {
            switch state {
            case .done:
                return true
            case .head, .chunkSize, .chunkDataEnd, .trailers:
                guard let line = takeLine(bytes, from: &index) else {
                    try checkLineLimit()
                    return false
                }
                try consume(line: line)
            case .fixed(let remaining), .chunkData(let remaining):
                let taken = min(remaining, count - index)
                keep(UnsafeRawBufferPointer(rebasing: bytes[index..<index + taken]))
                index += taken
                let left = remaining - taken
                if case .fixed = state {
                    state = left == 0 ? .done : .fixed(remaining: left)
                } else {
                    state = left == 0 ? .chunkDataEnd : .chunkData(remaining: left)
                }
            case .untilClose:
                keep(UnsafeRawBufferPointer(rebasing: bytes[index...]))
                index = count
            }
            if body.count >= maximumBodyBytes, state != .head { state = .done }
        }
        return state == .done
    }

    /// The connection closed: true when that completes the response (a body read to the end of the connection),
    /// false when no byte of an answer came; throws when it cut a response short.
    mutating func finishAtClose() throws -> Bool {
        switch state {
        case .done:
            return true
        case .untilClose:
            state = .done
            return true
        case .head where !sawStatusLine && headBytes == 0 && partialLine.isEmpty:
            return false
        case .head:
            throw ProbeFailure("the connection closed before the response head was complete")
        default:
            throw ProbeFailure("the connection closed in the middle of the response body")
        }
    }

    /// The next complete line (without its CR LF or bare LF), or nil when the bytes end first (kept for later).
    private mutating func takeLine(_ bytes: UnsafeRawBufferPointer, from index: inout Int) -> [UInt8]? {
        let start = index
        guard let newline = bytes[start...].firstIndex(of: UInt8(ascii: "\n")) else {
            partialLine.append(contentsOf: bytes[start...])
            index = bytes.count
            return nil
        }
        index = newline + 1
        var line = partialLine
        partialLine = []
        line.append(contentsOf: bytes[start..<newline])
        if state == .head || state == .trailers { headBytes += line.count + 1 }
        if line.last == UInt8(ascii: "\r") { line.removeLast() }
        return line
    }

    private func checkLineLimit() throws {
        switch state {
        case .head, .trailers:
            if headBytes + partialLine.count > Self.maximumHeadBytes {
                throw ProbeFailure("the response head is larger than \(Self.maximumHeadBytes / 1024) KiB")
            }
        case .chunkDataEnd:
            // Only CR LF may follow a chunk's data.
            if partialLine.count > 1 { throw ProbeFailure("the response has a chunk longer than its size") }
        default:
            if partialLine.count > Self.maximumChunkLineBytes {
                throw ProbeFailure("a chunk-size line of the response is longer than \(Self.maximumChunkLineBytes) bytes")
            }
        }
    }

    private mutating func consume(line: [UInt8]) throws {
        switch state {
        case .head:
            if headBytes > Self.maximumHeadBytes {
                throw ProbeFailure("the response head is larger than \(Self.maximumHeadBytes / 1024) KiB")
            }
            if !sawStatusLine {
                status = try Self.statusCode(line)
                sawStatusLine = true
            } else if line.isEmpty {
                try endOfHead()
            } else {
                guard let colon = line.firstIndex(of: UInt8(ascii: ":")), colon > 0,
                      line[..<colon].allSatisfy(HTTPRequestBytes.isTokenByte) else {
                    throw ProbeFailure("the response has a malformed header line")
                }
                let name = String(decoding: line[..<colon], as: UTF8.self)
                let value = String(decoding: Self.trimmed(line[(colon + 1)...]), as: UTF8.self)
                headers.add(name: name, value: value)
            }
        case .chunkSize:
            if line.count > Self.maximumChunkLineBytes {
                throw ProbeFailure("a chunk-size line of the response is longer than \(Self.maximumChunkLineBytes) bytes")
            }
            let digits = Self.trimmed(line.prefix { $0 != UInt8(ascii: ";") })
            // Hex digits only (`Int(_:radix:)` alone would take a sign: a negative size must not get through).
            guard !digits.isEmpty, digits.count <= 15, digits.allSatisfy(Self.isHexDigit),
                  let size = Int(String(decoding: digits, as: UTF8.self), radix: 16) else {
                throw ProbeFailure("the response has a malformed chunk size")
            }
            state = size == 0 ? .trailers : .chunkData(remaining: size)
        case .chunkDataEnd:
            guard line.isEmpty else { throw ProbeFailure("the response has a chunk longer than its size") }
            state = .chunkSize
        case .trailers:
            if headBytes > Self.maximumHeadBytes {
                throw ProbeFailure("the response head is larger than \(Self.maximumHeadBytes / 1024) KiB")
            }
            if line.isEmpty { state = .done }
        default:
            break
        }
    }

    /// How the body is framed, from the final head; a 1xx (but 101) head is skipped and the next one read.
    private mutating func endOfHead() throws {
        if status < 200 && status != 101 {
            // The head limit keeps counting across interim answers: an endless stream of them ends at 64 KiB.
            status = 0
            sawStatusLine = false
            headers = HTTPHeaders()
            return
        }
        if isHEAD || status < 200 || status == 204 || status == 304 {
            state = .done
            return
        }
        // One pass over the headers, comma-separated values split and trimmed as NIO's `canonicalForm` does (empty
        // elements left out, RFC 9110 section 5.6.1), without its arrays and sets (this runs for every probe).
        var lastCoding: Substring?
        var length: Substring?
        var lengthsAgree = true
        for (name, value) in headers {
            if Self.equalsIgnoringCase(name, "transfer-encoding") {
                if let last = value.split(separator: ",").last { lastCoding = Self.trimmedSpaces(last) }
            } else if Self.equalsIgnoringCase(name, "content-length") {
                for part in value.split(separator: ",") {
                    let text = Self.trimmedSpaces(part)
                    if let length, length != text { lengthsAgree = false }
                    length = length ?? text
                }
            }
        }
        if let lastCoding {
            // Chunked must be the final coding; anything else is read to the end of the connection.
            state = Self.equalsIgnoringCase(lastCoding, "chunked") ? .chunkSize : .untilClose
            return
        }
        if let text = length {
            guard lengthsAgree, !text.isEmpty, text.utf8.count <= 18, text.utf8.allSatisfy(Self.isDigit),
                  let length = Int(text) else {
                throw ProbeFailure("the response has an invalid Content-Length")
            }
            state = length == 0 ? .done : .fixed(remaining: length)
            return
        }
        state = .untilClose
    }

    private mutating func keep(_ bytes: UnsafeRawBufferPointer) {
        let room = maximumBodyBytes - body.count
        guard room > 0 else { return }
        body.append(contentsOf: bytes.prefix(room))
    }

    /// `HTTP/1.x NNN reason` → NNN.
    static func statusCode(_ line: [UInt8]) throws -> Int {
        let prefix = Array("HTTP/1.".utf8)
        guard line.count >= 12, line.starts(with: prefix), isDigit(line[7]), line[8] == UInt8(ascii: " "),
              line[9...11].allSatisfy(isDigit),
              line.count == 12 || line[12] == UInt8(ascii: " ") else {
            let shown = String(decoding: line.prefix(40), as: UTF8.self)
            throw ProbeFailure("the answer is not HTTP/1.x (it began \"\(shown.unicodeScalars.map { $0.isASCII && $0.value >= 0x20 ? String($0) : "?" }.joined())\")")
        }
        return line[9...11].reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) }
    }

    /// `text` equals `lowercase` (ASCII, lower case) ignoring ASCII case.
    static func equalsIgnoringCase<S: StringProtocol>(_ text: S, _ lowercase: StaticString) -> Bool {
        equalsIgnoringCase(bytes: text.utf8, lowercase)
    }

    /// The UTF-8 `bytes` equal `lowercase` (ASCII, lower case) ignoring ASCII case.
    static func equalsIgnoringCase<Bytes: Collection<UInt8>>(bytes: Bytes, _ lowercase: StaticString) -> Bool {
        guard bytes.count == lowercase.utf8CodeUnitCount else { return false }
        return lowercase.withUTF8Buffer { expected in
            zip(bytes, expected).allSatisfy { byte, wanted in
                byte == wanted || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") && byte + 32 == wanted)
            }
        }
    }

    /// `text` without the spaces and tabs around it.
    static func trimmedSpaces(_ text: Substring) -> Substring {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        guard let first = text.firstIndex(where: { !isSpace($0) }), let last = text.lastIndex(where: { !isSpace($0) }) else {
            return text[text.endIndex...]
        }
        return text[first...last]
    }

    static func isDigit(_ byte: UInt8) -> Bool { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) }

    static func isHexDigit(_ byte: UInt8) -> Bool {
        isDigit(byte) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "F")).contains(byte)
    }

    private static func trimmed<C: BidirectionalCollection>(_ bytes: C) -> C.SubSequence where C.Element == UInt8 {
        let isSpace: (UInt8) -> Bool = { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }
        guard let first = bytes.firstIndex(where: { !isSpace($0) }) else { return bytes[bytes.endIndex...] }
        let last = bytes.lastIndex(where: { !isSpace($0) })!
        return bytes[first...last]
    }
}
