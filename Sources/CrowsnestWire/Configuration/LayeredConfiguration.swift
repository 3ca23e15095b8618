#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Yams

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
            let text: String
            do {
                text = try String(contentsOfFile: file, encoding: .utf8)
            } catch {
                throw ConfigurationError("cannot read configuration file \(file): \(error.localizedDescription)")
            }
            let node: Any?
            do {
                node = try Yams.load(yaml: text, .default, Self.constructor)
            } catch let error as YamlError {
                throw ConfigurationError("configuration file \(file) is not valid YAML: \(Self.oneLine(error))")
            }
            if let node {
                guard let mapping = node as? [String: Any] else {
                    throw ConfigurationError("configuration file \(file) must be a mapping of settings (key: value)")
                }
                for (key, value) in mapping {
                    guard knownKeys.contains(key) else {
                        throw ConfigurationError("unknown setting '\(key)' in \(file); known settings: \(knownKeys.sorted().joined(separator: ", "))")
                    }
                    // `key:` with no value (YAML null) leaves the setting unset.
                    if value is UnsetSetting { continue }
                    values[key] = (try Self.scalar(value, key: key, file: file), "\(file): \(key)")
                }
            }
        }
        for key in knownKeys {
            let variable = "CROWSNEST_" + key.uppercased()
            if let value = environment[variable] { values[key] = (value, "environment variable \(variable)") }
        }
        for (key, value) in flags {
            if let value { values[key] = (value, "--\(key.replacingOccurrences(of: "_", with: "-"))") }
        }
    }

    /// YAML null becomes `UnsetSetting`; timestamps and binary stay the text the operator wrote.
    private static var constructor: Constructor {
        var scalars = Constructor.defaultScalarMap
        scalars[.null] = { _ in UnsetSetting() }
        scalars[.timestamp] = { String.construct(from: $0) }
        scalars[.binary] = { String.construct(from: $0) }
        return Constructor(scalars)
    }

    private struct UnsetSetting {}

    private static func scalar(_ value: Any, key: String, file: String) throws -> String {
        switch value {
        case let string as String: return string
        case let int as Int: return String(int)
        case let double as Double: return String(double)
        case let bool as Bool: return bool ? "true" : "false"
        case let list as [Any]:
            return try list.map { try scalar($0, key: key, file: file) }.joined(separator: ",")
        default:
            throw ConfigurationError("setting '\(key)' in \(file) must be a plain value or a list, not a mapping")
        }
    }

    private static func oneLine(_ error: Error) -> String {
        String(describing: error).split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: " ")
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
        guard let value = Int(entry.value.trimmingCharacters(in: .whitespaces)), range.contains(value) else {
            throw ConfigurationError("\(entry.source): expected a whole number from \(range.lowerBound) to \(range.upperBound), got '\(entry.value)'")
        }
        return value
    }

    /// A comma-separated list.
    public func list(_ key: String) -> [String]? {
        values[key].map { $0.value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }
    }

    /// A `HOST:PORT` pair (`[::1]:7443` for IPv6; a bare `:7443` means all interfaces).
    public func hostPort(_ key: String, default defaultValue: String) throws -> (host: String, port: Int) {
        let entry = values[key] ?? (defaultValue, "default")
        guard let parsed = HostPort.parse(entry.value) else {
            throw ConfigurationError("\(entry.source): expected HOST:PORT (e.g. 0.0.0.0:7443 or [::1]:7443), got '\(entry.value)'")
        }
        return parsed
    }

    /// Where `key`'s value came from, for messages.
    public func source(of key: String) -> String {
        values[key]?.source ?? "default"
    }
}

/// Parses `HOST:PORT` strings.
public enum HostPort {
    public static func parse(_ text: String, defaultHost: String = "0.0.0.0") -> (host: String, port: Int)? {
        let text = text.trimmingCharacters(in: .whitespaces)
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
            portText = String(text[text.index(after: colon)...])
        }
        guard !portText.isEmpty, portText.utf8.count <= 5, portText.utf8.allSatisfy({ (48...57).contains($0) }),
              let port = Int(portText), (0...65535).contains(port) else { return nil }
        return (host.isEmpty ? defaultHost : host, port)
    }
}
