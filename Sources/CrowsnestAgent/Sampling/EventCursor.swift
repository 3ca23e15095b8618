import CrowsnestWire
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The time (Docker's, Unix nanoseconds) of the newest container event already in the spool, kept in the
/// state directory so that after a restart the event stream resumes from there with `since`: a container that
/// died while the agent was stopped still gets Docker's exact stop time (as far back as dockerd remembers).
public struct EventCursor: Sendable {
    /// The file holding the cursor (one decimal number).
    public let path: String

    /// File name of the cursor in the agent's state directory.
    public static let fileName = "docker-events.cursor"

    /// A cursor kept in `stateDirectory`.
    public init(stateDirectory: String) {
        self.path = stateDirectory.hasSuffix("/") ? stateDirectory + Self.fileName : stateDirectory + "/" + Self.fileName
    }

    /// The saved cursor; nil when none was saved or the file does not hold a positive number.
    public func load() -> Int64? {
        guard let data = FileManager.default.contents(atPath: path),
              let value = Int64(String(decoding: data, as: UTF8.self).trimmingWhitespace()),
              value > 0 else { return nil }
        return value
    }

    /// Replaces the cursor crash-safely (written beside it, then renamed over it).
    public func save(_ unixNano: Int64) throws {
        let temporary = path + ".next"
        guard FileManager.default.createFile(atPath: temporary, contents: Data("\(unixNano)\n".utf8)) else {
            throw EventCursorError(path: temporary, reason: "cannot write")
        }
        guard rename(temporary, path) == 0 else {
            throw EventCursorError(path: path, reason: "cannot replace (errno \(errno))")
        }
    }
}

/// The event cursor could not be saved.
public struct EventCursorError: Error, CustomStringConvertible, Sendable {
    public var path: String
    public var reason: String
    public var description: String { "event cursor \(path): \(reason)" }
}
