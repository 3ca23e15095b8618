import Foundation
import XCTest

@testable import CrowsnestAgent

/// Files kept open across sweeps: read with pread from the start, closed when a sweep no longer reads them,
/// reopened when the file behind a kept descriptor went away.
final class OpenFileTableTests: XCTestCase {
    private func read(_ path: String, with table: OpenFileTable) throws -> String? {
        try CollectorFile.$openFiles.withValue(table) { try CollectorFile.string(at: path) }
    }

    private func openDescriptorCount() throws -> Int {
        try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count
    }

    func testAKeptFileIsReadFromTheStartEverySweepAndClosedWhenNoLongerRead() throws {
        let dir = try scratchDirectory("open-files")
        let path = dir + "/memory.current"
        try "1234\n".write(toFile: path, atomically: false, encoding: .utf8)
        let table = OpenFileTable()
        XCTAssertEqual(try read(path, with: table), "1234\n")
        XCTAssertEqual(table.openCount, 1)
        // The same descriptor, read again from offset 0 (as the kernel regenerates a pseudo-file).
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.truncate(atOffset: 0)
        try handle.write(contentsOf: Data("98765\n".utf8))
        try handle.close()
        XCTAssertEqual(try read(path, with: table), "98765\n")
        XCTAssertEqual(table.closeUnused(), 0, "read in this sweep: kept")
        XCTAssertEqual(table.closeUnused(), 1, "not read in the last sweep: closed")
        XCTAssertEqual(table.openCount, 0)
        XCTAssertNil(try read(dir + "/no-such-file", with: table))
        XCTAssertEqual(table.openCount, 0, "a missing file keeps nothing open")
    }

    func testAFileLargerThanTheStackBufferIsReadWhole() throws {
        let path = try scratchDirectory("open-files") + "/big"
        let text = (0..<3000).map { "line \($0) 12345\n" }.joined()
        XCTAssertGreaterThan(text.utf8.count, CollectorFile.stackCapacity * 2)
        try text.write(toFile: path, atomically: false, encoding: .utf8)
        let table = OpenFileTable()
        XCTAssertEqual(try read(path, with: table), text)
        XCTAssertEqual(try read(path, with: table), text, "and again through the kept descriptor")
    }

    /// Containers coming and going for 1,000 cycles leave the agent's descriptor count where it was.
    func testTheOpenFileCountStaysFlatOverAThousandContainerCycles() throws {
        let dir = try scratchDirectory("open-files")
        let table = OpenFileTable()
        let before = try openDescriptorCount()
        for cycle in 0..<1_000 {
            let container = dir + "/c\(cycle)"
            try FileManager.default.createDirectory(atPath: container, withIntermediateDirectories: false)
            for file in ["memory.current", "cpu.stat", "io.stat"] {
                try "\(cycle)\n".write(toFile: container + "/" + file, atomically: false, encoding: .utf8)
                XCTAssertEqual(try read(container + "/" + file, with: table), "\(cycle)\n")
            }
            try FileManager.default.removeItem(atPath: container)
            table.closeUnused()  // the sweep after the container was read
            table.closeUnused()  // the next one, which no longer reads it
        }
        XCTAssertEqual(table.openCount, 0)
        XCTAssertEqual(try openDescriptorCount(), before)
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
        let table = OpenFileTable()
        XCTAssertEqual(try read(limit, with: table)?.trimmingCharacters(in: .whitespacesAndNewlines), "104857600")
        XCTAssertEqual(rmdir(cgroup), 0)
        XCTAssertEqual(mkdir(cgroup, 0o755), 0)
        try "209715200".write(toFile: limit, atomically: false, encoding: .utf8)
        XCTAssertEqual(try read(limit, with: table)?.trimmingCharacters(in: .whitespacesAndNewlines), "209715200",
                       "the kept descriptor of the removed cgroup was not reopened")
        XCTAssertEqual(table.openCount, 1)
    }
}
