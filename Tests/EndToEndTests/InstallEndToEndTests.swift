import Foundation
import XCTest

/// The one-line install, run the way an operator runs it: the line `token create` prints, pasted as root into a
/// fresh Debian machine (the debootstrap base booted with systemd as PID 1, the host's Docker socket shared in)
/// against a real server serving `install.sh` and the agent binary (the debug build, with the Swift runtime
/// mounted read-only where its RUNPATH points: CI builds no release binaries for the suite).
final class InstallEndToEndTests: BaseImageContainerTestCase {
    override func diagnostics(of container: String) -> String {
        let journal = Shell.docker("exec", container, "journalctl", "--no-pager", "-n", "60", "-u", "crowsnest-agent")
        return "agent journal in the test machine:\n\(journal.output)\(journal.error)"
    }

    /// Runs a shell command as root in the test machine.
    private func inMachine(_ command: String) -> Shell.Result {
        Shell.docker("exec", container ?? "", "sh", "-c", command)
    }

    func testThePrintedLineInstallsEnrollsUpgradesInPlaceRefusesATamperedScriptAndUninstalls() throws {
        // Where the machine reaches the server: the Docker bridge's gateway, which the server listens on.
        let gateway = Shell.dockerBridgeGateway()
        guard !gateway.isEmpty else { return XCTFail("no gateway address for Docker's bridge network (IPAM or docker0)") }
        let downloads = deployment.root + "/agent-downloads"
        try FileManager.default.createDirectory(atPath: downloads, withIntermediateDirectories: true)
        for file in ["install.sh", "crowsnest-agent.service", "agent.yaml"] {
            try FileManager.default.copyItem(atPath: repositoryRoot + "/agent/" + file, toPath: downloads + "/" + file)
        }
        try FileManager.default.copyItem(atPath: Binaries.agent, toPath: downloads + "/crowsnest-agent")
        let publicURL = "http://\(gateway):\(deployment.httpPort)"
        deployment.listenHost = "0.0.0.0"
        deployment.serverEnvironment["CROWSNEST_PUBLIC_URL"] = publicURL
        deployment.serverEnvironment["CROWSNEST_AGENT_DOWNLOADS"] = downloads
        deployment.serverEnvironment["CROWSNEST_SERVER_NAMES"] = gateway
        try deployment.startServer()
        _ = try deployment.admin(["tenant", "create", "acme"])
        deployment.apiKey = try XCTUnwrap(try deployment.admin(["apikey", "create", "--tenant", "acme", "--role", "read"])["key"])
        let printed = try deployment.admin(["token", "create", "--tenant", "acme"])
        let line = try XCTUnwrap(printed["install_line"], "token create printed no install line: \(printed)")
        let token = try XCTUnwrap(printed["token"])
        XCTAssertTrue(line.contains("'\(publicURL)/install.sh'"), line)
        XCTAssertTrue(line.contains("CROWSNEST_ENROLLMENT_TOKEN='\(token)' sh "), "the token travels in the environment: \(line)")
        XCTAssertFalse(line.contains("--token"), line)

        // A fresh machine: systemd as PID 1, the host's Docker socket, the Swift runtime the debug agent links.
        let swiftRuntime = try Binaries.swiftRuntimeDirectory(of: Binaries.agent)
        let hostname = "cn-vps-" + String(UUID().uuidString.prefix(6)).lowercased()
        // Every capability but CAP_SYS_RESOURCE rather than --privileged: this engine itself runs without that one,
        // so a privileged container cannot start here.
        let run = Shell.docker("run", "-d", "--hostname", hostname, "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
                               "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
                               "--tmpfs", "/run", "--tmpfs", "/run/lock", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:ro",
                               "-v", "/var/run/docker.sock:/var/run/docker.sock",
                               "-v", "\(swiftRuntime):\(swiftRuntime):ro", baseImage)
        XCTAssertEqual(run.status, 0, run.error)
        container = run.output.trimmingCharacters(in: .whitespacesAndNewlines)
        _ = try eventually(timeout: 60, "systemd up in the test machine") { () -> Bool? in
            let state = inMachine("systemctl is-system-running").output.trimmingCharacters(in: .whitespacesAndNewlines)
            return state == "running" || state == "degraded" ? true : nil
        }

        // The line, pasted as root.
        let first = inMachine(line)
        XCTAssertEqual(first.status, 0, "install failed:\n\(first.output)\(first.error)")
        XCTAssertTrue(first.output.contains("started crowsnest-agent.service"), first.output)
        XCTAssertEqual(inMachine("ls /tmp/tmp.* 2>/dev/null | wc -l").output.trimmingCharacters(in: .whitespacesAndNewlines), "0",
                       "the downloaded script is removed")
        let host = try eventually(timeout: 60, "the new host in the inventory") { () -> [String: Any]? in
            let hosts = try deployment.http("/api/v1/infrastructure").json["hosts"] as? [[String: Any]] ?? []
            return hosts.first { $0["hostname"] as? String == hostname && $0["state"] as? String == "up" }
        }
        let agentID = try XCTUnwrap(host["id"] as? String)
        XCTAssertEqual(inMachine("id -nG crowsnest-agent").status, 0, "the system user exists")
        XCTAssertEqual(inMachine("ps -o user:20= -C crowsnest-agent").output.trimmingCharacters(in: .whitespacesAndNewlines),
                       "crowsnest-agent", "the agent runs as its system user")
        let identity = inMachine("sha256sum /var/lib/crowsnest-agent/agent.pem").output

        // The same line again: an upgrade in place, same identity, no second host.
        let second = inMachine(line)
        XCTAssertEqual(second.status, 0, "second run failed:\n\(second.output)\(second.error)")
        XCTAssertTrue(second.output.contains("already enrolled"), second.output)
        XCTAssertEqual(inMachine("sha256sum /var/lib/crowsnest-agent/agent.pem").output, identity)
        XCTAssertEqual(inMachine("systemctl is-active crowsnest-agent").output.trimmingCharacters(in: .whitespacesAndNewlines), "active")
        let hosts = try deployment.http("/api/v1/infrastructure").json["hosts"] as? [[String: Any]] ?? []
        XCTAssertEqual(hosts.filter { $0["hostname"] as? String == hostname }.map { $0["id"] as? String }, [agentID])

        // A tampered install.sh (one line added) is refused by the checksum in the line, before it runs.
        XCTAssertEqual(inMachine("curl -fsS \(publicURL)/install.sh | sed 's|^set -eu$|set -eu; touch /tmp/tampered-ran|' "
            + "> /tmp/tampered.sh").status, 0)
        let tampered = inMachine(line.replacingOccurrences(of: "'\(publicURL)/install.sh'", with: "'file:///tmp/tampered.sh'"))
        XCTAssertNotEqual(tampered.status, 0, "a tampered script ran:\n\(tampered.output)")
        XCTAssertTrue((tampered.output + tampered.error).contains("did NOT match"), tampered.output + tampered.error)
        XCTAssertNotEqual(inMachine("test -e /tmp/tampered-ran").status, 0, "the tampered script must not have run")

        // What goes wrong is said in one line: no route to the server, no Docker socket, no systemd.
        let unreachable = inMachine("curl -fsS \(publicURL)/install.sh | "
            + "sed \"s|^SERVER_URL=.*|SERVER_URL='http://\(gateway):1'|\" | sh")
        XCTAssertNotEqual(unreachable.status, 0)
        XCTAssertTrue(unreachable.error.hasPrefix("crowsnest-install: cannot download http://\(gateway):1/downloads/"), unreachable.error)
        XCTAssertEqual(unreachable.error.split(separator: "\n").count, 1, unreachable.error)
        XCTAssertEqual(inMachine("umount /var/run/docker.sock").status, 0)
        let noDocker = inMachine(line)
        XCTAssertNotEqual(noDocker.status, 0)
        XCTAssertEqual(noDocker.error.trimmingCharacters(in: .whitespacesAndNewlines),
                       "crowsnest-install: no Docker socket at /var/run/docker.sock: install and start Docker first (the agent monitors its containers)")
        let script = Shell.run("/usr/bin/env", ["curl", "-fsS", "http://127.0.0.1:\(deployment.httpPort)/install.sh"]).output
        let noSystemd = Shell.run("/usr/bin/env", ["sh", "-c", "printf '%s' \"$0\" | docker run --rm -i \(baseImage) sh", script])
        XCTAssertNotEqual(noSystemd.status, 0)
        XCTAssertTrue(noSystemd.error.hasPrefix("crowsnest-install: systemd is not running on this host"), noSystemd.error)

        // Uninstall removes the service, the binary, the configuration, the identity and the user.
        let uninstall = inMachine("curl -fsS \(publicURL)/install.sh | sh -s uninstall")
        XCTAssertEqual(uninstall.status, 0, uninstall.output + uninstall.error)
        XCTAssertTrue(uninstall.output.contains("user:crowsnest-agent"), uninstall.output)
        for path in ["/usr/local/bin/crowsnest-agent", "/etc/systemd/system/crowsnest-agent.service", "/etc/crowsnest/agent.yaml",
                     "/var/lib/crowsnest-agent"] {
            XCTAssertNotEqual(inMachine("test -e \(path)").status, 0, "\(path) is left after uninstall")
        }
        XCTAssertNotEqual(inMachine("id crowsnest-agent").status, 0, "the user is left after uninstall")
        XCTAssertNotEqual(inMachine("pgrep -x crowsnest-agent").status, 0, "the agent still runs after uninstall")
    }
}
