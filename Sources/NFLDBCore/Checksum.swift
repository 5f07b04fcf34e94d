import CLibCrypto
import Foundation

/// SHA-256 via libcrypto's `EVP_Digest` with `EVP_sha256()`.
public enum SHA256Digest {
    /// The digest length in bytes.
    public static let length = 32

    /// The 32-byte digest.
    public static func bytes(_ bytes: some Collection<UInt8>) -> [UInt8] {
        let input = Array(bytes)
        var digest = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var written: UInt32 = 0
        let ok = input.withUnsafeBytes { buffer in
            EVP_Digest(buffer.baseAddress, buffer.count, &digest, &written, EVP_sha256(), nil)
        }
        // EVP_Digest fails only when libcrypto cannot allocate a context; there is no digest to return then.
        precondition(ok == 1 && written == UInt32(length), "libcrypto EVP_Digest(SHA-256) failed")
        return Array(digest.prefix(length))
    }

    public static func hex(_ bytes: some Collection<UInt8>) -> String {
        Self.bytes(bytes).map { String(format: "%02x", $0) }.joined()
    }

    public static func hex(_ text: String) -> String { hex(Array(text.utf8)) }
}
