import CLibCrypto
import Foundation

/// Why a token was rejected. Python's `cryptography` reports all of these as one `InvalidToken`;
/// nfldb keeps the reason for operators. A bad padding can only be seen after the HMAC matched, so
/// reporting it is no padding oracle.
public enum FernetError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Not URL-safe base64, wrong version byte, or an impossible length.
    case malformed
    /// The HMAC does not match: a different key, or the token was changed.
    case signatureMismatch
    /// Older than the TTL.
    case expired
    /// Stamped more than ``Fernet/maxClockSkew`` seconds in the future (checked with a TTL, as `cryptography` does).
    case fromTheFuture
    /// The HMAC matched but the plaintext padding is wrong (only a bug in the writer can cause this).
    case badPadding
    /// libcrypto failed (out of memory, provider missing).
    case library(String)

    public var description: String {
        switch self {
        case .malformed: "not a Fernet token (bad base64, version byte or length)"
        case .signatureMismatch: "the token's HMAC does not match: encrypted with another key, or altered"
        case .expired: "the token is older than the TTL"
        case .fromTheFuture: "the token's timestamp is more than 60 s in the future"
        case .badPadding: "the token decrypts to bad padding"
        case .library(let what): "libcrypto failed: \(what)"
        }
    }
}

/// Fernet (https://github.com/fernet/spec) with one key, byte-compatible with Python
/// `cryptography.fernet.Fernet`:
///
///     0x80 ‖ timestamp (u64 BE) ‖ IV (16) ‖ AES-128-CBC-PKCS7(plaintext) ‖ HMAC-SHA256(all before)
///
/// then URL-safe base64 with padding. The HMAC is checked (constant time, `CRYPTO_memcmp`) before
/// anything is decrypted.
///
/// An instance reuses its libcrypto contexts and buffers: it is cheap per value and **not
/// thread-safe** — use one per thread.
public final class Fernet {
    /// `cryptography`'s `_MAX_CLOCK_SKEW`.
    public static let maxClockSkew: Int64 = 60
    static let overhead = 1 + 8 + 16 + 32

    public let key: FernetKey
    private let encryptContext: OpaquePointer
    private let decryptContext: OpaquePointer
    private let macTemplate: OpaquePointer
    private var raw: [UInt8] = []

    public init(key: FernetKey) throws(FernetError) {
        self.key = key
        guard let enc = EVP_CIPHER_CTX_new(), let dec = EVP_CIPHER_CTX_new() else { throw .library("EVP_CIPHER_CTX_new") }
        encryptContext = enc
        decryptContext = dec
        guard let mac = key.signingKey.withUnsafeBufferPointer({ nfldb_hmac_sha256_new($0.baseAddress, 16) }) else {
            EVP_CIPHER_CTX_free(enc)
            EVP_CIPHER_CTX_free(dec)
            throw .library("HMAC-SHA256 context")
        }
        macTemplate = mac
        // The key schedule is set once; each value only sets its IV.
        let ok = key.encryptionKey.withUnsafeBufferPointer { k in
            EVP_EncryptInit_ex(enc, EVP_aes_128_cbc(), nil, k.baseAddress, nil) == 1
                && EVP_DecryptInit_ex(dec, EVP_aes_128_cbc(), nil, k.baseAddress, nil) == 1
        }
        guard ok else {
            EVP_CIPHER_CTX_free(enc)
            EVP_CIPHER_CTX_free(dec)
            EVP_MAC_CTX_free(mac)
            throw .library("AES-128-CBC init")
        }
    }

    deinit {
        EVP_CIPHER_CTX_free(encryptContext)
        EVP_CIPHER_CTX_free(decryptContext)
        EVP_MAC_CTX_free(macTemplate)
    }

    /// The current Unix time in whole seconds.
    public static func now() -> Int64 { Int64(time(nil)) }

    // MARK: Encrypt

