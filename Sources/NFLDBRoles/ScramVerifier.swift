import CLibCrypto
import Foundation
import NFLDBCore

/// A SCRAM-SHA-256 password verifier as PostgreSQL stores it in `pg_authid.rolpassword`:
/// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` (RFC 5802/7677, base64 fields).
///
/// nfldb computes it on the client, so `ALTER ROLE … PASSWORD` sends the verifier and the clear
/// text never reaches the server (nor its log or pg_stat_statements). It is also how a plan tells
/// whether a password changed: recompute with the stored salt and iteration count and compare.
public struct ScramVerifier: Sendable, Hashable, CustomStringConvertible {
    public let iterations: Int
    public let salt: [UInt8]
    public let storedKey: [UInt8]
    public let serverKey: [UInt8]

    /// PostgreSQL's defaults (`scram_iterations` = 4096, 16-byte salt).
    public static let defaultIterations = 4096
    public static let saltLength = 16

    /// Computes the verifier of `password` with a fresh random salt (or the given one).
    public init(password: String, salt: [UInt8]? = nil, iterations: Int = ScramVerifier.defaultIterations) {
        let salt = salt ?? ScramVerifier.randomSalt()
        let salted = Crypto.pbkdf2SHA256(password: Array(ScramVerifier.saslPrep(password).utf8), salt: salt, iterations: iterations)
        let clientKey = Crypto.hmacSHA256(key: salted, message: Array("Client Key".utf8))
        self.iterations = iterations
        self.salt = salt
        self.storedKey = Crypto.sha256(clientKey)
        self.serverKey = Crypto.hmacSHA256(key: salted, message: Array("Server Key".utf8))
    }

    /// Parses a stored verifier; nil for anything else (md5 hashes, clear text, NULL).
    public init?(parsing text: String) {
        let parts = text.split(separator: "$", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "SCRAM-SHA-256" else { return nil }
        let head = parts[1].split(separator: ":")
        let keys = parts[2].split(separator: ":")
        guard head.count == 2, keys.count == 2, let iterations = Int(head[0]), iterations > 0,
            let salt = Data(base64Encoded: String(head[1])), let stored = Data(base64Encoded: String(keys[0])),
            let server = Data(base64Encoded: String(keys[1])), stored.count == 32, server.count == 32
        else { return nil }
        self.iterations = iterations
        self.salt = Array(salt)
        self.storedKey = Array(stored)
        self.serverKey = Array(server)
    }

    /// Whether `password` is the password this verifier was made from.
    public func matches(password: String) -> Bool {
        let candidate = ScramVerifier(password: password, salt: salt, iterations: iterations)
        return Crypto.constantTimeEqual(candidate.storedKey, storedKey) && Crypto.constantTimeEqual(candidate.serverKey, serverKey)
    }

    /// The text stored in `rolpassword` and sent in `ALTER ROLE … PASSWORD '…'`.
    public var description: String {
        "SCRAM-SHA-256$\(iterations):\(Data(salt).base64EncodedString())$\(Data(storedKey).base64EncodedString()):\(Data(serverKey).base64EncodedString())"
    }

    static func randomSalt() -> [UInt8] {
        var generator = SystemRandomNumberGenerator()  // getrandom(2) on Linux, arc4random on Darwin
        return (0..<saltLength).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
    }

    /// SASLprep (RFC 4013) as PostgreSQL applies it before hashing: ASCII passwords are used as
    /// they are; otherwise non-ASCII spaces become U+0020, "mapped to nothing" characters are
    /// dropped and the result is NFKC-normalized. When a prohibited character remains, PostgreSQL
    /// uses the raw bytes, and so does this. (Unassigned code points are not checked.)
    static func saslPrep(_ password: String) -> String {
        guard password.unicodeScalars.contains(where: { !$0.isASCII }) else { return password }
        var mapped = String.UnicodeScalarView()
        for scalar in password.unicodeScalars {
            if nonASCIISpaces.contains(scalar.value) {
                mapped.append(" ")
            } else if !mappedToNothing.contains(scalar.value) {
                mapped.append(scalar)
            }
        }
        let normalized = String(mapped).precomposedStringWithCompatibilityMapping
        for scalar in normalized.unicodeScalars where isProhibited(scalar.value) { return password }
        return normalized
    }

    private static let nonASCIISpaces: Set<UInt32> = [
        0x00A0, 0x1680, 0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200A, 0x200B, 0x202F,
        0x205F, 0x3000,
    ]
    private static let mappedToNothing: Set<UInt32> = [
        0x00AD, 0x034F, 0x1806, 0x180B, 0x180C, 0x180D, 0x200B, 0x200C, 0x200D, 0x2060, 0xFE00, 0xFE01, 0xFE02, 0xFE03, 0xFE04, 0xFE05,
        0xFE06, 0xFE07, 0xFE08, 0xFE09, 0xFE0A, 0xFE0B, 0xFE0C, 0xFE0D, 0xFE0E, 0xFE0F, 0xFEFF,
    ]

    private static func isProhibited(_ value: UInt32) -> Bool {
        value < 0x20 || value == 0x7F || (0x80...0x9F).contains(value) || (0xE000...0xF8FF).contains(value)
            || (0xF0000...0x10FFFF).contains(value) || (0xD800...0xDFFF).contains(value) || (0xFDD0...0xFDEF).contains(value)
            || (value & 0xFFFE) == 0xFFFE || (0x2FF0...0x2FFB).contains(value) || (0x200E...0x200F).contains(value)
            || (0x202A...0x202E).contains(value) || (0x206A...0x206F).contains(value) || value == 0xE0001
            || (0xE0020...0xE007F).contains(value)
    }
}

/// SHA-256, HMAC-SHA-256 and PBKDF2-HMAC-SHA-256 from libcrypto (`EVP_Digest`, `HMAC`,
/// `PKCS5_PBKDF2_HMAC`, `CRYPTO_memcmp`); nothing here is written by hand.
enum Crypto {
    static func sha256(_ bytes: [UInt8]) -> [UInt8] { SHA256Digest.bytes(bytes) }

