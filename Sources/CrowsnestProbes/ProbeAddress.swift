/// `host:port` of a tcp (or tls, postgres, ...) target: a DNS name, an IPv4 address or a bracketed IPv6 address.
public struct ProbeHostPort: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int

    /// `defaultPort` applies when the text has none; without one the port is required.
    public init(_ text: String, defaultPort: Int? = nil) throws {
        // Scanned as UTF-8 bytes (every delimiter is ASCII, so each index found is a character boundary): check
        // runs parse their target every time, and character-wise scanning was a visible part of a probe's CPU.
        let bytes = text.utf8
        let host: Substring
        let portText: Substring?
        if bytes.first == UInt8(ascii: "[") {
            guard let close = bytes.firstIndex(of: UInt8(ascii: "]")) else { throw ProbeFailure("target \"\(text)\" has an unclosed [") }
            host = text[bytes.index(after: bytes.startIndex)..<close]
            let rest = bytes[bytes.index(after: close)...]
            if rest.isEmpty {
                portText = nil
            } else {
                guard rest.first == UInt8(ascii: ":") else { throw ProbeFailure("target \"\(text)\" must be [address]:port") }
                portText = text[rest.index(after: rest.startIndex)...]
            }
        } else if let colon = bytes.lastIndex(of: UInt8(ascii: ":")) {
            if bytes[..<colon].contains(UInt8(ascii: ":")) {
                // A bare IPv6 address (a resolver, say): no port.
                host = text[...]
                portText = nil
            } else {
                host = text[..<colon]
                portText = text[bytes.index(after: colon)...]
            }
        } else {
            host = text[...]
            portText = nil
        }
        guard !host.isEmpty else { throw ProbeFailure("target \"\(text)\" names no host") }
        if let portText {
            guard let port = Int(portText), (1...65535).contains(port) else {
                throw ProbeFailure("target \"\(text)\" has no port from 1 to 65535")
            }
            self.port = port
        } else if let defaultPort {
            self.port = defaultPort
        } else {
            throw ProbeFailure("target \"\(text)\" has no port (host:port)")
        }
        self.host = String(host)
    }

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// An absolute `http`/`https` URL, split the way an HTTP/1.1 request needs it. Parsed here, without Foundation,
/// for the agent; the server validated the text when the check was saved.
public struct ProbeURL: Sendable, Equatable, CustomStringConvertible {
    public var scheme: String
    public var host: String
    public var port: Int
    /// Path and query, at least "/"; the fragment is dropped.
    public var pathAndQuery: String
    /// `user:password` before the host (sent as Basic authorization); nil when none.
    public var userInfo: String?

    public var isTLS: Bool { scheme == "https" }

    public init(_ text: String) throws {
        // Scanned as UTF-8 bytes, like ProbeHostPort: every delimiter is ASCII.
        let bytes = text.utf8
        guard let colon = bytes.firstIndex(of: UInt8(ascii: ":")), bytes[colon...].starts(with: "://".utf8) else {
            throw ProbeFailure("URL \"\(text)\" is not absolute (scheme://host/...)")
        }
        let scheme = text[..<colon].lowercased()
        guard scheme == "http" || scheme == "https" else { throw ProbeFailure("URL \"\(text)\" is not http or https") }
        var rest = bytes[bytes.index(colon, offsetBy: 3)...]
        if let hash = rest.firstIndex(of: UInt8(ascii: "#")) { rest = rest[..<hash] }
        let authorityEnd = rest.firstIndex { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "?") } ?? rest.endIndex
        var authority = text[rest.startIndex..<authorityEnd]
        var path = String(text[authorityEnd..<rest.endIndex])
        if path.isEmpty || path.utf8.first == UInt8(ascii: "?") { path = "/" + path }
        if let at = authority.utf8.lastIndex(of: UInt8(ascii: "@")) {
            userInfo = String(authority[..<at])
            authority = authority[authority.utf8.index(after: at)...]
        }
        let defaultPort = scheme == "https" ? 443 : 80
        let hostPort = try ProbeHostPort(String(authority), defaultPort: defaultPort)
        self.scheme = scheme
        self.host = hostPort.host
        self.port = hostPort.port
        self.pathAndQuery = path
    }

    /// The `Host` header: the port only when it is not the scheme's.
    public var hostHeader: String {
        let shown = host.contains(":") ? "[\(host)]" : host
        return port == (isTLS ? 443 : 80) ? shown : "\(shown):\(port)"
    }

    public var description: String { "\(scheme)://\(hostHeader)\(pathAndQuery)" }

    /// Where a `Location` header leads from this URL: absolute, scheme-relative, absolute-path or relative.
    public func resolving(_ location: String) throws -> ProbeURL {
        if location.contains("://") { return try ProbeURL(location) }
        if location.hasPrefix("//") { return try ProbeURL(scheme + ":" + location) }
        var next = self
        next.userInfo = nil
        if location.hasPrefix("/") {
            next.pathAndQuery = location
        } else {
            let base = pathAndQuery.prefix { $0 != "?" }
            let directory = base.lastIndex(of: "/").map { base[...$0] } ?? "/"
            next.pathAndQuery = directory + location
        }
        if let hash = next.pathAndQuery.firstIndex(of: "#") { next.pathAndQuery = String(next.pathAndQuery[..<hash]) }
        return next
    }
}
