import Foundation
import NFLDBCore
import NFLDBTestSupport
import Testing

@Suite("nfldb config show")
struct ConfigCLITests {
    static func settings(_ result: ProcessResult) throws -> [String: [String: Any]] {
        let report = try jsonObject(result.standardOutput)
        let rows = try #require(report["settings"] as? [[String: Any]])
        return Dictionary(uniqueKeysWithValues: rows.map { ($0["key"] as? String ?? "", $0) })
    }

    @Test("shows each value's source (flag, env, file:line, default) and redacts a DSN password given by flag")
    func sources() throws {
        try withScratchDirectory { dir in
            let file = (dir as NSString).appendingPathComponent("nfldb.yaml")
            try "# nfldb settings\nmigrations:\n  dir: sql/migrations\nbackup:\n  stanza: nightly\n".write(toFile: file, atomically: true, encoding: .utf8)
            let dsn = "postgresql://etl:flag-pw-8080@db.example:5432/nfl"
            let env = ["NFLDB_CONNECT_TIMEOUT": "3s", "NFLDB_BACKUP_STANZA": "from-env"]

            let json = try nfldb("config", "show", "--format", "json", "--dsn", dsn, env: env, in: dir)
            #expect(json.status == 0, "\(json.standardError)")
            #expect(!json.allOutput.contains("flag-pw-8080"))
            let rows = try Self.settings(json)
            #expect(rows["dsn"]?["value"] as? String == "postgresql://etl:\(SecretRedactor.mask)@db.example:5432/nfl")
            #expect(rows["dsn"]?["source"] as? String == "flag --dsn")
            #expect(rows["connect_timeout"]?["value"] as? String == "3s")
            #expect(rows["connect_timeout"]?["source"] as? String == "env NFLDB_CONNECT_TIMEOUT")
            #expect(rows["backup.stanza"]?["value"] as? String == "from-env", "env beats the file")
            #expect(rows["migrations.dir"]?["value"] as? String == "sql/migrations")
            let fileSource = try #require(rows["migrations.dir"]?["source"] as? String)
            #expect(fileSource.hasSuffix("nfldb.yaml:3"), "\(fileSource)")
            #expect(rows["log.format"]?["source"] as? String == "default")
            #expect(rows["migrations.lock_wait"]?["value"] as? String == "5min")
            #expect(rows["backup.config"]?["source"] as? String == "unset")
            #expect(rows["migrations.dir"]?["env"] as? String == "NFLDB_MIGRATIONS_DIR")

            let text = try nfldb("config", "show", "--dsn", dsn, env: env, in: dir)
            #expect(text.status == 0)
            #expect(!text.allOutput.contains("flag-pw-8080"))
            #expect(text.stdoutLines.first?.hasPrefix("config file: ") == true)
            #expect(text.stdoutLines.first?.hasSuffix("nfldb.yaml") == true)
            let dsnLine = try #require(text.stdoutLines.first { $0.hasPrefix("dsn ") })
            #expect(dsnLine.contains("postgresql://etl:\(SecretRedactor.mask)@db.example:5432/nfl"))
            #expect(dsnLine.hasSuffix("flag --dsn"))
            #expect(text.stdoutLines.contains { $0.hasPrefix("migrations.dir ") && $0.hasSuffix("nfldb.yaml:3") })
            #expect(text.stdoutLines.contains { $0.hasPrefix("connect_timeout ") && $0.hasSuffix("env NFLDB_CONNECT_TIMEOUT") })
            #expect(text.stdoutLines.contains { $0.hasPrefix("log.format ") && $0.hasSuffix("default") })
        }
    }

    @Test("global options before a nested subcommand reach it (@ParentCommand); one given after its name wins")
    func rootOptionsReachNestedCommand() throws {
        try withScratchDirectory { dir in
            let file = (dir as NSString).appendingPathComponent("other.yaml")
            try "migrations:\n  dir: from-root-config\n".write(toFile: file, atomically: true, encoding: .utf8)
            let root = try nfldb("--dsn", "host=root-host", "--config", file, "config", "show", "--format", "json", in: dir)
            #expect(root.status == 0, "\(root.standardError)")
            let rows = try Self.settings(root)
            #expect(rows["dsn"]?["value"] as? String == "host=root-host")
            #expect(rows["dsn"]?["source"] as? String == "flag --dsn")
            #expect(rows["migrations.dir"]?["value"] as? String == "from-root-config")

            let both = try nfldb("--dsn", "host=root-host", "config", "show", "--format", "json", "--dsn", "host=leaf-host", in: dir)
            #expect(both.status == 0, "\(both.standardError)")
            #expect(try Self.settings(both)["dsn"]?["value"] as? String == "host=leaf-host")
        }
    }

