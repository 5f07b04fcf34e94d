import Foundation
import NFLDBCore
import Testing

@testable import NFLDBFernet

@Suite("Fernet tokens")
struct FernetTests {
    static let specKey = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4="

    @Test("generate.json: same time, IV and key give the published token byte for byte")
    func specGenerate() throws {
        let entries = try SpecVectors.entries(SpecVectors.generate)
        #expect(entries.count == 1)
        for entry in entries {
            let fernet = try Fernet(key: FernetKey(encoded: entry["secret"] as! String))
            let iv = (entry["iv"] as! [Int]).map(UInt8.init)
            let token = try fernet.encrypt(Array((entry["src"] as! String).utf8), now: SpecVectors.unixTime(entry["now"] as! String), iv: iv)
            #expect(token == entry["token"] as! String)
        }
    }

    @Test("verify.json: the published token decrypts within its TTL")
    func specVerify() throws {
        for entry in try SpecVectors.entries(SpecVectors.verify) {
            let fernet = try Fernet(key: FernetKey(encoded: entry["secret"] as! String))
            let plain = try fernet.decrypt(entry["token"] as! String, ttl: Int64(entry["ttl_sec"] as! Int), now: SpecVectors.unixTime(entry["now"] as! String))
            #expect(String(decoding: plain, as: UTF8.self) == entry["src"] as! String)
        }
    }

