import Foundation
import NFLDBHealth
import NFLDBSecurity
import NFLDBTestSupport
import Testing

@Suite("Hard-coded credential scan")
struct CredentialScanTests {
    @Test("YAML literals (block and flow style) are found, references and comments are not; the secret is never echoed")
    func yaml() throws {
        let dir = try CLIRunner.temporaryDirectory("nfldb-scan")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try """
            password: hunter2
            password_env: PGPASS
            alerts:
              - { type: pagerduty, routing_key: R0UT1NGKEY, severity: critical }
              - { type: slack, url_env: SLACK_URL }
            token: env:TOKEN
            # password: commented-out
            secret: "${SECRET}"
            backup: { cipher_pass: 'xyzzy' }
            """.write(toFile: dir + "/nfldb.yaml", atomically: true, encoding: .utf8)
        let findings = HardcodedCredentialsCheck.scan([dir + "/nfldb.yaml"])
        #expect(findings.map { $0.fields["line"] ?? "" } == ["1", "4", "9"], "\(findings.map(\.what))")
        #expect(findings.allSatisfy { $0.severity == .critical })
        let text = findings.map { "\($0.what) \($0.why) \($0.fix)" }.joined()
        for secret in ["hunter2", "R0UT1NGKEY", "xyzzy"] { #expect(!text.contains(secret)) }
    }

    @Test("SQL: literal passwords CRITICAL, SCRAM verifiers WARNING, PASSWORD NULL and URLs without a password ignored")
    func sql() throws {
        let dir = try CLIRunner.temporaryDirectory("nfldb-scan-sql")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/m/sub", withIntermediateDirectories: true)
        try """
            CREATE ROLE a LOGIN PASSWORD NULL;
            ALTER ROLE b PASSWORD 'SCRAM-SHA-256$4096:c2FsdA==$aaa:bbb';
            -- connect to postgresql://reader@db/nfl for reports
            SELECT dblink_connect('host=x'), 'postgres://etl:${PW}@h/db';
            create user c with encrypted password E'it''s';
            COMMENT ON TABLE t IS 'see https://svc:t0ps3cret@example.com/x';
            """.write(toFile: dir + "/m/sub/0001_a.up.sql", atomically: true, encoding: .utf8)
        let findings = HardcodedCredentialsCheck.scan([dir + "/m"])
        #expect(findings.map { "\($0.fields["line"] ?? ""):\($0.fields["kind"] ?? ""):\($0.severity)" } == [
            "2:sql_password:WARNING", "5:sql_password:CRITICAL", "6:url_password:CRITICAL",
        ])
        #expect(findings.allSatisfy { $0.what.contains("m/sub/0001_a.up.sql:") })
        #expect(!findings.map(\.what).joined().contains("t0ps3cret"))
    }

    @Test("SQL: a PASSWORD on its own line (pg_dump's layout), a dollar-quoted password and password= in a conninfo string are found, at the literal's line")
    func sqlForms() throws {
        let dir = try CLIRunner.temporaryDirectory("nfldb-scan-sql2")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try """
            CREATE ROLE app LOGIN PASSWORD $$hunter2$$;
            CREATE ROLE app2 LOGIN
              PASSWORD
              'hunter3';
            SELECT dblink_connect('host=db user=u password=hunter4');
            ALTER SYSTEM SET password_encryption = 'scram-sha-256';
            CREATE SUBSCRIPTION s CONNECTION 'host=db password=${PW}' PUBLICATION p;
            """.write(toFile: dir + "/0001_x.up.sql", atomically: true, encoding: .utf8)
        let findings = HardcodedCredentialsCheck.scan([dir + "/0001_x.up.sql"])
        #expect(findings.map { "\($0.fields["line"] ?? ""):\($0.fields["kind"] ?? "")" } == ["1:sql_password", "4:sql_password", "5:conninfo_password"],
                "\(findings.map(\.what))")
        #expect(!findings.map { "\($0.what) \($0.why) \($0.fix)" }.joined().contains("hunter"))
    }
}
