import CrowsnestWire
import XCTest

/// The bounds both sides apply to every string a batch carries.
final class WireTextCleanerTests: XCTestCase {
    func testContainsNulFindsANulAnywhereInSmallLargeAndBridgedStrings() {
        XCTAssertFalse(WireTextCleaner.containsNul(""))
        XCTAssertFalse(WireTextCleaner.containsNul("short"))                       // stored inline (small string)
        XCTAssertTrue(WireTextCleaner.containsNul("a\u{0}b"))
        let large = String(repeating: "x", count: 10_000)
        XCTAssertFalse(WireTextCleaner.containsNul(large))
        XCTAssertTrue(WireTextCleaner.containsNul(large + "\u{0}"))               // the last byte
        XCTAssertTrue(WireTextCleaner.containsNul("\u{0}" + large))               // the first byte
        XCTAssertFalse(WireTextCleaner.containsNul("é🙂" + large))                 // multi-byte characters, no NUL
        let substring = ("abc\u{0}def" + large).dropFirst(4)                         // a String made from a Substring
        XCTAssertFalse(WireTextCleaner.containsNul(String(substring)))
        XCTAssertTrue(WireTextCleaner.containsNul(String(("abc\u{0}def" + large).dropFirst(3))))
    }

    func testNulIsRemovedAndShortTextIsUnchanged() {
        var cleaner = WireTextCleaner()
        XCTAssertEqual(cleaner.text("a\u{0}b\u{0}", maxBytes: 10), "ab")
        XCTAssertEqual(cleaner.text("plain", maxBytes: 5), "plain")
        XCTAssertEqual(cleaner.truncated, 0, "removing NUL is cleaning, not truncating")
    }

    func testTextIsCutOnACharacterBoundaryAtTheByteBound() {
        var cleaner = WireTextCleaner()
        // "é" is two bytes, "👍🏽" eight: nothing may be cut in half.
        XCTAssertEqual(cleaner.text("ééé", maxBytes: 5), "éé")
        XCTAssertEqual(cleaner.text("a👍🏽", maxBytes: 8), "a")
        XCTAssertEqual(cleaner.text("abc", maxBytes: 0), "")
        XCTAssertEqual(cleaner.truncated, 3)
    }

    func testALongNameEndsInAHashSoTwoLongNamesStayApart() {
        var cleaner = WireTextCleaner()
        let prefix = String(repeating: "n", count: 300)
        let one = cleaner.name(prefix + "1", maxBytes: 40)
        let two = cleaner.name(prefix + "2", maxBytes: 40)
        XCTAssertEqual(one.utf8.count, 40)
        XCTAssertEqual(two.utf8.count, 40)
        XCTAssertNotEqual(one, two)
        XCTAssertNotNil(one.range(of: #"^n{31}~[0-9a-f]{8}$"#, options: .regularExpression), one)
        // The same input always gives the same name (a target keeps its history).
        XCTAssertEqual(cleaner.name(prefix + "1", maxBytes: 40), one)
        XCTAssertEqual(cleaner.name("short", maxBytes: 40), "short")
    }

    func testLabelsAreBoundedInCountSizeAndTotal() {
        var cleaner = WireTextCleaner()
        let many = Dictionary(uniqueKeysWithValues: (0..<100).map { (String(format: "k%03d", $0), "v") })
        let kept = cleaner.labels(many)
        XCTAssertEqual(kept.count, WireTextBounds.labelCount)
        XCTAssertEqual(kept.keys.sorted().first, "k000", "keys are kept in order")
        XCTAssertEqual(cleaner.truncated, UInt64(100 - WireTextBounds.labelCount))

        var sizes = WireTextCleaner()
        let huge = Dictionary(uniqueKeysWithValues: (0..<40).map { ("label-\($0)", String(repeating: "x", count: 15_000)) })
        let bounded = sizes.labels(huge)
        let total = bounded.reduce(0) { $0 + $1.key.utf8.count + $1.value.utf8.count }
        XCTAssertLessThanOrEqual(total, WireTextBounds.labelTotalBytes)
        XCTAssertTrue(bounded.values.allSatisfy { $0.utf8.count == WireTextBounds.labelValueBytes })
        XCTAssertEqual(sizes.truncated, 40 + UInt64(40 - bounded.count), "every value shortened, plus each label dropped over the total")
    }

    func testABatchIsSanitizedEverywhereAndCountsWhatItShortened() {
        var batch = Crowsnest_V1_SampleBatch()
        var sample = Crowsnest_V1_ContainerSample()
        sample.name = "we\u{0}b"
        sample.image = String(repeating: "i", count: 600)
        sample.healthOutput = String(repeating: "o", count: 5_000)
        sample.labels = ["k\u{0}": "v\u{0}"]
        batch.containers = [sample]
        var event = Crowsnest_V1_ContainerEvent()
        event.detail = "d\u{0}"
        batch.events = [event]
        var missing = Crowsnest_V1_MissingContainer()
        missing.name = "m\u{0}"
        batch.missing = [missing]
        batch.host.interfaces = [{ var i = Crowsnest_V1_NetInterface(); i.name = "eth\u{0}0"; return i }()]
        let truncated = batch.sanitize()
        XCTAssertEqual(truncated, 2)
        XCTAssertEqual(batch.containers[0].name, "web")
        XCTAssertEqual(batch.containers[0].labels, ["k": "v"])
        XCTAssertEqual(batch.containers[0].image.utf8.count, WireTextBounds.imageBytes)
        XCTAssertEqual(batch.containers[0].healthOutput.utf8.count, WireTextBounds.healthOutputBytes)
        XCTAssertEqual(batch.events[0].detail, "d")
        XCTAssertEqual(batch.missing[0].name, "m")
        XCTAssertEqual(batch.host.interfaces[0].name, "eth0")
    }

    /// Each part is checked before it is written to: a clean part stays as it was, a dirty one beside it is cleaned,
    /// and every bound counts as dirty exactly where `sanitize` would change something.
    func testOnlyThePartsThatNeedCleaningAreCleaned() {
        var clean = Crowsnest_V1_ContainerSample()
        clean.name = "web"
        clean.labels = ["tier": String(repeating: "v", count: WireTextBounds.labelValueBytes)]
        clean.healthOutput = String(repeating: "o", count: WireTextBounds.healthOutputBytes)
        var dirty = clean
        dirty.name = "db\u{0}"
        var batch = Crowsnest_V1_SampleBatch()
        batch.containers = [clean, dirty]
        var untouched = batch
        untouched.containers = [clean]
        XCTAssertEqual(untouched.sanitize(), 0)
        XCTAssertEqual(untouched.containers, [clean], "a clean batch comes back as it was")
        XCTAssertEqual(batch.sanitize(), 0, "a removed NUL is cleaned, not counted as shortened")
        XCTAssertEqual(batch.containers[0], clean)
        XCTAssertEqual(batch.containers[1].name, "db")

        var tooManyLabels = clean
        tooManyLabels.labels = Dictionary(uniqueKeysWithValues: (0...WireTextBounds.labelCount).map { ("k\($0)", "v") })
        var emptyKey = clean
        emptyKey.labels = ["": "v"]
        var future = clean
        future.startedAtUnixMs = WireTextBounds.latestMillis + 1
        for (sample, why) in [(tooManyLabels, "labels over the count"), (emptyKey, "an empty label key"), (future, "a time after 9999")] {
            var one = Crowsnest_V1_SampleBatch()
            one.containers = [sample]
            XCTAssertGreaterThan(one.sanitize(), 0, why)
            XCTAssertNotEqual(one.containers[0], sample, why)
        }
    }
}
