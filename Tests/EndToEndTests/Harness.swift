import CrowsnestServer
import Foundation
import XCTest

/// Test image built by `scripts/build-test-image.sh` (static busybox, no registry needed).
let testImage = "crowsnest-test/busybox:latest"

/// Fails under CI=true, skips elsewhere: a missing service is a broken CI but only an absence on a laptop.
func requireServices(file: StaticString = #filePath, line: UInt = #line) throws {
    var missing: [String] = []
    if Shell.run("/usr/bin/env", ["docker", "image", "inspect", testImage]).status != 0 {
        missing.append("Docker engine or test image \(testImage) (run scripts/ensure-docker.sh and scripts/build-test-image.sh)")
    }
    if (try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql"))?.isEmpty ?? true {
        missing.append("PostgreSQL server binaries (run scripts/ensure-postgres.sh)")
    }
    for binary in ["crowsnest-server", "crowsnest-agent"] where !FileManager.default.isExecutableFile(atPath: Binaries.directory + "/" + binary) {
        missing.append("\(binary) in \(Binaries.directory) (run swift build)")
    }
    guard !missing.isEmpty else { return }
    let reason = missing.joined(separator: "; ")
    if ProcessInfo.processInfo.environment["CI"] == "true" {
        XCTFail("end-to-end tests need: \(reason)", file: file, line: line)
    }
    throw XCTSkip("end-to-end tests skipped, missing: \(reason)")
}

/// The repository's root (scripts, deploy/, agent/), from this file's place in it.
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path

/// Base image of the deployment tests, built by `deploy/build-base-image.sh` (debootstrap, systemd, curl).
let baseImage = "crowsnest-base:bookworm"

/// Fails under CI=true, skips elsewhere, when the base image is missing.
func requireBaseImage(file: StaticString = #filePath, line: UInt = #line) throws {
    guard Shell.run("/usr/bin/env", ["docker", "image", "inspect", baseImage]).status != 0 else { return }
    let reason = "the base image \(baseImage) is missing (run deploy/build-base-image.sh)"
    if ProcessInfo.processInfo.environment["CI"] == "true" { XCTFail(reason, file: file, line: line) }
    throw XCTSkip(reason)
}

/// Where the built executables are: next to the test bundle, or `CROWSNEST_BIN_DIR`.
enum Binaries {
    static let directory: String = {
        if let dir = ProcessInfo.processInfo.environment["CROWSNEST_BIN_DIR"] { return dir }
        var url = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        while url.path != "/" {
            url.deleteLastPathComponent()
            if FileManager.default.isExecutableFile(atPath: url.path + "/crowsnest-server") { return url.path }
        }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return root.path + "/.build/debug"
    }()
    static var server: String { directory + "/crowsnest-server" }
    static var agent: String { directory + "/crowsnest-agent" }

    /// The directory holding the Swift runtime a debug binary links (from `ldd`): mounted read-only at the same
    /// path into a container that runs the binary (it is where the binary's RUNPATH points).
    static func swiftRuntimeDirectory(of binary: String) throws -> String {
        let ldd = Shell.run("/usr/bin/env", ["ldd", binary]).output
        let line = try XCTUnwrap(ldd.split(separator: "\n").first { $0.contains("libswiftCore.so") }, "no libswiftCore in: \(ldd)")
        let path = try XCTUnwrap(line.split(separator: " ").first { $0.hasPrefix("/") }.map(String.init))
        return URL(fileURLWithPath: path).deletingLastPathComponent().path
    }
}

/// Runs short commands to completion.
enum Shell {
    struct Result {
        var status: Int32
        var output: String
        var error: String
    }

