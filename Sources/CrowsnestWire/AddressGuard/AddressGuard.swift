/// What kind of address an IP address is, as far as reaching it from a probe is concerned.
public enum AddressClass: String, Sendable, CaseIterable {
    case publicUnicast = "public"
    /// 127.0.0.0/8, ::1.
    case loopback
    /// 10/8, 172.16/12, 192.168/16, fc00::/7 (unique local), fec0::/10 (old site-local).
    case privateNetwork = "private"
    /// 100.64.0.0/10, shared address space (carrier-grade NAT, also Tailscale).
    case carrierGradeNAT = "carrier-grade NAT"
    /// 169.254.0.0/16, fe80::/10.
    case linkLocal = "link-local"
    /// Cloud instance metadata services: 169.254.169.254, 169.254.170.2, 100.100.100.200, fd00:ec2::254.
    case metadata = "cloud metadata"
    /// 0.0.0.0/8, :: (Linux connects 0.0.0.0 to the host itself).
    case unspecified
    /// 224.0.0.0/4, 255.255.255.255, ff00::/8.
    case multicastOrBroadcast = "multicast or broadcast"
    /// 240.0.0.0/4, 192.0.0.0/24, 198.18.0.0/15 and other ranges no service should be probed at.
    case reserved
}

/// The SSRF guard's decision for one address: every address a probe would dial (each one a name resolves to, on
/// every redirect hop) goes through `AddressGuard.refusal(for:)`, and the address checked is the one dialled.
///
/// Checks the server runs (and every request the server itself makes) never reach loopback, private, carrier-grade
/// NAT, link-local or metadata addresses, nor the server's own addresses, unless the tenant allowed the network.
/// Checks an agent runs may reach loopback and private networks (where nginx `stub_status` and PostgreSQL
/// usually listen), never link-local or metadata addresses unless allowed. Unspecified, multicast and broadcast
/// addresses are refused everywhere: there is nothing to probe there, and 0.0.0.0 reaches the host itself.
public struct AddressGuard: Sendable {
    /// Who runs the probe.
    public enum Runner: Sendable {
        case server
        case agent
    }

    public let runner: Runner
    /// Networks the tenant allowed (`crowsnest-server tenant allow-network`): reachable whatever their class.
    public let allowedNetworks: [IPNetwork]
    /// The server's own addresses, refused for server-run probes like loopback is.
    public let ownAddresses: [IPAddress]

    public init(runner: Runner, allowedNetworks: [IPNetwork] = [], ownAddresses: [IPAddress] = []) {
        self.runner = runner
        self.allowedNetworks = allowedNetworks
        self.ownAddresses = ownAddresses
    }

    /// Why `address` may not be dialled, in words for the operator; nil when it may.
    public func refusal(for address: IPAddress) -> String? {
        let effective = Self.embeddedIPv4(in: address) ?? address
        if allowedNetworks.contains(where: { $0.contains(address.bytes) || $0.contains(effective.bytes) }) {
            return nil
        }
        let addressClass = Self.classify(effective)
        // The words are built only for a refusal: every run of every check asks about the address it dials.
        var runs: String { runner == .server ? "checks the server runs" : "checks an agent runs" }
        var shown: String { effective.bytes == address.bytes ? address.text : "\(address.text) (\(effective.text))" }
        var allow: String { "allow it with `crowsnest-server tenant allow-network TENANT \(effective.text)/\(effective.bytes.count * 8)`" }
        switch addressClass {
        case .unspecified, .multicastOrBroadcast:
            return "address \(shown) is \(addressClass.rawValue): there is nothing to probe there"
        case .metadata, .linkLocal:
            return "address \(shown) is \(addressClass.rawValue), refused for \(runs); \(allow) if that is meant"
        case .loopback, .privateNetwork, .carrierGradeNAT, .reserved:
            guard runner == .server else { return nil }
            return "address \(shown) is \(addressClass.rawValue), refused for \(runs); \(allow) if that is meant"
        case .publicUnicast:
            if runner == .server, ownAddresses.contains(where: { $0.bytes == address.bytes || $0.bytes == effective.bytes }) {
                return "address \(shown) is the server's own, refused for \(runs); \(allow) if that is meant"
            }
            return nil
        }
    }

    /// The IPv4 address an IPv6 address stands for (IPv4-mapped ::ffff:a.b.c.d, IPv4-compatible ::a.b.c.d,
    /// NAT64 64:ff9b::/96, 6to4 2002:AABB:CCDD::/48), so it is judged as that address; nil for other addresses.
    public static func embeddedIPv4(in address: IPAddress) -> IPAddress? {
        let b = address.bytes
        guard b.count == 16 else { return nil }
        if b[0..<10].allSatisfy({ $0 == 0 }) && b[10] == 0xFF && b[11] == 0xFF {
            return IPAddress(bytes: Array(b[12..<16]))
        }
        if b[0..<12].allSatisfy({ $0 == 0 }) && !(b[12] == 0 && b[13] == 0 && b[14] == 0 && b[15] <= 1) {
            return IPAddress(bytes: Array(b[12..<16]))
        }
        if b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xFF && b[3] == 0x9B && b[4..<12].allSatisfy({ $0 == 0 }) {
            return IPAddress(bytes: Array(b[12..<16]))
        }
        if b[0] == 0x20 && b[1] == 0x02 {
            return IPAddress(bytes: Array(b[2..<6]))
        }
        return nil
    }

    /// The class of an address (IPv6 addresses carrying an IPv4 one are not unwrapped here: see `embeddedIPv4`).
    public static func classify(_ address: IPAddress) -> AddressClass {
        for (network, addressClass) in table where network.contains(address.bytes) {
            return addressClass
        }
        return .publicUnicast
    }

    /// Most specific first: metadata addresses sit inside link-local, private and carrier-grade NAT ranges.
    private static let table: [(IPNetwork, AddressClass)] = ([
        ("169.254.169.254/32", .metadata), ("169.254.170.2/32", .metadata), ("100.100.100.200/32", .metadata),
        ("fd00:ec2::254/128", .metadata),
        ("0.0.0.0/8", .unspecified), ("::/128", .unspecified),
        ("127.0.0.0/8", .loopback), ("::1/128", .loopback),
        ("10.0.0.0/8", .privateNetwork), ("172.16.0.0/12", .privateNetwork), ("192.168.0.0/16", .privateNetwork),
        ("fc00::/7", .privateNetwork), ("fec0::/10", .privateNetwork),
        ("100.64.0.0/10", .carrierGradeNAT),
        ("169.254.0.0/16", .linkLocal), ("fe80::/10", .linkLocal),
        ("224.0.0.0/4", .multicastOrBroadcast), ("255.255.255.255/32", .multicastOrBroadcast),
        ("ff00::/8", .multicastOrBroadcast),
        ("240.0.0.0/4", .reserved), ("192.0.0.0/24", .reserved), ("198.18.0.0/15", .reserved),
        ("100::/64", .reserved), ("2001:db8::/32", .reserved),
    ] as [(String, AddressClass)]).map { (IPNetwork($0.0)!, $0.1) }
}