    /// RFC 2104 HMAC with SHA-256 (libcrypto's one-shot `HMAC`).
    static func hmacSHA256(key: [UInt8], message: [UInt8]) -> [UInt8] {
        var mac = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        // A NULL key means "keep the previous key" to libcrypto's MAC API: give an empty key a real address.
        let keyBytes = key.isEmpty ? [0] : key
        let result = keyBytes.withUnsafeBytes { keyBuffer in
            message.withUnsafeBytes { messageBuffer in
                HMAC(EVP_sha256(), keyBuffer.baseAddress, Int32(key.count), messageBuffer.baseAddress?.assumingMemoryBound(to: UInt8.self),
                     messageBuffer.count, &mac, &length)
            }
        }
        // HMAC fails only when libcrypto cannot allocate its context.
        precondition(result != nil && length == UInt32(SHA256Digest.length), "libcrypto HMAC(SHA-256) failed")
        return Array(mac.prefix(SHA256Digest.length))
    }

    /// RFC 8018 PBKDF2 with HMAC-SHA-256, one 32-byte block (all SCRAM-SHA-256 needs).
    static func pbkdf2SHA256(password: [UInt8], salt: [UInt8], iterations: Int) -> [UInt8] {
        var key = [UInt8](repeating: 0, count: SHA256Digest.length)
        let result = password.withUnsafeBytes { passwordBuffer in
            salt.withUnsafeBytes { saltBuffer in
                PKCS5_PBKDF2_HMAC(
                    passwordBuffer.baseAddress?.assumingMemoryBound(to: CChar.self), Int32(passwordBuffer.count),
                    saltBuffer.baseAddress?.assumingMemoryBound(to: UInt8.self), Int32(saltBuffer.count), Int32(clamping: iterations),
                    EVP_sha256(), Int32(key.count), &key)
            }
        }
        precondition(result == 1, "libcrypto PKCS5_PBKDF2_HMAC(SHA-256) failed")
        return key
    }

    /// Constant-time comparison (`CRYPTO_memcmp`).
    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        return a.withUnsafeBytes { x in b.withUnsafeBytes { y in CRYPTO_memcmp(x.baseAddress, y.baseAddress, x.count) == 0 } }
    }
}
