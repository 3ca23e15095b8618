import CrowsnestWire
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One mount kept for disk-space reporting.
public struct HostMount: Sendable, Equatable {
    /// The source device (`/dev/sda1`, `tank/data`).
    public var device: String
    /// Where it is mounted, escapes such as `\040` decoded.
    public var mountpoint: String
    /// The filesystem type (`ext4`, `xfs`, `zfs`).
    public var fstype: String

    /// A mount as given.
    public init(device: String, mountpoint: String, fstype: String) {
        self.device = device
        self.mountpoint = mountpoint
        self.fstype = fstype
    }
}

/// Size, free and available space of the host's real filesystems: the mount table of the host's init
/// (`<procRoot>/1/mounts`, else this process's), then `statvfs` of each mount.
///
/// The kernel builds the table anew on every read, and on a Docker host it is long (every container adds overlay
/// mounts with kilobytes of options), so it is read again only when it changed: procfs mount tables say so through
/// `poll` (`POLLPRI`). A steady sweep only calls `statvfs` on each mount. `statvfs` can block: run sweeps off the
/// event loop.
public final class FilesystemCollector: Collector {
    /// Filesystem types that never hold operator data: kernel pseudo filesystems, memory-backed
    /// mounts, container layers and read-only images.
    public static let ignoredFilesystemTypes: Set<String> = [
        "proc", "sysfs", "cgroup", "cgroup2", "tmpfs", "devtmpfs", "devpts", "overlay", "aufs", "squashfs",
        "nsfs", "mqueue", "securityfs", "debugfs", "tracefs", "pstore", "bpf", "configfs", "fusectl",
        "hugetlbfs", "autofs", "binfmt_misc", "rpc_pipefs", "efivarfs", "ramfs", "selinuxfs", "nfsd",
        "fuse.lxcfs", "fuse.gvfsd-fuse", "fuse.portal", "fuse.snapfuse", "iso9660", "shm", "none", "rootfs",
    ]

    /// Network filesystems: `statvfs` on an unreachable server can block for minutes, so they are
    /// left out unless `includeNetworkFilesystems` is set.
    public static let networkFilesystemTypes: Set<String> = [
        "nfs", "nfs4", "cifs", "smb3", "smbfs", "ceph", "glusterfs", "fuse.glusterfs", "fuse.sshfs", "9p", "afs", "fuse.s3fs",
    ]

    private let initMounts: KeptFile
    private let ownMounts: KeptFile
    private let rootfsPrefix: String
    private let includeNetworkFilesystems: Bool
    /// Whether the tables are procfs's, which signal changes (a fixture tree's plain files do not).
    private let tablesSignalChanges: Bool
    /// The mounts parsed from the last table read, and the file they were read from.
    private let parsed = Mutex<(mounts: [HostMount], source: KeptFile?)>(([], nil))

    /// A collector of the mount table under `procRoot`, measuring each mountpoint under `rootfsPrefix`.
    public init(procRoot: String, rootfsPrefix: String, includeNetworkFilesystems: Bool) {
        initMounts = KeptFile(procRoot + "/1/mounts")
        ownMounts = KeptFile(procRoot + "/self/mounts")
        self.rootfsPrefix = rootfsPrefix
        self.includeNetworkFilesystems = includeNetworkFilesystems
        // procfs's root directory is inode 1 (PROC_ROOT_INO), also where it is bind-mounted (`/host/proc`).
        var info = stat()
        tablesSignalChanges = stat(procRoot, &info) == 0 && info.st_ino == 1
    }

    public func collect(into sample: inout Crowsnest_V1_HostSample) throws {
        let unchanged: [HostMount]? = parsed.withLock { cache in
            guard tablesSignalChanges, let source = cache.source, !source.signalledChange() else { return nil }
            return cache.mounts
        }
        if let unchanged {
            sample.filesystems = unchanged.compactMap { measure($0) }
            return
        }
        let include = includeNetworkFilesystems
        let parse: (UnsafeBufferPointer<UInt8>) -> [HostMount] = { bytes in
            Self.parse(String(decoding: bytes, as: UTF8.self), includeNetworkFilesystems: include)
        }
        // The host's init's table when readable (it may not be without CAP_SYS_PTRACE), else this process's.
        let source: KeptFile
        let mounts: [HostMount]
        if let fromInit = try? initMounts.withContents(parse) {
            (source, mounts) = (initMounts, fromInit)
        } else if let own = try ownMounts.withContents(parse) {
            (source, mounts) = (ownMounts, own)
        } else {
            return
        }
        // A change signalled while the table was read is seen at the next sweep's poll: at worst one more read.
        parsed.withLock { $0 = (mounts, source) }
        sample.filesystems = mounts.compactMap { measure($0) }
    }

    /// `statvfs` figures of a mount; nil when it cannot be measured or has no blocks.
    public func measure(_ mount: HostMount) -> Crowsnest_V1_Filesystem? {
        var info = statvfs()
        let rc = (rootfsPrefix.isEmpty ? mount.mountpoint : rootfsPrefix + mount.mountpoint).withCString { statvfs($0, &info) }
        guard rc == 0, info.f_blocks > 0 else { return nil }
        let unit = UInt64(info.f_frsize > 0 ? info.f_frsize : info.f_bsize)
        var fs = Crowsnest_V1_Filesystem()
        fs.mountpoint = mount.mountpoint
        fs.device = mount.device
        fs.fstype = mount.fstype
        fs.sizeBytes = UInt64(info.f_blocks) &* unit
        fs.freeBytes = UInt64(info.f_bfree) &* unit
        fs.availableBytes = UInt64(info.f_bavail) &* unit
        return fs
    }

    /// Parses a mounts table (`/proc/<pid>/mounts`) into the real filesystems worth measuring:
    /// pseudo and container filesystems dropped (see `ignoredFilesystemTypes`), network ones unless
    /// asked for, one entry per device (the shortest mountpoint wins, so `/` beats a bind mount of `/var/lib/docker`).
    public static func parse(_ text: String, includeNetworkFilesystems: Bool = false) -> [HostMount] {
        var mounts: [HostMount] = []
        var indexByDevice: [String: Int] = [:]
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 3 else { continue }
            let fstype = String(fields[2])
            if ignoredFilesystemTypes.contains(fstype) { continue }
            if !includeNetworkFilesystems && networkFilesystemTypes.contains(fstype) { continue }
            let mount = HostMount(
                device: unescapeMountField(fields[0]), mountpoint: unescapeMountField(fields[1]), fstype: fstype)
            if let index = indexByDevice[mount.device] {
                if mount.mountpoint.utf8.count < mounts[index].mountpoint.utf8.count { mounts[index] = mount }
            } else {
                indexByDevice[mount.device] = mounts.count
                mounts.append(mount)
            }
        }
        return mounts
    }

    /// Decodes the octal escapes the kernel writes in mount tables (`\040` space, `\011` tab, `\012` newline, `\134` backslash).
    static func unescapeMountField(_ field: Substring) -> String {
        guard field.contains("\\") else { return String(field) }
        var bytes: [UInt8] = []
        let utf8 = Array(field.utf8)
        var i = 0
        while i < utf8.count {
            if utf8[i] == UInt8(ascii: "\\"), i + 3 < utf8.count {
                let digits = utf8[(i + 1)...(i + 3)]
                if digits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "7") }) {
                    let value = digits.reduce(0) { $0 * 8 + Int($1 - UInt8(ascii: "0")) }
                    if value < 256 {
                        bytes.append(UInt8(value))
                        i += 4
                        continue
                    }
                }
            }
            bytes.append(utf8[i])
            i += 1
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
