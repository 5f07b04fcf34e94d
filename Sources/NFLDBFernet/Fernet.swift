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
    /// HMAC-SHA256 keyed once (the key's inner and outer SHA-256 states).
    private let macState: UnsafeMutablePointer<nfldb_hmac_sha256_state>
    /// IVs, drawn from `RAND_bytes` 4 KiB at a time: one `RAND_bytes` call costs as much as the
    /// AES and HMAC of a short value together (OpenSSL 3's DRBG locking), 256 IVs per call do not.
    /// Each IV is wiped from the pool when handed out; the pool is refilled after a fork (pid check),
    /// so a child never reuses its parent's IVs.
    private let ivPool: UnsafeMutablePointer<UInt8>
    private var ivOffset = Fernet.ivPoolSize
    private var ivPoolOwner: pid_t = 0
    static let ivPoolSize = 4096

    public init(key: FernetKey) throws(FernetError) {
        self.key = key
        guard let enc = EVP_CIPHER_CTX_new(), let dec = EVP_CIPHER_CTX_new() else { throw .library("EVP_CIPHER_CTX_new") }
        encryptContext = enc
        decryptContext = dec
        macState = .allocate(capacity: 1)
        ivPool = .allocate(capacity: Self.ivPoolSize)
        let macOK = key.signingKey.withUnsafeBufferPointer { nfldb_hmac_sha256_prepare(macState, $0.baseAddress, $0.count) == 1 }
        // The key schedule is set once; each value only sets its IV.
        let ok = macOK && key.encryptionKey.withUnsafeBufferPointer { k in
            EVP_EncryptInit_ex(enc, EVP_aes_128_cbc(), nil, k.baseAddress, nil) == 1
                && EVP_DecryptInit_ex(dec, EVP_aes_128_cbc(), nil, k.baseAddress, nil) == 1
        }
        guard ok else {
            Self.release(enc, dec, macState, ivPool)
            throw .library(macOK ? "AES-128-CBC init" : "HMAC-SHA256 key")
        }
    }

    deinit {
        Self.release(encryptContext, decryptContext, macState, ivPool)
    }

    private static func release(_ enc: OpaquePointer, _ dec: OpaquePointer, _ mac: UnsafeMutablePointer<nfldb_hmac_sha256_state>,
                                _ pool: UnsafeMutablePointer<UInt8>) {
        EVP_CIPHER_CTX_free(enc)
        EVP_CIPHER_CTX_free(dec)
        OPENSSL_cleanse(mac, MemoryLayout<nfldb_hmac_sha256_state>.size)
        mac.deallocate()
        OPENSSL_cleanse(pool, ivPoolSize)
        pool.deallocate()
    }

    /// Writes a fresh random IV (16 bytes) to `out`; false if `RAND_bytes` failed.
    private func randomIV(into out: UnsafeMutablePointer<UInt8>) -> Bool {
        let pid = getpid()
        if ivOffset + 16 > Self.ivPoolSize || pid != ivPoolOwner {
            guard RAND_bytes(ivPool, Int32(Self.ivPoolSize)) == 1 else { return false }
            ivOffset = 0
            ivPoolOwner = pid
        }
        let source = ivPool + ivOffset
        out.update(from: source, count: 16)
        source.update(repeating: 0, count: 16)
        ivOffset += 16
        return true
    }

    /// The current Unix time in whole seconds.
    public static func now() -> Int64 { Int64(time(nil)) }

    // MARK: Encrypt

    /// Encrypts `plaintext` into a token stamped `now`, with a random IV (or `iv`, for test vectors).
    public func encrypt(_ plaintext: [UInt8], now: Int64 = Fernet.now(), iv: [UInt8]? = nil) throws(FernetError) -> String {
        if let iv { precondition(iv.count == 16, "a Fernet IV is 16 bytes") }
        let result: String? = plaintext.withUnsafeBytes { input in
            if let iv { return iv.withUnsafeBytes { seal(input, timestamp: now, iv: $0.baseAddress) } }
            return seal(input, timestamp: now, iv: nil)
        }
        guard let result else { throw .library("AES-128-CBC, HMAC-SHA256 or RAND_bytes while encrypting") }
        return result
    }

    public func encrypt(_ plaintext: some Collection<UInt8>, now: Int64 = Fernet.now()) throws(FernetError) -> String {
        try encrypt(Array(plaintext), now: now, iv: nil)
    }

    public func encrypt(_ plaintext: String, now: Int64 = Fernet.now()) throws(FernetError) -> String {
        try encrypt(Array(plaintext.utf8), now: now, iv: nil)
    }

    /// Builds the binary token in a stack buffer and returns it base64-encoded; nil if libcrypto failed.
    private func seal(_ input: UnsafeRawBufferPointer, timestamp: Int64, iv: UnsafeRawPointer?) -> String? {
        let cipherLength = (input.count / 16 + 1) * 16
        let total = Self.overhead + cipherLength
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: total + 16) { out -> String? in
            let base = out.baseAddress!
            base[0] = 0x80
            let ts = UInt64(bitPattern: timestamp)
            for i in 0..<8 { base[1 + i] = UInt8(truncatingIfNeeded: ts >> (56 - 8 * UInt64(i))) }
            if let iv {
                (base + 9).update(from: iv.assumingMemoryBound(to: UInt8.self), count: 16)
            } else if !randomIV(into: base + 9) {
                return nil
            }
            guard EVP_EncryptInit_ex(encryptContext, nil, nil, nil, base + 9) == 1 else { return nil }
            var written: Int32 = 0
            var final: Int32 = 0
            let source = input.baseAddress?.assumingMemoryBound(to: UInt8.self) ?? UnsafePointer(base)
            guard EVP_EncryptUpdate(encryptContext, base + 25, &written, source, Int32(input.count)) == 1,
                EVP_EncryptFinal_ex(encryptContext, base + 25 + Int(written), &final) == 1,
                Int(written + final) == cipherLength,
                mac(UnsafeRawPointer(base), 25 + cipherLength, into: base + 25 + cipherLength)
            else { return nil }
            let encodedLength = Base64URL.encodedLength(total)
            return String(unsafeUninitializedCapacity: encodedLength) { text in
                Base64URL.encode(UnsafeRawBufferPointer(start: base, count: total), into: UnsafeMutableRawBufferPointer(text))
                return encodedLength
            }
        }
    }

    /// HMAC-SHA256 of `count` bytes into `out` (32 bytes).
    private func mac(_ data: UnsafeRawPointer, _ count: Int, into out: UnsafeMutablePointer<UInt8>) -> Bool {
        nfldb_hmac_sha256(macState, data.assumingMemoryBound(to: UInt8.self), count, out) == 1
    }

    // MARK: Decrypt

    /// Decrypts a token. With `ttl` (seconds), a token older than that, or stamped more than 60 s in
    /// the future, is rejected, as `cryptography`'s `decrypt(token, ttl)` does.
    public func decrypt(_ token: String, ttl: Int64? = nil, now: Int64 = Fernet.now()) throws(FernetError) -> [UInt8] {
        let result = Self.withDecodedToken(token) { open($0, ttl: ttl, now: now) }
        switch result {
        case .success(let plain): return plain
        case .failure(let error): throw error
        }
    }

    /// The timestamp a token carries, without checking its HMAC (for reports; do not trust it).
    public static func unverifiedTimestamp(_ token: String) throws(FernetError) -> Int64 {
        try withDecodedToken(token) { .success(timestamp(of: $0)) }.get()
    }

    static func timestamp(of data: UnsafeRawBufferPointer) -> Int64 {
        var value: UInt64 = 0
        for i in 1...8 { value = value << 8 | UInt64(data[i]) }
        return Int64(bitPattern: value)
    }

    /// Decodes the base64 into a stack buffer and checks the structure (version 0x80, at least 73
    /// bytes, whole AES blocks) before calling `body`.
    static func withDecodedToken<R>(_ token: String, _ body: (UnsafeRawBufferPointer) -> Result<R, FernetError>) -> Result<R, FernetError> {
        var token = token
        return token.withUTF8 { utf8 in
            let capacity = utf8.count / 4 * 3 + 3
            return withUnsafeTemporaryAllocation(byteCount: capacity, alignment: 16) { buffer in
                guard let count = Base64URL.decode(UnsafeRawBufferPointer(utf8), into: buffer),
                    count >= overhead + 16, (count - overhead) % 16 == 0, buffer[0] == 0x80
                else { return .failure(.malformed) }
                return body(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
            }
        }
    }

    /// Checks the time (with a TTL), then the HMAC (constant time), then decrypts.
    func open(_ data: UnsafeRawBufferPointer, ttl: Int64?, now: Int64) -> Result<[UInt8], FernetError> {
        if let ttl {
            let stamp = Self.timestamp(of: data)
            if stamp &+ ttl < now { return .failure(.expired) }
            if now &+ Self.maxClockSkew < stamp { return .failure(.fromTheFuture) }
        }
        let base = data.baseAddress!.assumingMemoryBound(to: UInt8.self)
        let bodyLength = data.count - 32
        let cipherLength = bodyLength - 25
        let macOK = withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 32) { expected -> Bool? in
            guard mac(UnsafeRawPointer(base), bodyLength, into: expected.baseAddress!) else { return nil }
            return CRYPTO_memcmp(expected.baseAddress!, base + bodyLength, 32) == 0
        }
        guard let macOK else { return .failure(.library("HMAC-SHA256")) }
        guard macOK else { return .failure(.signatureMismatch) }
        guard EVP_DecryptInit_ex(decryptContext, nil, nil, nil, base + 9) == 1 else { return .failure(.library("AES-128-CBC init")) }
        var failed = false
        let plain = [UInt8](unsafeUninitializedCapacity: cipherLength + 16) { out, count in
            var written: Int32 = 0
            var final: Int32 = 0
            guard EVP_DecryptUpdate(decryptContext, out.baseAddress, &written, base + 25, Int32(cipherLength)) == 1,
                EVP_DecryptFinal_ex(decryptContext, out.baseAddress! + Int(written), &final) == 1
            else {
                failed = true
                count = 0
                return
            }
            count = Int(written + final)
        }
        return failed ? .failure(.badPadding) : .success(plain)
    }
}

