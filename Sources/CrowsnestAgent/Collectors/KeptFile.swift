#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Synchronization

/// One kernel pseudo-file (a cgroup file, a `/proc` table) opened once and read with `pread` from offset 0 on every
/// sweep, into a stack buffer: no path walk, no allocation.
///
/// Opening a pseudo-file costs several times what reading it does (path walk, permission checks, the kernel
/// building its state), and the agent reads about ten per container per sweep. The file is opened at its first
/// read, kept while its owner lives (a container's collectors live from its start to its stop; the host's for the
/// agent's life) and closed on deinit. A kept descriptor whose file went away (a restarted container's new cgroup,
/// a reused pid) fails with ENOENT, ESTALE, ENODEV or ESRCH and is reopened once; a file that does not exist is
/// tried again at the next read, so a controller enabled later is picked up.
final class KeptFile: Sendable {
    /// Bytes read onto the stack before spilling to the heap; every cgroup file fits, large mount tables spill.
    static let stackCapacity = 8192

    /// The file's path, for errors and logs.
    let path: String
    /// The open descriptor, or -1 when the file is not open.
    private let descriptor = Mutex<Int32>(-1)

    init(_ path: String) {
        self.path = path
    }

    deinit {
        descriptor.withLock { fd in
            if fd >= 0 { close(fd) }
        }
    }

    /// Whether the file is open now.
    var isOpen: Bool { descriptor.withLock { $0 >= 0 } }

    /// Calls `body` with the file's whole content; nil when the file does not exist.
    /// - Throws: `CollectorError.cannotRead` for any other failure (permission denied, I/O error).
    func withContents<R>(_ body: (UnsafeBufferPointer<UInt8>) throws -> R) throws -> R? {
        var reopened = false
        while true {
            guard let fd = try openDescriptor(reopen: reopened) else { return nil }
            let outcome: Result<R?, CollectorError>? = try withUnsafeTemporaryAllocation(of: UInt8.self, capacity: Self.stackCapacity) { stack in
                guard let base = stack.baseAddress else { return .success(nil) }
                var offset = 0  // bytes read so far
                var heap: [UInt8]?  // once the stack buffer is full: everything so far, then each further read
                while true {
                    let (target, capacity) = heap == nil ? (base + offset, stack.count - offset) : (base, stack.count)
                    let n = pread(fd, target, capacity, off_t(offset))
                    if n < 0 {
                        let code = errno
                        if code == EINTR { continue }
                        if CollectorFile.isGone(code) { return nil }  // reopen
                        return .failure(.cannotRead(path: path, errno: code))
                    }
                    if n == 0 { break }
                    if heap != nil { heap!.append(contentsOf: UnsafeBufferPointer(start: base, count: n)) }
                    offset += n
                    if heap == nil && offset == stack.count { heap = Array(UnsafeBufferPointer(start: base, count: offset)) }
                }
                if let heap { return .success(try heap.withUnsafeBufferPointer { try body($0) }) }
                return .success(try body(UnsafeBufferPointer(start: base, count: offset)))
            }
            switch outcome {
            case .some(.success(let value)):
                return value
            case .some(.failure(let error)):
                throw error
            case .none:
                if reopened { return nil }
                reopened = true
            }
        }
    }

    /// For a kernel table that signals its changes with `POLLPRI` (`/proc/<pid>/mounts`): whether it changed since
    /// the last call. True when the file is not open yet or cannot be polled. Only the mount tables of procfs
    /// signal changes this way; for any other file the answer means nothing.
    func signalledChange() -> Bool {
        descriptor.withLock { fd in
            guard fd >= 0 else { return true }
            var entry = pollfd(fd: fd, events: Int16(POLLPRI), revents: 0)
            let ready = poll(&entry, 1, 0)
            guard ready >= 0 else { return true }
            return ready > 0 && entry.revents & Int16(POLLPRI | POLLERR) != 0
        }
    }

    /// The content as a `String` (small files whose text is kept, such as the boot id); nil when missing.
    func string() throws -> String? {
        try withContents { String(decoding: $0, as: UTF8.self) }
    }

    /// The first unsigned number in the file (`memory.current`, `pids.current`); nil when the file is missing or
    /// does not start with a number (for example "max").
    func number() throws -> UInt64? {
        try withContents { bytes -> UInt64? in
            var fields = CollectorFields(bytes[...])
            guard let first = fields.next() else { return nil }
            return CollectorParse.uint64(first)
        } ?? nil
    }

    /// The kept descriptor (opened now when needed, or again with `reopen`); nil when the file does not exist.
    private func openDescriptor(reopen: Bool) throws -> Int32? {
        try descriptor.withLock { fd in
            if fd >= 0 {
                guard reopen else { return fd }
                close(fd)
                fd = -1
            }
            let opened = path.withCString { open($0, O_RDONLY | O_CLOEXEC) }
            if opened < 0 {
                let code = errno
                if CollectorFile.isGone(code) || code == ENOTDIR { return nil }
                throw CollectorError.cannotRead(path: path, errno: code)
            }
            fd = opened
            return opened
        }
    }
}
