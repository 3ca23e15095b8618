import NIOCore

/// A network in CIDR notation (`10.0.0.0/8`, `2001:db8::/32`, or one address): the server's `trusted_proxies`,
/// a tenant's allowed networks and the address classes of the SSRF guard (`AddressGuard`).
public struct IPNetwork: Hashable, Sendable, CustomStringConvertible {
    public let address: IPAddress
    public let prefixLength: Int

    /// Nil when `text` is not an address with an optional `/prefix` that fits the address family.
    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = IPAddress(String(parts[0])) else { return nil }
        let bits = address.bytes.count * 8
        if parts.count == 2 {
            guard let prefix = Int(parts[1]), (0...bits).contains(prefix) else { return nil }
            prefixLength = prefix
        } else {
            prefixLength = bits
        }
        self.address = address
    }

    /// Whether `bytes` (4 or 16, network order) lie in this network.
    public func contains(_ bytes: [UInt8]) -> Bool {
        guard bytes.count == address.bytes.count else { return false }
        var remaining = prefixLength
        for (mine, theirs) in zip(address.bytes, bytes) where remaining > 0 {
            let mask: UInt8 = remaining >= 8 ? 0xFF : ~(0xFF >> UInt8(remaining))
            if mine & mask != theirs & mask { return false }
            remaining -= 8
        }
        return true
    }

    public func contains(_ address: SocketAddress?) -> Bool {
        guard let bytes = Self.bytes(of: address) else { return false }
        return contains(bytes)
    }

    /// The raw address bytes of an IPv4 or IPv6 socket address.
    public static func bytes(of address: SocketAddress?) -> [UInt8]? {
        switch address {
        case .v4(let v4):
            return withUnsafeBytes(of: v4.address.sin_addr) { Array($0) }
        case .v6(let v6):
            return withUnsafeBytes(of: v6.address.sin6_addr) { Array($0) }
        default:
            return nil
        }
    }

    public var description: String { "\(address.text)/\(prefixLength)" }
}
