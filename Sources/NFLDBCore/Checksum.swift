import CLibCrypto
import Foundation

/// SHA-256 via libcrypto. The corresponding OpenSSL function is `SHA256`.
public enum SHA256Digest {
    /// The 32-byte digest.
    public static func bytes(_ bytes: some Collection<UInt8>) -> [UInt8] {
        let input = Array(bytes)
        var digest = [UInt8](repeating: 0, count: Int(SHA256_DIGEST_LENGTH))
        input.withUnsafeBufferPointer { buffer in
            _ = SHA256(buffer.baseAddress, buffer.count, &digest)
        }
        return digest
    }

    public static func hex(_ bytes: some Collection<UInt8>) -> String {
        Self.bytes(bytes).map { String(format: "%02x", $0) }.joined()
    }

    public static func hex(_ text: String) -> String { hex(Array(text.utf8)) }
}
