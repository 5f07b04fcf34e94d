import Foundation
import NFLDBCore
import Testing

/// A sample key set in the shape the capability modules declare theirs: the loader is tested as a
/// mechanism, independent of which module owns which key.
extension ConfigKey {
    static let migrationsDir = ConfigKey("migrations.dir", .path, default: "migrations", help: "dir")
    static let migrationsLockTimeout = ConfigKey("migrations.lock_timeout", .duration, default: "5s", help: "lock timeout")
    static let migrationsLockWait = ConfigKey("migrations.lock_wait", .duration, default: "5min", help: "lock wait")
    static let migrationsRetries = ConfigKey("migrations.lock_retries", .integer, default: "3", help: "retries")
    static let sampleStanza = ConfigKey("backup.stanza", .string, default: "nfldb", help: "stanza")
    static let sampleConfig = ConfigKey("backup.config", .path, help: "config path")
    static let sampleOSUser = ConfigKey("postgres.os_user", .string, default: "postgres", help: "os user")
    static let sampleTables = ConfigKey("audit.tables", .stringList, help: "tables")
    static let sampleWarning = ConfigKey("health.checks.*.warning", .number, help: "warning threshold")
    static let sampleEnabled = ConfigKey("health.checks.*.enabled", .boolean, help: "enabled")
    static let sampleRecords = ConfigKey(
        "hooks", .records(fields: ["name", "url_env", "url_file"], secretFields: ["url"]), help: "records with a secret field")

    static let sample: [ConfigKey] = ConfigKey.global + [
        .migrationsDir, .migrationsLockTimeout, .migrationsLockWait, .migrationsRetries, .sampleStanza, .sampleConfig, .sampleOSUser,
        .sampleTables, .sampleWarning, .sampleEnabled, .sampleRecords,
    ]
}

extension ConfigurationLoader {
    init(
        environment: [String: String], flags: [String: (value: String, flag: String)] = [:], explicitPath: String? = nil,
        workingDirectory: String
    ) {
        self.init(keys: ConfigKey.sample, environment: environment, flags: flags, explicitPath: explicitPath, workingDirectory: workingDirectory)
    }
}

@Suite("ConfigurationLoader: precedence, file errors, secrets")
struct ConfigurationLoaderTests {
    static let sampleFile = """
        dsn: host=filehost dbname=fromfile
        connect_timeout: 30s
        migrations:
          dir: file-migrations
          lock_wait: 2min
        log:
          level: debug
        """

    @Test("flag beats env beats file beats default, and each value names its source")
    func precedence() throws {
        try withTemporaryDirectory { dir in
            let path = try writeFile(Self.sampleFile, named: "nfldb.yaml", in: dir)
            let loader = ConfigurationLoader(
                environment: [
                    "NFLDB_DSN": "host=envhost dbname=fromenv",
                    "NFLDB_CONNECT_TIMEOUT": "15s",
                    "NFLDB_MIGRATIONS_LOCK_WAIT": "90s",
                ],
                flags: [
                    "dsn": (value: "host=flaghost dbname=fromflag", flag: "--dsn"),
                    "migrations.lock_wait": (value: "1s", flag: "--lock-wait"),
                ],
                workingDirectory: dir)
            let config = try loader.load()

            #expect(config.file == path)
            // flag > env > file
            #expect(config.string(.dsn) == "host=flaghost dbname=fromflag")
            #expect(config.entry(.dsn)?.source == .flag("--dsn"))
            #expect(try config.duration(.migrationsLockWait) == .seconds(1))
            #expect(config.entry(.migrationsLockWait)?.source == .flag("--lock-wait"))
            // env > file
            #expect(try config.duration(.connectTimeout) == .seconds(15))
            #expect(config.entry(.connectTimeout)?.source == .environment("NFLDB_CONNECT_TIMEOUT"))
            // file > default, with the line of the key
            #expect(config.string(.migrationsDir) == "file-migrations")
            #expect(config.entry(.migrationsDir)?.source == .file(path: path, line: 4))
            #expect(config.string(.logLevel) == "debug")
            #expect(config.entry(.logLevel)?.source == .file(path: path, line: 7))
            #expect(config.entry(.logLevel)?.source.description == "\(path):7")
            // default
            #expect(config.string(.sampleStanza) == "nfldb")
            #expect(config.entry(.sampleStanza)?.source == .defaultValue)
            #expect(config.entry(.sampleStanza)?.source.description == "default")
            #expect(config.string(.logFormat) == "text")
            // unset, no default
            #expect(config.entry(.sampleConfig) == nil)
        }
    }

