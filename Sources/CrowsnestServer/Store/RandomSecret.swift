import Foundation

/// Random secrets for bearer keys and push URLs.
enum RandomSecret {
    /// base64url (no padding) of `byteCount` bytes from the system CSPRNG: 43 characters for 32 bytes.
    static func base64URL(byteCount: Int = 32) -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<byteCount).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        return Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// True when `text` is exactly `count` base64url characters (the shape `base64URL` makes): a cheap check so
    /// junk presented as a secret never reaches the database.
    static func isBase64URL<Text: Sequence<UInt8>>(_ text: Text, count: Int) -> Bool {
        var length = 0
        for byte in text {
            length += 1
            guard (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z")) || (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
                || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_")
            else { return false }
        }
        return length == count
    }
}
