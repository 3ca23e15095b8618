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
}
