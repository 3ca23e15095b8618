/// A JSONPath of member and index steps only — `$`, `$.status`, `$.items[0].name`, `$['a key']` — which is what a
/// check compares against (`json_path`): parsed by the server when a check is saved, evaluated by the probe.
public struct JSONPath: Sendable, Equatable {
    public enum Step: Sendable, Equatable {
        case member(String)
        case index(Int)
    }

    public let steps: [Step]

    /// Nil when `text` is not such a path.
    public init?(_ text: String) {
        var steps: [Step] = []
        var rest = Substring(text)
        guard rest.first == "$" else { return nil }
        rest = rest.dropFirst()
        while let first = rest.first {
            if first == "." {
                let name = rest.dropFirst().prefix { $0 != "." && $0 != "[" }
                guard !name.isEmpty, !name.contains(where: { $0 == "'" || $0 == "\"" || $0 == "]" || $0.isWhitespace }) else {
                    return nil
                }
                steps.append(.member(String(name)))
                rest = rest.dropFirst(1 + name.count)
            } else if first == "[" {
                let inner = rest.dropFirst()
                if let quote = inner.first, quote == "'" || quote == "\"" {
                    let body = inner.dropFirst()
                    guard let end = body.firstIndex(of: quote), body[body.index(after: end)...].first == "]" else { return nil }
                    steps.append(.member(String(body[..<end])))
                    rest = body[body.index(end, offsetBy: 2)...]
                } else {
                    let digits = inner.prefix { $0.isASCII && $0.isNumber }
                    guard !digits.isEmpty, digits.count <= 9, inner.dropFirst(digits.count).first == "]",
                          let index = Int(digits) else { return nil }
                    steps.append(.index(index))
                    rest = inner.dropFirst(digits.count + 1)
                }
            } else {
                return nil
            }
        }
        self.steps = steps
    }

    /// The value at this path in `value`; nil when a step finds nothing.
    public func evaluate(_ value: JSONValue) -> JSONValue? {
        var current = value
        for step in steps {
            switch (step, current) {
            case (.member(let name), .object(let members)):
                guard let next = members[name] else { return nil }
                current = next
            case (.index(let index), .array(let elements)):
                guard elements.indices.contains(index) else { return nil }
                current = elements[index]
            default:
                return nil
            }
        }
        return current
    }
}
