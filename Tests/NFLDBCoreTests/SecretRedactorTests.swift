import Foundation
import NFLDBCore
import Testing

@Suite("SecretRedactor")
struct SecretRedactorTests {
    let mask = SecretRedactor.mask

    @Test("masks the password of a URL, keeping user, host, port and database")
    func urlPasswords() {
        #expect(SecretRedactor.redactPatterns("postgresql://etl:hunter2@db.example:5432/nfl")
            == "postgresql://etl:\(mask)@db.example:5432/nfl")
        #expect(SecretRedactor.redactPatterns("could not connect: postgres://u:p%40ss@h/db?sslmode=require failed")
            == "could not connect: postgres://u:\(mask)@h/db?sslmode=require failed")
        #expect(SecretRedactor.redactPatterns("https://hooks.example:9/x") == "https://hooks.example:9/x", "a port is not a password")
        #expect(SecretRedactor.redactPatterns("postgresql://etl@db/nfl") == "postgresql://etl@db/nfl")
    }

    @Test("masks password= conninfo pairs, plain and quoted")
    func conninfoPasswords() {
        #expect(SecretRedactor.redactPatterns("host=db password=hunter2 dbname=nfl")
            == "host=db password=\(mask) dbname=nfl")
        #expect(SecretRedactor.redactPatterns("host=db password = 'two words' dbname=nfl")
            == "host=db password = \(mask) dbname=nfl")
        #expect(SecretRedactor.redactPatterns(#"host=db password='it\'s; secret' user=u"#)
            == "host=db password=\(mask) user=u")
        #expect(SecretRedactor.redactPatterns("host=db PASSWORD=Shouty dbname=nfl") == "host=db PASSWORD=\(mask) dbname=nfl")
        #expect(SecretRedactor.redactPatterns("?user=u&password=q1w2e3&sslmode=disable") == "?user=u&password=\(mask)&sslmode=disable")
        #expect(SecretRedactor.redactPatterns("password_file=/etc/pw") == "password_file=/etc/pw", "password_file is not a password")
    }

    @Test("a URL query key spelled with percent escapes is the password libpq reads (?pass%77ord=), masked by pattern and in redactDSN")
    func percentEncodedQueryKey() {
        let url = "postgresql://postgres@127.0.0.1:5432/nfl?pass%77ord=S3crtPw8q&sslmode=disable"
        #expect(SecretRedactor.redactPatterns(url) == "postgresql://postgres@127.0.0.1:5432/nfl?pass%77ord=\(mask)&sslmode=disable")
        #expect(SecretRedactor.redactPatterns("x?%70%41ssword=abc123") == "x?%70%41ssword=\(mask)")
        #expect(!SecretRedactor.redactDSN(url).contains("S3crtPw8q"))
        #expect(!SecretRedactor.redactDSN("postgresql://h/nfl?%70assword=S3crtPw8q").contains("S3crtPw8q"))
        #expect(SecretRedactor.redactPatterns("?pass%77ord_file=/etc/pw") == "?pass%77ord_file=/etc/pw", "not the password key")
    }

    @Test("masks registered secrets anywhere, including their URL-encoded form")
    func registeredSecrets() {
        let redactor = SecretRedactor()
        redactor.register("xoxb-routing-key-551")
        redactor.register("p@ss word!")
        let text = "posting to https://hooks.example/xoxb-routing-key-551 with p@ss word! and p%40ss%20word%21"
        let redacted = redactor.redact(text)
        #expect(!redacted.contains("xoxb-routing-key-551"))
        #expect(!redacted.contains("p@ss word!"))
        #expect(!redacted.contains("p%40ss%20word%21"))
        #expect(redacted == "posting to https://hooks.example/\(mask) with \(mask) and \(mask)")
    }

    @Test("ignores nil and very short secrets, and leaves clean text alone")
    func shortSecrets() {
        let redactor = SecretRedactor()
        redactor.register(nil)
        redactor.register("ab")
        #expect(redactor.redact("a cab grabbed a crab") == "a cab grabbed a crab")
        #expect(redactor.redact("nothing to hide here") == "nothing to hide here")
    }

    @Test("a registered secret and a pattern in one line are both masked")
    func combined() {
        let redactor = SecretRedactor()
        redactor.register("webhook-token-8080")
        let line = "dsn=postgresql://u:pw-in-url@h/db hook=webhook-token-8080 conn='password=abc123'"
        let redacted = redactor.redact(line)
        #expect(!redacted.contains("pw-in-url"))
        #expect(!redacted.contains("webhook-token-8080"))
        #expect(!redacted.contains("abc123"))
        #expect(redacted.components(separatedBy: mask).count - 1 == 3)
    }

    @Test("scrubbing a JSON line keeps it valid JSON and leaves neighbouring fields alone")
    func jsonStaysValid() throws {
        let line = #"{"conninfo":"host=db password=pw-json-1","hook":"https://hooks.example:9/x","mail":"ops@nfl.example","dsn":"postgresql://u:pw-json-2@h/db"}"#
        let redacted = SecretRedactor.redactPatterns(line)
        #expect(!redacted.contains("pw-json-1"))
        #expect(!redacted.contains("pw-json-2"))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(redacted.utf8)) as? [String: String])
        #expect(object["conninfo"] == "host=db password=\(mask)")
        #expect(object["hook"] == "https://hooks.example:9/x")
        #expect(object["mail"] == "ops@nfl.example")
        #expect(object["dsn"] == "postgresql://u:\(mask)@h/db")
    }

    @Test("a secret registered after earlier redactions is still masked (nothing stale is cached)")
    func registerAfterUse() {
        let redactor = SecretRedactor()
        let line = "token tok-late-4401 then pw-early-7702 and postgresql://u:url-pw-1@h/db"
        // Before registration only the URL pattern applies.
        #expect(redactor.redact(line) == "token tok-late-4401 then pw-early-7702 and postgresql://u:\(mask)@h/db")
        redactor.register("pw-early-7702")
        #expect(redactor.redact(line) == "token tok-late-4401 then \(mask) and postgresql://u:\(mask)@h/db")
        redactor.register("tok-late-4401")
        #expect(redactor.redact(line) == "token \(mask) then \(mask) and postgresql://u:\(mask)@h/db")
        // A secret containing a shorter registered one is masked whole, whatever the order of registration.
        redactor.register("tok-late-4401-and-more")
        #expect(redactor.redact("x tok-late-4401-and-more y") == "x \(mask) y")
    }

    @Test("registerPassword(inDSN:) registers a URL's and a conninfo's password, not the rest")
    func registerFromDSN() {
        let redactor = SecretRedactor()
        redactor.registerPassword(inDSN: "postgresql://etl:dsn-url-pw-55@db/nfl")
        redactor.registerPassword(inDSN: "host=db password='dsn-kv-pw-66' dbname=nfl")
        #expect(redactor.redact("echo dsn-url-pw-55 dsn-kv-pw-66 db nfl") == "echo \(mask) \(mask) db nfl")
    }

    @Test("registering and redacting from many threads at once stays consistent")
    func concurrentUse() async {
        let redactor = SecretRedactor()
        await withTaskGroup(of: Bool.self) { group in
            for i in 0..<16 {
                group.addTask {
                    let secret = "concurrent-secret-\(i)-xyz"
                    redactor.register(secret)
                    var ok = true
                    for _ in 0..<200 where redactor.redact("a \(secret) b") != "a \(SecretRedactor.mask) b" { ok = false }
                    return ok
                }
            }
            for await ok in group { #expect(ok) }
        }
        for i in 0..<16 { #expect(redactor.redact("concurrent-secret-\(i)-xyz") == mask) }
    }

    @Test("a conninfo password with \", ' or \\ is masked whole in text and in JSON, and the JSON stays valid")
    func conninfoSpecialCharacters() throws {
        // (DSN as written, password as libpq reads it)
        let cases: [(String, String)] = [
            (#"host=h user=evil password=ab"SECRETZ"#, #"ab"SECRETZ"#),
            (#"host=h password=ab'SECRETZ user=evil"#, #"ab'SECRETZ"#),
            (#"host=h password=ab\\SECRETZ user=evil"#, #"ab\SECRETZ"#),
            (#"host=h password='ab\'x "SECRETZ\\' user=evil"#, #"ab'x "SECRETZ\"#),
            (#"host=h password = "SECRETZ" user=evil"#, #""SECRETZ""#),
        ]
        for (dsn, password) in cases {
            for redactor in [SecretRedactor(), nil] {
                // With the password registered (as the loader does), and by the patterns alone.
                redactor?.registerPassword(inDSN: dsn)
                let redact = { (text: String) in redactor?.redact(text) ?? SecretRedactor.redactPatterns(text) }
                let text = redact("dsn \(dsn) source flag")
                #expect(!text.contains("SECRETZ"), "\(text)")
                #expect(text.contains("user=evil") || !dsn.contains("user=evil"), "\(text)")
                let encoded = String(decoding: try JSONSerialization.data(withJSONObject: ["dsn": dsn, "next": "x"], options: .withoutEscapingSlashes), as: UTF8.self)
                let json = redact(encoded)
                #expect(!json.contains("SECRETZ"), "\(json)")
                let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: String], "\(json)")
                #expect(object["next"] == "x")
            }
            let registered = SecretRedactor()
            registered.registerPassword(inDSN: dsn)
            #expect(registered.redact("echo \(password) done") == "echo \(mask) done")
        }
    }

    @Test("a URL password is masked from the first : to the last @, whatever it holds, in text and JSON")
    func urlSpecialCharacters() throws {
        let cases = [
            #"postgresql://evil:ab"SECRETZ@127.0.0.1:5432/nfl"#,
            #"postgresql://evil:p@ss:w/rd%41'x"SECRETZ@127.0.0.1:5432/nfl"#,
            #"postgres://evil:a\b@SECRETZ@h/db?sslmode=disable"#,
        ]
        for dsn in cases {
            let text = SecretRedactor.redactPatterns("connecting to \(dsn) now")
            #expect(!text.contains("SECRETZ"), "\(text)")
            #expect(text.contains("://evil:\(mask)@"), "\(text)")
            let encoded = String(decoding: try JSONSerialization.data(withJSONObject: ["dsn": dsn, "mail": "ops@nfl.example"], options: .withoutEscapingSlashes), as: UTF8.self)
            let json = SecretRedactor.redactPatterns(encoded)
            #expect(!json.contains("SECRETZ"), "\(json)")
            let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: String], "\(json)")
            #expect(object["mail"] == "ops@nfl.example")
            #expect(object["dsn"]?.hasPrefix("postgres") == true && object["dsn"]?.contains(mask) == true)
        }
        let decoded = SecretRedactor()
        decoded.registerPassword(inDSN: #"postgresql://evil:p%40ss%3Aw%2Frd%41'x%22SECRETZ@h/db"#)
        #expect(decoded.redact(#"pw p@ss:w/rdA'x"SECRETZ end"#) == "pw \(mask) end")
    }
}
