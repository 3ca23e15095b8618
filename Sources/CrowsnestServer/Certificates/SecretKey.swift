import Crypto
import CrowsnestWire
import Foundation

/// The server's secret key, read from `secret_key_file`: it seals what the database must hold but a copy of the
/// database must not give away (the CA's private key). Every replica of one installation needs the same file.
///
/// The file holds at least 32 bytes of secret (e.g. 64 hex digits); the AES-256-GCM key is derived from it with
/// HKDF-SHA256, so any such content works. For the embedded database the server creates it (mode 0600) in the
/// data directory; with an external database the operator provides it.
public struct SecretKey: Sendable {
    /// Fewest bytes of secret the file must hold (whitespace at either end is not counted).
    public static let minimumBytes = 32
    /// The file the embedded default keeps in the data directory.
    public static let defaultFileName = "secret.key"

    private let key: SymmetricKey
    /// Identifies which secret sealed a value without revealing it: 16 hex digits of SHA-256 over the derived key.
    public let fingerprint: String
    /// Where the key was read from, for messages.
    public let path: String

    /// Reads the key from `path`; one clear error when the file is missing, readable by others or too short.
    public static func load(path: String) throws -> SecretKey {
        guard FileManager.default.fileExists(atPath: path) else {
            throw SecretKeyError("secret key file \(path) does not exist: create it with 32 random bytes, e.g. "
                + "'umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d \" \\n\" > \(path)', and give every replica the same file")
        }
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        if let mode = (attributes[.posixPermissions] as? NSNumber)?.intValue, mode & 0o077 != 0 {
            throw SecretKeyError("secret key file \(path) is readable by other users (mode \(String(mode, radix: 8))): chmod 600 it")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw SecretKeyError("cannot read secret key file \(path)")
        }
        let secret = Array(String(decoding: data, as: UTF8.self).trimmingWhitespace().utf8)
        guard secret.count >= minimumBytes else {
            throw SecretKeyError("secret key file \(path) holds \(secret.count) bytes; it needs at least \(minimumBytes)")
        }
        return SecretKey(secret: secret, path: path)
    }

    /// Reads the key at `path`, creating it first (64 random hex digits, mode 0600) when it does not exist.
    public static func loadOrCreate(path: String) throws -> SecretKey {
        if !FileManager.default.fileExists(atPath: path) {
            var random = SystemRandomNumberGenerator()
            let hex = (0..<32).map { _ in
                let byte = UInt8.random(in: 0...255, using: &random)
                return (byte < 16 ? "0" : "") + String(byte, radix: 16)
            }.joined()
            try CredentialFile.writeAtomically(hex + "\n", to: path, mode: 0o600)
        }
        return try load(path: path)
    }

    init(secret: [UInt8], path: String) {
        self.key = HKDF<SHA256>.deriveKey(inputKeyMaterial: SymmetricKey(data: secret),
                                          info: Array("crowsnest secret key v1".utf8), outputByteCount: 32)
        self.fingerprint = key.withUnsafeBytes { bytes in
            SHA256.hash(data: Array(bytes)).prefix(8).map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
        }
        self.path = path
    }

    /// AES-256-GCM: nonce, ciphertext and tag in one value.
    public func seal(_ plaintext: [UInt8]) throws -> [UInt8] {
        guard let combined = try AES.GCM.seal(plaintext, using: key).combined else {
            throw SecretKeyError("cannot seal a value with the secret key")
        }
        return Array(combined)
    }

    /// Opens what `seal` produced; throws when it was sealed with another key or altered.
    public func open(_ sealed: [UInt8]) throws -> [UInt8] {
        do {
            return Array(try AES.GCM.open(try AES.GCM.SealedBox(combined: sealed), using: key))
        } catch {
            throw SecretKeyError("cannot decrypt a value with the secret key from \(path): it was sealed with another key, or altered")
        }
    }
}

/// A secret key file that cannot be used, in one line.
public struct SecretKeyError: Error, CustomStringConvertible, Sendable {
    public var description: String
    init(_ description: String) { self.description = description }
}