    @Test("invalid.json: every published bad token is rejected, each for its own reason")
    func specInvalid() throws {
        let entries = try SpecVectors.entries(SpecVectors.invalid)
        #expect(entries.count == 11)
        let expected: [String: FernetError] = [
            "incorrect mac": .signatureMismatch, "too short": .malformed, "invalid base64": .malformed,
            "payload size not multiple of block size": .malformed, "payload padding error": .badPadding,
            "far-future TS (unacceptable clock skew)": .fromTheFuture, "expired TTL": .expired,
            "incorrect IV (causes padding error)": .badPadding, "trailing characters after b64 padding": .malformed,
            "invalid characters in b64": .malformed, "invalid non-urlsafe characters in b64": .malformed,
        ]
        for entry in entries {
            let desc = entry["desc"] as! String
            let fernet = try Fernet(key: FernetKey(encoded: entry["secret"] as! String))
            #expect(throws: expected[desc]!, "\(desc)") {
                try fernet.decrypt(entry["token"] as! String, ttl: Int64(entry["ttl_sec"] as! Int), now: SpecVectors.unixTime(entry["now"] as! String))
            }
        }
    }

    @Test("round trip for empty, short, block-sized, long and UTF-8 values")
    func roundTrip() throws {
        let fernet = try Fernet(key: FernetKey.generate())
        for value in ["", "a", "0123456789abcdef", "0123456789abcdef0", String(repeating: "x", count: 5000), "Zoë – 東京 🏈"] {
            let token = try fernet.encrypt(value)
            #expect(token.hasPrefix("gAAAAA"))
            #expect(token.utf8.count % 4 == 0)
            #expect(String(decoding: try fernet.decrypt(token), as: UTF8.self) == value)
        }
        // A fresh random IV every time.
        #expect(try fernet.encrypt("same") != fernet.encrypt("same"))
    }

    @Test("flipping any single byte of the token (decoded) is rejected")
    func tamperEveryByte() throws {
        let fernet = try Fernet(key: FernetKey.generate())
        let token = try fernet.encrypt("4111-1111-1111-1111")
        let raw = try #require(Base64URL.decode(token))
        for index in raw.indices {
            for mask: UInt8 in [0x01, 0x80] {
                var copy = raw
                copy[index] ^= mask
                let altered = Base64URL.encode(copy)
                #expect(throws: FernetError.self, "byte \(index)") { try fernet.decrypt(altered) }
            }
        }
        // Truncated, doubled, and a character changed in the text form.
        #expect(throws: FernetError.malformed) { try fernet.decrypt(String(token.dropLast(4))) }
        #expect(throws: FernetError.malformed) { try fernet.decrypt(token + token) }
        #expect(throws: FernetError.malformed) { try fernet.decrypt(token.replacingOccurrences(of: "g", with: "!")) }
        #expect(throws: FernetError.malformed) { try fernet.decrypt("") }
        // Without its `=` padding: Python's cryptography refuses it (InvalidToken), so nfldb does too.
        let padded = try fernet.encrypt("v")
        #expect(padded.hasSuffix("="), "\(padded)")
        var unpadded = padded
        while unpadded.hasSuffix("=") { unpadded.removeLast() }
        #expect(throws: FernetError.malformed) { try fernet.decrypt(unpadded) }
        #expect(try fernet.decrypt(padded) == Array("v".utf8))
    }

    @Test("buffer API: encrypt(_:into:) and decrypt(_:into:) agree with the String API, for every length 0…70; bad tokens refused alike")
    func bufferAPI() throws {
        let fernet = try Fernet(key: FernetKey.generate())
        for length in 0...70 {
            let value = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 29 &+ 3) }
            let tokenLength = Fernet.tokenLength(plaintextCount: length)
            var token = [UInt8](repeating: 0, count: tokenLength)
            let written = try value.withUnsafeBytes { plain in try token.withUnsafeMutableBytes { try fernet.encrypt(plain, into: $0, now: 1_700_000_000) } }
            #expect(written == tokenLength)
            let text = String(decoding: token, as: UTF8.self)
            #expect(try fernet.decrypt(text) == value, "length \(length)")
            #expect(try Fernet.unverifiedTimestamp(text) == 1_700_000_000)
            #expect(try fernet.encrypt(value).utf8.count == tokenLength)
            // Back through the buffer API, into an output exactly as large as promised.
            let limit = Fernet.maxPlaintextLength(tokenLength: token.count)
            #expect(limit >= length && limit <= token.count)
            var plain = [UInt8](repeating: 0, count: limit)
            let count = try token.withUnsafeBytes { t in try plain.withUnsafeMutableBytes { try fernet.decrypt(t, into: $0) } }
            #expect(Array(plain[0..<count]) == value, "length \(length)")
        }
        // The published vector, and the published invalid tokens, through the buffer API.
        for entry in try SpecVectors.entries(SpecVectors.verify) {
            let key = try Fernet(key: FernetKey(encoded: entry["secret"] as! String))
            let token = Array((entry["token"] as! String).utf8)
            var plain = [UInt8](repeating: 0, count: token.count)
            let count = try token.withUnsafeBytes { t in
                try plain.withUnsafeMutableBytes { try key.decrypt(t, into: $0, ttl: Int64(entry["ttl_sec"] as! Int), now: SpecVectors.unixTime(entry["now"] as! String)) }
            }
            #expect(String(decoding: plain[0..<count], as: UTF8.self) == entry["src"] as! String)
        }
        for entry in try SpecVectors.entries(SpecVectors.invalid) {
            let key = try Fernet(key: FernetKey(encoded: entry["secret"] as! String))
            let text = entry["token"] as! String
            let ttl = Int64(entry["ttl_sec"] as! Int), now = SpecVectors.unixTime(entry["now"] as! String)
            var viaString: FernetError?
            do { _ = try key.decrypt(text, ttl: ttl, now: now) } catch { viaString = error }
            var viaBuffer: FernetError?
            let token = Array(text.utf8)
            var plain = [UInt8](repeating: 0, count: token.count)
            do { _ = try token.withUnsafeBytes { t in try plain.withUnsafeMutableBytes { try key.decrypt(t, into: $0, ttl: ttl, now: now) } } } catch { viaBuffer = error as? FernetError }
            let desc = entry["desc"] as? String ?? "?"
            #expect(viaString != nil && viaBuffer == viaString, "\(desc)")
        }
    }

    @Test("a wrong key is a signature mismatch, not garbage plaintext")
    func wrongKey() throws {
        let token = try Fernet(key: FernetKey.generate()).encrypt("secret")
        #expect(throws: FernetError.signatureMismatch) { try Fernet(key: FernetKey.generate()).decrypt(token) }
    }

    @Test("TTL: 29 s old passes and 31 s old fails at ttl 30; > 60 s in the future fails, 60 s passes; no TTL means no time checks")
    func ttlAndSkew() throws {
        let fernet = try Fernet(key: FernetKey.generate())
        let t0: Int64 = 1_700_000_000
        let token = try fernet.encrypt(Array("v".utf8), now: t0)
        #expect(try fernet.decrypt(token, ttl: 30, now: t0 + 29) == Array("v".utf8))
        #expect(try fernet.decrypt(token, ttl: 30, now: t0 + 30) == Array("v".utf8))
        #expect(throws: FernetError.expired) { try fernet.decrypt(token, ttl: 30, now: t0 + 31) }
        #expect(try fernet.decrypt(token, ttl: 30, now: t0 - 60) == Array("v".utf8))
        #expect(throws: FernetError.fromTheFuture) { try fernet.decrypt(token, ttl: 30, now: t0 - 61) }
        // Like cryptography: without a TTL the timestamp is not checked.
        #expect(try fernet.decrypt(token, now: t0 + 1_000_000) == Array("v".utf8))
        #expect(try Fernet.unverifiedTimestamp(token) == t0)
    }

    @Test("TTL arithmetic is unsigned and overflow-checked: a token stamped 2^64−1 (or 2^63) is from the future, whatever the TTL (was: passed with a huge TTL)")
    func ttlDoesNotWrapAround() throws {
        let fernet = try Fernet(key: FernetKey.generate())
        let now: Int64 = 1_700_000_000
        for stamp in [UInt64.max, UInt64(Int64.max) + 1, UInt64(Int64.max), UInt64(now) + 61] {
            let token = try fernet.encrypt(Array("v".utf8), now: Int64(bitPattern: stamp))
            for ttl: Int64 in [0, 30, Int64.max - 5, Int64.max] {
                #expect(throws: FernetError.fromTheFuture, "stamp \(stamp) ttl \(ttl)") { try fernet.decrypt(token, ttl: ttl, now: now) }
            }
        }
        // A huge TTL does not wrap for an old token either; a stamp of 0 is expired at a small TTL.
        let old = try fernet.encrypt(Array("v".utf8), now: 0)
        #expect(try fernet.decrypt(old, ttl: Int64.max, now: now) == Array("v".utf8))
        #expect(throws: FernetError.expired) { try fernet.decrypt(old, ttl: 30, now: now) }
        #expect(throws: FernetError.expired) { try fernet.decrypt(old, ttl: -1, now: 0) }
        #expect(try fernet.decrypt(try fernet.encrypt(Array("v".utf8), now: now), ttl: 0, now: now) == Array("v".utf8))
    }

    @Test("keys: 32 bytes of URL-safe base64; errors never contain the key")
    func keys() throws {
        let key = try FernetKey.generate()
        #expect(key.encoded.utf8.count == 44)
        #expect(try FernetKey(encoded: key.encoded + "\n") == key)
        #expect(!key.description.contains(key.encoded))
        let standard = key.encoded.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        // Python's Fernet(key) takes the standard alphabet too (urlsafe_b64decode leaves + and / alone): the same key.
        #expect(try FernetKey(encoded: standard) == key)
        let plusSlash = Base64URL.encode(Array(repeating: 0xfb, count: 32)).replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        #expect(plusSlash.contains("+") && plusSlash.contains("/"))
        #expect(try FernetKey(encoded: plusSlash).encoded == Base64URL.encode(Array(repeating: 0xfb, count: 32)))
        let short = Base64URL.encode(Array(repeating: 7, count: 16))
        #expect(throws: FernetKeyError.wrongLength(16)) { try FernetKey(encoded: short) }
        do {
            _ = try FernetKey(encoded: "not a key: hunter2hunter2")
            Issue.record("accepted a bad key")
        } catch {
            #expect(!error.description.contains("hunter2"))
        }
    }

    @Test("MultiFernet: encrypts with the first key, decrypts with any, rotate keeps the timestamp")
    func multi() throws {
        let old = try FernetKey.generate(), new = try FernetKey.generate()
        let oldToken = try Fernet(key: old).encrypt(Array("x".utf8), now: 1_600_000_000)
        let multi = try MultiFernet(keys: [new, old])
        let opened = try multi.decryptReportingKey(oldToken)
        #expect(opened.plaintext == Array("x".utf8) && opened.keyIndex == 1)
        let rotated = try multi.rotate(oldToken)
        #expect(try Fernet.unverifiedTimestamp(rotated) == 1_600_000_000)
        #expect(try Fernet(key: new).decrypt(rotated) == Array("x".utf8))
        #expect(throws: FernetError.signatureMismatch) { try Fernet(key: old).decrypt(rotated) }
        #expect(try multi.decryptReportingKey(try multi.encrypt(Array("y".utf8))).keyIndex == 0)
        #expect(throws: FernetError.signatureMismatch) { try MultiFernet(keys: [try FernetKey.generate()]).decrypt(oldToken) }
    }

    @Test("base64: matches Foundation for every length 0…64 and rejects bad input")
    func base64() throws {
        for length in 0...64 {
            let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
            let ours = Base64URL.encode(bytes)
            let foundation = Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            #expect(ours == foundation)
            #expect(Base64URL.decode(ours) == bytes)
        }
        for bad in ["A", "AB=C", "AB==C===", "A+B/", "ABC=====", "AB\nCD", "AA==AA=="] {
            #expect(Base64URL.decode(bad) == nil, "\(bad)")
        }
    }
}

