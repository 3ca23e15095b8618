import Foundation
import Logging
import NIOCore
import NIOPosix
import PostgresNIO

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why the embedded PostgreSQL cluster could not be set up, started or stopped.
public enum EmbeddedPostgresError: Error, CustomStringConvertible, Sendable {
    /// No `initdb`/`pg_ctl`/`postgres` binaries were found in the searched directories.
    case binariesNotFound(searched: [String])
    /// The unix socket path would exceed the kernel's `sun_path` limit.
    case socketPathTooLong(path: String, length: Int, limit: Int)
    /// The configured unprivileged user does not exist on this machine.
    case userNotFound(String)
    /// Running as root but neither `setpriv` nor `runuser` is installed to drop privileges.
    case privilegeDropToolMissing(user: String)
    /// A directory could not be created, owned or reached by the user running PostgreSQL.
    case directoryNotUsable(path: String, reason: String)
    /// A PostgreSQL tool (`initdb`, `pg_ctl`, ...) exited with an error.
    case toolFailed(tool: String, exitCode: Int32, output: String)
    /// The tool could not even be launched.
    case launchFailed(tool: String, reason: String)
    /// The server did not start; carries pg_ctl's output and the end of the server log.
    case startFailed(output: String, logTail: String, logFile: String)
    /// The cluster started, but the `crowsnest` database could not be created or reached.
    case databaseSetupFailed(reason: String)

    public var description: String {
        switch self {
        case .binariesNotFound(let searched):
            return "PostgreSQL binaries (initdb, pg_ctl, postgres) not found; searched: \(searched.joined(separator: ", ")). "
                + "Install PostgreSQL (e.g. scripts/ensure-postgres.sh or `apt-get install postgresql-15`) or pass a database URL"
        case .socketPathTooLong(let path, let length, let limit):
            return "embedded PostgreSQL socket path \(path) is \(length) bytes, longer than the unix socket limit of \(limit) bytes; "
                + "use a shorter data directory"
        case .userNotFound(let user):
            return "cannot run embedded PostgreSQL as user '\(user)': no such user (initdb and postgres refuse to run as root; "
                + "create the user or choose another with runAsUser)"
        case .privilegeDropToolMissing(let user):
            return "cannot run embedded PostgreSQL as user '\(user)': neither setpriv nor runuser (util-linux) is installed"
        case .directoryNotUsable(let path, let reason):
            return "embedded PostgreSQL directory \(path) is not usable: \(reason)"
        case .toolFailed(let tool, let exitCode, let output):
            return "\(tool) failed (exit \(exitCode)): \(output.trimmingCharacters(in: .whitespacesAndNewlines))"
        case .launchFailed(let tool, let reason):
            return "cannot launch \(tool): \(reason)"
        case .startFailed(let output, let logTail, let logFile):
            return "embedded PostgreSQL did not start: \(output.trimmingCharacters(in: .whitespacesAndNewlines)); "
                + "last lines of \(logFile):\n\(logTail)"
        case .databaseSetupFailed(let reason):
            return "embedded PostgreSQL started but the crowsnest database could not be prepared: \(reason)"
        }
    }
}

