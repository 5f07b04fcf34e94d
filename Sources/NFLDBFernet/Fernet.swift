import CLibCrypto
import Foundation
import Synchronization

/// Bumped in the child after every `fork()`: a ``Fernet`` refills its IV pool when it changed, so a
/// child never hands out IVs its parent may also use. (A pid check per value was a system call per token.)
private let forkGeneration = Atomic<Int>(0)
private let forkHandlerInstalled: Bool = {
    pthread_atfork(nil, nil, { forkGeneration.add(1, ordering: .relaxed) }) == 0
}()

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
    /// Each IV is wiped from the pool when handed out; the pool is refilled after a fork (a
    /// `pthread_atfork` generation), so a child never reuses its parent's IVs.
    private let ivPool: UnsafeMutablePointer<UInt8>
    private var ivOffset = Fernet.ivPoolSize
    private var ivPoolGeneration = -1
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
        let generation = forkGeneration.load(ordering: .relaxed)
        if ivOffset + 16 > Self.ivPoolSize || generation != ivPoolGeneration {
            guard forkHandlerInstalled, RAND_bytes(ivPool, Int32(Self.ivPoolSize)) == 1 else { return false }
            ivOffset = 0
            ivPoolGeneration = generation
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

    /// The length of the token (text) for a plaintext of `count` bytes.
    public static func tokenLength(plaintextCount count: Int) -> Int {
        Base64URL.encodedLength(overhead + (count / 16 + 1) * 16)
    }

    /// Encrypts into `output` (at least ``tokenLength(plaintextCount:)`` bytes), which receives the
    /// token's ASCII text; returns its length. Nothing is allocated: for bulk work (`nfldb crypt
    /// encrypt`, `crypt rotate`), where a `String` per value would cost more than the base64.
    public func encrypt(_ plaintext: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer, now: Int64 = Fernet.now()) throws(FernetError) -> Int {
        let length = Self.tokenLength(plaintextCount: plaintext.count)
        precondition(output.count >= length, "Fernet.encrypt(into:): the output holds \(output.count) bytes, the token needs \(length)")
        guard seal(plaintext, timestamp: now, iv: nil, into: output.baseAddress!) else {
            throw .library("AES-128-CBC, HMAC-SHA256 or RAND_bytes while encrypting")
        }
        return length
    }

    private func seal(_ input: UnsafeRawBufferPointer, timestamp: Int64, iv: UnsafeRawPointer?) -> String? {
        let length = Self.tokenLength(plaintextCount: input.count)
        var ok = false
        let text = String(unsafeUninitializedCapacity: length) { text in
            ok = seal(input, timestamp: timestamp, iv: iv, into: UnsafeMutableRawPointer(text.baseAddress!))
            return ok ? length : 0
        }
        return ok ? text : nil
    }

    /// Builds the binary token in a stack buffer and writes it base64-encoded to `output`
    /// (``tokenLength(plaintextCount:)`` bytes); false if libcrypto failed.
    private func seal(_ input: UnsafeRawBufferPointer, timestamp: Int64, iv: UnsafeRawPointer?, into output: UnsafeMutableRawPointer) -> Bool {
        let cipherLength = (input.count / 16 + 1) * 16
        let total = Self.overhead + cipherLength
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: total + 16) { out -> Bool in
            let base = out.baseAddress!
            base[0] = 0x80
            let ts = UInt64(bitPattern: timestamp)
            for i in 0..<8 { base[1 + i] = UInt8(truncatingIfNeeded: ts >> (56 - 8 * UInt64(i))) }
            if let iv {
                (base + 9).update(from: iv.assumingMemoryBound(to: UInt8.self), count: 16)
            } else if !randomIV(into: base + 9) {
                return false
            }
            guard EVP_EncryptInit_ex(encryptContext, nil, nil, nil, base + 9) == 1 else { return false }
            var written: Int32 = 0
            var final: Int32 = 0
            let source = input.baseAddress?.assumingMemoryBound(to: UInt8.self) ?? UnsafePointer(base)
            guard EVP_EncryptUpdate(encryptContext, base + 25, &written, source, Int32(input.count)) == 1,
                EVP_EncryptFinal_ex(encryptContext, base + 25 + Int(written), &final) == 1,
                Int(written + final) == cipherLength,
                mac(UnsafeRawPointer(base), 25 + cipherLength, into: base + 25 + cipherLength)
            else { return false }
            Base64URL.encode(UnsafeRawBufferPointer(start: base, count: total),
                             into: UnsafeMutableRawBufferPointer(start: output, count: Base64URL.encodedLength(total)))
            return true
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
        try Self.withDecodedToken(token) { open($0, ttl: ttl, now: now) { Array($0) } }.get()
    }

    /// Decrypts a token given as its ASCII bytes into `output`; returns the plaintext's length.
    /// `output` must hold ``maxPlaintextLength(tokenLength:)`` bytes (`token.count` always does).
    /// Nothing is allocated (see ``encrypt(_:into:now:)``).
    public func decrypt(_ token: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer, ttl: Int64? = nil, now: Int64 = Fernet.now()) throws(FernetError) -> Int {
        let limit = Self.maxPlaintextLength(tokenLength: token.count)
        precondition(output.count >= limit, "Fernet.decrypt(into:): the output holds \(output.count) bytes, a token of \(token.count) needs \(limit)")
        return try Self.withDecodedToken(token) { data in
            open(data, ttl: ttl, now: now) { plain in
                if let base = output.baseAddress, let from = plain.baseAddress { base.copyMemory(from: from, byteCount: plain.count) }
                return plain.count
            }
        }.get()
    }

    /// The most plaintext a token of `count` characters can carry.
    public static func maxPlaintextLength(tokenLength count: Int) -> Int { max(0, (count + 3) / 4 * 3 - overhead - 1) }

    /// The timestamp a token carries, without checking its HMAC (for reports; do not trust it).
    public static func unverifiedTimestamp(_ token: String) throws(FernetError) -> Int64 {
        try withDecodedToken(token) { .success(timestamp(of: $0)) }.get()
    }

    /// The TTL check in exact arithmetic: the timestamp is an unsigned 64-bit number (a stamp of 2⁶⁴−1 read
    /// as −1 and added with wraparound passed any large TTL). A stamp more than ``maxClockSkew`` in the
    /// future is refused first; then one older than `ttl` (a negative TTL: everything older than now − ttl…
    /// i.e. stamp + ttl < now, computed without overflow).
    static func checkTime(stamp: UInt64, ttl: Int64, now: Int64) -> FernetError? {
        let current = UInt64(max(now, 0))
        let (latest, overflow) = current.addingReportingOverflow(UInt64(maxClockSkew))
        if !overflow && stamp > latest { return .fromTheFuture }
        if ttl >= 0 {
            let (end, over) = stamp.addingReportingOverflow(UInt64(ttl))
            if !over && end < current { return .expired }
        } else {
            // stamp + ttl < now  ⇔  stamp < now + |ttl|
            let (bound, over) = current.addingReportingOverflow(ttl.magnitude)
            if over || stamp < bound { return .expired }
        }
        return nil
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
        return token.withUTF8 { withDecodedToken(UnsafeRawBufferPointer($0), body) }
    }

    static func withDecodedToken<R>(_ utf8: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) -> Result<R, FernetError>) -> Result<R, FernetError> {
        let capacity = utf8.count / 4 * 3 + 3
        // Padded base64 only, as Python's cryptography (urlsafe_b64decode) reads it: a token missing its
        // `=` is refused there, so it is refused here too.
        guard utf8.count % 4 == 0 else { return .failure(.malformed) }
        return withUnsafeTemporaryAllocation(byteCount: capacity, alignment: 16) { buffer in
            guard let count = Base64URL.decode(utf8, into: buffer),
                count >= overhead + 16, (count - overhead) % 16 == 0, buffer[0] == 0x80
            else { return .failure(.malformed) }
            return body(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
        }
    }

    /// Checks the time (with a TTL), then the HMAC (constant time), then decrypts into a stack
    /// buffer and hands the plaintext to `body` (the buffer is wiped afterwards).
    func open<R>(_ data: UnsafeRawBufferPointer, ttl: Int64?, now: Int64, _ body: (UnsafeRawBufferPointer) -> R) -> Result<R, FernetError> {
        if let ttl, let failure = Self.checkTime(stamp: UInt64(bitPattern: Self.timestamp(of: data)), ttl: ttl, now: now) {
            return .failure(failure)
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
        // Decrypted into a stack buffer; the String API then copies it into an array with
        // `Array(_: UnsafeRawBufferPointer)`: `[UInt8](unsafeUninitializedCapacity:)` reaches an
        // unspecialised initialiser that looks up `_ContiguousArrayStorage<UInt8>`'s metadata on
        // every call (more than the AES of a short value, on Linux).
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: cipherLength + 16) { out -> Result<R, FernetError> in
            let start = out.baseAddress!
            var written: Int32 = 0
            var final: Int32 = 0
            guard EVP_DecryptUpdate(decryptContext, start, &written, base + 25, Int32(cipherLength)) == 1,
                EVP_DecryptFinal_ex(decryptContext, start + Int(written), &final) == 1
            else { return .failure(.badPadding) }
            let count = Int(written + final)
            let result = body(UnsafeRawBufferPointer(start: start, count: count))
            OPENSSL_cleanse(start, cipherLength + 16)
            return .success(result)
        }
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
        try Fernet.withDecodedToken(token) { data in
            openWithAnyKey(data, ttl: ttl, now: now) { plain, index in (Array(plain), index) }
        }.get()
    }

    /// The buffer form of ``decryptReportingKey(_:ttl:now:)``: a token given as its ASCII bytes,
    /// the plaintext written to `output` (``Fernet/maxPlaintextLength(tokenLength:)`` bytes). Also
    /// returns the token's timestamp (verified, since a key opened it). Nothing is allocated.
    public func decryptReportingKey(_ token: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer, ttl: Int64? = nil, now: Int64 = Fernet.now())
        throws(FernetError) -> (count: Int, keyIndex: Int, timestamp: Int64)
    {
        let limit = Fernet.maxPlaintextLength(tokenLength: token.count)
        precondition(output.count >= limit, "MultiFernet.decryptReportingKey(into:): the output holds \(output.count) bytes, a token of \(token.count) needs \(limit)")
        return try Fernet.withDecodedToken(token) { data in
            let timestamp = Fernet.timestamp(of: data)
            return openWithAnyKey(data, ttl: ttl, now: now) { plain, index in
                if let base = output.baseAddress, let from = plain.baseAddress { base.copyMemory(from: from, byteCount: plain.count) }
                return (plain.count, index, timestamp)
            }
        }.get()
    }

    private func openWithAnyKey<R>(_ data: UnsafeRawBufferPointer, ttl: Int64?, now: Int64, _ body: (UnsafeRawBufferPointer, Int) -> R) -> Result<R, FernetError> {
        var last = FernetError.signatureMismatch
        // The key that opened the previous token is tried first (a column being rotated is
        // mostly under one old key: this saves an HMAC per value), then the others in order.
        let hint = lastOpened
        for attempt in fernets.indices {
            let index = attempt == 0 ? hint : (attempt <= hint ? attempt - 1 : attempt)
            switch fernets[index].open(data, ttl: ttl, now: now, { body($0, index) }) {
            case .success(let result):
                lastOpened = index
                return .success(result)
            case .failure(let error): if error != .signatureMismatch || last == .signatureMismatch { last = error }
            }
        }
        return .failure(last)
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
