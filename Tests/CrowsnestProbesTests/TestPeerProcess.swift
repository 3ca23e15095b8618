import Foundation
import XCTest

/// Real peers the probe tests start from Debian's packages: nginx with `stub_status`, and a PostgreSQL cluster
/// on TCP with password users (scripts/start-postgres-peer.sh). A missing package fails the test with what to
/// install: these tests never pass by skipping.
enum TestPeerProcess {
    static var repositoryRoot: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    }

    /// A TCP port nothing listens on right now (bound, read and released).
    static func freePort() throws -> Int {
        let socket = Foundation.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(socket) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socket, $0, length) == 0 && getsockname(socket, $0, &length) == 0 }
        }
        guard bound else { throw NSError(domain: "TestPeerProcess", code: 1, userInfo: [NSLocalizedDescriptionKey: "cannot bind a probe port"]) }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// Runs a command to its end; its combined output, or an error with it when it fails. Commands that leave a
    /// daemon behind (nginx, pg_ctl) must not hand it Foundation's internal descriptors, which would keep
    /// `waitUntilExit` from returning: bash closes every descriptor above 2 before it runs the command, and the
    /// output goes through a file, not a pipe.
    @discardableResult
    static func run(_ arguments: [String]) throws -> String {
        let outputPath = NSTemporaryDirectory() + "crowsnest-peer-output-\(UUID().uuidString)"
        FileManager.default.createFile(atPath: outputPath, contents: nil)
        defer { try? FileManager.default.removeItem(atPath: outputPath) }
        let outputFile = try FileHandle(forWritingTo: URL(fileURLWithPath: outputPath))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = ["-c", #"for fd in $(ls /proc/$$/fd); do if [ "$fd" -gt 2 ]; then eval "exec $fd>&-" 2>/dev/null || true; fi; done; exec "$@""#,
                             "run"] + arguments
        process.standardOutput = outputFile
        process.standardError = outputFile
        try process.run()
        process.waitUntilExit()
        try? outputFile.close()
        let output = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
        guard process.terminationStatus == 0 else {
            throw NSError(domain: "TestPeerProcess", code: Int(process.terminationStatus),
                          userInfo: [NSLocalizedDescriptionKey: "\(arguments.joined(separator: " ")) failed: \(output)"])
        }
        return output
    }
}

/// nginx from Debian's packages on 127.0.0.1 with `stub_status` at /nginx_status.
final class TestNginx {
    let port: Int
    let directory: String

    init() throws {
        let binary = "/usr/sbin/nginx"
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw NSError(domain: "TestNginx", code: 1, userInfo: [NSLocalizedDescriptionKey:
                "nginx is not installed: the nginx probe is tested against a real one (scripts/ensure-packages.sh installs nginx-light)"])
        }
        port = try TestPeerProcess.freePort()
        directory = NSTemporaryDirectory() + "crowsnest-nginx-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory + "/logs", withIntermediateDirectories: true)
        let configuration = """
            worker_processes 1; daemon on; pid \(directory)/nginx.pid; error_log \(directory)/logs/error.log;
            events { worker_connections 64; }
            http {
              access_log off;
              client_body_temp_path \(directory)/body; proxy_temp_path \(directory)/proxy;
              fastcgi_temp_path \(directory)/fastcgi; uwsgi_temp_path \(directory)/uwsgi; scgi_temp_path \(directory)/scgi;
              server {
                listen 127.0.0.1:\(port);
                location = /nginx_status { stub_status; }
                location / { return 200 "not a status page\\n"; }
              }
            }
            """
        try configuration.write(toFile: directory + "/nginx.conf", atomically: true, encoding: .utf8)
        try TestPeerProcess.run([binary, "-p", directory, "-c", directory + "/nginx.conf"])
    }

    /// Stops nginx and waits until its master has exited: `nginx -s stop` only signals it, and a probe made while
    /// it is still closing gets "connection reset" where the test expects "connection refused".
    func stop() {
        let pid = (try? String(contentsOfFile: directory + "/nginx.pid", encoding: .utf8))
            .flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        _ = try? TestPeerProcess.run(["/usr/sbin/nginx", "-p", directory, "-c", directory + "/nginx.conf", "-s", "stop"])
        if let pid {
            let deadline = Date().addingTimeInterval(10)
            while kill(pid, 0) == 0, Date() < deadline { usleep(20_000) }
        }
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// A PostgreSQL cluster on 127.0.0.1 with users for each way of signing in (scripts/start-postgres-peer.sh):
/// `scram_user`/`scram-secret` (SCRAM-SHA-256), `md5_user`/`md5-secret` (md5), `plain_user`/`plain-secret`
/// (cleartext password), `trust_user` (no password).
final class TestPostgresPeer {
    let port: Int
    let directory: String

    init() throws {
        port = try TestPeerProcess.freePort()
        directory = NSTemporaryDirectory() + "crowsnest-pg-peer-\(UUID().uuidString)"
        try TestPeerProcess.run([TestPeerProcess.repositoryRoot + "/scripts/start-postgres-peer.sh", "start", directory, "\(port)"])
    }

    func stop() {
        _ = try? TestPeerProcess.run([TestPeerProcess.repositoryRoot + "/scripts/start-postgres-peer.sh", "stop", directory])
    }
}
