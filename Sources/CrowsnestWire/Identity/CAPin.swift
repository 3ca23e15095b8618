import Crypto

/// A pin on the server's certificate authority: `sha256:<lowercase hex of SHA-256 of the CA certificate's DER>`.
///
/// The operator hands it to an agent at enrollment so the agent can recognise the server's CA on first contact,
/// before it has any other way to trust it.
public struct CAPin: Sendable, Hashable, CustomStringConvertible {
    /// The text prefix every pin starts with, naming the digest algorithm.
    public static let prefix = "sha256:"

    /// The 32 bytes of the SHA-256 digest of the CA certificate's DER encoding.
    public let digest: [UInt8]

    /// Creates a pin from a raw 32-byte SHA-256 digest.
    public init(digest: [UInt8]) throws(CAPinError) {
        guard digest.count == 32 else {
            throw CAPinError.wrongDigestLength(found: digest.count)
        }
        self.digest = digest
    }

    /// Computes the pin of a CA certificate from its DER encoding.
    public static func compute<Bytes: Sequence>(derBytes: Bytes) -> CAPin where Bytes.Element == UInt8 {
        let bytes = Array(derBytes)
        // A SHA-256 digest is always 32 bytes, so this never throws.
        return try! CAPin(digest: Array(SHA256.hash(data: bytes)))
    }

    /// Parses the text form `sha256:<64 lowercase or uppercase hex digits>`.
    public static func parse(_ string: String) throws(CAPinError) -> CAPin {
        let trimmed = string.trimmingWhitespace()
        guard trimmed.lowercased().hasPrefix(prefix) else {
            throw CAPinError.missingPrefix(trimmed)
        }
        let hex = Array(trimmed.utf8.dropFirst(prefix.utf8.count))
        guard hex.count == 64 else {
            throw CAPinError.wrongHexLength(found: hex.count)
        }
        var digest: [UInt8] = []
        digest.reserveCapacity(32)
        var index = 0
        while index < hex.count {
            guard let high = hexValue(hex[index]), let low = hexValue(hex[index + 1]) else {
                throw CAPinError.invalidHexDigit(trimmed)
            }
            digest.append(high << 4 | low)
            index += 2
        }
        return try CAPin(digest: digest)
    }

    /// Whether a certificate, given as DER bytes, is the pinned CA certificate.
    public func matches<Bytes: Sequence>(derBytes: Bytes) -> Bool where Bytes.Element == UInt8 {
        let other = CAPin.compute(derBytes: derBytes)
        // Constant-time comparison: the pin is not secret, but there is no reason to leak timing either.
        var difference: UInt8 = 0
        for (left, right) in zip(self.digest, other.digest) {
            difference |= left ^ right
        }
        return difference == 0
    }

    /// The canonical text form, `sha256:` followed by 64 lowercase hex digits.
    public var description: String {
        let digits: [UInt8] = Array("0123456789abcdef".utf8)
        var out = CAPin.prefix
        out.reserveCapacity(CAPin.prefix.count + 64)
        for byte in digest {
            out.unicodeScalars.append(Unicode.Scalar(digits[Int(byte >> 4)]))
            out.unicodeScalars.append(Unicode.Scalar(digits[Int(byte & 0x0f)]))
        }
        return out
    }

    private static func hexValue(_ character: UInt8) -> UInt8? {
        switch character {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return character - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return character - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return character - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}

/// Why a CA pin could not be read.
public enum CAPinError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The pin does not start with `sha256:`.
    case missingPrefix(String)
    /// The hex part is not 64 digits long.
    case wrongHexLength(found: Int)
    /// The hex part has a character that is not a hex digit.
    case invalidHexDigit(String)
    /// A raw digest was not 32 bytes long.
    case wrongDigestLength(found: Int)

    /// A human-readable explanation of what is wrong with the pin.
    public var description: String {
        switch self {
        case .missingPrefix(let value):
            return "invalid CA pin \"\(value)\": it must start with \"sha256:\" followed by 64 hex digits"
        case .wrongHexLength(let found):
            return "invalid CA pin: expected 64 hex digits after \"sha256:\", found \(found)"
        case .invalidHexDigit(let value):
            return "invalid CA pin \"\(value)\": only hex digits 0-9 and a-f may follow \"sha256:\""
        case .wrongDigestLength(let found):
            return "invalid CA pin: a SHA-256 digest is 32 bytes, got \(found)"
        }
    }
}
