import CrowsnestWire
import NIOCore
import NIOPosix
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Resolves a probe's host and puts every address it resolves to through the SSRF guard: a name with one refused
/// address is refused whole (a name that resolves to a public and a loopback address must not reach the loopback
/// one by luck), and the addresses returned are the ones the probe dials — never a second lookup.
public struct GuardedResolver: Sendable {
    public let addressGuard: AddressGuard

    public init(addressGuard: AddressGuard) {
        self.addressGuard = addressGuard
    }

    /// The checked addresses of `host` at `port`, in the resolver's order; throws `ProbeFailure` with the reason
    /// when the name does not resolve or an address is refused.
    public func resolve(host: String, port: Int) async throws -> [SocketAddress] {
        if let literal = IPAddress(host) {
            // An address, not a name: judged as written, no lookup.
            if let refusal = addressGuard.refusal(for: literal) { throw ProbeFailure(refusal) }
            return [try SocketAddress(ipAddress: host, port: port)]
        }
        let addresses = try await Self.lookUp(host: host, port: port)
        guard !addresses.isEmpty else { throw ProbeFailure("\(host) resolves to no address") }
        for address in addresses {
            guard let bytes = IPNetwork.bytes(of: address), let ip = IPAddress(bytes: bytes) else {
                throw ProbeFailure("\(host) resolves to \(address), which is not an IP address")
            }
            if let refusal = addressGuard.refusal(for: ip) {
                throw ProbeFailure("\(host) resolves to \(ip.text): " + refusal)
            }
        }
        return addresses
    }

    /// getaddrinfo on NIO's thread pool (it blocks), never on an event loop.
    static func lookUp(host: String, port: Int) async throws -> [SocketAddress] {
        try await NIOThreadPool.singleton.runIfActive {
            var hints = addrinfo()
            hints.ai_family = AF_UNSPEC
            #if canImport(Darwin)
            hints.ai_socktype = SOCK_STREAM
            #else
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
            #endif
            var list: UnsafeMutablePointer<addrinfo>?
            let status = getaddrinfo(host, String(port), &hints, &list)
            guard status == 0 else {
                let reason = gai_strerror(status).map { String(cString: $0) } ?? "error \(status)"
                throw ProbeFailure("cannot resolve \(host): \(reason)")
            }
            defer { freeaddrinfo(list) }
            var addresses: [SocketAddress] = []
            var seen = Set<SocketAddress>()
            var entry = list
            while let info = entry?.pointee {
                defer { entry = info.ai_next }
                guard let raw = info.ai_addr else { continue }
                let address: SocketAddress
                switch Int32(raw.pointee.sa_family) {
                case AF_INET:
                    address = raw.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { SocketAddress($0.pointee, host: host) }
                case AF_INET6:
                    address = raw.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { SocketAddress($0.pointee, host: host) }
                default:
                    continue
                }
                if seen.insert(address).inserted { addresses.append(address) }
            }
            return addresses
        }
    }
}
