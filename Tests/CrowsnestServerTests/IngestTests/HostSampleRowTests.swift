import CrowsnestWire
import Foundation
import XCTest

@testable import CrowsnestServer

/// The host row's filesystems column is written as JSON by hand (one statement for a group's host rows): it must be
/// the JSON that a JSON library reads back to the same values, whatever the names hold.
final class HostSampleRowTests: XCTestCase {
    func testFilesystemsJSONReadsBackToTheSameValuesWhateverTheNamesHold() throws {
        var host = Crowsnest_V1_HostSample()
        for (mountpoint, device) in [("/", "/dev/vda1"), ("/mnt/a \"quoted\" \\ back", "tank/\u{01}ctl\ttab\nnl"), ("/ünïcode/✓", "dev")] {
            var fs = Crowsnest_V1_Filesystem()
            fs.mountpoint = mountpoint
            fs.device = device
            fs.fstype = "ext4"
            fs.sizeBytes = UInt64.max
            fs.freeBytes = 12_345
            fs.availableBytes = 0
            host.filesystems.append(fs)
        }
        let row = HostSampleRow(host: host, tsMillis: 0, rates: .unknown)
        let parsed = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(row.filesystemsJSON.utf8)) as? [[String: Any]])
        XCTAssertEqual(parsed.count, 3)
        for (object, fs) in zip(parsed, host.filesystems) {
            XCTAssertEqual(object["mountpoint"] as? String, fs.mountpoint)
            XCTAssertEqual(object["device"] as? String, fs.device)
            XCTAssertEqual(object["fstype"] as? String, "ext4")
            XCTAssertEqual((object["size_bytes"] as? NSNumber)?.uint64Value, UInt64.max)
            XCTAssertEqual((object["free_bytes"] as? NSNumber)?.uint64Value, 12_345)
            XCTAssertEqual((object["available_bytes"] as? NSNumber)?.uint64Value, 0)
        }
        XCTAssertEqual(HostSampleRow(host: Crowsnest_V1_HostSample(), tsMillis: 0, rates: .unknown).filesystemsJSON, "[]")
    }
}
