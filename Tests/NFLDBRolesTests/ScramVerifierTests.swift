import Foundation
import Testing

@testable import NFLDBRoles

@Suite("SCRAM-SHA-256 verifiers")
struct ScramVerifierTests {
    @Test("HMAC-SHA-256 matches RFC 4231 test case 2")
    func hmacVector() {
        let mac = Crypto.hmacSHA256(key: Array("Jefe".utf8), message: Array("what do ya want for nothing?".utf8))
        #expect(hex(mac) == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    }

    @Test("PBKDF2-HMAC-SHA-256 matches the RFC 7914 vector")
    func pbkdf2Vector() {
        let key = Crypto.pbkdf2SHA256(password: Array("passwd".utf8), salt: Array("salt".utf8), iterations: 1)
        #expect(hex(key) == "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc")
    }

    @Test("HMAC-SHA-256 matches RFC 4231 test case 6 (key longer than a block) and an empty key")
    func hmacLongAndEmptyKey() {
        let long = Crypto.hmacSHA256(key: [UInt8](repeating: 0xaa, count: 131), message: Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8))
        #expect(hex(long) == "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")
        // HMAC-SHA-256("", "") as computed by `openssl dgst -sha256 -hmac ''`.
        #expect(hex(Crypto.hmacSHA256(key: [], message: [])) == "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad")
    }

    @Test("PBKDF2-HMAC-SHA-256 matches the RFC 7914 vector with 80000 iterations")
    func pbkdf2ManyIterations() {
        let key = Crypto.pbkdf2SHA256(password: Array("Password".utf8), salt: Array("NaCl".utf8), iterations: 80000)
        #expect(hex(key) == "4ddcd8f60b98be21830cee5ef22701f9641a4418d04c0414aeff08876b34ab56")
    }

    @Test("SHA-256 of the empty string and of 'abc' (FIPS 180-2)")
    func sha256Vectors() {
        #expect(hex(Crypto.sha256([])) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(hex(Crypto.sha256(Array("abc".utf8))) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test("a verifier PostgreSQL computed for 'pencil' matches 'pencil' and nothing else")
    func serverVerifier() throws {
        let stored = "SCRAM-SHA-256$4096:Oj+NnAles94QNPLJMwv6jQ==$JBMSCk0/tK3NcL2NGPV3l3xvn2g/w2v1IIEnKTrdO+w=:zeqBi1/BjV+JZ8yVFvz0h46SezDjVKMyCTyCemL1mRI="
        let verifier = try #require(ScramVerifier(parsing: stored))
        #expect(verifier.iterations == 4096)
        #expect(verifier.matches(password: "pencil"))
        #expect(!verifier.matches(password: "pencil "))
        #expect(verifier.description == stored)
        // Recomputing with the same salt gives the same text.
        #expect(ScramVerifier(password: "pencil", salt: verifier.salt).description == stored)
    }

    @Test("fresh verifiers use a random salt and round-trip through parsing")
    func freshVerifiers() throws {
        let a = ScramVerifier(password: "s3cret")
        let b = ScramVerifier(password: "s3cret")
        #expect(a.salt != b.salt)
        #expect(a.salt.count == 16)
        let parsed = try #require(ScramVerifier(parsing: a.description))
        #expect(parsed == a)
        #expect(parsed.matches(password: "s3cret"))
        #expect(!a.description.contains("s3cret"))
    }

    @Test("md5 hashes, clear text and malformed strings are not SCRAM verifiers")
    func rejectsOthers() {
        #expect(ScramVerifier(parsing: "md5d5ae6ab8e4b2b4bbf1b0a4b2e1c4a8b3") == nil)
        #expect(ScramVerifier(parsing: "plain") == nil)
        #expect(ScramVerifier(parsing: "SCRAM-SHA-256$x:abc$def:ghi") == nil)
    }

    @Test("SASLprep: ASCII unchanged, non-ASCII spaces mapped, compatibility forms normalized")
    func saslPrep() {
        #expect(ScramVerifier.saslPrep("pass word") == "pass word")
        #expect(ScramVerifier.saslPrep("a\u{00A0}b") == "a b")
        #expect(ScramVerifier.saslPrep("\u{2168}") == "IX")  // ROMAN NUMERAL NINE → IX (NFKC)
        #expect(ScramVerifier.saslPrep("a\u{00AD}b\u{00E9}") == "ab\u{00E9}")
    }

    private func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }
}