    /// Encrypts `plaintext` into a token stamped `now`, with a random IV (or `iv`, for test vectors).
    public func encrypt(_ plaintext: some Collection<UInt8>, now: Int64 = Fernet.now(), iv: [UInt8]? = nil) throws(FernetError) -> String {
        var ivBytes = [UInt8](repeating: 0, count: 16)
        if let iv {
            precondition(iv.count == 16, "a Fernet IV is 16 bytes")
            ivBytes = iv
        } else if RAND_bytes(&ivBytes, 16) != 1 {
            throw .library("RAND_bytes")
        }
        let input: [UInt8] = (plaintext as? [UInt8]) ?? Array(plaintext)
        let length = try sealRaw(input, timestamp: now, iv: ivBytes)
        return raw.withUnsafeBytes { rawBytes in
            let encodedLength = Base64URL.encodedLength(length)
            return String(unsafeUninitializedCapacity: encodedLength) { out in
                Base64URL.encode(UnsafeRawBufferPointer(rebasing: rawBytes[0..<length]), into: UnsafeMutableRawBufferPointer(out))
                return encodedLength
            }
        }
    }

    public func encrypt(_ plaintext: String, now: Int64 = Fernet.now()) throws(FernetError) -> String {
        try encrypt(Array(plaintext.utf8), now: now)
    }

    /// Writes the binary token into `raw`; returns its length.
    private func sealRaw(_ input: [UInt8], timestamp: Int64, iv: [UInt8]) throws(FernetError) -> Int {
        let cipherLength = (input.count / 16 + 1) * 16
        let total = Self.overhead + cipherLength
        if raw.count < total + 16 { raw = [UInt8](repeating: 0, count: total + 64) }
        let ok = raw.withUnsafeMutableBufferPointer { out -> Bool in
            guard let base = out.baseAddress else { return false }
            base[0] = 0x80
            var ts = UInt64(bitPattern: timestamp).bigEndian
            withUnsafeBytes(of: &ts) { for i in 0..<8 { base[1 + i] = $0[i] } }
            for i in 0..<16 { base[9 + i] = iv[i] }
            guard EVP_EncryptInit_ex(encryptContext, nil, nil, nil, base + 9) == 1 else { return false }
            var written: Int32 = 0
            var final: Int32 = 0
            let updated = input.withUnsafeBufferPointer { p in
                EVP_EncryptUpdate(encryptContext, base + 25, &written, p.baseAddress ?? UnsafePointer(base), Int32(p.count)) == 1
            }
            guard updated, EVP_EncryptFinal_ex(encryptContext, base + 25 + Int(written), &final) == 1,
                Int(written + final) == cipherLength
            else { return false }
            return mac(UnsafeRawPointer(base), 25 + cipherLength, into: base + 25 + cipherLength)
        }
        guard ok else { throw .library("AES-128-CBC or HMAC-SHA256 while encrypting") }
        return total
    }

    /// HMAC-SHA256 of `count` bytes into `out` (32 bytes).
    private func mac(_ data: UnsafeRawPointer, _ count: Int, into out: UnsafeMutablePointer<UInt8>) -> Bool {
        guard EVP_MAC_init(macTemplate, nil, 0, nil) == 1,
            EVP_MAC_update(macTemplate, data.assumingMemoryBound(to: UInt8.self), count) == 1
        else { return false }
        var length = 0
        return EVP_MAC_final(macTemplate, out, &length, 32) == 1 && length == 32
    }

    // MARK: Decrypt

    /// Decrypts a token. With `ttl` (seconds), a token older than that, or stamped more than 60 s in
    /// the future, is rejected, as `cryptography`'s `decrypt(token, ttl)` does.
    public func decrypt(_ token: some StringProtocol, ttl: Int64? = nil, now: Int64 = Fernet.now()) throws(FernetError) -> [UInt8] {
        let data = try Self.decodeToken(token)
        return try decrypt(decoded: data, ttl: ttl, now: now)
    }

    /// The timestamp a token carries, without checking its HMAC (for reports; do not trust it).
    public static func unverifiedTimestamp(_ token: some StringProtocol) throws(FernetError) -> Int64 {
        let data = try decodeToken(token)
        return timestamp(of: data)
    }

    static func timestamp(of data: [UInt8]) -> Int64 {
        var value: UInt64 = 0
        for i in 1...8 { value = value << 8 | UInt64(data[i]) }
        return Int64(bitPattern: value)
    }

    /// Base64 and structure: version 0x80, at least 73 bytes, whole AES blocks.
    static func decodeToken(_ token: some StringProtocol) throws(FernetError) -> [UInt8] {
        guard let data = Base64URL.decode(token) else { throw .malformed }
        guard data.count >= overhead + 16, (data.count - overhead) % 16 == 0, data[0] == 0x80 else { throw .malformed }
        return data
    }

