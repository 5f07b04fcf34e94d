import Foundation
import NFLDBCore
import NFLDBTestSupport
import Testing

@testable import NFLDBFernet

/// `nfldb crypt keygen|encrypt|decrypt` as an operator runs them (stdin from a file via /bin/sh).
@Suite("crypt CLI")
struct CryptCLITests {
    func shell(_ command: String, _ environment: [String: String]) throws -> ProcessResult {
        var env = ProcessInfo.processInfo.environment
        env.merge(environment) { _, new in new }
        env["NFLDB"] = CLIRunner.binary
        return try ProcessRunner().run("/bin/sh", ["-c", command], environment: env, timeout: .seconds(60))
    }

    @Test("keygen → encrypt → Python decrypts; Python encrypts → decrypt with a key list; keys from a 0600 file")
    func roundTripWithPython() throws {
        let dir = try CLIRunner.temporaryDirectory("nfldb-crypt")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let keygen = try CLIRunner.run(["crypt", "keygen"])
        #expect(keygen.status == 0)
        let key = try FernetKey(encoded: keygen.standardOutput)
        let old = try FernetKey.generate()
        let keyFile = dir + "/new.key"
        _ = FileManager.default.createFile(atPath: keyFile, contents: Data((key.encoded + "\n").utf8), attributes: [.posixPermissions: 0o600])
        let values = ["alice@example.com", "", "Zoë 東京", "last line without newline"]
        try (values.joined(separator: "\n")).write(toFile: dir + "/plain.txt", atomically: true, encoding: .utf8)
        let encrypted = try shell("\"$NFLDB\" crypt encrypt --key-ref file:\(keyFile),env:K_OLD < \(dir)/plain.txt", ["K_OLD": old.encoded])
        #expect(encrypted.status == 0, "\(encrypted.standardError)")
        let tokens = encrypted.standardOutput.split(separator: "\n").map(String.init)
        #expect(tokens.count == 4)
        let python = try PythonPeer.call(["op": "decrypt", "keys": [key.encoded], "tokens": tokens])
        #expect(python["values"] as? [String] == values)
        // Python tokens under the old key, decrypted with new,old.
        let fromPython = try #require(try PythonPeer.call(["op": "encrypt", "keys": [old.encoded], "values": values])["tokens"] as? [String])
        try (fromPython.joined(separator: "\n") + "\n").write(toFile: dir + "/tokens.txt", atomically: true, encoding: .utf8)
        let decrypted = try shell("\"$NFLDB\" crypt decrypt --ttl 600 --key-ref file:\(keyFile),env:K_OLD < \(dir)/tokens.txt", ["K_OLD": old.encoded])
        #expect(decrypted.status == 0, "\(decrypted.standardError)")
        #expect(decrypted.standardOutput == values.joined(separator: "\n") + "\n")
        for output in [keygen, encrypted, decrypted] {
            #expect(!output.standardError.contains(key.encoded) && !output.standardError.contains(old.encoded))
        }
    }