    @Test("config show lists the keys of every module the executable assembles, with env names and defaults")
    func everyModulesKeys() throws {
        try withScratchDirectory { dir in
            let result = try nfldb("config", "show", "--format", "json", in: dir)
            #expect(result.status == 0, "\(result.standardError)")
            let rows = try Self.settings(result)
            let expected: [(key: String, value: String?, env: String)] = [
                ("connect_timeout", "10s", "NFLDB_CONNECT_TIMEOUT"),            // Core
                ("migrations.lock_retries", "3", "NFLDB_MIGRATIONS_LOCK_RETRIES"),  // NFLDBMigrations
                ("roles.spec", "roles", "NFLDB_ROLES_SPEC"),                     // NFLDBRoles
                ("audit.tables", nil, "NFLDB_AUDIT_TABLES"),                     // NFLDBAudit
                ("backup.s3.uri_style", "host", "NFLDB_BACKUP_S3_URI_STYLE"),    // NFLDBBackup
                ("sandbox.dir", ".nfldb/sandbox", "NFLDB_SANDBOX_DIR"),          // NFLDBSandbox
                ("health.checks.vacuum.grace", "1h", "NFLDB_HEALTH_CHECKS_VACUUM_GRACE"),  // NFLDBHealth
                ("health.alert.timeout", "10s", "NFLDB_HEALTH_ALERT_TIMEOUT"),   // NFLDBAlerting
            ]
            for row in expected {
                let shown = try #require(rows[row.key], "\(row.key) missing from config show")
                #expect(shown["value"] as? String == row.value, "\(row.key)")
                #expect(shown["env"] as? String == row.env, "\(row.key)")
            }
            #expect(rows["alerts"] == nil, "the alerts list is shown in its own section")
        }
    }

    @Test("a conninfo password from NFLDB_DSN and PGPASSWORD are both masked")
    func envSecrets() throws {
        try withScratchDirectory { dir in
            let result = try nfldb(
                "config", "show", env: ["NFLDB_DSN": "host=db password=env-pw-1212 dbname=nfl", "PGPASSWORD": "pg-pw-3434", "PGHOST": "db"],
                in: dir)
            #expect(result.status == 0, "\(result.standardError)")
            #expect(!result.allOutput.contains("env-pw-1212"))
            #expect(!result.allOutput.contains("pg-pw-3434"))
            #expect(result.standardOutput.contains("PGPASSWORD=\(SecretRedactor.mask)"))
            #expect(result.standardOutput.contains("PGHOST=db"))
            #expect(result.stdoutLines.contains { $0.hasPrefix("dsn ") && $0.hasSuffix("env NFLDB_DSN") })
        }
    }

    @Test("a config file with an unknown key exits 2 naming file:line", arguments: [["config", "show"], ["ping"]])
    func unknownKey(command: [String]) throws {
        try withScratchDirectory { dir in
            let file = (dir as NSString).appendingPathComponent("nfldb.yaml")
            try "connect_timeout: 5s\nmigrations:\n  dir: sql\n  lock_tiemout: 5s\n".write(toFile: file, atomically: true, encoding: .utf8)

            let explicit = try CLIRunner.run(command + ["--config", file])
            #expect(explicit.status == 2, "\(explicit.standardError)")
            #expect(explicit.standardError.contains("\(file):4: unknown key 'migrations.lock_tiemout'"))
            #expect(explicit.standardError.contains("HINT: Known keys here:"))
            #expect(explicit.standardOutput.isEmpty)

            let implicit = try CLIRunner.run(command, workingDirectory: dir)
            #expect(implicit.status == 2)
            #expect(implicit.standardError.contains("nfldb.yaml:4: unknown key 'migrations.lock_tiemout'"))
        }
    }

    @Test("a password in the config file's dsn exits 2 without printing it")
    func passwordInFile() throws {
        try withScratchDirectory { dir in
            try "dsn: postgresql://etl:yaml-pw-5656@db/nfl\n".write(
                toFile: (dir as NSString).appendingPathComponent("nfldb.yaml"), atomically: true, encoding: .utf8)
            let result = try nfldb("config", "show", in: dir)
            #expect(result.status == 2)
            #expect(result.standardError.contains("nfldb.yaml:1: dsn in the config file contains a password"))
            #expect(!result.allOutput.contains("yaml-pw-5656"))
        }
    }

    @Test("a missing --config file and a bad env value are configuration errors (exit 2)")
    func otherConfigErrors() throws {
        let missing = try nfldb("config", "show", "--config", "/nonexistent/nfldb.yaml")
        #expect(missing.status == 2)
        #expect(missing.standardError.contains("/nonexistent/nfldb.yaml does not exist"))

        try withScratchDirectory { dir in
            let bad = try nfldb("config", "show", env: ["NFLDB_CONNECT_TIMEOUT": "whenever"], in: dir)
            #expect(bad.status == 2)
            #expect(bad.standardError.contains("env NFLDB_CONNECT_TIMEOUT: connect_timeout: 'whenever' is not a duration"))
        }
    }
}
