#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A configuration problem, printed to the operator as one line.
public struct ConfigurationError: Error, CustomStringConvertible, Sendable, Equatable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Settings merged from a YAML file, `CROWSNEST_*` environment variables and command-line flags, in that
/// order of precedence (flags win). Keys are snake_case (`state_dir`); the environment variable for a key
/// is `CROWSNEST_` plus the key in upper case (`CROWSNEST_STATE_DIR`).
public struct LayeredConfiguration: Sendable {
    /// Final value of each key that was set anywhere, and where it came from (for error messages).
    public private(set) var values: [String: (value: String, source: String)] = [:]

    /// Merges the three layers; unknown keys in the file are an error (a typo should not pass silently).
    public init(file: String?, environment: [String: String], flags: [String: String?], knownKeys: Set<String>) throws {
        if let file {
            let text = try Self.contents(ofFile: file)
            let parsed: ConfigurationFile
            do {
                parsed = try ConfigurationFile(parsing: text)
            } catch let error as ConfigurationFile.SyntaxError {
                throw ConfigurationError("configuration file \(file), \(error)")
            }
            for entry in parsed.entries {
                guard knownKeys.contains(entry.key) else {
                    throw ConfigurationError("unknown setting '\(entry.key)' in \(file) line \(entry.line); known settings: \(knownKeys.sorted().joined(separator: ", "))")
                }
                switch entry.value {
                case .unset: continue  // `key:` with no value leaves the setting unset.
                case .scalar(let text): values[entry.key] = (text, "\(file): \(entry.key)")
                case .list(let items): values[entry.key] = (items.joined(separator: ","), "\(file): \(entry.key)")
                }
            }
        }
        for key in knownKeys {
            let variable = "CROWSNEST_" + key.uppercased()
            if let value = environment[variable] { values[key] = (value, "environment variable \(variable)") }
        }
        for (key, value) in flags {
            if let value { values[key] = (value, "--\(key.replacing("_", with: "-"))") }
        }
    }

    /// The file's text; a missing, unreadable, oversized or non-UTF-8 file is one clear error.
    private static func contents(ofFile path: String) throws -> String {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw ConfigurationError("cannot read configuration file \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(descriptor) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16 << 10)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw ConfigurationError("cannot read configuration file \(path): \(String(cString: strerror(errno)))")
            }
            if count == 0 { break }
            bytes.append(contentsOf: chunk[..<count])
            guard bytes.count <= ConfigurationFile.maximumBytes else {
                throw ConfigurationError("configuration file \(path) is larger than \(ConfigurationFile.maximumBytes) bytes; is it the right file?")
            }
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw ConfigurationError("configuration file \(path) is not UTF-8 text")
        }
        return text
    }

    /// The string value of `key`, or `defaultValue`.
    public func string(_ key: String, default defaultValue: String) -> String {
        values[key]?.value ?? defaultValue
    }

    /// The optional string value of `key`.
    public func string(_ key: String) -> String? {
        values[key]?.value
    }

    /// An integer within `range`, with a one-line error naming where the bad value came from.
    public func integer(_ key: String, default defaultValue: Int, range: ClosedRange<Int>) throws -> Int {
        guard let entry = values[key] else { return defaultValue }
        guard let value = Int(entry.value.trimmingWhitespace()), range.contains(value) else {
            throw ConfigurationError("\(entry.source): expected a whole number from \(range.lowerBound) to \(range.upperBound), got '\(entry.value)'")
        }
        return value
    }

    /// A comma-separated list.
    public func list(_ key: String) -> [String]? {
        values[key].map { $0.value.split(separator: ",").map { $0.trimmingWhitespace() }.filter { !$0.isEmpty } }
    }

    /// A `HOST:PORT` pair (`[::1]:7443` for IPv6; a bare `:7443` means all interfaces).
    public func hostPort(_ key: String, default defaultValue: String) throws -> (host: String, port: Int) {
        let entry = values[key] ?? (defaultValue, "default")
        guard let parsed = HostPort.parse(entry.value) else {
            throw ConfigurationError("\(entry.source): expected HOST:PORT (e.g. 0.0.0.0:7443 or [::1]:7443), got '\(entry.value)'")
        }
        return parsed
    }

    /// A whole number within `range`; one line naming the setting, its source and the range otherwise.
    /// - Parameters:
    ///   - meaning: what the number is, for the message ("check lease ttl").
    ///   - unit: what it counts ("seconds", "days"), if anything.
    public func wholeNumber(_ key: String, default defaultValue: Int, in range: ClosedRange<Int>, meaning: String,
                            unit: String? = nil) throws -> Int {
        let text = string(key, default: "\(defaultValue)")
        guard let value = Int(text), range.contains(value) else {
            let counted = unit.map { " of \($0)" } ?? ""
            throw ConfigurationError("\(source(of: key)): \(meaning) must be a whole number\(counted) from \(range.lowerBound) to \(range.upperBound); got '\(text)'")
        }
        return value
    }

    /// Where `key`'s value came from, for messages.
    public func source(of key: String) -> String {
        values[key]?.source ?? "default"
    }
}

/// Parses `HOST:PORT` strings; an IPv6 address must be in brackets (`[::1]:7443`).
public enum HostPort {
    public static func parse(_ text: String, defaultHost: String = "0.0.0.0") -> (host: String, port: Int)? {
        let text = text.trimmingWhitespace()
        let host: String
        let portText: String
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            host = String(text[text.index(after: text.startIndex)..<close])
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { return nil }
            portText = String(rest.dropFirst())
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            host = String(text[..<colon])
            // "::1:7443" could be ::1 port 7443 or the address ::1:7443 without a port: IPv6 needs brackets.
            guard !host.contains(":") else { return nil }
            portText = String(text[text.index(after: colon)...])
        }
        guard !portText.isEmpty, portText.utf8.count <= 5, portText.utf8.allSatisfy({ (48...57).contains($0) }),
              let port = Int(portText), (0...65535).contains(port) else { return nil }
        return (host.isEmpty ? defaultHost : host, port)
    }
}
