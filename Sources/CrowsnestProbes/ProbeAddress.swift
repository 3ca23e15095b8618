/// `host:port` of a tcp (or tls, postgres, ...) target: a DNS name, an IPv4 address or a bracketed IPv6 address.
public struct ProbeHostPort: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int

    /// `defaultPort` applies when the text has none; without one the port is required.
    public init(_ text: String, defaultPort: Int? = nil) throws {
        let host: String
        let portText: Substring?
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { throw ProbeFailure("target \"\(text)\" has an unclosed [") }
            host = String(text[text.index(after: text.startIndex)..<close])
            let rest = text[text.index(after: close)...]
            if rest.isEmpty {
                portText = nil
            } else {
                guard rest.hasPrefix(":") else { throw ProbeFailure("target \"\(text)\" must be [address]:port") }
                portText = rest.dropFirst()
            }
        } else if text.filter({ $0 == ":" }).count > 1 {
            // A bare IPv6 address (a resolver, say): no port.
            host = text
            portText = nil
        } else if let colon = text.lastIndex(of: ":") {
            host = String(text[..<colon])
            portText = text[text.index(after: colon)...]
        } else {
            host = text
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
        self.host = host
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
        guard let schemeEnd = text.firstRange(of: "://") else { throw ProbeFailure("URL \"\(text)\" is not absolute (scheme://host/...)") }
        let scheme = text[..<schemeEnd.lowerBound].lowercased()
        guard scheme == "http" || scheme == "https" else { throw ProbeFailure("URL \"\(text)\" is not http or https") }
        var rest = text[schemeEnd.upperBound...]
        if let hash = rest.firstIndex(of: "#") { rest = rest[..<hash] }
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" } ?? rest.endIndex
        var authority = rest[..<authorityEnd]
        var path = String(rest[authorityEnd...])
        if path.isEmpty || path.hasPrefix("?") { path = "/" + path }
        if let at = authority.lastIndex(of: "@") {
            userInfo = String(authority[..<at])
            authority = authority[authority.index(after: at)...]
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
