/// The operator's `key=value` labels of an agent (`labels: [env=prod]` in its configuration), which checks select
/// agents by (`run_on` labels). One rule for the agent's configuration, the server reading `Hello` and the API.
public enum AgentLabels {
    /// At most this many labels per agent (and per placement).
    public static let maximumCount = 20
    /// Longest key, in characters.
    public static let maximumKeyLength = 100
    /// Longest value, in characters.
    public static let maximumValueLength = 200

    /// What is wrong with `label`, in words for the operator, or nil when it is a valid `key=value` label: the key
    /// of ASCII letters, digits, '.', '_', '-', '/' (at most 100), the value at most 200 characters without
    /// control characters.
    public static func problem(_ label: String) -> String? {
        let parts = label.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty else {
            return "must be key=value, such as env=prod (got \"\(WireTextCleaner.excerpt(label))\")"
        }
        let key = parts[0], value = parts[1]
        guard key.unicodeScalars.count <= maximumKeyLength,
              key.unicodeScalars.allSatisfy({ scalar in
                  scalar.isASCII && (("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar)
                      || ("0"..."9").contains(scalar) || "._-/".unicodeScalars.contains(scalar))
              })
        else {
            return "must have a key of at most \(maximumKeyLength) letters, digits, '.', '_', '-' or '/' (got \"\(WireTextCleaner.excerpt(label))\")"
        }
        guard value.unicodeScalars.count <= maximumValueLength,
              !value.unicodeScalars.contains(where: { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) })
        else {
            return "must have a value of at most \(maximumValueLength) characters without control characters"
        }
        return nil
    }
}
