import Foundation
import NFLDBCore
import NFLDBPostgres
import NFLDBTestSupport
import Testing

/// Passwords with `"`, `'`, `\`, `@`, `:` and `/` in a DSN, against a real server: the password never
/// appears in any output (text, JSON, logs at trace), and JSON output stays valid.
@Suite("DSN passwords with special characters are never printed")
struct DSNRedactionCLITests {
    static let marker = "SECRETZ"

    /// A login role on the shared cluster; `body` gets its access and a function that sets its password.
    static func withRole(_ body: (ClusterAccess, String, (String) throws -> Void) throws -> Void) throws {
        try TestCluster.withDatabase(prefix: "redact") { db in
            let access = try ClusterAccess(db)
            let prefix = TestRoles.uniquePrefix("r")
            defer { TestRoles.drop(prefix: prefix) }
            let role = prefix + "evil"
            let admin = try db.connect()
            defer { admin.close() }
            try admin.execute("CREATE ROLE \(identifier: role) LOGIN")
            try admin.execute("GRANT CONNECT ON DATABASE \(identifier: db.name) TO \(identifier: role)")
            try body(access, role) { password in
                try admin.execute("ALTER ROLE \(identifier: role) PASSWORD \(unsafeRaw: PostgresIdentifier.literal(password))")
            }
        }
    }

    /// `config show` (text and JSON) and `ping` (text and JSON logs at trace) with `dsn` given as
    /// `--dsn`, `NFLDB_DSN` and `DATABASE_URL`: no output holds the marker, JSON parses, ping's status is `pingStatus`.
    static func expectHidden(_ dsn: String, pingStatus: Int32, hint: String? = nil, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let ways: [([String], [String: String])] = [(["--dsn", dsn], [:]), ([], ["NFLDB_DSN": dsn]), ([], ["DATABASE_URL": dsn])]
        for (flags, env) in ways {
            let text = try CLIRunner.run(flags + ["config", "show"], environment: env)
            #expect(text.status == 0, "\(text.allOutput)", sourceLocation: sourceLocation)
            #expect(!text.allOutput.contains(marker), "\(text.allOutput)", sourceLocation: sourceLocation)
            let dsnLine = text.stdoutLines.first { $0.hasPrefix("dsn ") } ?? ""
            #expect(dsnLine.contains(SecretRedactor.mask), "\(dsnLine)", sourceLocation: sourceLocation)

            let json = try CLIRunner.run(flags + ["config", "show", "--format", "json"], environment: env)
            #expect(json.status == 0, "\(json.allOutput)", sourceLocation: sourceLocation)
            #expect(!json.allOutput.contains(marker), "\(json.allOutput)", sourceLocation: sourceLocation)
            let report = try jsonObject(json.standardOutput)
            let rows = report["settings"] as? [[String: Any]] ?? []
            let shown = rows.first { $0["key"] as? String == "dsn" }?["value"] as? String ?? ""
            #expect(shown.contains(SecretRedactor.mask), "\(shown)", sourceLocation: sourceLocation)

            for format in ["text", "json"] {
                let ping = try CLIRunner.run(flags + ["ping", "--log-level", "trace", "--log-format", format], environment: env)
                #expect(ping.status == pingStatus, "\(ping.allOutput)", sourceLocation: sourceLocation)
                #expect(!ping.allOutput.contains(marker), "\(ping.allOutput)", sourceLocation: sourceLocation)
                if format == "json" {
                    for line in ping.stderrLines { _ = try jsonObject(line) }
                }
                if let hint {
                    #expect(ping.standardError.contains(hint), "\(ping.standardError)", sourceLocation: sourceLocation)
                }
            }
        }
    }

