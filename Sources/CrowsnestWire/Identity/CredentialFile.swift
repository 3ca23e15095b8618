#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Small POSIX helpers to keep keys and certificates on disk safely.
///
/// Files are written to a temporary sibling created with the final permissions and then renamed over the target,
/// so a crash never leaves a half-written key and a private key is never readable by others, even briefly.
public enum CredentialFile {
    /// Writes `contents` to `path` atomically (temporary file, fsync, rename) with permission bits `mode`.
    public static func writeAtomically(_ contents: String, to path: String, mode: mode_t) throws(CredentialFileError) {
        let temporaryPath = "\(path).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let descriptor = open(temporaryPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard descriptor >= 0 else {
            throw .cannotWrite(path: temporaryPath, reason: lastErrorText())
        }
        var succeeded = false
        defer {
            if !succeeded { unlink(temporaryPath) }
        }
        // The umask may have removed bits from `mode` at creation; set them exactly.
        guard fchmod(descriptor, mode) == 0 else {
            let reason = lastErrorText()
            close(descriptor)
            throw .cannotWrite(path: temporaryPath, reason: reason)
        }
        let bytes = Array(contents.utf8)
        var written = 0
        while written < bytes.count {
            let result = bytes.withUnsafeBytes { buffer in
                write(descriptor, buffer.baseAddress! + written, buffer.count - written)
            }
            if result < 0 {
                if errno == EINTR { continue }
                let reason = lastErrorText()
                close(descriptor)
                throw .cannotWrite(path: temporaryPath, reason: reason)
            }
            written += result
        }
        guard fsync(descriptor) == 0 else {
            let reason = lastErrorText()
            close(descriptor)
            throw .cannotWrite(path: temporaryPath, reason: reason)
        }
        close(descriptor)
        guard rename(temporaryPath, path) == 0 else {
            throw .cannotWrite(path: path, reason: lastErrorText())
        }
        succeeded = true
        syncDirectory(containing: path)
    }

    /// Reads the whole file at `path` as UTF-8 text, or returns nil when it does not exist.
    public static func readIfPresent(_ path: String) throws(CredentialFileError) -> String? {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        if descriptor < 0 {
            if errno == ENOENT { return nil }
            throw .cannotRead(path: path, reason: lastErrorText())
        }
        defer { close(descriptor) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16_384)
        while true {
            let count = chunk.withUnsafeMutableBytes { buffer in
                read(descriptor, buffer.baseAddress!, buffer.count)
            }
            if count < 0 {
                if errno == EINTR { continue }
                throw .cannotRead(path: path, reason: lastErrorText())
            }
            if count == 0 { break }
            bytes.append(contentsOf: chunk[0..<count])
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Reads the whole file at `path` as UTF-8 text; a missing file is an error.
    public static func readRequired(_ path: String) throws(CredentialFileError) -> String {
        guard let text = try readIfPresent(path) else {
            throw .cannotRead(path: path, reason: "no such file")
        }
        return text
    }

    /// Creates the directory at `path` (and its parents) with permission bits `mode` when it does not exist yet.
    public static func createDirectory(_ path: String, mode: mode_t = 0o700) throws(CredentialFileError) {
        var prefix = path.hasPrefix("/") ? "/" : ""
        for component in path.split(separator: "/") {
            prefix += component
            if mkdir(prefix, mode) != 0 && errno != EEXIST {
                throw .cannotCreateDirectory(path: prefix, reason: lastErrorText())
            }
            prefix += "/"
        }
    }

    /// The permission bits of the file at `path`, or nil when it cannot be examined.
    public static func permissions(of path: String) -> mode_t? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return info.st_mode & 0o7777
    }

    /// Joins a directory and a file name with one slash.
    public static func join(_ directory: String, _ name: String) -> String {
        directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }

    private static func syncDirectory(containing path: String) {
        let directory: String
        if let slash = path.lastIndex(of: "/") {
            directory = slash == path.startIndex ? "/" : String(path[..<slash])
        } else {
            directory = "."
        }
        let descriptor = open(directory, O_RDONLY | O_CLOEXEC)
        if descriptor >= 0 {
            _ = fsync(descriptor)
            close(descriptor)
        }
    }

    private static func lastErrorText() -> String {
        String(cString: strerror(errno))
    }
}

/// Why a credential file could not be read or written.
public enum CredentialFileError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Writing the file failed.
    case cannotWrite(path: String, reason: String)
    /// Reading the file failed.
    case cannotRead(path: String, reason: String)
    /// Creating a directory failed.
    case cannotCreateDirectory(path: String, reason: String)

    /// A human-readable explanation naming the file and the system's reason.
    public var description: String {
        switch self {
        case .cannotWrite(let path, let reason): return "cannot write \(path): \(reason)"
        case .cannotRead(let path, let reason): return "cannot read \(path): \(reason)"
        case .cannotCreateDirectory(let path, let reason): return "cannot create directory \(path): \(reason)"
        }
    }
}
