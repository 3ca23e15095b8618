#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// An IPv4 or IPv6 address in network byte order, as it goes into a certificate's subject alternative names.
///
/// The one place that tells an address from a host name (by `inet_pton`, not by how the text looks): the server
/// uses it to put its addresses into its certificate, the agent to leave addresses out of SNI.
public struct IPAddress: Hashable, Sendable {
    /// 4 bytes for IPv4, 16 for IPv6.
    public let bytes: [UInt8]
    /// The text it was read from.
    public let text: String

    /// Nil when `text` is not a literal IPv4 or IPv6 address (a DNS name, or an IPv6 address in brackets).
    public init?(_ text: String) {
        var v4 = in_addr()
        var v6 = in6_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            self.bytes = withUnsafeBytes(of: &v4) { Array($0) }
        } else if inet_pton(AF_INET6, text, &v6) == 1 {
            self.bytes = withUnsafeBytes(of: &v6) { Array($0) }
        } else {
            return nil
        }
        self.text = text
    }

    /// From 4 (IPv4) or 16 (IPv6) bytes in network order, as a resolver or a socket gives them; nil otherwise.
    public init?(bytes: [UInt8]) {
        guard bytes.count == 4 || bytes.count == 16 else { return nil }
        let family = bytes.count == 4 ? AF_INET : AF_INET6
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        let written = bytes.withUnsafeBytes { raw in
            inet_ntop(family, raw.baseAddress, &text, socklen_t(text.count))
        }
        guard written != nil else { return nil }
        self.bytes = bytes
        self.text = String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