    @Test("conninfo password= with \", ' and \\ (quoted and unquoted, as libpq reads them) connects and is masked whole")
    func conninfo() throws {
        try Self.withRole { access, role, setPassword in
            let base = "host=\(access.host) port=\(access.port) dbname=\(access.database) user=\(role)"
            // (as written in the DSN, the password libpq reads)
            let cases: [(String, String)] = [
                (#"password=ab"SECRETZ"#, #"ab"SECRETZ"#),
                (#"password=ab'SECRETZ"#, #"ab'SECRETZ"#),
                (#"password=ab\\SECRETZ"#, #"ab\SECRETZ"#),
                (#"password=ab\'x"SECRETZ"#, #"ab'x"SECRETZ"#),
                (#"password='ab\'x "SECRETZ\\'"#, #"ab'x "SECRETZ\"#),
                (#"password = "SECRETZ""#, #""SECRETZ""#),
            ]
            for (spelled, password) in cases {
                try setPassword(password)
                try Self.expectHidden("\(base) \(spelled)", pingStatus: 0)
                try Self.expectHidden("\(spelled) \(base)", pingStatus: 0)
            }
        }
    }

    @Test("a raw \" in a URL password connects and is masked (--dsn, NFLDB_DSN, DATABASE_URL)")
    func urlQuote() throws {
        try Self.withRole { access, role, setPassword in
            try setPassword(#"ab"SECRETZ"#)
            try Self.expectHidden(#"postgresql://\#(role):ab"SECRETZ@\#(access.host):\#(access.port)/\#(access.database)"#, pingStatus: 0)
            try setPassword(#"ab\'SECRETZ"#)
            try Self.expectHidden(#"postgresql://\#(role):ab\'SECRETZ@\#(access.host):\#(access.port)/\#(access.database)"#, pingStatus: 0)
        }
    }

    @Test("un-encoded @ : / in a URL password: refused before connecting, with a percent-encoding hint, the password never shown; encoded, it connects")
    func urlStrayAt() throws {
        try Self.withRole { access, role, setPassword in
            try setPassword(#"p@ss:w/rdA'x"SECRETZ"#)
            let raw = #"postgresql://\#(role):p@ss:w/rd%41'x"SECRETZ@\#(access.host):\#(access.port)/\#(access.database)"#
            try Self.expectHidden(raw, pingStatus: 2, hint: "Percent-encode special characters")
            let slash = #"postgresql://\#(role):pw/SECRETZ@\#(access.host):\#(access.port)/\#(access.database)"#
            try Self.expectHidden(slash, pingStatus: 2, hint: "Percent-encode special characters")
            let encoded = "postgresql://\(role):p%40ss%3Aw%2Frd%41'x%22SECRETZ@\(access.host):\(access.port)/\(access.database)"
            try Self.expectHidden(encoded, pingStatus: 0)
        }
    }

    @Test("a password in the URL query under a percent-encoded key (?pass%77ord=, which libpq decodes and uses) connects and is masked")
    func percentEncodedQueryKey() throws {
        try Self.withRole { access, role, setPassword in
            try setPassword("qk-SECRETZ-1")
            let url = "postgresql://\(role)@\(access.host):\(access.port)/\(access.database)?pass%77ord=qk-SECRETZ-1&sslmode=disable"
            try Self.expectHidden(url, pingStatus: 0)
            // The same key in a DSN libpq then refuses: the error is masked too.
            let bad = "postgresql://\(role)@\(access.host):\(access.port)/\(access.database)?pass%77ord=qk-SECRETZ-1&connect_timeout=x"
            let health = try CLIRunner.run(["health", "--format", "json", "--dsn", bad])
            #expect(!health.allOutput.contains(Self.marker), "\(health.allOutput)")
        }
    }

    @Test("a connection setting libpq refuses (sslmode, port, connect_timeout) is a configuration error: exit 2 naming the setting, health UNKNOWN (3)")
    func refusedSettingIsConfiguration() throws {
        try TestCluster.withDatabase(prefix: "badopt") { db in
            let access = try ClusterAccess(db)
            let base = "host=\(access.host) port=\(access.port) dbname=\(access.database)"
            for (dsn, setting) in [("\(base) sslmode=bogus", "sslmode"), ("host=\(access.host) port=abc", "port"), ("\(base) connect_timeout=x", "connect_timeout")] {
                let ping = try CLIRunner.run(["ping", "--dsn", dsn])
                #expect(ping.status == 2, "\(dsn): \(ping.allOutput)")
                #expect(ping.standardError.contains(setting) && !ping.standardError.contains("pg_isready"), "\(dsn): \(ping.standardError)")
                let health = try CLIRunner.run(["health", "--dsn", dsn])
                #expect(health.status == 3, "\(dsn): \(health.allOutput)")
            }
            let env = try CLIRunner.run(["ping"], environment: ["PGSSLMODE": "bogus", "NFLDB_DSN": base])
            #expect(env.status == 2, "\(env.allOutput)")
        }
    }
}
