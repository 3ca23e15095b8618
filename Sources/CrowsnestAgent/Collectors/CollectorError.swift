#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Why a stats collector (cgroup or `/proc` reader) could not produce its figures.
///
/// Missing *optional* files never surface here: they read as 0. These errors mean the
/// container's cgroup is gone, a core file is unreadable, or the host's `/proc` is not where it was configured.
public enum CollectorError: Error, Sendable, Equatable, CustomStringConvertible {
    /// No cgroup directory could be found for the container; `searched` lists every directory tried.
    case cgroupNotFound(dockerID: String, pid: Int32, root: String, searched: [String])
    /// A file exists (or should) but could not be opened or read; `errno` is the system error number.
    case cannotRead(path: String, errno: Int32)
    /// A file that must exist is missing (for example `/proc/stat` under a misconfigured proc root).
    case missingFile(path: String)
    /// A file was read but its content is not in the expected format.
    case malformed(path: String, detail: String)

    /// A one-line, human-readable explanation that names the file or container involved.
    public var description: String {
        switch self {
        case let .cgroupNotFound(dockerID, pid, root, searched):
            let who = dockerID.isEmpty ? "pid \(pid)" : "container \(dockerID.prefix(12)) (pid \(pid))"
            let tried = searched.isEmpty ? "nothing to try (no pid and no container id)" : "looked in " + searched.joined(separator: ", ")
            return "no cgroup directory found for \(who) under \(root): \(tried)"
        case let .cannotRead(path, code):
            return "cannot read \(path): \(String(cString: strerror(code)))"
        case let .missingFile(path):
            return "cannot read \(path): no such file"
        case let .malformed(path, detail):
            return "cannot parse \(path): \(detail)"
        }
    }
}
