extension StringProtocol {
    /// The text without leading and trailing whitespace and line breaks (FoundationEssentials, which the agent
    /// limits itself to, has no `trimmingCharacters(in:)`).
    public func trimmingWhitespace() -> String {
        guard let first = firstIndex(where: { !$0.isWhitespace }), let last = lastIndex(where: { !$0.isWhitespace }) else {
            return ""
        }
        return String(self[first...last])
    }
}