    @discardableResult
    static func run(_ executable: String, _ arguments: [String], environment: [String: String]? = nil,
                    currentDirectory: String? = nil) -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment { process.environment = environment }
        if let currentDirectory { process.currentDirectoryURL = URL(fileURLWithPath: currentDirectory) }
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        do { try process.run() } catch { return Result(status: -1, output: "", error: "\(error)") }
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(status: process.terminationStatus, output: String(decoding: outData, as: UTF8.self),
                      error: String(decoding: errData, as: UTF8.self))
    }

    static func docker(_ arguments: String...) -> Result {
        run("/usr/bin/env", ["docker"] + arguments)
    }

    /// Where a container on Docker's default bridge reaches this host: the bridge network's gateway, or — when
    /// the daemon found its bridge interface already addressed and recorded no gateway (seen on fresh CI
    /// machines) — that interface's own IPv4 address. Empty when neither is known.
    static func dockerBridgeGateway() -> String {
        let gateway = docker("network", "inspect", "bridge", "-f", "{{range .IPAM.Config}}{{.Gateway}}{{end}}")
            .output.trimmingCharacters(in: .whitespacesAndNewlines)
        if !gateway.isEmpty { return gateway }
        var name = docker("network", "inspect", "bridge", "-f", #"{{index .Options "com.docker.network.bridge.name"}}"#)
            .output.trimmingCharacters(in: .whitespacesAndNewlines)
        if name.isEmpty || name == "<no value>" { name = "docker0" }
        var interfaces: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&interfaces) == 0 else { return "" }
        defer { freeifaddrs(interfaces) }
        var entry = interfaces
        while let current = entry?.pointee {
            defer { entry = current.ifa_next }
            guard String(cString: current.ifa_name) == name, let address = current.ifa_addr,
                  address.pointee.sa_family == sa_family_t(AF_INET) else { continue }
            var text = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
            var ipv4 = address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr }
            guard inet_ntop(AF_INET, &ipv4, &text, socklen_t(text.count)) != nil else { continue }
            return String(cString: text)
        }
        return ""
    }
}

/// A long-running child process with its output in a log file.
final class ChildProcess: @unchecked Sendable {
    let process = Process()
    let logPath: String

    init(executable: String, arguments: [String], logPath: String, environment: [String: String]? = nil) throws {
        self.logPath = logPath
        FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        try log.seekToEnd()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment { process.environment = environment }
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    var isRunning: Bool { process.isRunning }

    /// SIGKILL: no cleanup, no flush — a crash.
    func kill9() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    /// SIGTERM and wait for a graceful exit (SIGKILL after `timeout`).
    func terminate(timeout: TimeInterval = 20) {
        guard process.isRunning else { return }
        process.terminate()
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(50_000) }
        kill9()
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// SIGTERM, then how many seconds the process took to exit (no service may sleep through a graceful shutdown).
    func secondsToStop() -> TimeInterval {
        let stopping = Date()
        terminate()
        return Date().timeIntervalSince(stopping)
    }
}

/// A free TCP port on loopback (bound, then released).
func freePort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
    _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// Polls `condition` until it returns a value or `timeout` passes.
func eventually<T>(timeout: TimeInterval, interval: TimeInterval = 0.5, _ what: String,
                   file: StaticString = #filePath, line: UInt = #line, _ condition: () throws -> T?) throws -> T {
    let deadline = Date().addingTimeInterval(timeout)
    var lastError: Error?
    while Date() < deadline {
        do {
            if let value = try condition() { return value }
        } catch {
            lastError = error
        }
        Thread.sleep(forTimeInterval: interval)
    }
    XCTFail("timed out after \(timeout) s waiting for \(what)\(lastError.map { " (last error: \($0))" } ?? "")", file: file, line: line)
    throw XCTSkip("gave up waiting for \(what)")
}

/// One server (embedded PostgreSQL) plus one enrolled agent, all real processes, in a temp directory.
final class Deployment: @unchecked Sendable {
    let root: String
    let agentPort = freePort()
    let httpPort = freePort()
    var server: ChildProcess?
    var agent: ChildProcess?
    var apiKey = ""
    /// The token and pin the agent enrolled with (already used).
    var usedToken: [String: String] = [:]
    var agentEnvironment: [String: String] = ProcessInfo.processInfo.environment
    var serverEnvironment: [String: String] = ProcessInfo.processInfo.environment
    /// The address both listeners bind: loopback unless a test's containers must reach the server.
    var listenHost = "127.0.0.1"
    private var serverStarts = 0
    private var agentStarts = 0

