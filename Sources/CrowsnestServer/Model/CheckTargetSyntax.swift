import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Syntax of the addresses a check names: URLs, `host:port`, DNS names, connection strings, container selectors.
/// Each function returns nil when the text is acceptable, else what is wrong, phrased to follow the field's name
/// ("target must …"). Only the syntax is checked here: where an address leads is the probe's SSRF guard's concern.
enum CheckTargetSyntax {
    /// Longest DNS name (without a trailing dot) and label.
    static let maximumDNSNameLength = 253
    static let maximumDNSLabelLength = 63

    /// An absolute `http` or `https` URL with a host.
    static func httpURLProblem(_ text: String) -> String? {
        urlProblem(text, schemes: ["http", "https"], example: "https://example.com/health")
    }

    /// A `postgres://` or `postgresql://` connection URL with a host.
    static func postgresURLProblem(_ text: String) -> String? {
        urlProblem(text, schemes: ["postgres", "postgresql"], example: "postgres://monitor:secret@db.example.com:5432/app")
    }

    /// `host:port`: a DNS name, an IPv4 address or a bracketed IPv6 address, and a port from 1 to 65535.
    static func hostPortProblem(_ text: String) -> String? {
        let example = "be host:port such as db.example.com:5432 or [2001:db8::1]:443"
        guard let (host, port) = splitHostPort(text) else {
            return "must \(example) (got \"\(text)\")"
        }
        guard let port else { return "must \(example): the port is missing (got \"\(text)\")" }
        if let problem = portProblem(port) { return problem + " (got \"\(text)\")" }
        if let problem = hostProblem(host) { return problem }
        return nil
    }

    /// `host` or `host:port` (port defaults to the protocol's); a bare IPv6 address is accepted without brackets.
    static func hostOptionalPortProblem(_ text: String) -> String? {
        if isIPv6(text) { return nil }
        guard let (host, port) = splitHostPort(text) else {
            return "must be a host or host:port such as 9.9.9.9 or [2001:db8::1]:53 (got \"\(text)\")"
        }
        if let port, let problem = portProblem(port) { return problem + " (got \"\(text)\")" }
        return hostProblem(host)
    }

    /// A DNS name: dot-separated labels of letters, digits, '-' and '_', at most 253 characters.
    static func dnsNameProblem(_ text: String) -> String? {
        guard !text.isEmpty else { return "must be a DNS name such as example.com (got an empty string)" }
        guard text.unicodeScalars.allSatisfy(\.isASCII) else {
            return "must be an ASCII DNS name; write an internationalised name in its xn-- (punycode) form (got \"\(text)\")"
        }
        let name = text.hasSuffix(".") ? String(text.dropLast()) : text
        guard name.utf8.count <= maximumDNSNameLength else {
            return "must be a DNS name of at most \(maximumDNSNameLength) characters (got \(name.utf8.count))"
        }
        for label in name.split(separator: ".", omittingEmptySubsequences: false) {
            guard !label.isEmpty, label.utf8.count <= maximumDNSLabelLength else {
                return "must be a DNS name whose dot-separated labels are 1 to \(maximumDNSLabelLength) characters long (got \"\(text)\")"
            }
            guard label.unicodeScalars.allSatisfy({ isAlphanumeric($0) || $0 == "-" || $0 == "_" }),
                  label.first != "-", label.last != "-"
            else {
                return "must be a DNS name of letters, digits, '-' and '_' (no label starting or ending with '-') (got \"\(text)\")"
            }
        }
        return nil
    }

    /// A Docker container name, or `label=key` / `label=key=value` to pick a container by label.
    static func dockerSelectorProblem(_ text: String) -> String? {
        if text.hasPrefix("label=") {
            let label = text.dropFirst("label=".count)
            let key = label.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)[0]
            guard !key.isEmpty, !label.unicodeScalars.contains(where: { $0.properties.isWhitespace || isControl($0) }) else {
                return "must name a label as label=key or label=key=value, without spaces (got \"\(text)\")"
            }
            return nil
        }
        // Docker's own rule for container names: [a-zA-Z0-9][a-zA-Z0-9_.-]*
        let name = text.hasPrefix("/") ? Substring(text.dropFirst()) : Substring(text)
        guard let first = name.unicodeScalars.first, isAlphanumeric(first),
              name.unicodeScalars.allSatisfy({ isAlphanumeric($0) || $0 == "_" || $0 == "." || $0 == "-" })
        else {
            return "must be a container name (letters, digits, '_', '.', '-', starting with a letter or digit) or label=key=value (got \"\(text)\")"
        }
        return nil
    }

    // MARK: - Pieces

    private static func urlProblem(_ text: String, schemes: Set<String>, example: String) -> String? {
        let list = schemes.sorted().joined(separator: " or ")
        guard !text.unicodeScalars.contains(where: { $0.properties.isWhitespace || isControl($0) }) else {
            return "must be a URL without spaces or control characters, such as \(example)"
        }
        guard let components = URLComponents(string: text), let scheme = components.scheme?.lowercased() else {
            return "must be an absolute URL such as \(example) (got \"\(text)\")"
        }
        guard schemes.contains(scheme) else {
            return "must be a URL with the scheme \(list) (got \"\(scheme)\")"
        }
        guard let host = components.percentEncodedHost, !host.isEmpty, host != "[]" else {
            return "must name a host, as in \(example) (got \"\(text)\")"
        }
        if let port = components.port, !(1...65535).contains(port) {
            return "must have a port from 1 to 65535 (got \(port))"
        }
        return nil
    }

    /// (host, port text or nil) from `host`, `host:port`, `[v6]` or `[v6]:port`; nil when the shape is wrong.
    private static func splitHostPort(_ text: String) -> (host: String, port: Substring?)? {
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            let host = String(text[text.index(after: text.startIndex)..<close])
            let rest = text[text.index(after: close)...]
            guard isIPv6(host) else { return nil }
            if rest.isEmpty { return (host, nil) }
            guard rest.hasPrefix(":") else { return nil }
            return (host, rest.dropFirst())
        }
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        switch parts.count {
        case 1: return (text, nil)
        case 2: return (String(parts[0]), parts[1])
        default: return nil  // an IPv6 address without brackets, or stray colons
        }
    }

    private static func portProblem(_ port: Substring) -> String? {
        guard !port.isEmpty, port.count <= 5, port.allSatisfy({ $0.isASCII && $0.isNumber }), let value = Int(port),
              (1...65535).contains(value)
        else {
            return "must have a port from 1 to 65535"
        }
        return nil
    }

    /// A DNS name or an IPv4/IPv6 address.
    static func hostProblem(_ host: String) -> String? {
        if host.isEmpty { return "must name a host (got an empty host)" }
        if isIPv6(host) { return nil }
        return dnsNameProblem(host)
    }

    private static func isIPv6(_ text: String) -> Bool {
        var address = in6_addr()
        return text.withCString { inet_pton(AF_INET6, $0, &address) } == 1
    }

    private static func isAlphanumeric(_ scalar: Unicode.Scalar) -> Bool {
        ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar) || ("0"..."9").contains(scalar)
    }

    static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        scalar.properties.generalCategory == .control
    }
}
