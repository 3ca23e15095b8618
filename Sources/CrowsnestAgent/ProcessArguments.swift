#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The command line the agent was started with.
///
/// Normally `CommandLine.arguments`. Under an `LD_PRELOAD` of libfaketime (how operators try an agent with a
/// wrong clock) the Swift runtime sees no arguments at all, and the agent would print its usage and exit; the
/// kernel's copy in `/proc/self/cmdline` is read instead.
public enum ProcessArguments {
    /// The program name followed by its arguments.
    public static func current(
        runtime: [String] = CommandLine.arguments, procCmdline: () -> [UInt8]? = readProcCmdline
    ) -> [String] {
        if !runtime.isEmpty { return runtime }
        guard let bytes = procCmdline() else { return runtime }
        return split(cmdline: bytes)
    }

    /// Splits `/proc/<pid>/cmdline` (arguments each ended by a NUL byte) into strings.
    public static func split(cmdline bytes: [UInt8]) -> [String] {
        var arguments = bytes.split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        if bytes.last == 0 { arguments.removeLast() }
        return arguments
    }

    /// The kernel's copy of this process's command line; nil when unreadable.
    public static func readProcCmdline() -> [UInt8]? {
        (try? Data(contentsOf: URL(fileURLWithPath: "/proc/self/cmdline"))).map { Array($0) }
    }
}