@Suite("Fernet interop with Python cryptography")
struct FernetInteropTests {
    static let values = ["", "hello", "4111-1111-1111-1111", "Zoë – 東京 🏈", String(repeating: "long ", count: 300), "line\twith\\backslash\"quote"]

    @Test("tokens made by Python decrypt in Swift (single key and MultiFernet)")
    func pythonToSwift() throws {
        let key = try FernetKey.generate(), old = try FernetKey.generate()
        let answer = try PythonPeer.call(["op": "encrypt", "keys": [key.encoded], "values": Self.values])
        let tokens = try #require(answer["tokens"] as? [String])
        #expect(tokens.count == Self.values.count)
        let multi = try MultiFernet(keys: [old, key])
        for (token, value) in zip(tokens, Self.values) {
            #expect(String(decoding: try Fernet(key: key).decrypt(token, ttl: 120), as: UTF8.self) == value)
            #expect(try multi.decryptReportingKey(token).keyIndex == 1)
            #expect(throws: FernetError.signatureMismatch) { try Fernet(key: old).decrypt(token) }
        }
        // A Python-generated key works here.
        let pythonKey = try #require(try PythonPeer.call(["op": "keygen"])["key"] as? String)
        #expect(try FernetKey(encoded: pythonKey).encoded == pythonKey)
    }

