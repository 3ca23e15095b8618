/// The settings in a Crowsnest configuration file: the YAML subset our `agent.yaml` and `server.yaml` use.
///
/// A top-level mapping of `key: value`, where a value is a scalar (plain, 'single' or "double" quoted), empty or
/// `~`/`null` (unset), a flow list `[a, b]` or a block list of `- item` lines. Comments, a leading `---` and a
/// trailing `...` are allowed. Everything else YAML has (nested mappings, anchors, tags, block scalars, several
/// documents) is refused with the line it is on, never guessed at.
///
/// Why not Yams: it links the whole of Foundation and ICU, which alone costs the agent more resident memory
/// than its target allows; these files need nothing beyond this subset.
public struct ConfigurationFile: Sendable, Equatable {
    /// A setting's value as written.
    public enum Value: Sendable, Equatable {
        /// `key:`, `key: ~` or `key: null`: leaves the setting at its default.
        case unset
        case scalar(String)
        case list([String])
    }

    /// One `key: value` line (and the list lines under it).
    public struct Entry: Sendable, Equatable {
        public var key: String
        public var value: Value
        /// 1-based line of the key.
        public var line: Int
    }

    /// A line the parser refuses, with why.
    public struct SyntaxError: Error, CustomStringConvertible, Sendable, Equatable {
        public var line: Int
        public var reason: String
        public var description: String { "line \(line): \(reason)" }
    }

    /// The settings in file order.
    public var entries: [Entry]

    /// Largest file accepted (1 MiB): a configuration file is a few kilobytes.
    public static let maximumBytes = 1 << 20

    public init(parsing text: String) throws {
        guard text.utf8.count <= Self.maximumBytes else {
            throw SyntaxError(line: 1, reason: "the file is larger than \(Self.maximumBytes) bytes; this is not a configuration file")
        }
        var entries: [Entry] = []
        var seen: Set<String> = []
        var lines = Self.lines(of: text)
        var index = 0
        var sawContent = false
        while index < lines.count {
            let (number, raw) = lines[index]
            index += 1
            let content = try Self.stripComment(raw, line: number)
            if content.allSatisfy({ $0 == " " }) { continue }
            if content.first == "\t" || content.hasPrefix(" \t") {
                throw SyntaxError(line: number, reason: "tabs cannot indent YAML; use spaces")
            }
            if content == "---" || content.hasPrefix("--- ") {
                guard !sawContent, content.dropFirst(3).allSatisfy({ $0 == " " }) else {
                    throw SyntaxError(line: number, reason: "only one YAML document is allowed")
                }
                sawContent = true
                continue
            }
            if content == "..." {
                // End of the document: only comments and blank lines may follow.
                for (later, rest) in lines[index...] where !(try Self.stripComment(rest, line: later)).allSatisfy({ $0 == " " }) {
                    throw SyntaxError(line: later, reason: "nothing may follow the document end marker '...'")
                }
                break
            }
            sawContent = true
            if content.first == " " {
                throw SyntaxError(line: number, reason: "unexpected indentation; settings start at the beginning of the line")
            }
            if content == "-" || content.hasPrefix("- ") {
                throw SyntaxError(line: number, reason: "the file must be a mapping of settings (key: value), not a list")
            }
            let (key, rest) = try Self.splitKey(content, line: number)
            guard seen.insert(key).inserted else {
                throw SyntaxError(line: number, reason: "setting '\(key)' appears twice")
            }
            var value = try Self.value(rest, key: key, line: number)
            if value == .unset && rest.isEmpty {
                // A block under the key: `- item` lines form a list; anything else indented is a nested mapping.
                var items: [String] = []
                while index < lines.count {
                    let (itemNumber, itemRaw) = lines[index]
                    let item = try Self.stripComment(itemRaw, line: itemNumber)
                    if item.allSatisfy({ $0 == " " }) { index += 1; continue }
                    let trimmed = item.drop { $0 == " " }
                    let indented = trimmed.count < item.count
                    if trimmed.first == "\t" { throw SyntaxError(line: itemNumber, reason: "tabs cannot indent YAML; use spaces") }
                    guard trimmed == "-" || trimmed.hasPrefix("- ") else {
                        if indented {
                            throw SyntaxError(line: itemNumber, reason: "setting '\(key)' must be a plain value or a list, not a mapping")
                        }
                        break
                    }
                    let itemText = String(trimmed.dropFirst().drop { $0 == " " })
                    switch try Self.value(itemText, key: key, line: itemNumber) {
                    case .scalar(let text): items.append(text)
                    case .unset: throw SyntaxError(line: itemNumber, reason: "an item of '\(key)' is empty")
                    case .list: throw SyntaxError(line: itemNumber, reason: "setting '\(key)' must be a list of plain values, not of lists")
                    }
                    index += 1
                }
                if !items.isEmpty { value = .list(items) }
            }
            entries.append(Entry(key: key, value: value, line: number))
        }
        self.entries = entries
    }

