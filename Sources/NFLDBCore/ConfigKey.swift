import Foundation
/// One setting nfldb understands, with its type, default and help.
///
/// The whole table lives in ``ConfigKey/all``; capabilities add their keys there. A key's name is
/// its dotted path in `nfldb.yaml` (`migrations.dir`), its environment variable is derived from it
/// (`NFLDB_MIGRATIONS_DIR`), and a `*` segment matches any name (`health.checks.*.warning`).
public struct ConfigKey: Sendable, Hashable {
    public enum Kind: Sendable, Hashable {
        case string
        case path
        case duration
        case integer
        case number
        case boolean
        case stringList
        case choice([String])
    }

    public let name: String
    public let kind: Kind
    public let defaultValue: String?
    public let help: String
    /// Extra environment variables read after the derived one (`DATABASE_URL` for `dsn`).
    public let extraEnvironment: [String]

    public init(_ name: String, _ kind: Kind, default defaultValue: String? = nil, env extraEnvironment: [String] = [], help: String) {
        self.name = name
        self.kind = kind
        self.defaultValue = defaultValue
        self.help = help
        self.extraEnvironment = extraEnvironment
    }

    /// `NFLDB_` plus the path upper-cased with `.` as `_`; nil for pattern keys.
    public var environmentVariable: String? {
        guard !name.contains("*") else { return nil }
        return "NFLDB_" + name.uppercased().replacingOccurrences(of: ".", with: "_")
    }

    public var isPattern: Bool { name.contains("*") }

    /// Whether a concrete dotted path matches this key (a `*` segment matches one path segment).
    public func matches(_ path: String) -> Bool {
        let pattern = name.split(separator: ".")
        let parts = path.split(separator: ".")
        guard pattern.count == parts.count else { return false }
        return zip(pattern, parts).allSatisfy { $0 == "*" || $0 == $1 }
    }
}

extension ConfigKey {
    public static let dsn = ConfigKey(
        "dsn", .string, env: ["DATABASE_URL"],
        help: "conninfo string or postgresql:// URL; unset means libpq's PG* variables, .pgpass and pg_service.conf")
    public static let passwordFile = ConfigKey("password_file", .path, help: "file whose first line is the database password")
    public static let passwordEnv = ConfigKey("password_env", .string, help: "name of an environment variable holding the database password")
    public static let connectTimeout = ConfigKey("connect_timeout", .duration, default: "10s", help: "libpq connect_timeout")
    public static let logFormat = ConfigKey("log.format", .choice(["text", "json"]), default: "text", help: "log line format on stderr")
    public static let logLevel = ConfigKey(
        "log.level", .choice(["trace", "debug", "info", "notice", "warning", "error", "critical"]), default: "info",
        help: "lowest log level printed")
    public static let migrationsDir = ConfigKey("migrations.dir", .path, default: "migrations", help: "directory of NNNN_name.up.sql/.down.sql files")
    public static let migrationsLockTimeout = ConfigKey("migrations.lock_timeout", .duration, default: "5s", help: "lock_timeout for each migration")
    public static let migrationsLockWait = ConfigKey("migrations.lock_wait", .duration, default: "5min", help: "how long a runner waits for another runner's lock")
    public static let migrationsStatementTimeout = ConfigKey(
        "migrations.statement_timeout", .duration, default: "0", help: "statement_timeout for each migration (0 = none)")
    public static let migrationsRetries = ConfigKey("migrations.lock_retries", .integer, default: "3", help: "retries when lock_timeout fires")
    public static let rolesSpec = ConfigKey("roles.spec", .path, default: "roles", help: "declarative role spec file or directory")
    public static let auditTables = ConfigKey("audit.tables", .stringList, help: "tables `nfldb audit install --all` audits")
    public static let backupStanza = ConfigKey("backup.stanza", .string, default: "nfldb", help: "pgBackRest stanza")
    public static let backupConfig = ConfigKey("backup.config", .path, help: "pgbackrest.conf path passed as --config")
    public static let backupRepoPath = ConfigKey("backup.repo_path", .path, help: "pgBackRest repo1-path")
    public static let postgresBinDir = ConfigKey("postgres.bin_dir", .path, help: "directory with initdb/pg_ctl (default: PATH, then /usr/lib/postgresql/<newest>/bin)")
    public static let postgresOSUser = ConfigKey(
        "postgres.os_user", .string, default: "postgres",
        help: "OS user that runs initdb/pg_ctl/pgbackrest when nfldb runs as root")
    public static let sandboxDir = ConfigKey("sandbox.dir", .path, default: ".nfldb/sandbox", help: "state directory of `nfldb sandbox`")
    public static let healthWarning = ConfigKey("health.checks.*.warning", .number, help: "warning threshold of a health check")
    public static let healthCritical = ConfigKey("health.checks.*.critical", .number, help: "critical threshold of a health check")
    public static let healthEnabled = ConfigKey("health.checks.*.enabled", .boolean, help: "whether a health check runs")

    /// Every key nfldb reads; `nfldb config show` prints them in this order.
    public static let all: [ConfigKey] = [
        .dsn, .passwordFile, .passwordEnv, .connectTimeout, .logFormat, .logLevel,
        .migrationsDir, .migrationsLockTimeout, .migrationsLockWait, .migrationsStatementTimeout, .migrationsRetries,
        .rolesSpec, .auditTables, .backupStanza, .backupConfig, .backupRepoPath,
        .postgresBinDir, .postgresOSUser, .sandboxDir,
        .healthWarning, .healthCritical, .healthEnabled,
    ]
}