    @Test("tokens made by Swift decrypt in Python; tampered, wrong-key and expired ones are refused by Python too")
    func swiftToPython() throws {
        let key = try FernetKey.generate(), other = try FernetKey.generate()
        let fernet = try Fernet(key: key)
        let tokens = try Self.values.map { try fernet.encrypt($0) }
        let answer = try PythonPeer.call(["op": "decrypt", "keys": [key.encoded], "tokens": tokens])
        #expect(answer["values"] as? [String] == Self.values)
        // Python's MultiFernet with the key second.
        let multi = try PythonPeer.call(["op": "decrypt", "keys": [other.encoded, key.encoded], "tokens": tokens])
        #expect(multi["values"] as? [String] == Self.values)
        // Wrong key, a flipped byte, and an old token with a TTL are all refused by Python.
        var raw = try #require(Base64URL.decode(tokens[1]))
        raw[30] ^= 1
        let oldToken = try fernet.encrypt(Array("old".utf8), now: 1_000_000)
        let refused = try PythonPeer.call(["op": "decrypt", "keys": [other.encoded], "tokens": [tokens[1]]])
        #expect((refused["values"] as? [Any])?.first is NSNull)
        let tampered = try PythonPeer.call(["op": "decrypt", "keys": [key.encoded], "tokens": [Base64URL.encode(raw)]])
        #expect((tampered["values"] as? [Any])?.first is NSNull)
        let expired = try PythonPeer.call(["op": "decrypt", "keys": [key.encoded], "tokens": [oldToken], "ttl": 60, "now": 1_000_061])
        #expect((expired["values"] as? [Any])?.first is NSNull)
        let fresh = try PythonPeer.call(["op": "decrypt", "keys": [key.encoded], "tokens": [oldToken], "ttl": 60, "now": 1_000_059])
        #expect(fresh["values"] as? [String] == ["old"])
    }

