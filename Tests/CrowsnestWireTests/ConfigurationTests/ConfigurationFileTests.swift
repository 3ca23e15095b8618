import XCTest

@testable import CrowsnestWire

/// The YAML subset of Crowsnest configuration files: what is accepted, what each form means, and that everything
/// else is refused with its line number.
final class ConfigurationFileTests: XCTestCase {
    private func parse(_ text: String) throws -> [String: ConfigurationFile.Value] {
        Dictionary(uniqueKeysWithValues: try ConfigurationFile(parsing: text).entries.map { ($0.key, $0.value) })
    }

    private func refusal(_ text: String) -> ConfigurationFile.SyntaxError? {
        do {
            _ = try ConfigurationFile(parsing: text)
            return nil
        } catch let error as ConfigurationFile.SyntaxError {
            return error
        } catch {
            XCTFail("unexpected error \(error)")
            return nil
        }
    }

    func testScalarsPlainAndQuoted() throws {
        let values = try parse("""
            # comment line
            ---
            state_dir: /var/lib/crowsnest-agent   # trailing comment
            interval: 30
            docker_host: "unix:///run/docker.sock"
            log_level: 'info'
            quoted_hash: "a # not a comment"
            hash_in_word: a#b
            escapes: "tab\\there \\"quoted\\" back\\\\slash \\u00e9"
            single: 'it''s'
            colon_inside: host:7443
            ...
            # after the end marker only comments
            """)
        XCTAssertEqual(values["state_dir"], .scalar("/var/lib/crowsnest-agent"))
        XCTAssertEqual(values["interval"], .scalar("30"))
        XCTAssertEqual(values["docker_host"], .scalar("unix:///run/docker.sock"))
        XCTAssertEqual(values["log_level"], .scalar("info"))
        XCTAssertEqual(values["quoted_hash"], .scalar("a # not a comment"))
        XCTAssertEqual(values["hash_in_word"], .scalar("a#b"))
        XCTAssertEqual(values["escapes"], .scalar("tab\there \"quoted\" back\\slash é"))
        XCTAssertEqual(values["single"], .scalar("it's"))
        XCTAssertEqual(values["colon_inside"], .scalar("host:7443"))
    }

    func testEmptyTildeAndNullLeaveASettingUnset() throws {
        let values = try parse("a:\nb: ~\nc: null\nd: NULL\ne: 'null'\n")
        XCTAssertEqual(values["a"], .unset)
        XCTAssertEqual(values["b"], .unset)
        XCTAssertEqual(values["c"], .unset)
        XCTAssertEqual(values["d"], .unset)
        XCTAssertEqual(values["e"], .scalar("null"), "a quoted null is the text null")
    }

    func testBlockAndFlowLists() throws {
        let values = try parse("""
            servers:
              - a.example:7443   # first
              - "b.example:7443"

            flat:
            - one
            - two
            flow: [x.example:7443, "y, with comma", 'z']
            empty_flow: []
            after: 1
            """)
        XCTAssertEqual(values["servers"], .list(["a.example:7443", "b.example:7443"]))
        XCTAssertEqual(values["flat"], .list(["one", "two"]), "items may start at the key's own column")
        XCTAssertEqual(values["flow"], .list(["x.example:7443", "y, with comma", "z"]))
        XCTAssertEqual(values["empty_flow"], .list([]))
        XCTAssertEqual(values["after"], .scalar("1"))
    }

    func testWindowsLineEndingsAreAccepted() throws {
        XCTAssertEqual(try parse("a: 1\r\nb:\r\n  - x\r\n"), ["a": .scalar("1"), "b": .list(["x"])])
    }

    func testAnEmptyOrCommentOnlyFileHasNoSettings() throws {
        XCTAssertEqual(try ConfigurationFile(parsing: "").entries, [])
        XCTAssertEqual(try ConfigurationFile(parsing: "# nothing\n\n   \n").entries, [])
    }

    func testEntriesKeepTheirLineNumbers() throws {
        let entries = try ConfigurationFile(parsing: "# header\n\na: 1\nb:\n  - x\nc: 2\n").entries
        XCTAssertEqual(entries.map(\.line), [3, 4, 6])
    }

