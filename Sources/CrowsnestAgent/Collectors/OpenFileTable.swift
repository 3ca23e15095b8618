#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Synchronization

/// The cgroup and `/proc` files a sweep reads, kept open between sweeps and read with `pread` at offset 0.
///
/// Opening a pseudo-file costs several times what reading it does (path walk, permission checks, the kernel
/// building its state), and the agent reads about ten per container per sweep. A file the last sweep did not read
/// is closed at its end (`closeUnused`), so a stopped or removed container's files go with it. A kept descriptor
/// whose file went away (a restarted container's new cgroup, a reused pid) fails with ENOENT, ESTALE, ENODEV or
/// ESRCH, and is reopened once.
///
/// Used through `CollectorFile.withContents`, while `CollectorFile.openFiles` names a table (the sampler sets it
/// for its sweeps); everything else opens, reads and closes as before.
public final class OpenFileTable: Sendable {
    private struct State {
        var descriptors: [String: Int32] = [:]
        var used: Set<String> = []
    }

    private let state = Mutex(State())

    public init() {}

    deinit {
        state.withLock { state in
            for fd in state.descriptors.values { close(fd) }
        }
    }

    /// How many files are open now.
    public var openCount: Int { state.withLock { $0.descriptors.count } }

    /// Closes every file not read since the last call; returns how many were closed.
    @discardableResult
    public func closeUnused() -> Int {
        state.withLock { state in
            var closed = 0
            for (path, fd) in state.descriptors where !state.used.contains(path) {
                close(fd)
                state.descriptors[path] = nil
                closed += 1
            }
            state.used.removeAll(keepingCapacity: true)
            return closed
        }
    }

    /// The kept descriptor of `path` (opened now if needed, or again with `reopen`); nil when it does not exist.
    func descriptor(for path: String, reopen: Bool = false) throws -> Int32? {
        try state.withLock { state in
            state.used.insert(path)
            if let fd = state.descriptors[path] {
                guard reopen else { return fd }
                close(fd)
                state.descriptors[path] = nil
            }
            let fd = path.withCString { open($0, O_RDONLY | O_CLOEXEC) }
            if fd < 0 {
                let code = errno
                if CollectorFile.isGone(code) || code == ENOTDIR { return nil }
                throw CollectorError.cannotRead(path: path, errno: code)
            }
            state.descriptors[path] = fd
            return fd
        }
    }
}