    @Test("the file's value wins over the default when nothing else is set")
    func fileOverDefault() throws {
        try withTemporaryDirectory { dir in
            let path = try writeFile(Self.sampleFile, named: "nfldb.yaml", in: dir)
            let config = try ConfigurationLoader(environment: [:], workingDirectory: dir).load()
            #expect(config.string(.dsn) == "host=filehost dbname=fromfile")
            #expect(config.entry(.dsn)?.source == .file(path: path, line: 1))
            #expect(try config.duration(.connectTimeout) == .seconds(30))
            #expect(config.entry(.connectTimeout)?.source == .file(path: path, line: 2))
            #expect(try config.duration(.migrationsLockWait) == .seconds(120))
        }
    }

    @Test("without a file only defaults apply, and ./nfldb.yaml is optional")
    func defaultsOnly() throws {
        try withTemporaryDirectory { dir in
            let config = try ConfigurationLoader(environment: [:], workingDirectory: dir).load()
            #expect(config.file == nil)
            #expect(config.string(.dsn) == nil)
            #expect(try config.duration(.connectTimeout) == .seconds(10))
            #expect(config.entry(.connectTimeout)?.source == .defaultValue)
            #expect(try config.integer(.migrationsRetries) == 3)
            #expect(config.string(.sampleOSUser) == "postgres")
        }
    }

    @Test("NFLDB_DSN wins over DATABASE_URL; DATABASE_URL is used alone")
    func databaseURL() throws {
        try withTemporaryDirectory { dir in
            let both = try ConfigurationLoader(
                environment: ["NFLDB_DSN": "host=a", "DATABASE_URL": "postgresql://b/db"], workingDirectory: dir
            ).load()
            #expect(both.string(.dsn) == "host=a")
            #expect(both.entry(.dsn)?.source == .environment("NFLDB_DSN"))

            let only = try ConfigurationLoader(environment: ["DATABASE_URL": "postgresql://b/db"], workingDirectory: dir).load()
            #expect(only.string(.dsn) == "postgresql://b/db")
            #expect(only.entry(.dsn)?.source == .environment("DATABASE_URL"))
            #expect(only.entry(.dsn)?.source.description == "env DATABASE_URL")

            let empty = try ConfigurationLoader(environment: ["NFLDB_DSN": "", "DATABASE_URL": "host=c"], workingDirectory: dir).load()
            #expect(empty.string(.dsn) == "host=c", "an empty NFLDB_DSN counts as unset")
        }
    }

