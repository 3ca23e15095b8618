import Logging
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// How log lines are written: `text` (swift-log's stream format, for people) or `json` (one object per line,
/// for Loki or Elasticsearch).
public enum LogFormat: String, Sendable, CaseIterable {
    case text, json
}

/// A log handler writing one JSON object per line to standard error: `ts` (RFC 3339), `level`, `logger` (the
/// label), `message`, and every metadata key as a string field (`agent.id`, `http.request.id`, …). Metadata
/// values are text whatever they came from (a hostile container name stays a JSON string), and a metadata key
/// never overwrites the fixed fields.
public struct JSONLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private let write: @Sendable (String) -> Void

    public init(label: String, write: @escaping @Sendable (String) -> Void = JSONLogHandler.standardError) {
        self.label = label
        self.write = write
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(level: Logger.Level, message: Logger.Message, metadata explicit: Logger.Metadata?, source: String,
                    file: String, function: String, line: UInt) {
        var merged = self.metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { $1 } }
        if let explicit { merged.merge(explicit) { $1 } }
        var fields: [(String, String)] = [("ts", RFC3339.string(from: Date())), ("level", level.rawValue), ("logger", label),
                                          ("message", message.description)]
        let fixed = Set(fields.map(\.0))
        for key in merged.keys.sorted() where !fixed.contains(key) {
            fields.append((key, Self.text(merged[key]!)))
        }
        var line = "{"
        for (index, field) in fields.enumerated() {
            if index > 0 { line += "," }
            line += Self.quoted(field.0) + ":" + Self.quoted(field.1)
        }
        write(line + "}\n")
    }

    static func text(_ value: Logger.Metadata.Value) -> String {
        switch value {
        case .string(let text): return text
        case .stringConvertible(let convertible): return convertible.description
        case .array(let values): return "[" + values.map(text).joined(separator: ", ") + "]"
        case .dictionary(let values): return "{" + values.keys.sorted().map { "\($0): \(text(values[$0]!))" }.joined(separator: ", ") + "}"
        }
    }

    /// A JSON string literal: quotes, backslashes and every control character escaped.
    static func quoted(_ text: String) -> String {
        var result = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F || (0x2028...0x2029).contains(scalar.value):
                let hex = String(scalar.value, radix: 16)
                result += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default:
                result.unicodeScalars.append(scalar)
            }
        }
        return result + "\""
    }

    /// Writes a line to standard error in one call (lines from several threads do not interleave).
    public static let standardError: @Sendable (String) -> Void = { line in writeAll(2, line) }
}

private func writeAll(_ descriptor: Int32, _ line: String) {
    let bytes = Array(line.utf8)
    bytes.withUnsafeBytes { buffer in
        var offset = 0
        while offset < buffer.count {
            let written = write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
            if written <= 0 { break }
            offset += written
        }
    }
}
