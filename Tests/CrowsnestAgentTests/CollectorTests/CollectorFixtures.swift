import Foundation
import XCTest

/// Paths into the checked-in collector fixtures (cgroup trees and a fake procfs).
enum CollectorFixtures {
    /// The copied `Fixtures` folder of the test bundle.
    static var root: String {
        guard let url = Bundle.module.url(forResource: "Fixtures", withExtension: nil) else {
            fatalError("Fixtures folder missing from the test bundle")
        }
        return url.path
    }

    /// A cgroup v2 root (has `cgroup.controllers`).
    static var cgroupV2: String { root + "/cgroup-v2" }
    /// A cgroup v1 root with Docker's cgroupfs driver layout and separate cpu/cpuacct hierarchies (as on this machine).
    static var cgroupV1Cgroupfs: String { root + "/cgroup-v1/cgroupfs" }
    /// A cgroup v1 root with the systemd driver layout and co-mounted `cpu,cpuacct`, no pids hierarchy.
    static var cgroupV1Systemd: String { root + "/cgroup-v1/systemd" }
    /// A fake procfs root: host files plus `<pid>/cgroup` and `<pid>/net/dev` of a few containers.
    static var proc: String { root + "/proc" }

    /// v2, systemd driver, init pid 4242.
    static let v2SystemdID = "3f2e1d0c9b8a7f6e5d4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e"
    /// v2, cgroupfs driver, no io.stat / pids.current, unlimited memory.
    static let v2CgroupfsID = "8a9b0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b"
    /// v1, cgroupfs driver, init pid 1717 (files copied from a live container on this machine).
    static let v1CgroupfsID = "949f0f3436b5edd9ddb7ef49cd76f2bf1f6b86284f6111b1b4ec024dc76bf326"
    /// v1, systemd driver, unlimited memory, only non-recursive blkio files.
    static let v1SystemdID = "5d1c2b3a4f6e7d8c9b0a1f2e3d4c5b6a7f8e9d0c1b2a3f4e5d6c7b8a9f0e1d2c"

    /// A fresh temporary directory, removed when the test case tears down.
    static func temporaryDirectory(for testCase: XCTestCase) throws -> String {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("crowsnest-collectors-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        testCase.addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url.path
    }

    /// Writes `content` to `path`, creating parent directories.
    static func write(_ content: String, to path: String) throws {
        let url = URL(fileURLWithPath: path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try content.write(to: url, atomically: true, encoding: .utf8)
    }
}
