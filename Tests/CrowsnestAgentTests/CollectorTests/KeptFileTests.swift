import Foundation
import XCTest

@testable import CrowsnestAgent

/// Files kept open across sweeps: read with pread from the start, closed with their owner, reopened when the file
/// behind a kept descriptor went away.
final class KeptFileTests: XCTestCase {
    private func openDescriptorCount() throws -> Int {
        try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count
    }

    func testAKeptFileIsReadFromTheStartEverySweepAndClosedWithItsOwner() throws {
        let dir = try scratchDirectory("kept-files")
        let path = dir + "/memory.current"
        try "1234\n".write(toFile: path, atomically: false, encoding: .utf8)
        let before = try openDescriptorCount()
        var file: KeptFile? = KeptFile(path)
        XCTAssertFalse(file!.isOpen, "nothing is opened before the first read")
        XCTAssertEqual(try file!.string(), "1234\n")
        XCTAssertTrue(file!.isOpen)
        XCTAssertEqual(try openDescriptorCount(), before + 1)
        // The same descriptor, read again from offset 0 (as the kernel regenerates a pseudo-file).
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.truncate(atOffset: 0)
        try handle.write(contentsOf: Data("98765\n".utf8))
        try handle.close()
        XCTAssertEqual(try file!.number(), 98765)
        XCTAssertEqual(try openDescriptorCount(), before + 1, "read through the kept descriptor, none opened")
        file = nil
        XCTAssertEqual(try openDescriptorCount(), before, "closed with its owner")

        let missing = KeptFile(dir + "/no-such-file")
        XCTAssertNil(try missing.string())
        XCTAssertFalse(missing.isOpen, "a missing file keeps nothing open")
        try "7\n".write(toFile: dir + "/no-such-file", atomically: false, encoding: .utf8)
        XCTAssertEqual(try missing.number(), 7, "a file that appears later is picked up at the next read")
    }

    func testAFileLargerThanTheStackBufferIsReadWhole() throws {
        let path = try scratchDirectory("kept-files") + "/big"
        let text = (0..<3000).map { "line \($0) 12345\n" }.joined()
        XCTAssertGreaterThan(text.utf8.count, KeptFile.stackCapacity * 2)
        try text.write(toFile: path, atomically: false, encoding: .utf8)
        let file = KeptFile(path)
        XCTAssertEqual(try file.string(), text)
        XCTAssertEqual(try file.string(), text, "and again through the kept descriptor")
    }

    /// Containers coming and going for 1,000 cycles, each read for two sweeps through its collectors and then
    /// dropped as the sampler drops a stopped container's, leave the descriptor count where it was.
    func testTheOpenFileCountStaysFlatOverAThousandContainerCycles() throws {
        let dir = try scratchDirectory("kept-files")
        let before = try openDescriptorCount()
        for cycle in 0..<1_000 {
            let container = dir + "/c\(cycle)"
            try FileManager.default.createDirectory(atPath: container, withIntermediateDirectories: false)
            for (file, text) in [("cpu.stat", "usage_usec \(cycle)\n"), ("memory.current", "\(cycle)\n"), ("io.stat", "")] {
                try text.write(toFile: container + "/" + file, atomically: false, encoding: .utf8)
            }
            let collectors = ContainerCollectors(dockerID: "c\(cycle)", pid: 0, location: .v2(directory: container), procRoot: dir)
            XCTAssertEqual(try collectors.collect().cpuUsageNs, UInt64(cycle) * 1000)
            XCTAssertEqual(try collectors.collect().memoryUsageBytes, UInt64(cycle))
            XCTAssertEqual(try openDescriptorCount(), before + 3, "cpu.stat, memory.current and io.stat kept open")
            try FileManager.default.removeItem(atPath: container)
        }
        XCTAssertEqual(try openDescriptorCount(), before)
    }

    /// On the real kernel: the mount table says when it changed, so the host's filesystems are read from it again
    /// only then (a Docker host's table is long and built anew on every read).
    func testTheMountTableSignalsAMountAndAnUnmount() throws {
        let point = try scratchDirectory("mount-signal")
        let table = KeptFile("/proc/self/mounts")
        XCTAssertTrue(table.signalledChange(), "not read yet: read it")
        XCTAssertNotNil(try table.string())
        XCTAssertFalse(table.signalledChange(), "nothing mounted since the read")
        guard mount("crowsnest-test", point, "tmpfs", 0, "size=1m") == 0 else {
            let code = errno
            if ProcessInfo.processInfo.environment["CI"] == "true" { XCTFail("cannot mount a tmpfs (errno \(code)); the suite runs as root") }
            throw XCTSkip("mounting needs root (errno \(code))")
        }
        XCTAssertTrue(table.signalledChange(), "a mount is a change")
        XCTAssertFalse(table.signalledChange(), "and it is signalled once")
        XCTAssertEqual(umount(point), 0)
        XCTAssertTrue(table.signalledChange(), "an unmount is a change")
        XCTAssertTrue(try table.string()?.contains(point) == false)
    }

    /// On the real kernel: a cgroup removed and created again under the same path (a restarted container keeps
    /// its id, so its cgroup path) fails the kept descriptor, which is reopened on the new cgroup.
    func testAKeptCgroupFileIsReopenedWhenItsCgroupIsRecreated() throws {
        let parent = "/sys/fs/cgroup/memory"
        guard access(parent, W_OK) == 0 else {
            if ProcessInfo.processInfo.environment["CI"] == "true" { XCTFail("cgroup v1 memory controller not writable at \(parent)") }
            throw XCTSkip("needs root and a writable cgroup v1 memory controller at \(parent)")
        }
        let cgroup = parent + "/crowsnest-test-\(UUID().uuidString.prefix(8))"
        XCTAssertEqual(mkdir(cgroup, 0o755), 0, "mkdir \(cgroup): errno \(errno)")
        addTeardownBlock { rmdir(cgroup) }
        let limit = cgroup + "/memory.limit_in_bytes"
        try "104857600".write(toFile: limit, atomically: false, encoding: .utf8)
        let file = KeptFile(limit)
        XCTAssertEqual(try file.number(), 104_857_600)
        XCTAssertEqual(rmdir(cgroup), 0)
        XCTAssertEqual(mkdir(cgroup, 0o755), 0)
        try "209715200".write(toFile: limit, atomically: false, encoding: .utf8)
        XCTAssertEqual(try file.number(), 209_715_200, "the kept descriptor of the removed cgroup was not reopened")
        XCTAssertTrue(file.isOpen)
    }
}
