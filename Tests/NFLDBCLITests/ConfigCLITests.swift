import Foundation
import NFLDBCore
import NFLDBPostgres
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

    @Test("a timeout PostgreSQL cannot take (over INT_MAX ms, ~24.8 days) is refused before anything runs, from env, file, flag and migration directive; 24d is taken by a real server")
    func postgresTimeoutLimit() throws {
        try TestCluster.withDatabase(prefix: "cli_timeout_limit") { db in
            let access = try ClusterAccess(db)
            func tables(_ name: String) throws -> Int {
                let connection = try db.connect()
                defer { connection.close() }
                return try connection.query("SELECT count(*) FROM pg_tables WHERE tablename = \(name)").scalar(Int.self)
            }
            try withScratchDirectory { dir in
                let migrations = (dir as NSString).appendingPathComponent("migrations")
                try FileManager.default.createDirectory(atPath: migrations, withIntermediateDirectories: true)
                try "-- nfldb:lock-timeout 24d\n-- nfldb:statement-timeout 24d\nCREATE TABLE limit_probe (id int);\n"
                    .write(toFile: migrations + "/0001_probe.up.sql", atomically: true, encoding: .utf8)
                try "DROP TABLE limit_probe;\n".write(toFile: migrations + "/0001_probe.down.sql", atomically: true, encoding: .utf8)
                let env = ["NFLDB_DSN": access.conninfo, "NFLDB_MIGRATIONS_DIR": migrations]
                func with(_ extra: [String: String]) -> [String: String] { env.merging(extra) { $1 } }
                let above = "is above PostgreSQL's largest timeout, 2147483647ms (about 24.8 days)"

                // Refused: each exits 2 (health: 3) naming where the value came from, and nothing connects or changes.
                let cases: [(args: [String], env: [String: String], expected: String)] = [
                    (["health", "--check", "connections"], ["NFLDB_HEALTH_LOCK_TIMEOUT": "25d"], "env NFLDB_HEALTH_LOCK_TIMEOUT: health.lock_timeout: '25d' \(above)"),
                    (["health", "--check", "connections"], ["NFLDB_HEALTH_STATEMENT_TIMEOUT": "600h"], "health.statement_timeout: '600h' \(above)"),
                    (["migrate", "status"], ["NFLDB_MIGRATIONS_LOCK_TIMEOUT": "30d"], "migrations.lock_timeout: '30d' \(above)"),
                    (["migrate", "status"], ["NFLDB_MIGRATIONS_STATEMENT_TIMEOUT": "1000000000000ms"], "migrations.statement_timeout"),
                    // Every command checks every module's settings at start-up.
                    (["migrate", "status"], ["NFLDB_ETL_LOCK_TIMEOUT": "2147483648ms"], "etl.lock_timeout: '2147483648ms' \(above)"),
                    (["migrate", "up", "--lock-timeout", "25d"], [:], "--lock-timeout '25d' \(above)"),
                    (["crypt", "rotate", "--table", "t", "--column", "c", "--key-ref", "env:K", "--lock-timeout", "25d"], ["K": "x"], "--lock-timeout '25d' \(above)"),
                ]
                for c in cases {
                    let result = try CLIRunner.run(c.args, environment: with(c.env), workingDirectory: dir, timeout: .seconds(120))
                    // health keeps the Nagios convention: bad configuration is 3 UNKNOWN.
                    #expect(result.status == (c.args[0] == "health" ? 3 : 2), "\(c.args) \(c.env): \(result.allOutput)")
                    #expect(result.standardError.contains(c.expected), "\(c.args) \(c.env): \(result.standardError)")
                    #expect(!result.allOutput.contains(access.password))
                }
                try "health:\n  checks:\n    connections:\n      statement_timeout: 30d\n"
                    .write(toFile: (dir as NSString).appendingPathComponent("nfldb.yaml"), atomically: true, encoding: .utf8)
                let fromFile = try nfldb("health", "--check", "connections", env: env, in: dir)
                #expect(fromFile.status == 3 && fromFile.standardError.contains("nfldb.yaml:4: health.checks.connections.statement_timeout: '30d' \(above)"),
                        "\(fromFile.allOutput)")
                try FileManager.default.removeItem(atPath: (dir as NSString).appendingPathComponent("nfldb.yaml"))
                #expect(try tables("limit_probe") == 0)

                // At 24 days the server takes the settings: the health queries and the migration run under them.
                let health = try nfldb("health", "--check", "connections", env: with(["NFLDB_HEALTH_LOCK_TIMEOUT": "24d", "NFLDB_HEALTH_STATEMENT_TIMEOUT": "24d"]), in: dir)
                #expect(health.status == 0, "\(health.allOutput)")
                let up = try nfldb("migrate", "up", "--lock-timeout", "24d", env: with(["NFLDB_MIGRATIONS_STATEMENT_TIMEOUT": "24d"]), in: dir)
                #expect(up.status == 0, "\(up.allOutput)")
                #expect(try tables("limit_probe") == 1)

                // A migration file's directive over the limit names file:line and runs nothing.
                try "-- nfldb:statement-timeout 25d\nCREATE TABLE limit_probe_2 (id int);\n"
                    .write(toFile: migrations + "/0002_probe.up.sql", atomically: true, encoding: .utf8)
                try "DROP TABLE limit_probe_2;\n".write(toFile: migrations + "/0002_probe.down.sql", atomically: true, encoding: .utf8)
                let directive = try nfldb("migrate", "up", env: env, in: dir)
                #expect(directive.status == 2, "\(directive.allOutput)")
                #expect(directive.standardError.contains("0002_probe.up.sql:1: nfldb:statement-timeout '25d' \(above); give 24d or less"), "\(directive.standardError)")
                #expect(try tables("limit_probe_2") == 0)
            }
        }
    }
}
