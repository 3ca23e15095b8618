/// The current state of a check as the API reports it.
public enum CheckState: String, Sendable, CaseIterable {
    case up, down, unknown, paused

    /// The state from the newest results (ok or not, newest first) and the check's `retries`: down after
    /// `retries + 1` consecutive failures; up when a success came after fewer failures than that; unknown with no
    /// results, or with only failures too few to call it down (the check never succeeded yet). Only the first
    /// `retries + 1` results matter.
    public static func derive(paused: Bool, retries: Int, newestFirst results: [Bool]) -> CheckState {
        if paused { return .paused }
        let window = results.prefix(max(0, retries) + 1)
        if window.isEmpty { return .unknown }
        if window.contains(true) { return .up }
        return window.count == max(0, retries) + 1 ? .down : .unknown
    }
}