    init() throws {
        // Short path: the embedded PostgreSQL socket path must stay under 107 bytes.
        root = "/tmp/cn-e2e-" + String(UUID().uuidString.prefix(8)).lowercased()
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    }

    var dataDir: String { root + "/server" }
    var stateDir: String { root + "/agent" }

    func startServer() throws {
        serverStarts += 1
        server = try ChildProcess(executable: Binaries.server,
                                  arguments: ["serve", "--data-dir", dataDir, "--agent-listen", "\(listenHost):\(agentPort)",
                                              "--http-listen", "\(listenHost):\(httpPort)"],
                                  logPath: root + "/server-\(serverStarts).log", environment: serverEnvironment)
        _ = try eventually(timeout: 90, "server /readyz") { () -> Bool? in
            guard server?.isRunning == true else { throw DeploymentError("server exited: \(server?.log.suffix(2000) ?? "")") }
            return try? http("/readyz").status == 200 ? true : nil
        }
    }

    /// Runs an administrative subcommand with `--json`, returning the printed object.
    func admin(_ arguments: [String]) throws -> [String: String] {
        let result = Shell.run(Binaries.server, arguments + ["--data-dir", dataDir, "--json"], environment: serverEnvironment)
        guard result.status == 0 else { throw DeploymentError("crowsnest-server \(arguments.joined(separator: " ")) failed: \(result.error)") }
        let object = try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: String]
        return try XCTUnwrap(object, "not a JSON object: \(result.output)")
    }

    /// Creates a tenant, an API key and an enrolled agent state directory.
    func provision(tenant: String = "e2e") throws {
        _ = try admin(["tenant", "create", tenant])
        apiKey = try XCTUnwrap(try admin(["apikey", "create", "--tenant", tenant, "--role", "read"])["key"])
        let token = try admin(["token", "create", "--tenant", tenant])
        usedToken = token
        let enroll = Shell.run(Binaries.agent, ["enroll", "--server", "127.0.0.1:\(agentPort)", "--token", token["token"]!,
                                                "--ca-pin", token["ca_pin"]!, "--state-dir", stateDir])
        guard enroll.status == 0 else { throw DeploymentError("enroll failed: \(enroll.error)") }
    }

    func startAgent(interval: Int = 1) throws {
        agentStarts += 1
        agent = try ChildProcess(executable: Binaries.agent,
                                 arguments: ["run", "--state-dir", stateDir, "--interval", "\(interval)"],
                                 logPath: root + "/agent-\(agentStarts).log", environment: agentEnvironment)
    }

    struct HTTPResult {
        var status: Int
        var body: Data
        var json: [String: Any] { (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] ?? [:] }
    }

    /// A GET against the server's HTTP API with the deployment's API key.
    func http(_ path: String) throws -> HTTPResult {
        let result = Shell.run("/usr/bin/env", ["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", "-H", "Authorization: Bearer \(apiKey)",
                                                "http://127.0.0.1:\(httpPort)\(path)"])
        guard result.status == 0 else { throw DeploymentError("curl \(path): \(result.error)") }
        guard let split = result.output.lastIndex(of: "\n"), let status = Int(result.output[result.output.index(after: split)...]) else {
            throw DeploymentError("curl \(path): unreadable output")
        }
        return HTTPResult(status: status, body: Data(result.output[..<split].utf8))
    }

