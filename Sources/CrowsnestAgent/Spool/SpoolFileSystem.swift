#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Thin, throwing wrappers over the POSIX calls the spool and the sequence store need.
/// Every error names the operation and the path so the message is actionable.
enum SpoolFileSystem {
    static func reason(_ code: Int32) -> String {
        if let message = strerror(code) { return String(cString: message) }
        return "errno \(code)"
    }

    static func fail(_ operation: String, _ path: String, _ code: Int32 = errno) -> SpoolError {
        .io(operation: operation, path: path, reason: reason(code))
    }

    /// `open(2)`, retried on EINTR, with O_CLOEXEC always set.
    static func open(_ path: String, _ flags: Int32, mode: mode_t = 0o600) throws -> Int32 {
        while true {
            let fd = Glibc_open(path, flags | O_CLOEXEC, mode)
            if fd >= 0 { return fd }
            if errno == EINTR { continue }
            throw fail("open", path)
        }
    }

    private static func Glibc_open(_ path: String, _ flags: Int32, _ mode: mode_t) -> Int32 {
        #if canImport(Glibc) || canImport(Musl)
        return Glibc.open(path, flags, mode)
        #else
        return Darwin.open(path, flags, mode)
        #endif
    }

    static func close(_ fd: Int32) {
        #if canImport(Glibc) || canImport(Musl)
        _ = Glibc.close(fd)
        #else
        _ = Darwin.close(fd)
        #endif
    }

    /// Writes every byte, looping over short writes and EINTR.
    static func writeAll(_ fd: Int32, _ bytes: [UInt8], path: String) throws {
        try bytes.withUnsafeBytes { buffer in
            var written = 0
            while written < buffer.count {
                let result = write(fd, buffer.baseAddress! + written, buffer.count - written)
                if result < 0 {
                    if errno == EINTR { continue }
                    throw fail("write", path)
                }
                written += result
            }
        }
    }

    /// Reads up to `count` bytes at `offset`; returns fewer only at end of file.
    static func pread(_ fd: Int32, count: Int, offset: Int, path: String) throws -> [UInt8] {
        if count == 0 { return [] }
        var bytes = [UInt8](repeating: 0, count: count)
        var filled = 0
        try bytes.withUnsafeMutableBytes { buffer in
            while filled < count {
                #if canImport(Glibc) || canImport(Musl)
                let result = Glibc.pread(fd, buffer.baseAddress! + filled, count - filled, off_t(offset + filled))
                #else
                let result = Darwin.pread(fd, buffer.baseAddress! + filled, count - filled, off_t(offset + filled))
                #endif
                if result < 0 {
                    if errno == EINTR { continue }
                    throw fail("read", path)
                }
                if result == 0 { break }
                filled += result
            }
        }
        if filled < count { bytes.removeSubrange(filled...) }
        return bytes
    }

    /// Flushes file data (and the size, which is what matters after an append) to stable storage.
    static func syncData(_ fd: Int32, path: String) throws {
        #if os(Linux)
        let result = fdatasync(fd)
        #else
        let result = fsync(fd)
        #endif
        if result != 0 { throw fail("fdatasync", path) }
    }

    /// Full `fsync(2)`, used for new files and directories.
    static func sync(_ fd: Int32, path: String) throws {
        if fsync(fd) != 0 { throw fail("fsync", path) }
    }

    /// Makes a directory entry change (create, rename, unlink) durable.
    static func syncDirectory(_ path: String) throws {
        let fd = try open(path, O_RDONLY | O_DIRECTORY)
        defer { close(fd) }
        try sync(fd, path: path)
    }

    static func size(_ fd: Int32, path: String) throws -> Int {
        var info = stat()
        if fstat(fd, &info) != 0 { throw fail("stat", path) }
        return Int(info.st_size)
    }

    static func truncate(_ fd: Int32, to length: Int, path: String) throws {
        if ftruncate(fd, off_t(length)) != 0 { throw fail("truncate", path) }
    }

    /// Removes a file; a file that is already gone is not an error.
    static func remove(_ path: String) throws {
        if unlink(path) != 0 && errno != ENOENT { throw fail("delete", path) }
    }

    static func rename(_ from: String, _ to: String) throws {
        #if canImport(Glibc) || canImport(Musl)
        let result = Glibc.rename(from, to)
        #else
        let result = Darwin.rename(from, to)
        #endif
        if result != 0 { throw fail("rename to \(to)", from) }
    }

    /// `mkdir -p` with mode 0700 for the directories it creates.
    static func makeDirectories(_ path: String) throws {
        var prefix = path.hasPrefix("/") ? "/" : ""
        for component in path.split(separator: "/") {
            prefix += component
            if mkdir(prefix, 0o700) != 0 && errno != EEXIST {
                throw fail("create directory", prefix)
            }
            prefix += "/"
        }
    }

    /// Names (not paths) of the entries in a directory, without "." and "..".
    static func list(_ path: String) throws -> [String] {
        guard let dir = opendir(path) else { throw fail("list directory", path) }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: &entry.pointee.d_name) {
                String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self))
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// Whole file contents, or `nil` if the file does not exist.
    static func readIfExists(_ path: String) throws -> [UInt8]? {
        var fd: Int32
        repeat { fd = Glibc_open(path, O_RDONLY | O_CLOEXEC, 0) } while fd < 0 && errno == EINTR
        if fd < 0 {
            if errno == ENOENT { return nil }
            throw fail("open", path)
        }
        defer { close(fd) }
        let length = try size(fd, path: path)
        return try pread(fd, count: length, offset: 0, path: path)
    }

    /// Replaces `path` atomically: write a temp file, fsync it, rename it over the
    /// target, fsync the directory. A crash leaves either the old or the new content.
    static func atomicReplace(_ path: String, with bytes: [UInt8]) throws {
        let temporary = path + ".tmp"
        let fd = try open(temporary, O_WRONLY | O_CREAT | O_TRUNC)
        do {
            try writeAll(fd, bytes, path: temporary)
            try sync(fd, path: temporary)
        } catch {
            close(fd)
            throw error
        }
        close(fd)
        try rename(temporary, path)
        try syncDirectory(directory(of: path))
    }

    static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        if slash == path.startIndex { return "/" }
        return String(path[..<slash])
    }
}
