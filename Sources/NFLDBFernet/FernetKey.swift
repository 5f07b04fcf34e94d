import CLibCrypto
import NFLDBCore

/// A Fernet key: 32 random bytes, written as URL-safe base64 with padding (44 characters). The first
/// 16 bytes sign (HMAC-SHA256), the last 16 encrypt (AES-128-CBC), as in the Fernet spec.
///
/// `description` never shows the key; ``encoded`` does, on purpose, for `nfldb crypt keygen`.
public struct FernetKey: Sendable, Hashable, CustomStringConvertible {
    let signingKey: [UInt8]
    let encryptionKey: [UInt8]

    /// Parses a key. The error says what is wrong with it and never contains it.
    public init(encoded text: String) throws(FernetKeyError) {
        let trimmed = text.trimmingASCIIWhitespace()
        // Python's Fernet(key) also takes a key written in the standard alphabet (+ and /):
        // urlsafe_b64decode leaves those characters alone. Take it too, as the same key.
        let urlSafe = String(decoding: trimmed.utf8.map { $0 == UInt8(ascii: "+") ? UInt8(ascii: "-") : $0 == UInt8(ascii: "/") ? UInt8(ascii: "_") : $0 }, as: UTF8.self)
        guard let bytes = Base64URL.decode(urlSafe) else { throw .notBase64(length: trimmed.utf8.count) }
        guard bytes.count == 32 else { throw .wrongLength(bytes.count) }
        self.init(bytes: bytes)
    }

    init(bytes: [UInt8]) {
        precondition(bytes.count == 32)
        signingKey = Array(bytes[0..<16])
        encryptionKey = Array(bytes[16..<32])
    }

    /// A new key from the operating system's CSPRNG (`RAND_bytes`).
    public static func generate() throws(FernetKeyError) -> FernetKey {
        var bytes = [UInt8](repeating: 0, count: 32)
        guard RAND_bytes(&bytes, 32) == 1 else { throw .randomFailed }
        return FernetKey(bytes: bytes)
    }

    /// The key as Fernet writes it: 44 characters of URL-safe base64.
    public var encoded: String { Base64URL.encode(signingKey + encryptionKey) }

    /// A short, non-secret identifier for messages: the first 8 hex digits of SHA-256 over the key.
    public var fingerprint: String { String(SHA256Digest.hex(signingKey + encryptionKey).prefix(8)) }

    public var description: String { "FernetKey(fingerprint \(fingerprint))" }
}

/// A key that cannot be used. The message never contains key material.
public enum FernetKeyError: Error, Sendable, Equatable, CustomStringConvertible {
    case notBase64(length: Int)
    case wrongLength(Int)
    case randomFailed

    public var description: String {
        switch self {
        case .notBase64(let length):
            "the Fernet key is not URL-safe base64 (\(length) characters; a key is 44 characters of A-Z a-z 0-9 - _ ending in =)"
        case .wrongLength(let count):
            "the Fernet key decodes to \(count) bytes, not 32 (make one with `nfldb crypt keygen`)"
        case .randomFailed: "the system random generator (RAND_bytes) failed"
        }
    }
}

extension StringProtocol {
    func trimmingASCIIWhitespace() -> String {
        let bytes = Array(utf8)
        var start = 0
        var end = bytes.count
        func space(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D }
        while start < end, space(bytes[start]) { start += 1 }
        while end > start, space(bytes[end - 1]) { end -= 1 }
        return String(decoding: bytes[start..<end], as: UTF8.self)
    }
}
