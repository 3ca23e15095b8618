import CrowsnestWire
import Foundation

/// The opaque string id of a monitored target, as the API routes and status spans use it.
///
/// Hosts are `h-<agent uuid>`; containers are `c-<agent uuid>-<container name>` (keyed by name, so a
/// service re-created by compose keeps its history); checks are `k-<check uuid>`.
public enum TargetID: Hashable, Sendable, CustomStringConvertible {
    case host(agentID: UUID)
    case container(agentID: UUID, name: String)
    case check(checkID: UUID)

    /// Parses an id from a URL path; nil when it is not one of the three shapes. A NUL byte (which PostgreSQL
    /// cannot hold, and at which UUID parsing would silently stop) or a container name longer than agents may
    /// send is not an id.
    public init?(_ string: String) {
        let uuidLength = 36
        guard !WireTextCleaner.containsNul(string), string.utf8.count <= 2 + uuidLength + 1 + WireTextBounds.nameBytes else { return nil }
        if string.hasPrefix("h-") || string.hasPrefix("k-") {
            guard string.utf8.count == 2 + uuidLength else { return nil }
        }
        if string.hasPrefix("h-") {
            guard let id = UUID(uuidString: String(string.dropFirst(2))) else { return nil }
            self = .host(agentID: id)
        } else if string.hasPrefix("k-") {
            guard let id = UUID(uuidString: String(string.dropFirst(2))) else { return nil }
            self = .check(checkID: id)
        } else if string.hasPrefix("c-") {
            let rest = string.dropFirst(2)
            guard rest.count > uuidLength + 1,
                  let id = UUID(uuidString: String(rest.prefix(uuidLength))),
                  rest.dropFirst(uuidLength).first == "-"
            else { return nil }
            self = .container(agentID: id, name: String(rest.dropFirst(uuidLength + 1)))
        } else {
            return nil
        }
    }

    public var description: String {
        switch self {
        case .host(let agentID): return "h-\(agentID.uuidString.lowercased())"
        case .container(let agentID, let name): return "c-\(agentID.uuidString.lowercased())-\(name)"
        case .check(let checkID): return "k-\(checkID.uuidString.lowercased())"
        }
    }

    /// The kind of the ids starting with `prefix` (`h`, `c`, `k`, the first letter of `description`), or nil.
    public static func kind(prefix: String) -> String? {
        switch prefix {
        case "h": "host"
        case "c": "container"
        case "k": "check"
        default: nil
        }
    }

    /// "host", "container" or "check".
    public var kind: String {
        switch self {
        case .host: return "host"
        case .container: return "container"
        case .check: return "check"
        }
    }
}