    // MARK: - Lines

    private static func lines(of text: String) -> [(Int, Substring)] {
        var result: [(Int, Substring)] = []
        var number = 0
        // "\r\n" is one Character in Swift: split on both forms.
        for line in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            number += 1
            result.append((number, line.hasSuffix("\r") ? line.dropLast() : line))
        }
        return result
    }

    /// The line without its comment (`#` at the start or after a space, outside quotes) and trailing spaces.
    private static func stripComment(_ line: Substring, line number: Int) throws -> Substring {
        var quote: Character?
        var previous: Character = " "
        var index = line.startIndex
        while index < line.endIndex {
            let character = line[index]
            if let open = quote {
                if open == "\"" && character == "\\" {
                    index = line.index(after: index)
                    if index < line.endIndex { index = line.index(after: index) }
                    previous = "x"
                    continue
                }
                if character == open { quote = nil }
            } else if character == "#" && (previous == " " || previous == "\t") {
                return trimTrailing(line[..<index])
            } else if (character == "\"" || character == "'") && (previous == " " || previous == "[" || previous == ","
                                                                   || previous == "-" || index == line.startIndex) {
                quote = character
            }
            previous = character
            index = line.index(after: index)
        }
        return trimTrailing(line)
    }

    private static func trimTrailing(_ text: Substring) -> Substring {
        var end = text.endIndex
        while end > text.startIndex, text[text.index(before: end)] == " " || text[text.index(before: end)] == "\t" {
            end = text.index(before: end)
        }
        return text[..<end]
    }

    // MARK: - Keys and values

    private static func splitKey(_ content: Substring, line: Int) throws -> (String, String) {
        if content.first == "\"" || content.first == "'" {
            let (key, rest) = try quoted(content, line: line)
            guard rest.first == ":", rest.count == 1 || rest.dropFirst().first == " " else {
                throw SyntaxError(line: line, reason: "expected ':' after the quoted key \(key)")
            }
            return (key, String(rest.dropFirst().drop { $0 == " " }))
        }
        var index = content.startIndex
        while index < content.endIndex {
            if content[index] == ":" {
                let after = content.index(after: index)
                if after == content.endIndex || content[after] == " " {
                    let key = String(trimTrailing(content[..<index]))
                    guard !key.isEmpty else { throw SyntaxError(line: line, reason: "a setting needs a name before ':'") }
                    return (key, String(content[after...].drop { $0 == " " }))
                }
            }
            index = content.index(after: index)
        }
        throw SyntaxError(line: line, reason: "expected 'key: value', got '\(content)'")
    }

    private static func value(_ text: String, key: String, line: Int) throws -> Value {
        guard let first = text.first else { return .unset }
        switch first {
        case "~" where text == "~": return .unset
        case "n" where text == "null", "N" where text == "Null" || text == "NULL": return .unset
        case "[":
            return .list(try flowList(text, key: key, line: line))
        case "{":
            throw SyntaxError(line: line, reason: "setting '\(key)' must be a plain value or a list, not a mapping")
        case "|", ">":
            throw SyntaxError(line: line, reason: "setting '\(key)': block scalars (| and >) are not supported; write the value on one line")
        case "&", "*", "!":
            throw SyntaxError(line: line, reason: "setting '\(key)': anchors, aliases and tags are not supported")
        case "\"", "'":
            let (scalar, rest) = try quoted(Substring(text), line: line)
            guard rest.isEmpty else {
                throw SyntaxError(line: line, reason: "setting '\(key)': unexpected text after the closing quote: '\(rest)'")
            }
            return .scalar(scalar)
        default:
            return .scalar(try plain(Substring(text), key: key, line: line))
        }
    }

    private static func plain(_ text: Substring, key: String, line: Int) throws -> String {
        if text.contains(": ") || text.hasSuffix(":") {
            throw SyntaxError(line: line, reason: "setting '\(key)' must be a plain value or a list, not a mapping (quote the value if ': ' belongs in it)")
        }
        if text.first == "-" && (text.count == 1 || text.dropFirst().first == " ") {
            throw SyntaxError(line: line, reason: "setting '\(key)': write a list's items on the lines below the key, or as [a, b]")
        }
        if text.first == "@" || text.first == "`" || text.first == "%" {
            throw SyntaxError(line: line, reason: "setting '\(key)': a value cannot start with '\(text.first!)'; quote it")
        }
        return String(text)
    }

    private static func flowList(_ text: String, key: String, line: Int) throws -> [String] {
        guard text.hasSuffix("]") else {
            throw SyntaxError(line: line, reason: "setting '\(key)': the list opened with '[' is not closed on the same line")
        }
        var rest = Substring(text.dropFirst().dropLast())
        var items: [String] = []
        rest = rest.drop { $0 == " " }
        while !rest.isEmpty {
            if rest.first == "\"" || rest.first == "'" {
                let (item, after) = try quoted(rest, line: line)
                items.append(item)
                rest = Substring(after).drop { $0 == " " }
            } else {
                let end = rest.firstIndex(of: ",") ?? rest.endIndex
                let item = trimTrailing(rest[..<end])
                if item.first == "[" || item.first == "{" || item.contains("]") || item.contains("[") {
                    throw SyntaxError(line: line, reason: "setting '\(key)' must be a list of plain values, not of lists or mappings")
                }
                guard !item.isEmpty else { throw SyntaxError(line: line, reason: "an item of '\(key)' is empty") }
                items.append(try plain(item, key: key, line: line))
                rest = rest[end...]
            }
            guard rest.isEmpty || rest.first == "," else {
                throw SyntaxError(line: line, reason: "setting '\(key)': expected ',' between list items")
            }
            rest = rest.dropFirst().drop { $0 == " " }
        }
        return items
    }

    /// A quoted scalar at the start of `text` and what follows its closing quote (trailing spaces dropped).
    private static func quoted(_ text: Substring, line: Int) throws -> (String, String) {
        let quote = text.first!
        var result = ""
        var index = text.index(after: text.startIndex)
        while index < text.endIndex {
            let character = text[index]
            index = text.index(after: index)
            if character == quote {
                if quote == "'" && index < text.endIndex && text[index] == "'" {
                    result.append("'")
                    index = text.index(after: index)
                    continue
                }
                return (result, String(trimTrailing(text[index...])))
            }
            if quote == "\"" && character == "\\" {
                guard index < text.endIndex else { break }
                let escaped = text[index]
                index = text.index(after: index)
                switch escaped {
                case "\\": result.append("\\")
                case "\"": result.append("\"")
                case "/": result.append("/")
                case "n": result.append("\n")
                case "t": result.append("\t")
                case "r": result.append("\r")
                case "u":
                    let hex = text[index...].prefix(4)
                    guard hex.count == 4, let code = UInt32(hex, radix: 16), let scalar = Unicode.Scalar(code) else {
                        throw SyntaxError(line: line, reason: "\\u must be followed by four hexadecimal digits")
                    }
                    result.unicodeScalars.append(scalar)
                    index = text.index(index, offsetBy: 4)
                default:
                    throw SyntaxError(line: line, reason: "unsupported escape \\\(escaped) in a double-quoted value")
                }
                continue
            }
            result.append(character)
        }
        throw SyntaxError(line: line, reason: "the quoted value is not closed on the same line")
    }
}