    func testWhatTheSubsetRefusesIsNamedWithItsLine() {
        let cases: [(String, Int, String)] = [
            ("a: 1\nserver:\n  host: a\n", 3, "'server' must be a plain value or a list, not a mapping"),
            ("a: {b: 1}\n", 1, "'a' must be a plain value or a list, not a mapping"),
            ("a: b: c\n", 1, "not a mapping"),
            ("a: &anchor 1\n", 1, "anchors, aliases and tags are not supported"),
            ("a: *alias\n", 1, "anchors, aliases and tags are not supported"),
            ("a: !!str 1\n", 1, "anchors, aliases and tags are not supported"),
            ("a: |\n  text\n", 1, "block scalars"),
            ("a: 1\n\tb: 2\n", 2, "tabs cannot indent YAML"),
            ("a: 1\na: 2\n", 2, "setting 'a' appears twice"),
            ("a: 1\n---\nb: 2\n", 2, "only one YAML document"),
            ("a: \"open\n", 1, "not closed on the same line"),
            ("a: \"bad \\q escape\"\n", 1, "unsupported escape \\q"),
            ("a: \"\\u12\"\n", 1, "four hexadecimal digits"),
            ("- a\n- b\n", 1, "must be a mapping of settings (key: value)"),
            ("a: 'x' y\n", 1, "unexpected text after the closing quote"),
            ("a: 1\n  b: 2\n", 2, "unexpected indentation"),
            (" a: 1\n", 1, "unexpected indentation"),
            ("just text\n", 1, "expected 'key: value'"),
            ("a: [x, [y]]\n", 1, "list of plain values"),
            ("a: [x,, y]\n", 1, "an item of 'a' is empty"),
            ("a:\n  -\n", 2, "an item of 'a' is empty"),
            ("a: 1\n...\nb: 2\n", 3, "nothing may follow the document end marker"),
            (": 1\n", 1, "a setting needs a name"),
            ("a: @x\n", 1, "cannot start with '@'"),
        ]
        for (text, line, reason) in cases {
            guard let error = refusal(text) else {
                XCTFail("accepted: \(text.debugDescription)")
                continue
            }
            XCTAssertEqual(error.line, line, "\(text.debugDescription): \(error)")
            XCTAssertTrue(error.reason.contains(reason), "\(text.debugDescription): \(error)")
            XCTAssertFalse(error.description.contains("\n"), "\(text.debugDescription): \(error)")
        }
    }

    func testTheSizeLimitIsExact() throws {
        let comment = "#" + String(repeating: "x", count: ConfigurationFile.maximumBytes - 2) + "\n"
        XCTAssertEqual(comment.utf8.count, ConfigurationFile.maximumBytes)
        XCTAssertEqual(try ConfigurationFile(parsing: comment).entries, [])
        XCTAssertTrue(refusal(comment + " ")?.reason.contains("larger than") ?? false)
    }

    /// The example files we ship, with every commented-out setting switched on, parse into the documented keys.
    func testTheShippedExampleConfigurationsParseWithEverySettingEnabled() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        for (file, expected) in [("agent/agent.yaml", ["state_dir", "interval", "servers", "docker_host", "spool_max_mib",
                                                        "cgroup_root", "proc_root", "host_root", "log_level", "labels"]),
                                 ("server/server.yaml", ["data_dir", "secret_key_file", "database_url", "agent_listen",
                                                          "http_listen", "server_names", "postgres_user",
                                                          "trusted_proxies", "enrollments_per_minute", "check_lease_ttl_seconds",
                                                          "agent_silence_limit_seconds", "agent_addresses", "agent_certificate_days",
                                                          "log_level", "log_format", "api_requests_per_minute", "raw_retention_days",
                                                          "span_retention_days",
                                                          "public_url", "agent_downloads"])] {
            let text = try String(contentsOf: root.appendingPathComponent(file), encoding: .utf8)
            XCTAssertEqual(try ConfigurationFile(parsing: text).entries, [], "\(file) ships with every setting commented out")
            // Uncomment `#key: value` and `#  - item` lines (not the prose comments); keep the first of repeated keys.
            var seen: Set<String> = []
            var enabled: [String] = []
            var keepingItems = false
            for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
                if line.hasPrefix("#  - ") || line.hasPrefix("#   - ") {
                    if keepingItems { enabled.append(String(line.dropFirst())) }
                    continue
                }
                keepingItems = false
                guard line.hasPrefix("#"), let colon = line.firstIndex(of: ":") else { continue }
                let key = line[line.index(after: line.startIndex)..<colon]
                guard !key.isEmpty, key.allSatisfy({ $0.isLowercase || $0 == "_" }), seen.insert(String(key)).inserted else { continue }
                enabled.append(String(line.dropFirst()))
                keepingItems = line[line.index(after: colon)...].allSatisfy { $0 == " " }
            }
            let entries = try ConfigurationFile(parsing: enabled.joined(separator: "\n")).entries
            XCTAssertEqual(entries.map(\.key), expected, file)
            for entry in entries { XCTAssertNotEqual(entry.value, .unset, "\(file): \(entry.key)") }
        }
    }
}
