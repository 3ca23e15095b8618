import CrowsnestWire
import Foundation

extension CheckPlacement {
    /// The placement of a stored `run_on` object (as `CheckValidation` wrote it); nil for anything else.
    public init?(stored runOn: JSONValue) {
        guard case .object(let object) = runOn, case .string(let mode)? = object["mode"] else { return nil }
        var labels: [String] = []
        if case .array(let values)? = object["labels"] {
            for value in values {
                guard case .string(let label) = value else { return nil }
                labels.append(label)
            }
        }
        switch mode {
        case "any": self = .any
        case "server": self = .server
        case "labels": self = .labels(labels)
        case "all":
            guard case .integer(let quorum)? = object["quorum"] else { return nil }
            self = .all(labels: labels, quorum: Int(clamping: quorum))
        default: return nil
        }
    }

    /// Whether an agent carrying `labels` may run the check (every label the placement names, exactly).
    public func admits(agentLabels labels: Set<String>) -> Bool {
        switch self {
        case .any: return true
        case .server: return false
        case .labels(let wanted), .all(let wanted, _): return wanted.allSatisfy(labels.contains)
        }
    }
}

/// Which of the candidate runners gets a check: rendezvous (highest random weight) hashing of the check and the
/// runner. Stable — the same candidates give the same choice, on every replica — and even: a runner joining or
/// leaving moves only the checks it wins or held, and a check stays with its runner while the runner's lease holds.
public enum RunnerChoice {
    public static func pick(checkID: UUID, among candidates: [UUID]) -> UUID? {
        candidates.max { weight(checkID, $0) < weight(checkID, $1) }
    }

    /// FNV-1a over both ids' bytes, then a 64-bit finaliser (splitmix) so neighbouring ids spread.
    static func weight(_ check: UUID, _ runner: UUID) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for id in [check, runner] {
            withUnsafeBytes(of: id.uuid) { bytes in
                for byte in bytes {
                    hash ^= UInt64(byte)
                    hash = hash &* 0x0000_0100_0000_01b3
                }
            }
        }
        hash ^= hash >> 30
        hash = hash &* 0xbf58_476d_1ce4_e5b9
        hash ^= hash >> 27
        hash = hash &* 0x94d0_49bb_1331_11eb
        return hash ^ (hash >> 31)
    }
}
