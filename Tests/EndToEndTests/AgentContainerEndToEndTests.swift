import Foundation
import XCTest

/// The agent as a container, as `agent/Dockerfile` and the Kubernetes DaemonSet run it: the host's Docker socket,
/// `/proc` and `/sys/fs/cgroup` mounted read-only, the host's root filesystem at `/host` (`host_root`), its
/// identity in a host directory. Run from the base image with the debug agent and the Swift runtime mounted in.
final class AgentContainerEndToEndTests: BaseImageContainerTestCase {
    private var loopMount: String?

    override func tearDown() {
        // The container holds a bind of the loop mount: it goes first, then the mount, then the deployment.
        removeContainer()
        if let loopMount { Shell.run("/usr/bin/env", ["umount", loopMount]) }
        super.tearDown()
    }

    /// Runs the agent image's way: every host path read-only, the state directory from the host.
    private func runAgentContainer(_ arguments: [String], detached: Bool) throws -> Shell.Result {
        let runtime = try Binaries.swiftRuntimeDirectory(of: Binaries.agent)
        var command = ["run", detached ? "-d" : "--rm", "--network", "host", "--cgroupns", "host",
                       "-v", "/var/run/docker.sock:/var/run/docker.sock:ro", "-v", "/proc:/host/proc:ro",
                       "-v", "/sys/fs/cgroup:/host/sys/fs/cgroup:ro", "-v", "/:/host:ro",
                       "-v", "\(deployment.stateDir):/var/lib/crowsnest-agent",
                       "-v", "\(Binaries.agent):/usr/local/bin/crowsnest-agent:ro", "-v", "\(runtime):\(runtime):ro",
                       "-e", "CROWSNEST_PROC_ROOT=/host/proc", "-e", "CROWSNEST_CGROUP_ROOT=/host/sys/fs/cgroup",
                       "-e", "CROWSNEST_HOST_ROOT=/host", "-e", "CROWSNEST_STATE_DIR=/var/lib/crowsnest-agent"]
        command += [baseImage, "/usr/local/bin/crowsnest-agent"] + arguments
        return Shell.run("/usr/bin/env", ["docker"] + command)
    }

    func testTheAgentInAContainerReportsTheHostsDisksAndKeepsItsIdentityAcrossRestarts() throws {
        // A filesystem only the host has: a 64 MiB ext4 image mounted on a loop device.
        let image = deployment.root + "/disk.img", mountpoint = deployment.root + "/disk"
        try FileManager.default.createDirectory(atPath: mountpoint, withIntermediateDirectories: true)
        for step in [["truncate", "-s", "64M", image], ["mkfs.ext4", "-q", "-F", image], ["mount", "-o", "loop", image, mountpoint]] {
            let result = Shell.run("/usr/bin/env", step)
            XCTAssertEqual(result.status, 0, "\(step.joined(separator: " ")): \(result.error)")
        }
        loopMount = mountpoint
        var host = statvfs()
        XCTAssertEqual(statvfs(mountpoint, &host), 0)
        let hostSize = UInt64(host.f_blocks) * UInt64(host.f_frsize)

        try deployment.startServer()
        _ = try deployment.admin(["tenant", "create", "e2e"])
        deployment.apiKey = try XCTUnwrap(try deployment.admin(["apikey", "create", "--tenant", "e2e", "--role", "read"])["key"])
        let token = try deployment.admin(["token", "create", "--tenant", "e2e"])
        try FileManager.default.createDirectory(atPath: deployment.stateDir, withIntermediateDirectories: true)
        let enroll = try runAgentContainer(["enroll", "--server", "127.0.0.1:\(deployment.agentPort)",
                                            "--token", token["token"]!, "--ca-pin", token["ca_pin"]!], detached: false)
        XCTAssertEqual(enroll.status, 0, enroll.output + enroll.error)
        let run = try runAgentContainer(["run", "--interval", "1"], detached: true)
        XCTAssertEqual(run.status, 0, run.error)
        container = run.output.trimmingCharacters(in: .whitespacesAndNewlines)

        // The host's own disk, measured through /host as the host sees it.
        let reported = try eventually(timeout: 60, "the loop filesystem in a host sample") { () -> String? in
            let size = try deployment.sql("""
                SELECT fs->>'size_bytes' FROM host_samples, jsonb_array_elements(filesystems) fs
                WHERE fs->>'mountpoint' = '\(mountpoint)' ORDER BY ts DESC LIMIT 1
                """)
            return size.isEmpty ? nil : size
        }
        XCTAssertEqual(UInt64(reported), hostSize, "the host's size of \(mountpoint)")
        let hosts = try deployment.http("/api/v1/infrastructure").json["hosts"] as? [[String: Any]] ?? []
        XCTAssertEqual(hosts.count, 1)
        let agentID = try XCTUnwrap(hosts.first?["id"] as? String)
        XCTAssertEqual(hosts.first?["hostname"] as? String, ProcessInfo.processInfo.hostName, "the host's name, not the container's")

        // A new container on the same host directory is the same agent.
        Shell.docker("rm", "-f", container!)
        let restartedAt = Date().timeIntervalSince1970
        let again = try runAgentContainer(["run", "--interval", "1"], detached: true)
        XCTAssertEqual(again.status, 0, again.error)
        container = again.output.trimmingCharacters(in: .whitespacesAndNewlines)
        _ = try eventually(timeout: 60, "samples from the restarted container") { () -> Bool? in
            Int(try deployment.sql("SELECT count(*) FROM host_samples WHERE ts > to_timestamp(\(restartedAt + 1))")) ?? 0 >= 2 ? true : nil
        }
        let after = try deployment.http("/api/v1/infrastructure").json["hosts"] as? [[String: Any]] ?? []
        XCTAssertEqual(after.compactMap { $0["id"] as? String }, [agentID], "one host, the same agent")
    }
}