/// MultiFernet: encrypts with the first key, decrypts with any (tried in order), like
/// `cryptography.fernet.MultiFernet`. Not thread-safe (it holds one ``Fernet`` per key).
public final class MultiFernet {
    public let fernets: [Fernet]
    private var lastOpened = 0

    public init(keys: [FernetKey]) throws(FernetError) {
        precondition(!keys.isEmpty, "MultiFernet needs at least one key")
        var list: [Fernet] = []
        for key in keys { list.append(try Fernet(key: key)) }
        fernets = list
    }

    public var primary: Fernet { fernets[0] }

    public func encrypt(_ plaintext: [UInt8], now: Int64 = Fernet.now()) throws(FernetError) -> String {
        try primary.encrypt(plaintext, now: now)
    }

    /// The plaintext and the index of the key that opened it. When no key opens it, the error is the
    /// most telling one (expired / from the future before signature mismatch).
    public func decryptReportingKey(_ token: String, ttl: Int64? = nil, now: Int64 = Fernet.now()) throws(FernetError) -> (plaintext: [UInt8], keyIndex: Int) {
        try Fernet.withDecodedToken(token) { data -> Result<([UInt8], Int), FernetError> in
            var last = FernetError.signatureMismatch
            // The key that opened the previous token is tried first (a column being rotated is
            // mostly under one old key: this saves an HMAC per value), then the others in order.
            let hint = lastOpened
            for attempt in fernets.indices {
                let index = attempt == 0 ? hint : (attempt <= hint ? attempt - 1 : attempt)
                switch fernets[index].open(data, ttl: ttl, now: now) {
                case .success(let plain):
                    lastOpened = index
                    return .success((plain, index))
                case .failure(let error): if error != .signatureMismatch || last == .signatureMismatch { last = error }
                }
            }
            return .failure(last)
        }.get()
    }

    public func decrypt(_ token: String, ttl: Int64? = nil, now: Int64 = Fernet.now()) throws(FernetError) -> [UInt8] {
        try decryptReportingKey(token, ttl: ttl, now: now).plaintext
    }

    /// Re-encrypts under the first key, keeping the original timestamp (as `MultiFernet.rotate` does).
    public func rotate(_ token: String) throws(FernetError) -> String {
        let plain = try decryptReportingKey(token).plaintext
        return try primary.encrypt(plain, now: try Fernet.unverifiedTimestamp(token), iv: nil)
    }
}
