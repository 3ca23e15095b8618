import Crypto
import Foundation
import XCTest

/// The committed generated code must match `proto/`: regenerate with `scripts/generate-proto.sh`.
final class GeneratedCodeDriftTests: XCTestCase {
    private var repositoryRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    func testProtoChecksumsMatchTheOnesRecordedAtGeneration() throws {
        let recorded = try String(contentsOf: repositoryRoot.appendingPathComponent("Sources/CrowsnestWire/Generated/proto.sha256"), encoding: .utf8)
        var expected: [String: String] = [:]
        for line in recorded.split(separator: "\n") {
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            XCTAssertEqual(parts.count, 2, "malformed line in proto.sha256: \(line)")
            expected[String(parts[1])] = String(parts[0])
        }
        let protoRoot = repositoryRoot.appendingPathComponent("proto")
        var actual: [String: String] = [:]
        let enumerator = try XCTUnwrap(FileManager.default.enumerator(atPath: protoRoot.path))
        for case let relative as String in enumerator where relative.hasSuffix(".proto") {
            let data = try Data(contentsOf: protoRoot.appendingPathComponent(relative))
            actual["./" + relative] = SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
        }
        XCTAssertFalse(actual.isEmpty, "no .proto files found under \(protoRoot.path)")
        XCTAssertEqual(actual, expected, "proto/ changed since the Swift code was generated: run scripts/generate-proto.sh and commit the result")
    }

    /// When protoc and protoc-gen-swift are at hand, regenerate and compare byte for byte.
    func testRegeneratedCodeIsIdenticalWhenGeneratorIsAvailable() throws {
        guard let plugin = ProcessInfo.processInfo.environment["PROTOC_GEN_SWIFT"],
              FileManager.default.isExecutableFile(atPath: plugin),
              FileManager.default.isExecutableFile(atPath: "/usr/bin/protoc")
        else {
            throw XCTSkip("PROTOC_GEN_SWIFT not set or protoc missing: byte-for-byte regeneration check skipped (checksum check still runs)")
        }
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("crowsnest-proto-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: out) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/protoc")
        process.currentDirectoryURL = repositoryRoot
        process.arguments = ["--plugin=protoc-gen-swift=\(plugin)", "--swift_opt=Visibility=Public",
                             "--swift_out=\(out.path)", "-I", "proto", "proto/crowsnest/v1/crowsnest.proto"]
        try process.run()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0)
        let regenerated = try Data(contentsOf: out.appendingPathComponent("crowsnest/v1/crowsnest.pb.swift"))
        let committed = try Data(contentsOf: repositoryRoot.appendingPathComponent("Sources/CrowsnestWire/Generated/crowsnest.pb.swift"))
        XCTAssertEqual(regenerated, committed, "generated code differs from a fresh generation: run scripts/generate-proto.sh")
    }
}