    @Test("refusals: a group-readable key file, an inline key, an unset variable, a line no key opens (named, exit 1); no key is ever echoed")
    func refusals() throws {
        let dir = try CLIRunner.temporaryDirectory("nfldb-crypt")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let key = try FernetKey.generate()
        let open = dir + "/open.key"
        _ = FileManager.default.createFile(atPath: open, contents: Data(key.encoded.utf8), attributes: [.posixPermissions: 0o640])
        try "x\n".write(toFile: dir + "/in.txt", atomically: true, encoding: .utf8)
        let tooOpen = try shell("\"$NFLDB\" crypt encrypt --key-ref file:\(open) < \(dir)/in.txt", [:])
        #expect(tooOpen.status == 2)
        #expect(tooOpen.standardError.contains("is group- or world-readable (mode 640)") && tooOpen.standardError.contains("chmod 0600"))
        // Not a regular file: named as such, never a chmod hint (chmod 0600 /dev/null would do harm).
        for (path, kind) in [(dir, "a directory"), ("/dev/null", "a device or socket")] {
            let notFile = try shell("\"$NFLDB\" crypt encrypt --key-ref file:\(path) < \(dir)/in.txt", [:])
            #expect(notFile.status == 2 && notFile.standardError.contains("file:\(path) is \(kind), not a regular file"), "\(notFile.standardError)")
            #expect(!notFile.standardError.contains("chmod"), "\(notFile.standardError)")
        }
        for scheme in ["file", "env"] {
            let empty = try shell("\"$NFLDB\" crypt encrypt --key-ref \(scheme): < \(dir)/in.txt", [:])
            #expect(empty.status == 2 && empty.standardError.contains("--key-ref: \(scheme): names no"), "\(empty.standardError)")
        }
        let inline = try shell("\"$NFLDB\" crypt encrypt --key-ref '\(key.encoded)' < \(dir)/in.txt", [:])
        #expect(inline.status == 2 && inline.standardError.contains("is not a key reference"))
        // A key pasted after a scheme is refused without being shown (an attack probe saw `file:<key>` echo it).
        for (scheme, what) in [("file", "whose value is a Fernet key itself"), ("env", "whose value is a Fernet key itself"), ("env", "is not an environment variable name")] {
            let value = what.contains("Fernet") ? key.encoded : "not-a-name=\(key.encoded.prefix(20))"
            let pasted = try shell("\"$NFLDB\" crypt encrypt --key-ref '\(scheme):\(value)' < \(dir)/in.txt", [:])
            #expect(pasted.status == 2 && pasted.standardError.contains(what), "\(pasted.standardError)")
            #expect(!pasted.standardError.contains(value) && !pasted.standardOutput.contains(value), "\(pasted.standardError)")
        }
        let unset = try shell("\"$NFLDB\" crypt encrypt --key-ref env:NFLDB_TEST_NO_SUCH_KEY < \(dir)/in.txt", [:])
        #expect(unset.status == 2 && unset.standardError.contains("env:NFLDB_TEST_NO_SUCH_KEY: the variable is not set"))
        let other = try Fernet(key: FernetKey.generate()).encrypt("x")
        let good = try Fernet(key: key).encrypt("ok")
        try "\(good)\n\(other)\n".write(toFile: dir + "/t.txt", atomically: true, encoding: .utf8)
        let wrong = try shell("\"$NFLDB\" crypt decrypt --key-ref env:K < \(dir)/t.txt", ["K": key.encoded])
        #expect(wrong.status == 1)
        #expect(wrong.standardOutput == "ok\n")
        #expect(wrong.standardError.contains("line 2: the token's HMAC does not match"))
        let badKey = try shell("\"$NFLDB\" crypt decrypt --key-ref env:K < \(dir)/t.txt", ["K": "hunter2-not-a-key"])
        #expect(badKey.status == 2 && badKey.standardError.contains("not URL-safe base64"))
        // Each refusal's hint fits its cause: only a signature mismatch can be a missing key.
        #expect(wrong.standardError.contains("Add the key that encrypted it"), "\(wrong.standardError)")
        let fernet = try Fernet(key: key)
        let cases: [(String, String, String)] = [
            (try fernet.encrypt("old", now: Fernet.now() - 3600), "--ttl 60", "leave --ttl out or raise it"),
            (try fernet.encrypt("ahead", now: Fernet.now() + 3600), "--ttl 60", "check the clocks"),
            ("not-a-token", "", "one Fernet token per line"),
            (try fernet.encrypt("two\nlines"), "", "contains a line break"),
        ]
        for (index, (token, flags, hint)) in cases.enumerated() {
            try "\(token)\n".write(toFile: dir + "/c\(index).txt", atomically: true, encoding: .utf8)
            let refused = try shell("\"$NFLDB\" crypt decrypt --key-ref env:K \(flags) < \(dir)/c\(index).txt", ["K": key.encoded])
            #expect(refused.status == 1, "\(token): \(refused.standardError)")
            #expect(refused.standardError.contains(hint) && !refused.standardError.contains("Add the key"), "\(hint): \(refused.standardError)")
        }
        for output in [tooOpen, inline, unset, wrong, badKey] {
            #expect(!output.standardError.contains(key.encoded) && !output.standardError.contains("hunter2"), "\(output.standardError)")
        }
    }
}