    @Test("--config names a file explicitly, and a missing one is an error")
    func explicitPath() throws {
        try withTemporaryDirectory { dir in
            let path = try writeFile("backup:\n  stanza: other\n", named: "custom.yaml", in: dir)
            let config = try ConfigurationLoader(environment: [:], explicitPath: path, workingDirectory: "/").load()
            #expect(config.string(.sampleStanza) == "other")
            #expect(config.entry(.sampleStanza)?.source == .file(path: path, line: 2))

            let relative = try ConfigurationLoader(environment: [:], explicitPath: "custom.yaml", workingDirectory: dir).load()
            #expect(relative.file == path)

            let error = #expect(throws: ConfigurationError.self) {
                try ConfigurationLoader(environment: [:], explicitPath: "\(dir)/missing.yaml", workingDirectory: dir).load()
            }
            #expect(error?.description.contains("missing.yaml does not exist") == true)
            #expect(error?.exitStatus == .usage)
        }
    }

    @Test("an unknown key is rejected with file:line and the known keys as a hint")
    func unknownKey() throws {
        try withTemporaryDirectory { dir in
            let path = try writeFile("dsn: host=h\n\nmigrations:\n  dirr: x\n", named: "nfldb.yaml", in: dir)
            let error = #expect(throws: ConfigurationError.self) {
                try ConfigurationLoader(environment: [:], workingDirectory: dir).load()
            }
            let text = try #require(error).description
            #expect(text.hasPrefix("\(path):4: unknown key 'migrations.dirr'"))
            #expect(text.contains("HINT: Known keys here:"))
            #expect(text.contains("migrations.dir"))
            #expect(error?.exitStatus == .usage)

            try writeFile("connect_timeout: 5s\ncolour: blue\n", named: "nfldb.yaml", in: dir)
            let topLevel = #expect(throws: ConfigurationError.self) {
                try ConfigurationLoader(environment: [:], workingDirectory: dir).load()
            }
            #expect(topLevel?.description.hasPrefix("\(path):2: unknown key 'colour'") == true)
        }
    }

    @Test("pattern keys (health.checks.*.warning) are accepted and typed")
    func patternKeys() throws {
        try withTemporaryDirectory { dir in
            try writeFile("health:\n  checks:\n    connections:\n      warning: 80\n      enabled: yes\n", named: "nfldb.yaml", in: dir)
            let config = try ConfigurationLoader(environment: [:], workingDirectory: dir).load()
            #expect(config.number("health.checks.connections.warning") == 80)

            try writeFile("health:\n  checks:\n    connections:\n      warning: lots\n", named: "nfldb.yaml", in: dir)
            let error = #expect(throws: ConfigurationError.self) {
                try ConfigurationLoader(environment: [:], workingDirectory: dir).load()
            }
            #expect(error?.description.contains("'lots' must be a finite number ≥ 0") == true)
        }
    }

    @Test("a dsn with a password in the file is rejected without echoing the password", arguments: [
        "dsn: postgresql://etl:file-pw-4471@db.example/nfl",
        "dsn: host=db.example password=file-pw-4471 dbname=nfl",
        "dsn: \"host=db.example PASSWORD = 'file-pw-4471'\"",
    ])
    func dsnWithPassword(line: String) throws {
        try withTemporaryDirectory { dir in
            let path = try writeFile("connect_timeout: 5s\n" + line + "\n", named: "nfldb.yaml", in: dir)
            let error = #expect(throws: ConfigurationError.self) {
                try ConfigurationLoader(environment: [:], workingDirectory: dir).load()
            }
            let text = try #require(error).description
            #expect(text.hasPrefix("\(path):2: dsn in the config file contains a password"))
            #expect(text.contains("password_file"))
            #expect(!text.contains("file-pw-4471"))
        }
    }

    @Test("a dsn without a password in the file is fine")
    func dsnWithoutPassword() throws {
        try withTemporaryDirectory { dir in
            try writeFile("dsn: postgresql://etl@db.example/nfl\npassword_env: NFL_PW\n", named: "nfldb.yaml", in: dir)
            let config = try ConfigurationLoader(environment: ["NFL_PW": "env-pw-9912"], workingDirectory: dir).load()
            #expect(config.string(.dsn) == "postgresql://etl@db.example/nfl")
            #expect(try config.password() == "env-pw-9912")
        }
    }

    @Test("a password key anywhere in the file is rejected")
    func passwordKey() throws {
        try withTemporaryDirectory { dir in
            let path = try writeFile("password: hunter-77\n", named: "nfldb.yaml", in: dir)
            let error = #expect(throws: ConfigurationError.self) {
                try ConfigurationLoader(environment: [:], workingDirectory: dir).load()
            }
            #expect(error?.description.hasPrefix("\(path):1: 'password' would put a secret in the config file") == true)
        }
    }

    @Test("a bad duration is rejected from the file (file:line) and from the environment (variable name)")
    func badDuration() throws {
        try withTemporaryDirectory { dir in
            let path = try writeFile("migrations:\n  lock_timeout: soon\n", named: "nfldb.yaml", in: dir)
            let fromFile = #expect(throws: ConfigurationError.self) {
                try ConfigurationLoader(environment: [:], workingDirectory: dir).load()
            }
            let text = try #require(fromFile).description
            #expect(text.hasPrefix("\(path):2: migrations.lock_timeout: 'soon' is not a duration"))
            #expect(text.contains("HINT: Use a value such as 500ms, 5s, 10min or 2h."))

            try FileManager.default.removeItem(atPath: path)
            let fromEnv = #expect(throws: ConfigurationError.self) {
                try ConfigurationLoader(environment: ["NFLDB_CONNECT_TIMEOUT": "10 parsecs"], workingDirectory: dir).load()
            }
            #expect(fromEnv?.description.hasPrefix("env NFLDB_CONNECT_TIMEOUT: connect_timeout: '10 parsecs' is not a duration") == true)

            let fromFlag = #expect(throws: ConfigurationError.self) {
                try ConfigurationLoader(
                    environment: [:], flags: ["log.format": (value: "xml", flag: "--log-format")], workingDirectory: dir
                ).load()
            }
            #expect(fromFlag?.description.contains("flag --log-format: log.format: 'xml' is not one of text, json") == true)
        }
    }

    @Test("an integer below its minimum is refused with its source and the fix; at the minimum it is taken")
    func integerMinimum() throws {
        try withTemporaryDirectory { dir in
            // A negative integer setting is refused by the loader itself, at its line.
            let negative = try writeFile("migrations:\n  lock_retries: -1\n", named: "nfldb.yaml", in: dir)
            let refusedAtLoad = #expect(throws: ConfigurationError.self) { try ConfigurationLoader(environment: [:], workingDirectory: dir).load() }
            #expect(refusedAtLoad?.description.hasPrefix("\(negative):2: migrations.lock_retries: -1 is negative") == true, "\(String(describing: refusedAtLoad))")
            let path = try writeFile("migrations:\n  lock_retries: 0\n", named: "nfldb.yaml", in: dir)
            let config = try ConfigurationLoader(environment: [:], workingDirectory: dir).load()
            #expect(try config.integer(.migrationsRetries) == 0, "without a minimum the value is taken as written")
            let refused = #expect(throws: ConfigurationError.self) { try config.integer(.migrationsRetries, atLeast: 1) }
            #expect(refused?.description.hasPrefix("\(path):2: migrations.lock_retries: 0 is below its minimum 1") == true, "\(String(describing: refused))")
            #expect(refused?.description.contains("HINT: Set it to 1 or more, or leave it out for the default.") == true)
            #expect(refused?.exitStatus == .usage)
            let fromEnv = try ConfigurationLoader(environment: ["NFLDB_MIGRATIONS_LOCK_RETRIES": "0"], workingDirectory: dir).load()
            #expect(try fromEnv.integer(.migrationsRetries, atLeast: 0) == 0)
            #expect(throws: ConfigurationError.self) { try fromEnv.integer(.migrationsRetries, atLeast: 1) }
        }
    }

    @Test("invalid YAML names the position")
    func invalidYAML() throws {
        try withTemporaryDirectory { dir in
            try writeFile("dsn: host=h\nmigrations: [unclosed\n", named: "nfldb.yaml", in: dir)
            let error = #expect(throws: ConfigurationError.self) {
                try ConfigurationLoader(environment: [:], workingDirectory: dir).load()
            }
            #expect(error?.description.contains("invalid YAML: line") == true)
        }
    }

    @Test("list keys take a YAML list or a comma-separated env value")
    func listKeys() throws {
        try withTemporaryDirectory { dir in
            try writeFile("audit:\n  tables:\n    - games\n    - plays\n", named: "nfldb.yaml", in: dir)
            let config = try ConfigurationLoader(environment: [:], workingDirectory: dir).load()
            #expect(config.list(.sampleTables) == ["games", "plays"])
            let env = try ConfigurationLoader(environment: ["NFLDB_AUDIT_TABLES": "games, teams"], workingDirectory: dir).load()
            #expect(env.list(.sampleTables) == ["games", "teams"])
        }
    }

    @Test("password_env and password_file resolve and are checked")
    func passwordSources() throws {
        try withTemporaryDirectory { dir in
            let file = try writeFile("from-file-pw-31\nsecond line ignored\n", named: "pw", in: dir)
            let fromFile = try ConfigurationLoader(
                environment: [:], flags: ["password_file": (value: file, flag: "--password-file")], workingDirectory: dir
            ).load()
            // password_file follows the file: rule: group or world access is refused (libpq's .pgpass rule),
            // with the chmod to run, and the password is not in the message.
            for mode: mode_t in [0o644, 0o640, 0o604] {
                chmod(file, mode)
                let refused = #expect(throws: ConfigurationError.self) { try fromFile.password() }
                let text = refused?.description ?? ""
                #expect(text.contains("password_file") && text.contains(file) && text.contains("group or world access"), "\(text)")
                #expect(text.contains("chmod 0600 \(file)"))
                #expect(!text.contains("from-file-pw-31"))
            }
            chmod(file, 0o600)
            #expect(try fromFile.password() == "from-file-pw-31")
            chmod(file, 0o400)
            #expect(try fromFile.password() == "from-file-pw-31")
            // What is wrong with the path is named, with a fix that fits it (no chmod for a directory or /dev/null).
            for (path, expected, hint) in [(dir + "/missing", "cannot read \(dir)/missing: No such file or directory", "install -m 0600 /dev/null"),
                                           (dir, "\(dir) is a directory, not a regular file", "Point the reference at a regular file"),
                                           ("/dev/null", "/dev/null is a device or socket, not a regular file", "Point the reference at a regular file")] {
                let config = try ConfigurationLoader(
                    environment: [:], flags: ["password_file": (value: path, flag: "--password-file")], workingDirectory: dir).load()
                let refused = #expect(throws: ConfigurationError.self) { try config.password() }
                let text = refused?.description ?? ""
                #expect(text.contains(expected) && text.contains(hint) && !text.contains("chmod"), "\(text)")
            }

            // password_env goes through the same resolver: the value is registered with the redactor.
            let fromEnv = try ConfigurationLoader(environment: ["NFLDB_PASSWORD_ENV": "OLD_SPELLING_PW", "OLD_SPELLING_PW": "env-pw-old-5521"],
                                                  workingDirectory: dir).load()
            #expect(try fromEnv.password() == "env-pw-old-5521")
            #expect(SecretRedactor.shared.redact("x env-pw-old-5521 y") == "x \(SecretRedactor.mask) y")

            let missingEnv = try ConfigurationLoader(environment: ["NFLDB_PASSWORD_ENV": "NOT_SET_ANYWHERE"], workingDirectory: dir).load()
            let error = #expect(throws: ConfigurationError.self) { try missingEnv.password() }
            #expect(error?.description.contains("NOT_SET_ANYWHERE") == true)

            let none = try ConfigurationLoader(environment: [:], workingDirectory: dir).load()
            #expect(try none.password() == nil)
        }
    }

    @Test("ConfigKey derives environment variable names and matches patterns")
    func configKeys() {
        #expect(ConfigKey.migrationsLockTimeout.environmentVariable == "NFLDB_MIGRATIONS_LOCK_TIMEOUT")
        #expect(ConfigKey.dsn.extraEnvironment == ["DATABASE_URL"])
        #expect(ConfigKey.sampleWarning.environmentVariable == nil)
        #expect(ConfigKey.sampleRecords.environmentVariable == nil)
        #expect(ConfigKey.sampleWarning.matches("health.checks.replication_lag.warning"))
        #expect(!ConfigKey.sampleWarning.matches("health.checks.warning"))
        #expect(ConfigKey.migrationsLockTimeout.leafName == "lock_timeout")
        #expect(ConfigKey.connectTimeout.defaultDuration == .seconds(10))
        #expect(Set(ConfigKey.global.map(\.name)).count == ConfigKey.global.count, "key names are unique")
    }

    @Test("a record-list key: mappings with file:line, inline secrets refused anywhere, unknown fields named")
    func recordKeys() throws {
        try withTemporaryDirectory { dir in
            let path = try writeFile("hooks:\n  - name: a\n    url_env: HOOK_A\n  - {url_file: /run/b}\n", named: "nfldb.yaml", in: dir)
            let config = try ConfigurationLoader(environment: [:], workingDirectory: dir).load()
            let records = config.records(.sampleRecords)
            #expect(records.count == 2)
            #expect(records.first?.fields == ["name": "a", "url_env": "HOOK_A"])
            #expect(records.first?.source == .file(path: path, line: 2))
            #expect(records.last?.index == 1)
            #expect(records.last?.source == .file(path: path, line: 4))

            try writeFile("hooks:\n  - name: a\n    url: https://example/inline-secret-5\n", named: "nfldb.yaml", in: dir)
            let inline = #expect(throws: ConfigurationError.self) {
                try ConfigurationLoader(environment: [:], workingDirectory: dir).load()
            }
            let text = try #require(inline).description
            #expect(text.hasPrefix("\(path):3: hooks[0].url would put a secret in the config file"))
            #expect(text.contains("url_env"))
            #expect(!text.contains("inline-secret-5"))

            try writeFile("migrations:\n  url: https://example/inline-secret-6\n", named: "nfldb.yaml", in: dir)
            let elsewhere = #expect(throws: ConfigurationError.self) {
                try ConfigurationLoader(environment: [:], workingDirectory: dir).load()
            }
            #expect(elsewhere?.description.hasPrefix("\(path):2: 'migrations.url' would put a secret in the config file") == true)

            try writeFile("hooks:\n  - colour: blue\n", named: "nfldb.yaml", in: dir)
            let unknown = #expect(throws: ConfigurationError.self) {
                try ConfigurationLoader(environment: [:], workingDirectory: dir).load()
            }
            #expect(unknown?.description.hasPrefix("\(path):2: unknown key 'hooks[0].colour'") == true)

            try writeFile("hooks: yes\n", named: "nfldb.yaml", in: dir)
            let shape = #expect(throws: ConfigurationError.self) {
                try ConfigurationLoader(environment: [:], workingDirectory: dir).load()
            }
            #expect(shape?.description.contains("'hooks' must be a list of mappings") == true)
        }
    }

    @Test("loading registers the secrets it resolves: the DSN's password and PGPASSWORD")
    func loaderRegistersSecrets() throws {
        try withTemporaryDirectory { dir in
            _ = try ConfigurationLoader(
                environment: ["NFLDB_DSN": "host=db password=loader-dsn-pw-5150 dbname=nfl", "PGPASSWORD": "loader-pg-pw-6160"], workingDirectory: dir
            ).load()
            #expect(SecretRedactor.shared.redact("a loader-dsn-pw-5150 b loader-pg-pw-6160") == "a \(SecretRedactor.mask) b \(SecretRedactor.mask)")
        }
    }

    @Test("typed accessors fall back to the key's default when no entry exists")
    func accessorDefaults() throws {
        let empty = Configuration(keys: ConfigKey.sample, entries: [:])
        #expect(try empty.duration(.migrationsLockWait) == .seconds(300))
        #expect(try empty.integer(.migrationsRetries) == 3)
        #expect(empty.string(.sampleStanza) == "nfldb")
        #expect(empty.entry(.sampleStanza) == nil, "entry() still says nothing was configured")
        #expect(empty.string(.sampleConfig) == nil)
    }
}