    func decrypt(decoded data: [UInt8], ttl: Int64?, now: Int64) throws(FernetError) -> [UInt8] {
        if let ttl {
            let stamp = Self.timestamp(of: data)
            if stamp &+ ttl < now { throw .expired }
            if now &+ Self.maxClockSkew < stamp { throw .fromTheFuture }
        }
        let bodyLength = data.count - 32
        let cipherLength = bodyLength - 25
        var plain = [UInt8](repeating: 0, count: cipherLength + 16)
        var failure: FernetError?
        let count = data.withUnsafeBufferPointer { p -> Int in
            let base = p.baseAddress!
            var expected = [UInt8](repeating: 0, count: 32)
            guard mac(UnsafeRawPointer(base), bodyLength, into: &expected) else {
                failure = .library("HMAC-SHA256")
                return 0
            }
            guard CRYPTO_memcmp(expected, base + bodyLength, 32) == 0 else {
                failure = .signatureMismatch
                return 0
            }
            guard EVP_DecryptInit_ex(decryptContext, nil, nil, nil, base + 9) == 1 else {
                failure = .library("AES-128-CBC init")
                return 0
            }
            var written: Int32 = 0
            var final: Int32 = 0
            let done = plain.withUnsafeMutableBufferPointer { out -> Bool in
                guard EVP_DecryptUpdate(decryptContext, out.baseAddress, &written, base + 25, Int32(cipherLength)) == 1 else { return false }
                return EVP_DecryptFinal_ex(decryptContext, out.baseAddress! + Int(written), &final) == 1
            }
            guard done else {
                failure = .badPadding
                return 0
            }
            return Int(written + final)
        }
        if let failure { throw failure }
        plain.removeLast(plain.count - count)
        return plain
    }
}

/// MultiFernet: encrypts with the first key, decrypts with any (tried in order), like
/// `cryptography.fernet.MultiFernet`. Not thread-safe (it holds one ``Fernet`` per key).
public final class MultiFernet {
    public let fernets: [Fernet]

    public init(keys: [FernetKey]) throws(FernetError) {
        precondition(!keys.isEmpty, "MultiFernet needs at least one key")
        var list: [Fernet] = []
        for key in keys { list.append(try Fernet(key: key)) }
        fernets = list
    }

    public var primary: Fernet { fernets[0] }

    public func encrypt(_ plaintext: some Collection<UInt8>, now: Int64 = Fernet.now()) throws(FernetError) -> String {
        try primary.encrypt(plaintext, now: now)
    }

    /// The plaintext and the index of the key that opened it. When no key opens it, the error is the
    /// most telling one (expired / from the future before signature mismatch).
    public func decryptReportingKey(_ token: some StringProtocol, ttl: Int64? = nil, now: Int64 = Fernet.now()) throws(FernetError) -> (plaintext: [UInt8], keyIndex: Int) {
        let data = try Fernet.decodeToken(token)
        var last = FernetError.signatureMismatch
        for (index, fernet) in fernets.enumerated() {
            do {
                return (try fernet.decrypt(decoded: data, ttl: ttl, now: now), index)
            } catch {
                if error != .signatureMismatch || last == .signatureMismatch { last = error }
            }
        }
        throw last
    }

    public func decrypt(_ token: some StringProtocol, ttl: Int64? = nil, now: Int64 = Fernet.now()) throws(FernetError) -> [UInt8] {
        try decryptReportingKey(token, ttl: ttl, now: now).plaintext
    }

    /// Re-encrypts under the first key, keeping the original timestamp (as `MultiFernet.rotate` does).
    public func rotate(_ token: some StringProtocol) throws(FernetError) -> String {
        let data = try Fernet.decodeToken(token)
        let stamp = Fernet.timestamp(of: data)
        var plain: [UInt8]?
        var last = FernetError.signatureMismatch
        for fernet in fernets {
            do {
                plain = try fernet.decrypt(decoded: data, ttl: nil, now: 0)
                break
            } catch { last = error }
        }
        guard let plain else { throw last }
        return try primary.encrypt(plain, now: stamp)
    }
}
