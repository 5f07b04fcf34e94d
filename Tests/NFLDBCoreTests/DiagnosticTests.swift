import NFLDBCore
import Testing

@Suite("Diagnostic, errors and exit statuses")
struct DiagnosticTests {
    @Test("renders summary, then DETAIL and HINT lines")
    func rendering() {
        let diagnostic = Diagnostic(
            "could not apply migration 0042_add_audit_columns: column \"created_at\" already exists",
            detail: "SQLSTATE 42701, migrations/0042_add_audit_columns.up.sql line 3",
            hint: "Fix the file, then run `nfldb migrate up` again.")
        #expect(diagnostic.description == """
            could not apply migration 0042_add_audit_columns: column "created_at" already exists
            DETAIL: SQLSTATE 42701, migrations/0042_add_audit_columns.up.sql line 3
            HINT: Fix the file, then run `nfldb migrate up` again.
            """)
        #expect(diagnostic.oneLine == """
            could not apply migration 0042_add_audit_columns: column "created_at" already exists | \
            DETAIL: SQLSTATE 42701, migrations/0042_add_audit_columns.up.sql line 3 | \
            HINT: Fix the file, then run `nfldb migrate up` again.
            """)
    }

    @Test("omits empty detail and hint")
    func optionalParts() {
        #expect(Diagnostic("just this").description == "just this")
        #expect(Diagnostic("s", detail: "", hint: "h").description == "s\nHINT: h")
        #expect(Diagnostic("s", detail: "d").description == "s\nDETAIL: d")
    }

    @Test("never shows a password, even one that slipped into the text")
    func redacts() {
        let diagnostic = Diagnostic(
            "could not connect to postgresql://etl:diag-pw-1@db/nfl", detail: "conninfo host=db password=diag-pw-2")
        #expect(!diagnostic.description.contains("diag-pw-1"))
        #expect(!diagnostic.description.contains("diag-pw-2"))
        #expect(diagnostic.description.contains("postgresql://etl:\(SecretRedactor.mask)@db/nfl"))
    }

    @Test("OperatorError and ConfigurationError describe themselves and map to exit statuses")
    func errors() {
        let failure = OperatorError("sandbox is not running", hint: "Run `nfldb sandbox up`.")
        #expect(failure.exitStatus == .failure)
        #expect(failure.exitStatus.code == 1)
        #expect(failure.description == "sandbox is not running\nHINT: Run `nfldb sandbox up`.")
        #expect(String(describing: failure) == failure.description)

        let usage = OperatorError("bad flag", exitStatus: .usage)
        #expect(usage.exitStatus.code == 2)

        let config = ConfigurationError("unknown key 'x'", source: .file(path: "/etc/nfldb.yaml", line: 12), hint: "Remove it.")
        #expect(config.exitStatus == .usage)
        #expect(config.description == "/etc/nfldb.yaml:12: unknown key 'x'\nHINT: Remove it.")
        #expect(ConfigurationError("plain").description == "plain")
    }

    @Test("exit statuses and config sources have stable spellings")
    func spellings() {
        #expect([ExitStatus.success, .failure, .usage, .pending, .drift].map(\.code) == [0, 1, 2, 3, 4])
        #expect(ConfigSource.flag("--dsn").description == "flag --dsn")
        #expect(ConfigSource.environment("NFLDB_DSN").description == "env NFLDB_DSN")
        #expect(ConfigSource.file(path: "nfldb.yaml", line: 3).description == "nfldb.yaml:3")
        #expect(ConfigSource.defaultValue.description == "default")
        #expect(ConfigRawValue.list(["a", "b"]).description == "[a, b]")
    }
}