/// A private PostgreSQL cluster living in `<dataDirectory>/postgres`, reachable only through a unix socket.
///
/// It is the server's default store when no database URL is configured, and what the tests use. The cluster
/// is created with `initdb` on first start, started with `pg_ctl`, and stopped with the server. When this process
/// runs as root the PostgreSQL binaries run as an unprivileged user (they refuse to run as root).
///
/// Layout: `postgres/data` (PGDATA), `postgres/run` (socket directory), `postgres/server.log` (server output).
public actor EmbeddedPostgres {
    /// The system user PostgreSQL runs as when the server runs as root (created when missing).
    public static let defaultSystemUser = "crowsnest-postgres"
    /// Role created by `initdb` (superuser, password authentication on the private socket).
    public static let username = "crowsnest"
    /// Database the server uses; created on first start.
    public static let databaseName = "crowsnest"
    /// Port number; only used to name the socket file, nothing listens on TCP.
    public static let port = 5432
    /// Longest unix socket path the kernel accepts (`sun_path` is 108 bytes including the terminating NUL).
    public static let maximumSocketPathLength = 107

    /// The server's data directory this cluster lives in.
    public nonisolated let dataDirectory: String
    /// `<dataDirectory>/postgres`: everything the cluster owns.
    public nonisolated let clusterDirectory: String
    /// PGDATA: `<dataDirectory>/postgres/data`.
    public nonisolated let pgDataDirectory: String
    /// Directory holding the unix socket: `<dataDirectory>/postgres/run`.
    public nonisolated let socketDirectory: String
    /// Full path of the socket file, for `PostgresClient.Configuration(unixSocketPath:...)`.
    public nonisolated let socketPath: String
    /// Where the PostgreSQL server writes its log.
    public nonisolated let logFilePath: String
    /// The `crowsnest` role's password (mode 0600, beside the cluster directory, owned by the server's user).
    public nonisolated let passwordPath: String

    private let requestedUser: String?
    private let requestedBinDirectory: String?
    private let logger: Logger

    /// Describes a cluster in `<dataDirectory>/postgres`; nothing happens until ``start()``.
    /// - Parameters:
    ///   - dataDirectory: the server's data directory; the cluster is kept in its `postgres` subdirectory.
    ///   - runAsUser: user that runs PostgreSQL when this process is root (default: `postgres` if it exists, else
    ///     `nobody`). Ignored when not root: the binaries then run as the current user.
    ///   - binDirectory: directory with `initdb`, `pg_ctl` and `postgres` (default: the cluster's own major version
    ///     under /usr/lib/postgresql, else the highest installed version there, else `PATH`).
    ///   - logger: receives lifecycle events.
    public init(dataDirectory: String, runAsUser: String? = nil, binDirectory: String? = nil, logger: Logger) {
        let base = URL(fileURLWithPath: dataDirectory).standardizedFileURL.path
        self.dataDirectory = base
        self.clusterDirectory = base + "/postgres"
        self.pgDataDirectory = base + "/postgres/data"
        self.socketDirectory = base + "/postgres/run"
        self.socketPath = base + "/postgres/run/.s.PGSQL.\(Self.port)"
        self.logFilePath = base + "/postgres/server.log"
        self.passwordPath = base + "/postgres-password"
        self.requestedUser = runAsUser
        self.requestedBinDirectory = binDirectory
        self.logger = logger
    }

    // MARK: Public operations

    /// Creates the cluster if needed, starts it (or adopts one left running by an earlier server process) and
    /// makes sure the `crowsnest` database exists. Returns once the socket accepts connections.
    public func start() async throws {
        let socketLength = socketPath.utf8.count
        guard socketLength <= Self.maximumSocketPathLength else {
            throw EmbeddedPostgresError.socketPathTooLong(
                path: socketPath, length: socketLength, limit: Self.maximumSocketPathLength)
        }
        let bin = try resolveBinDirectory()
        let identity = try resolveIdentity()
        try await prepareDirectories(identity: identity)

        if !FileManager.default.fileExists(atPath: pgDataDirectory + "/PG_VERSION") {
            try await initializeCluster(bin: bin, identity: identity)
        }
        try writeSettings(identity: identity)

        switch livePostmaster() {
        case .running(let pid):
            if FileManager.default.fileExists(atPath: socketPath) {
                logger.notice(
                    "embedded PostgreSQL already running, reusing it",
                    metadata: ["pid": "\(pid)", "cluster": "\(clusterDirectory)"])
            } else {
                logger.notice(
                    "embedded PostgreSQL running without the expected socket, restarting it",
                    metadata: ["pid": "\(pid)", "socket": "\(socketPath)"])
                try await runPgCtlStop(bin: bin, identity: identity)
                try await startServer(bin: bin, identity: identity)
            }
        case .stale(let pid):
            logger.notice(
                "removing stale postmaster.pid left by a killed PostgreSQL", metadata: ["pid": "\(pid)"])
            try? FileManager.default.removeItem(atPath: pgDataDirectory + "/postmaster.pid")
            try await startServer(bin: bin, identity: identity)
        case .none:
            try await startServer(bin: bin, identity: identity)
        }
        try await ensureDatabase(identity: identity)
        logger.info("embedded PostgreSQL ready", metadata: ["socket": "\(socketPath)"])
    }

    /// Stops the cluster (`pg_ctl stop -m fast`: open sessions are rolled back, data is flushed).
    /// Does nothing when the cluster is not running.
    public func stop() async throws {
        switch livePostmaster() {
        case .none:
            return
        case .stale:
            try? FileManager.default.removeItem(atPath: pgDataDirectory + "/postmaster.pid")
            return
        case .running:
            let bin = try resolveBinDirectory()
            let identity = try resolveIdentity()
            try await runPgCtlStop(bin: bin, identity: identity)
            logger.info("embedded PostgreSQL stopped", metadata: ["cluster": "\(clusterDirectory)"])
        }
    }

    /// Whether a live postmaster serves this cluster right now.
    public nonisolated var isRunning: Bool {
        if case .running = livePostmaster() { return true }
        return false
    }

    /// Process id of the running postmaster, from `postmaster.pid`; nil when not running.
    public nonisolated var postmasterProcessID: Int32? {
        if case .running(let pid) = livePostmaster() { return pid }
        return nil
    }

    /// Finds a PostgreSQL bin directory: `/usr/lib/postgresql/<preferredMajorVersion>/bin` if given and present,
    /// else the highest version under `/usr/lib/postgresql`, else the directory of `initdb` on `PATH`.
    public static func locateBinDirectory(preferredMajorVersion: String? = nil) -> String? {
        let fm = FileManager.default
        let root = "/usr/lib/postgresql"
        if let preferred = preferredMajorVersion, fm.isExecutableFile(atPath: "\(root)/\(preferred)/bin/initdb") {
            return "\(root)/\(preferred)/bin"
        }
        let versions = ((try? fm.contentsOfDirectory(atPath: root)) ?? [])
            .filter { fm.isExecutableFile(atPath: "\(root)/\($0)/bin/initdb") }
            .sorted { (Double($0) ?? 0) > (Double($1) ?? 0) }
        if let highest = versions.first {
            return "\(root)/\(highest)/bin"
        }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for dir in path.split(separator: ":") where fm.isExecutableFile(atPath: "\(dir)/initdb") {
            if fm.isExecutableFile(atPath: "\(dir)/pg_ctl") { return String(dir) }
        }
        return nil
    }

    // MARK: Identity (who runs the PostgreSQL binaries)

    /// The user running the binaries, and how to become it.
    struct Identity: Sendable {
        var name: String
        var uid: uid_t
        var gid: gid_t
        /// Command prefix switching to the user; empty when running as ourselves.
        var prefix: [String]
        var isSwitching: Bool { !prefix.isEmpty }
    }

    private func resolveIdentity() throws -> Identity {
        if geteuid() != 0 {
            if let requested = requestedUser {
                logger.debug("runAsUser ignored: not running as root", metadata: ["user": "\(requested)"])
            }
            let name = Self.userName(uid: geteuid()) ?? "uid \(geteuid())"
            return Identity(name: name, uid: geteuid(), gid: getegid(), prefix: [])
        }
        let name = requestedUser ?? Self.defaultSystemUser
        if requestedUser == nil && Self.lookupUser(name) == nil {
            try createSystemUser(name)
        }
        guard let (uid, gid) = Self.lookupUser(name) else {
            throw EmbeddedPostgresError.userNotFound(name)
        }
        guard name != "nobody" else {
            throw EmbeddedPostgresError.userNotFound("nobody (shared by unrelated daemons: give PostgreSQL a user of its own)")
        }
        guard uid != 0 else {
            throw EmbeddedPostgresError.userNotFound("\(name) (is root; PostgreSQL needs an unprivileged user)")
        }
        let fm = FileManager.default
        if let setpriv = ["/usr/bin/setpriv", "/bin/setpriv"].first(where: { fm.isExecutableFile(atPath: $0) }) {
            return Identity(
                name: name, uid: uid, gid: gid,
                prefix: [setpriv, "--reuid=\(uid)", "--regid=\(gid)", "--init-groups", "--"])
        }
        if let runuser = ["/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"].first(where: {
            fm.isExecutableFile(atPath: $0)
        }) {
            return Identity(name: name, uid: uid, gid: gid, prefix: [runuser, "-u", name, "--"])
        }
        throw EmbeddedPostgresError.privilegeDropToolMissing(user: name)
    }

    /// Creates the system user the embedded PostgreSQL runs as (no home, no login shell).
    private func createSystemUser(_ name: String) throws {
        let fm = FileManager.default
        guard let useradd = ["/usr/sbin/useradd", "/sbin/useradd"].first(where: { fm.isExecutableFile(atPath: $0) }) else {
            throw EmbeddedPostgresError.userNotFound("\(name) (and useradd is missing to create it)")
        }
        let result = try Self.runTool([useradd, "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
                                       "--shell", "/usr/sbin/nologin", "--comment", "crowsnest embedded PostgreSQL", name],
                                      environment: ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin"], currentDirectory: "/")
        // Another process may have created it at the same moment (exit 9: already exists).
        guard result.exitCode == 0 || Self.lookupUser(name) != nil else {
            throw EmbeddedPostgresError.toolFailed(tool: "useradd \(name)", exitCode: result.exitCode, output: result.output)
        }
        logger.notice("created a system user for the embedded PostgreSQL", metadata: ["user": "\(name)"])
    }

    static func lookupUser(_ name: String) -> (uid_t, gid_t)? {
        var pwd = passwd()
        var result: UnsafeMutablePointer<passwd>? = nil
        var buffer = [CChar](repeating: 0, count: 16384)
        let rc = getpwnam_r(name, &pwd, &buffer, buffer.count, &result)
        guard rc == 0, result != nil else { return nil }
        return (pwd.pw_uid, pwd.pw_gid)
    }

    static func userName(uid: uid_t) -> String? {
        var pwd = passwd()
        var result: UnsafeMutablePointer<passwd>? = nil
        var buffer = [CChar](repeating: 0, count: 16384)
        let rc = getpwuid_r(uid, &pwd, &buffer, buffer.count, &result)
        guard rc == 0, result != nil, let namePointer = pwd.pw_name else { return nil }
        return String(cString: namePointer)
    }

    // MARK: Binaries

    private func resolveBinDirectory() throws -> String {
        let fm = FileManager.default
        if let requested = requestedBinDirectory {
            guard fm.isExecutableFile(atPath: requested + "/initdb"), fm.isExecutableFile(atPath: requested + "/pg_ctl")
            else {
                throw EmbeddedPostgresError.binariesNotFound(searched: [requested])
            }
            return requested
        }
        // Prefer the binaries matching an existing cluster's major version: a newer postgres cannot open it.
        let clusterVersion = (try? String(contentsOfFile: pgDataDirectory + "/PG_VERSION", encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines)
        if let bin = Self.locateBinDirectory(preferredMajorVersion: clusterVersion) {
            return bin
        }
        throw EmbeddedPostgresError.binariesNotFound(searched: ["/usr/lib/postgresql/*/bin", "PATH"])
    }

    // MARK: Directories and settings

    private func prepareDirectories(identity: Identity) async throws {
        let fm = FileManager.default
        do {
            try fm.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true)
            for dir in [clusterDirectory, socketDirectory] {
                if !fm.fileExists(atPath: dir) {
                    try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
                }
                chmod(dir, 0o700)
            }
        } catch {
            throw EmbeddedPostgresError.directoryNotUsable(path: clusterDirectory, reason: "\(error)")
        }
        guard identity.isSwitching else { return }

        // The unprivileged user must be able to pass through the server's data directory. Grant search only
        // (o+x, no listing), and only on a directory we own; parents are the operator's business.
        var info = stat()
        if stat(dataDirectory, &info) == 0, info.st_uid == geteuid(), info.st_mode & S_IXOTH == 0 {
            let newMode = (info.st_mode & 0o7777) | S_IXOTH
            if chmod(dataDirectory, newMode) == 0 {
                logger.notice(
                    "granted search permission on the data directory so PostgreSQL's user can reach its cluster",
                    metadata: ["directory": "\(dataDirectory)", "user": "\(identity.name)"])
            }
        }
        // Hand the cluster directory to the user (recursively when it belonged to someone else before).
        var clusterInfo = stat()
        let needsRecursive = stat(clusterDirectory, &clusterInfo) == 0 && clusterInfo.st_uid != identity.uid
        if needsRecursive {
            try chownRecursively(clusterDirectory, identity: identity)
        } else {
            for path in [clusterDirectory, socketDirectory] {
                try chownOne(path, identity: identity)
            }
        }
        try await checkReachable(identity: identity)
    }

    private func chownOne(_ path: String, identity: Identity) throws {
        if lchown(path, identity.uid, identity.gid) != 0 {
            throw EmbeddedPostgresError.directoryNotUsable(
                path: path, reason: "cannot give it to user \(identity.name): \(String(cString: strerror(errno)))")
        }
    }

    private func chownRecursively(_ root: String, identity: Identity) throws {
        try chownOne(root, identity: identity)
        guard let enumerator = FileManager.default.enumerator(atPath: root) else { return }
        while let relative = enumerator.nextObject() as? String {
            try chownOne(root + "/" + relative, identity: identity)
        }
    }

    /// Verifies, as the unprivileged user, that the cluster directory is writable (every parent searchable).
    private func checkReachable(identity: Identity) async throws {
        let result = try await runToolAsync(
            identity.prefix + ["/bin/sh", "-c", "test -w \"$1\" && test -x \"$1\"", "sh", clusterDirectory],
            bin: "/usr/bin", currentDirectory: "/")
        if result.exitCode != 0 {
            throw EmbeddedPostgresError.directoryNotUsable(
                path: clusterDirectory,
                reason: "user \(identity.name) cannot reach it; every parent directory must be searchable "
                    + "by that user (e.g. chmod o+x on the parents)")
        }
    }

    /// The cluster's only authentication rule: the `crowsnest` role, over the private unix socket, with its
    /// password (scram-sha-256). Returns true when the file changed (the server must reload it).
    private func writeAuthenticationRules(identity: Identity) throws -> Bool {
        let path = pgDataDirectory + "/pg_hba.conf"
        let rules = """
            # Written by crowsnest-server on every start of its embedded PostgreSQL; edits here are overwritten.
            # Unix socket only (listen_addresses is empty), password required.
            local   all   \(Self.username)   scram-sha-256

            """
        if (try? String(contentsOfFile: path, encoding: .utf8)) == rules { return false }
        do {
            try rules.write(toFile: path, atomically: true, encoding: .utf8)
        } catch {
            throw EmbeddedPostgresError.directoryNotUsable(path: path, reason: "cannot write authentication rules: \(error)")
        }
        chmod(path, 0o600)
        if identity.isSwitching { try chownOne(path, identity: identity) }
        return true
    }

    /// The `crowsnest` role's password, from `passwordPath` (mode 0600, owned by the server's user, outside the
    /// directory PostgreSQL's user owns); generated on first use.
    public nonisolated func password() throws -> String {
        let fm = FileManager.default
        if let data = fm.contents(atPath: passwordPath) {
            let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            guard text.count >= 32, text.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber) }) else {
                throw EmbeddedPostgresError.directoryNotUsable(
                    path: passwordPath, reason: "the embedded PostgreSQL's password file is damaged (expected 32 or more letters and digits)")
            }
            return text
        }
        guard !fm.fileExists(atPath: pgDataDirectory + "/PG_VERSION") || !clusterRequiresPassword else {
            throw EmbeddedPostgresError.directoryNotUsable(
                path: passwordPath, reason: "the embedded PostgreSQL's password file is missing but its cluster requires a password; restore the file from a backup")
        }
        var random = SystemRandomNumberGenerator()
        let alphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
        let password = String((0..<40).map { _ in alphabet[Int.random(in: 0..<alphabet.count, using: &random)] })
        do {
            try fm.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true)
            let temporary = passwordPath + ".tmp"
            fm.createFile(atPath: temporary, contents: nil, attributes: [.posixPermissions: 0o600])
            try (password + "\n").write(toFile: temporary, atomically: false, encoding: .utf8)
            chmod(temporary, 0o600)
            if rename(temporary, passwordPath) != 0 { throw EmbeddedPostgresError.directoryNotUsable(path: passwordPath, reason: "rename failed") }
        } catch let error as EmbeddedPostgresError {
            throw error
        } catch {
            throw EmbeddedPostgresError.directoryNotUsable(path: passwordPath, reason: "cannot write the password file: \(error)")
        }
        return password
    }

    /// Whether the cluster's authentication rules already require a password (it was converted or created so).
    private nonisolated var clusterRequiresPassword: Bool {
        guard let rules = try? String(contentsOfFile: pgDataDirectory + "/pg_hba.conf", encoding: .utf8) else { return false }
        return rules.split(separator: "\n").contains { line in
            let fields = line.split(whereSeparator: \.isWhitespace)
            return fields.first.map { !$0.hasPrefix("#") } ?? false && fields.last.map { $0 == "scram-sha-256" || $0 == "md5" } ?? false
        }
    }

    /// Settings we own, rewritten on every start and included from postgresql.conf (last include wins).
    private func writeSettings(identity: Identity) throws {
        func quoted(_ value: String) -> String {
            "'" + value.replacingOccurrences(of: "'", with: "''") + "'"
        }
        let settings = """
            # Written by crowsnest-server on every start of its embedded PostgreSQL; edits here are overwritten.
            listen_addresses = ''
            port = \(Self.port)
            unix_socket_directories = \(quoted(socketDirectory))
            unix_socket_permissions = 0700
            max_connections = 100
            shared_buffers = 128MB
            fsync = on
            synchronous_commit = on
            full_page_writes = on
            timezone = 'UTC'
            log_timezone = 'UTC'
            logging_collector = off

            """
        let settingsPath = pgDataDirectory + "/crowsnest.conf"
        let mainConfig = pgDataDirectory + "/postgresql.conf"
        do {
            try settings.write(toFile: settingsPath, atomically: false, encoding: .utf8)
            let existing = try String(contentsOfFile: mainConfig, encoding: .utf8)
            let include = "include_if_exists = 'crowsnest.conf'"
            if !existing.contains(include) {
                try (existing + "\n# Added by crowsnest-server\n" + include + "\n")
                    .write(toFile: mainConfig, atomically: false, encoding: .utf8)
            }
        } catch {
            throw EmbeddedPostgresError.directoryNotUsable(path: pgDataDirectory, reason: "cannot write settings: \(error)")
        }
        chmod(settingsPath, 0o600)
        if identity.isSwitching {
            try chownOne(settingsPath, identity: identity)
            try chownOne(mainConfig, identity: identity)
        }
    }

    // MARK: Cluster lifecycle

    private func initializeCluster(bin: String, identity: Identity) async throws {
        let locale = FileManager.default.fileExists(atPath: "/usr/lib/locale/C.utf8") ? "C.UTF-8" : "C"
        logger.info(
            "creating embedded PostgreSQL cluster",
            metadata: ["directory": "\(pgDataDirectory)", "user": "\(identity.name)", "bin": "\(bin)"])
        // initdb reads the superuser's password from a file the cluster's user can read; it is removed at once.
        let passwordFile = clusterDirectory + "/initdb-password"
        // Created 0600 from the first byte (no window in which the secret sits in a world-readable file).
        try? FileManager.default.removeItem(atPath: passwordFile)
        let descriptor = open(passwordFile, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw EmbeddedPostgresError.directoryNotUsable(path: passwordFile, reason: "cannot create: \(String(cString: strerror(errno)))")
        }
        let secret = Array((try password() + "\n").utf8)
        let written = secret.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        close(descriptor)
        guard written == secret.count else {
            throw EmbeddedPostgresError.directoryNotUsable(path: passwordFile, reason: "cannot write the initdb password file")
        }
        if identity.isSwitching { try chownOne(passwordFile, identity: identity) }
        defer { try? FileManager.default.removeItem(atPath: passwordFile) }
        let result = try await runToolAsync(
            identity.prefix + [
                bin + "/initdb", "-D", pgDataDirectory, "-U", Self.username, "--auth=scram-sha-256",
                "--pwfile=\(passwordFile)", "-E", "UTF8", "--locale=\(locale)",
            ],
            bin: bin)
        guard result.exitCode == 0 else {
            throw EmbeddedPostgresError.toolFailed(tool: "initdb", exitCode: result.exitCode, output: result.output)
        }
    }

    private func startServer(bin: String, identity: Identity) async throws {
        // After a kill -9 the old server's children may hold its shared memory for a moment: retry a while.
        let deadline = ContinuousClock.now + .seconds(20)
        while true {
            let logSizeBefore = Self.fileSize(logFilePath)
            let result = try await runToolAsync(
                identity.prefix + [
                    bin + "/pg_ctl", "start", "-w", "-t", "120", "-D", pgDataDirectory, "-l", logFilePath,
                ],
                bin: bin)
            if result.exitCode == 0 {
                logger.info("embedded PostgreSQL started", metadata: ["cluster": "\(clusterDirectory)"])
                return
            }
            let newLog = Self.readLog(logFilePath, from: logSizeBefore)
            let transient =
                newLog.contains("pre-existing shared memory block") || newLog.contains("already exists")
                || newLog.contains("Address already in use")
            if transient && ContinuousClock.now < deadline {
                logger.debug("embedded PostgreSQL start is blocked by a dying predecessor, retrying")
                if case .stale = livePostmaster() {
                    try? FileManager.default.removeItem(atPath: pgDataDirectory + "/postmaster.pid")
                }
                try await Task.sleep(for: .milliseconds(250))
                continue
            }
            let tail = newLog.split(separator: "\n", omittingEmptySubsequences: true).suffix(20)
                .joined(separator: "\n")
            throw EmbeddedPostgresError.startFailed(output: result.output, logTail: tail, logFile: logFilePath)
        }
    }

    private func runPgCtlStop(bin: String, identity: Identity) async throws {
        let result = try await runToolAsync(
            identity.prefix + [bin + "/pg_ctl", "stop", "-w", "-t", "120", "-m", "fast", "-D", pgDataDirectory],
            bin: bin)
        if result.exitCode != 0 {
            if case .running = livePostmaster() {
                throw EmbeddedPostgresError.toolFailed(tool: "pg_ctl stop", exitCode: result.exitCode, output: result.output)
            }
        }
    }

    private func ensureDatabase(identity: Identity) async throws {
        let password = try password()
        let configuration = PostgresConnection.Configuration(
            unixSocketPath: socketPath, username: Self.username, password: password, database: "postgres")
        let connection: PostgresConnection
        do {
            connection = try await PostgresConnection.connect(configuration: configuration, id: 1, logger: logger)
        } catch {
            throw EmbeddedPostgresError.databaseSetupFailed(
                reason: "cannot connect to \(socketPath): \(DatabaseConnection.describe(error))")
        }
        do {
            // A cluster from before passwords (trust authentication) gets the password now, then password-only
            // authentication; on every later start this sets the same password again, which changes nothing.
            try await connection.query("SET password_encryption = 'scram-sha-256'", logger: logger)
            try await connection.query(PostgresQuery(unsafeSQL: "ALTER ROLE \(Self.username) PASSWORD '\(password)'"), logger: logger)
            if try writeAuthenticationRules(identity: identity) {
                try await connection.query("SELECT pg_reload_conf()", logger: logger)
                logger.notice("embedded PostgreSQL now requires its password (scram-sha-256)", metadata: ["cluster": "\(clusterDirectory)"])
            }
            let rows = try await connection.query(
                "SELECT 1 FROM pg_database WHERE datname = \(Self.databaseName)", logger: logger)
            var exists = false
            for try await _ in rows { exists = true }
            if !exists {
                do {
                    try await connection.query(
                        PostgresQuery(unsafeSQL: "CREATE DATABASE \(Self.databaseName)"), logger: logger)
                    logger.info("created database", metadata: ["database": "\(Self.databaseName)"])
                } catch let error as PSQLError where error.serverInfo?[.sqlState] == "42P04" {
                    // Created concurrently by another process: fine.
                }
            }
        } catch {
            try? await connection.close()
            throw EmbeddedPostgresError.databaseSetupFailed(reason: DatabaseConnection.describe(error))
        }
        try? await connection.close()
    }

    // MARK: postmaster.pid inspection

    enum PostmasterState: Equatable {
        case none
        case running(Int32)
        case stale(Int32)
    }

    /// Reads postmaster.pid and checks whether its process is a live (non-zombie) postgres.
    private nonisolated func livePostmaster() -> PostmasterState {
        guard let contents = try? String(contentsOfFile: pgDataDirectory + "/postmaster.pid", encoding: .utf8)
        else { return .none }
        guard let firstLine = contents.split(separator: "\n").first,
            let pid = Int32(firstLine.trimmingCharacters(in: .whitespaces)), pid > 0
        else { return .stale(0) }
        return Self.isLivePostgres(pid: pid) ? .running(pid) : .stale(pid)
    }

    static func isLivePostgres(pid: Int32) -> Bool {
        if kill(pid, 0) != 0 && errno == ESRCH { return false }
        // A killed postmaster nobody reaped is a zombie: dead for our purposes.
        if let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        {
            let rest = stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces)
            if rest.hasPrefix("Z") || rest.hasPrefix("X") { return false }
        } else if FileManager.default.fileExists(atPath: "/proc/self") {
            return false
        }
        if let comm = try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8) {
            // A recycled pid belonging to something else does not count.
            return comm.trimmingCharacters(in: .whitespacesAndNewlines).hasPrefix("postgres")
        }
        return true
    }

    // MARK: Running tools

    struct ToolResult: Sendable {
        var exitCode: Int32
        var output: String
    }

    private func toolEnvironment(bin: String) -> [String: String] {
        // A clean environment: no PGHOST/PGPORT/PGDATA from the caller, C messages for readable errors.
        [
            "PATH": "\(bin):/usr/local/bin:/usr/bin:/bin",
            "HOME": clusterDirectory,
            "LC_ALL": "C",
            "LANG": "C",
        ]
    }

    private func runToolAsync(_ command: [String], bin: String, currentDirectory: String? = nil) async throws
        -> ToolResult
    {
        let environment = toolEnvironment(bin: bin)
        let directory = currentDirectory ?? clusterDirectory
        return try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                do {
                    continuation.resume(
                        returning: try Self.runTool(command, environment: environment, currentDirectory: directory))
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        }
    }

    /// Runs a command to completion (blocking), capturing stdout and stderr together.
    ///
    /// Uses posix_spawn rather than Foundation's `Process`: the child starts with only stdin (/dev/null), stdout and
    /// stderr open and default signal handling. That matters because `pg_ctl start` leaves a daemon behind: with
    /// `Process` the daemon inherits a socket that makes `waitUntilExit()` hang until PostgreSQL stops, and it
    /// would also keep any of our own non-close-on-exec descriptors (listening sockets) open.
    static func runTool(_ command: [String], environment: [String: String], currentDirectory: String) throws
        -> ToolResult
    {
        let toolName = URL(fileURLWithPath: command[0]).lastPathComponent
        func failure(_ what: String, _ code: Int32) -> EmbeddedPostgresError {
            .launchFailed(tool: toolName, reason: "\(what): \(String(cString: strerror(code)))")
        }

        var pipeEnds: [Int32] = [-1, -1]
        if let pipe2 = SpawnExtensions.pipe2 {
            guard pipe2(&pipeEnds, O_CLOEXEC) == 0 else { throw failure("pipe", errno) }
        } else {
            guard pipe(&pipeEnds) == 0 else { throw failure("pipe", errno) }
            _ = fcntl(pipeEnds[0], F_SETFD, FD_CLOEXEC)
            _ = fcntl(pipeEnds[1], F_SETFD, FD_CLOEXEC)
        }
        let readEnd = pipeEnds[0]
        let writeEnd = pipeEnds[1]
        var readEndOpen = true
        defer { if readEndOpen { close(readEnd) } }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, writeEnd, 1)
        posix_spawn_file_actions_adddup2(&actions, writeEnd, 2)
        var argv0 = command
        if let addChdir = SpawnExtensions.addChdir {
            _ = addChdir(&actions, currentDirectory)
        } else {
            argv0 = ["/usr/bin/env", "-C", currentDirectory] + command
        }
        if let addCloseFrom = SpawnExtensions.addCloseFrom {
            _ = addCloseFrom(&actions, 3)
        } else {
            // Older C libraries: close what is open right now (except the pipe, closed on exec anyway).
            let open = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
            for name in open {
                if let fd = Int32(name), fd > 2, fd != readEnd, fd != writeEnd, fcntl(fd, F_GETFD) != -1 {
                    posix_spawn_file_actions_addclose(&actions, fd)
                }
            }
        }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var emptyMask = sigset_t()
        sigemptyset(&emptyMask)
        posix_spawnattr_setsigmask(&attributes, &emptyMask)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGPIPE, SIGINT, SIGTERM, SIGQUIT, SIGHUP, SIGCHLD, SIGUSR1, SIGUSR2, SIGALRM, SIGTSTP, SIGTTIN, SIGTTOU] {
            sigaddset(&defaults, signal)
        }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let arguments = argv0.map { strdup($0) } + [nil]
        let environmentStrings = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            arguments.forEach { free($0) }
            environmentStrings.forEach { free($0) }
        }
        var pid: pid_t = 0
        let spawnResult = posix_spawn(&pid, argv0[0], &actions, &attributes, arguments, environmentStrings)
        close(writeEnd)
        guard spawnResult == 0 else { throw failure("spawn \(argv0[0])", spawnResult) }

        var output = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 8192)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(readEnd, $0.baseAddress, $0.count) }
            if count > 0 {
                output.append(contentsOf: buffer[0..<count])
            } else if count == 0 || errno != EINTR {
                break
            }
        }
        close(readEnd)
        readEndOpen = false

        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 {
            if errno != EINTR { throw failure("waitpid", errno) }
        }
        let signal = status & 0x7f
        let exitCode = signal == 0 ? (status >> 8) & 0xff : 128 + signal
        return ToolResult(exitCode: exitCode, output: String(decoding: output, as: UTF8.self))
    }

    /// glibc's non-portable posix_spawn extensions, looked up at run time (Swift's Glibc module hides them).
    private enum SpawnExtensions {
        typealias AddChdir = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32
        typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32

        typealias Pipe2 = @convention(c) (UnsafeMutablePointer<Int32>, Int32) -> Int32

        static let pipe2: Pipe2? = lookup("pipe2")
        static let addChdir: AddChdir? = lookup("posix_spawn_file_actions_addchdir_np")
        static let addCloseFrom: AddCloseFrom? = lookup("posix_spawn_file_actions_addclosefrom_np")

        private static func lookup<T>(_ name: String) -> T? {
            guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), name) else { return nil }
            return unsafeBitCast(symbol, to: T.self)
        }
    }

    private static func fileSize(_ path: String) -> UInt64 {
        ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.uint64Value ?? 0
    }

    private static func readLog(_ path: String, from offset: UInt64) -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else { return "" }
        defer { try? handle.close() }
        try? handle.seek(toOffset: offset)
        let data = (try? handle.readToEnd()) ?? Data()
        return String(decoding: data.suffix(16384), as: UTF8.self)
    }
}