    /// A request with a JSON body against the server's HTTP API with `key` (the deployment's API key by default).
    func send(_ method: String, _ path: String, json: String, key: String? = nil, port: Int? = nil) throws -> HTTPResult {
        let result = Shell.run("/usr/bin/env", ["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", "-X", method,
                                                "-H", "Authorization: Bearer \(key ?? apiKey)", "-H", "Content-Type: application/json",
                                                "--data-binary", json, "http://127.0.0.1:\(port ?? httpPort)\(path)"])
        guard result.status == 0 else { throw DeploymentError("curl \(method) \(path): \(result.error)") }
        guard let split = result.output.lastIndex(of: "\n"), let status = Int(result.output[result.output.index(after: split)...]) else {
            throw DeploymentError("curl \(method) \(path): unreadable output")
        }
        return HTTPResult(status: status, body: Data(result.output[..<split].utf8))
    }

    /// The embedded cluster's password (the server generated it in its data directory).
    var databasePassword: String {
        ((try? String(contentsOfFile: dataDir + "/postgres-password", encoding: .utf8)) ?? "")
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// A PostgreSQL of its own (`useStandaloneDatabase`): its socket directory and port.
    private(set) var standaloneDatabase: (directory: String, port: Int)?

    /// Runs every server of this deployment on a PostgreSQL started here (scripts/start-postgres-peer.sh) instead
    /// of the first server's embedded cluster, so any replica can be stopped (an embedded cluster stops with its
    /// server), with one secret key file for all of them. Call before `startServer`.
    func useStandaloneDatabase() throws {
        let directory = root + "/database", port = freePort()
        let started = Shell.run(repositoryRoot + "/scripts/start-postgres-peer.sh", ["start", directory, "\(port)"])
        guard started.status == 0 else { throw DeploymentError("standalone PostgreSQL: \(started.error)") }
        standaloneDatabase = (directory, port)
        let keyFile = root + "/secret.key"
        _ = try SecretKey.loadOrCreate(path: keyFile)
        serverEnvironment["CROWSNEST_DATABASE_URL"] = databaseURL
        serverEnvironment["CROWSNEST_SECRET_KEY_FILE"] = keyFile
    }

    /// The database as an external database URL (over its unix socket).
    var databaseURL: String {
        if let (directory, port) = standaloneDatabase { return "postgres://postgres@:\(port)/postgres?host=\(directory)" }
        return "postgres://crowsnest:\(databasePassword)@/crowsnest?host=\(dataDir)/postgres/run"
    }

    /// Runs SQL on the database through its unix socket and returns psql's unaligned output.
    func sql(_ statement: String) throws -> String {
        var environment = ProcessInfo.processInfo.environment
        environment["PGPASSWORD"] = databasePassword
        let connection = standaloneDatabase.map { ["-h", $0.directory, "-p", "\($0.port)", "-U", "postgres", "-d", "postgres"] }
            ?? ["-h", dataDir + "/postgres/run", "-U", "crowsnest", "-d", "crowsnest"]
        let result = Shell.run("/usr/bin/env", ["psql", "-X", "-At"] + connection + ["-v", "ON_ERROR_STOP=1", "-c", statement],
                               environment: environment)
        guard result.status == 0 else { throw DeploymentError("psql failed: \(result.error)") }
        return result.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Other processes a test started (`start`): woken if stopped, and terminated last-first at tear-down.
    private(set) var children: [ChildProcess] = []

    /// Starts a process whose output goes to `log` in the deployment's directory; it ends with the deployment.
    /// A real HTTP server (Python's) on `port` serving `/health`: the target of an http check, switched off by
    /// terminating it and on by starting it again.
    func startHTTPTarget(port: Int) throws -> ChildProcess {
        let directory = root + "/www"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try "crowsnest target ok\n".write(toFile: directory + "/health", atomically: true, encoding: .utf8)
        let process = try ChildProcess(executable: "/usr/bin/python3",
                                       arguments: ["-m", "http.server", "--bind", "127.0.0.1", "--directory", directory, "\(port)"],
                                       logPath: root + "/target.log")
        _ = try eventually(timeout: 20, "the check's target HTTP server") { () -> Bool? in
            Shell.run("/usr/bin/env", ["curl", "-sf", "http://127.0.0.1:\(port)/health"]).status == 0 ? true : nil
        }
        return process
    }

    /// An SMTP server on loopback (`scripts/smtp-receiver.sh`: aiosmtpd with STARTTLS and AUTH for `user`), its
    /// port, and the file every accepted message is appended to as a JSON line.
    func startSMTPReceiver(user: String, password: String) throws -> (port: Int, log: String) {
        let portFile = root + "/smtp.port", log = root + "/mail.jsonl"
        _ = try start(WebBrowserEndToEndTests.repositoryRoot + "/scripts/smtp-receiver.sh",
                      ["--mode", "starttls", "--log", log, "--port-file", portFile, "--user", user, "--password", password],
                      log: "smtp-receiver.log")
        let port = try eventually(timeout: 180, "the SMTP receiver (aiosmtpd from PyPI on first use)") { () -> Int? in
            (try? String(contentsOfFile: portFile, encoding: .utf8)).flatMap { Int($0) }
        }
        return (port, log)
    }

    func start(_ executable: String, _ arguments: [String], log: String, environment: [String: String]? = nil) throws -> ChildProcess {
        let process = try ChildProcess(executable: executable, arguments: arguments, logPath: root + "/" + log,
                                       environment: environment)
        children.append(process)
        return process
    }

    func tearDown() {
        for child in children { kill(child.process.processIdentifier, SIGCONT) }
        for child in children.reversed() { child.terminate() }
        agent?.terminate()
        server?.terminate()
        // The embedded cluster outlives a killed server by design; stop it here.
        let pidFile = dataDir + "/postgres/data/postmaster.pid"
        if let text = try? String(contentsOfFile: pidFile, encoding: .utf8), let pid = Int32(text.split(separator: "\n").first ?? "") {
            kill(pid, SIGINT)
            for _ in 0..<100 where kill(pid, 0) == 0 { usleep(100_000) }
        }
        if let (directory, _) = standaloneDatabase {
            Shell.run(repositoryRoot + "/scripts/start-postgres-peer.sh", ["stop", directory])
        }
        if ProcessInfo.processInfo.environment["CROWSNEST_KEEP_E2E"] == nil {
            try? FileManager.default.removeItem(atPath: root)
        }
    }

    /// Logs of every process, for failure messages.
    var logs: String {
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).filter { $0.hasSuffix(".log") }.sorted()
        return files.map { "=== \($0)\n" + String(((try? String(contentsOfFile: root + "/" + $0, encoding: .utf8)) ?? "").suffix(3000)) }
            .joined(separator: "\n")
    }
}

struct DeploymentError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A test with a deployment and one container from the base image, both removed at the end; on failure the
/// container's `diagnostics` and the deployment's logs are printed.
class BaseImageContainerTestCase: XCTestCase {
    var deployment: Deployment!
    var container: String?

    override func setUpWithError() throws {
        try requireServices()
        try requireBaseImage()
        deployment = try Deployment()
    }

    /// What to print about the container when the test failed (its log by default).
    func diagnostics(of container: String) -> String {
        Shell.docker("logs", "--tail", "40", container).error
    }

    /// Removes the container (after printing its diagnostics when the test failed).
    func removeContainer() {
        guard let container else { return }
        if testRun?.hasSucceeded == false { print(diagnostics(of: container)) }
        Shell.docker("rm", "-f", container)
        self.container = nil
    }

    override func tearDown() {
        removeContainer()
        if testRun?.hasSucceeded == false { print(deployment?.logs ?? "") }
        deployment?.tearDown()
        super.tearDown()
    }
}