    @Test("with a fixed time and IV, Swift's token is byte-identical to Python's _encrypt_from_parts")
    func byteIdentical() throws {
        let key = try FernetKey.generate()
        let iv = (0..<16).map { UInt8($0 * 7 + 3) }
        let now: Int64 = 1_234_567_890
        let answer = try PythonPeer.call(["op": "encrypt_at", "keys": [key.encoded], "values": Self.values, "now": now, "iv": iv.map(Int.init)])
        let python = try #require(answer["tokens"] as? [String])
        let fernet = try Fernet(key: key)
        let swift = try Self.values.map { try fernet.encrypt(Array($0.utf8), now: now, iv: iv) }
        #expect(swift == python)
    }
}

@Suite("crypt encrypt/decrypt streams (buffer API)")
struct FernetStreamTests {
    /// Runs `FernetStream` from a file to a file; returns the output, or the error.
    static func run(_ mode: FernetStream.Mode, ring: KeyRing, input: [UInt8], maxLineBytes: Int = FernetStream.maxLineBytes) throws -> (output: [UInt8], result: Result<FernetStream.Summary, any Error>) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("nfldb-stream-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(FileManager.default.createFile(atPath: dir + "/in", contents: Data(input)))
        let inFD = open(dir + "/in", O_RDONLY), outFD = open(dir + "/out", O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        defer { close(inFD) }
        let result = Result { try FernetStream.run(mode, ring: ring, input: inFD, output: outFD, maxLineBytes: maxLineBytes) }
        close(outFD)
        return (Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/out"))), result)
    }

    @Test("20,000 lines of every length 0…99 through encrypt then decrypt (several 64 KiB flushes), CRLF tokens, the key each line opened with")
    func manyLines() throws {
        let new = try FernetKey.generate(), old = try FernetKey.generate()
        let ring = KeyRing(references: [try KeyReference(parsing: "env:NEW"), try KeyReference(parsing: "env:OLD")], keys: [new, old])
        let oldRing = KeyRing(references: [try KeyReference(parsing: "env:OLD")], keys: [old])
        let lines = (0..<20000).map { i in String(repeating: "é", count: i % 50) + String(i % 100) }
        let plain = Array((lines.joined(separator: "\n") + "\n").utf8)
        let (tokensNew, r1) = try Self.run(.encrypt, ring: ring, input: Array(lines[0..<10000].joined(separator: "\n").utf8))  // last line without newline
        #expect(try r1.get().lines == 10000)
        let (tokensOld, r2) = try Self.run(.encrypt, ring: oldRing, input: Array((lines[10000...].joined(separator: "\n") + "\n").utf8))
        #expect(try r2.get().lines == 10000)
        // Python writes \n, Windows tools \r\n: both are read.
        let crlf = Array(String(decoding: tokensOld, as: UTF8.self).replacingOccurrences(of: "\n", with: "\r\n").utf8)
        let (opened, r3) = try Self.run(.decrypt(ttl: nil), ring: ring, input: tokensNew + crlf)
        let summary = try r3.get()
        #expect(summary.lines == 20000 && summary.byKey == [10000, 10000])
        #expect(opened == plain)
        // Every token is what the String API makes of the same line.
        let single = try Fernet(key: new)
        for (index, token) in String(decoding: tokensNew, as: UTF8.self).split(separator: "\n").enumerated() where index % 997 == 0 {
            #expect(String(decoding: try single.decrypt(String(token)), as: UTF8.self) == lines[index])
        }
    }

    @Test("a line longer than the limit (binary input with no line breaks) is refused, naming its line, before it is held whole; the lines before are written")
    func overlongLine() throws {
        let key = try FernetKey.generate()
        let ring = KeyRing(references: [try KeyReference(parsing: "env:K")], keys: [key])
        let fernet = try Fernet(key: key)
        // 3 MiB with no newline after one good token, read in 64 KiB chunks against a 1 MiB limit.
        let input = Array("\(try fernet.encrypt("ok"))\n".utf8) + [UInt8](repeating: 0x41, count: 3 << 20)
        for mode in [FernetStream.Mode.decrypt(ttl: nil), .encrypt] {
            let (output, result) = try Self.run(mode, ring: ring, input: input, maxLineBytes: 1 << 20)
            let error = #expect(throws: FernetStream.LineError.self) { try result.get() }
            #expect(error?.line == 2 && error?.diagnostic.summary == "line 2: longer than 1 MiB without a line break", "\(String(describing: error))")
            #expect(error?.diagnostic.hint?.contains("one Fernet token (decrypt) per line") == true)
            #expect(output.split(separator: 0x0A).count == 1, "the first line was written")
        }
        // The limit is exact: a line of 1 MiB + 1 byte that ends within the same read is refused,
        // one of exactly 1 MiB goes on to the token check.
        let atLimit = Array("\(try fernet.encrypt("ok"))\n".utf8)
        for (length, refused) in [((1 << 20) + 1, true), (1 << 20, false)] {
            let (_, result) = try Self.run(.decrypt(ttl: nil), ring: ring, input: atLimit + [UInt8](repeating: 0x41, count: length) + [0x0A], maxLineBytes: 1 << 20)
            let error = #expect(throws: FernetStream.LineError.self) { try result.get() }
            #expect((error?.cause == nil) == refused && error?.line == 2, "\(length): \(String(describing: error))")
        }
        // The default limit (64 MiB) lets a 3 MiB line through to the token check.
        let (_, result) = try Self.run(.decrypt(ttl: nil), ring: ring, input: input)
        let error = #expect(throws: FernetStream.LineError.self) { try result.get() }
        #expect(error?.line == 2 && error?.cause != nil, "\(String(describing: error))")
    }

    @Test("decrypt stops at a value with a newline and at a line no key opens, naming the line; the lines before are written")
    func refusals() throws {
        let key = try FernetKey.generate()
        let ring = KeyRing(references: [try KeyReference(parsing: "env:K")], keys: [key])
        let fernet = try Fernet(key: key)
        let input = Array("\(try fernet.encrypt("ok"))\n\(try fernet.encrypt("two\nlines"))\n\(try fernet.encrypt("never"))\n".utf8)
        let (output, result) = try Self.run(.decrypt(ttl: nil), ring: ring, input: input)
        #expect(output == Array("ok\n".utf8))
        #expect(throws: FernetStream.LineError.self) { try result.get() }
        if case .failure(let error as FernetStream.LineError) = result {
            #expect(error.line == 2 && error.reason.contains("newline"))
        }
        let (output2, result2) = try Self.run(.decrypt(ttl: nil), ring: ring, input: Array("\(try fernet.encrypt("a"))\nnot-a-token\n".utf8))
        #expect(output2 == Array("a\n".utf8))
        if case .failure(let error as FernetStream.LineError) = result2 {
            #expect(error.line == 2 && error.reason.contains("not a Fernet token"))
        } else {
            Issue.record("a bad line was accepted")
        }
    }
}
