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
        "log.level", .choice(["trace", "debug", "info", "notice", "warning", "error", "critical"]),
        help: "lowest log level printed (default: info with log.format json, warning with text)")
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
    public static let backupTables = ConfigKey(
        "backup.tables", .stringList, help: "schema.table names counted in the backup manifest besides every table in schema nfl")
    public static let backupScratchDir = ConfigKey(
        "backup.scratch_dir", .path, help: "where `backup verify` restores: nfldb-verify-<random> in it, removed afterwards (default /var/tmp); with reuse_scratch nfldb-verify-<stanza>, kept (default /var/lib/nfldb)")
    public static let backupReuseScratch = ConfigKey(
        "backup.verify.reuse_scratch", .boolean, default: "false",
        help: "keep the verify copy in <scratch_dir>/nfldb-verify-<stanza> and restore into it with --delta next time")
    public static let backupAmcheckJobs = ConfigKey(
        "backup.verify.amcheck_jobs", .integer, help: "pg_amcheck --jobs for backup verify (default: CPUs, at most 8)")
    public static let backupRepoType = ConfigKey("backup.repo_type", .choice(["posix", "s3"]), default: "posix", help: "pgBackRest repo1-type")
    public static let backupS3Bucket = ConfigKey("backup.s3.bucket", .string, help: "repo1-s3-bucket (repo_type s3)")
    public static let backupS3Endpoint = ConfigKey("backup.s3.endpoint", .string, help: "repo1-s3-endpoint, e.g. s3.us-east-1.amazonaws.com")
    public static let backupS3Region = ConfigKey("backup.s3.region", .string, help: "repo1-s3-region")
    public static let backupS3URIStyle = ConfigKey("backup.s3.uri_style", .choice(["host", "path"]), default: "host", help: "repo1-s3-uri-style (path for MinIO)")
    public static let backupS3KeyEnv = ConfigKey(
        "backup.s3.key_env", .string, help: "environment variables holding the S3 key and secret, as KEY_VAR,SECRET_VAR (unset: IAM role)")
    public static let backupReferenceTables = ConfigKey(
        "backup.reference_tables", .stringList, default: "nfl.teams,nfl.stadiums",
        help: "schema.table names whose full content is checksummed in the manifest and compared by backup verify")
    public static let postgresBinDir = ConfigKey("postgres.bin_dir", .path, help: "directory with initdb/pg_ctl (default: PATH, then /usr/lib/postgresql/<newest>/bin)")
    public static let postgresOSUser = ConfigKey(
        "postgres.os_user", .string, default: "postgres",
        help: "OS user that runs initdb/pg_ctl/pgbackrest when nfldb runs as root")
    public static let sandboxDir = ConfigKey("sandbox.dir", .path, default: ".nfldb/sandbox", help: "state directory of `nfldb sandbox`")
    public static let healthWarning = ConfigKey("health.checks.*.warning", .number, help: "warning threshold of a health check")
    public static let healthCritical = ConfigKey("health.checks.*.critical", .number, help: "critical threshold of a health check")
    public static let healthEnabled = ConfigKey("health.checks.*.enabled", .boolean, help: "whether a health check runs")
    public static let healthConsecutive = ConfigKey(
        "health.checks.*.consecutive", .integer, help: "consecutive WARNING/CRITICAL runs before a check alerts (default health.alert.consecutive)")
    public static let healthCheckStatementTimeout = ConfigKey(
        "health.checks.*.statement_timeout", .duration, help: "statement_timeout for one check's queries (default health.statement_timeout)")
    public static let healthStatementTimeout = ConfigKey("health.statement_timeout", .duration, default: "5s", help: "statement_timeout of every health query")
    public static let healthLockTimeout = ConfigKey("health.lock_timeout", .duration, default: "2s", help: "lock_timeout of every health query")
    public static let healthTargetName = ConfigKey(
        "health.target_name", .string, help: "name of the primary target in alerts and dedup keys (default host:port/dbname)")
    public static let healthStateFile = ConfigKey(
        "health.state_file", .path, default: ".nfldb/health-state.json",
        help: "alert state kept between cron runs (use an absolute path in cron)")
    public static let healthAlertConsecutive = ConfigKey(
        "health.alert.consecutive", .integer, default: "2", help: "consecutive WARNING/CRITICAL runs before a check alerts")
    public static let healthAlertRepeat = ConfigKey(
        "health.alert.repeat_interval", .duration, default: "4h", help: "re-notify an unchanged open problem after this long")
    public static let healthAlertRetries = ConfigKey("health.alert.retries", .integer, default: "3", help: "delivery attempts per alert")
    public static let healthAlertBackoff = ConfigKey("health.alert.retry_backoff", .duration, default: "1s", help: "wait before the first retry (doubles)")
    public static let healthAlertTimeout = ConfigKey("health.alert.timeout", .duration, default: "10s", help: "HTTP timeout per delivery attempt")
    public static let healthIdleWarning = ConfigKey(
        "health.checks.connections.idle_in_transaction_warning", .duration, default: "5min",
        help: "connections: a session idle in transaction this long is a WARNING")
    public static let healthIdleCritical = ConfigKey(
        "health.checks.connections.idle_in_transaction_critical", .duration, default: "30min",
        help: "connections: a session idle in transaction this long is CRITICAL")
    public static let healthBloatMinSize = ConfigKey(
        "health.checks.bloat.min_size", .number, default: "104857600", help: "bloat: relations smaller than this many bytes are skipped")
    public static let healthBloatMinPercent = ConfigKey(
        "health.checks.bloat.min_percent", .number, default: "50", help: "bloat: only relations with at least this % estimated waste count")
    public static let healthVacuumGrace = ConfigKey(
        "health.checks.vacuum.grace", .duration, default: "1h", help: "vacuum: how long a table may stay above its autovacuum trigger")
    public static let healthVacuumMinRows = ConfigKey(
        "health.checks.vacuum.min_rows", .integer, default: "1000", help: "vacuum: ignore tables with fewer dead/modified rows")
    public static let healthReplicationStandbys = ConfigKey(
        "health.checks.replication.expected_standbys", .integer, help: "replication: standbys that must be streaming from the primary")
    public static let healthReplicationDelayWarning = ConfigKey(
        "health.checks.replication.delay_warning", .duration, default: "5min", help: "replication: standby replay delay WARNING")
    public static let healthReplicationDelayCritical = ConfigKey(
        "health.checks.replication.delay_critical", .duration, default: "30min", help: "replication: standby replay delay CRITICAL")
    public static let healthSlotWarning = ConfigKey(
        "health.checks.replication.slot_warning", .number, default: "1073741824", help: "replication: WAL bytes a slot may retain (WARNING)")
    public static let healthSlotCritical = ConfigKey(
        "health.checks.replication.slot_critical", .number, default: "10737418240", help: "replication: WAL bytes a slot may retain (CRITICAL)")
    public static let healthArchiveMaxAge = ConfigKey(
        "health.checks.archiving.max_age", .duration, default: "1h", help: "archiving: WAL waiting while nothing was archived this long is a WARNING")
    public static let healthSlowMinCalls = ConfigKey(
        "health.checks.slow_queries.min_calls", .integer, default: "5", help: "slow_queries: ignore statements called fewer times")
    public static let healthCacheMinBlocks = ConfigKey(
        "health.checks.cache_hit.min_blocks", .integer, default: "10000", help: "cache_hit: ignore databases with fewer block accesses")
    public static let healthVerifyWarning = ConfigKey(
        "health.checks.backups.verify_warning", .duration, default: "8d", help: "backups: last successful verification older than this is a WARNING")

    /// Every key nfldb reads; `nfldb config show` prints them in this order.
    public static let all: [ConfigKey] = [
        .dsn, .passwordFile, .passwordEnv, .connectTimeout, .logFormat, .logLevel,
        .migrationsDir, .migrationsLockTimeout, .migrationsLockWait, .migrationsStatementTimeout, .migrationsRetries,
        .rolesSpec, .auditTables, .backupStanza, .backupConfig, .backupRepoPath, .backupTables, .backupScratchDir, .backupReuseScratch, .backupAmcheckJobs, .backupReferenceTables,
        .backupRepoType, .backupS3Bucket, .backupS3Endpoint, .backupS3Region, .backupS3URIStyle, .backupS3KeyEnv,
        .postgresBinDir, .postgresOSUser, .sandboxDir,
        .healthWarning, .healthCritical, .healthEnabled,
        .healthConsecutive, .healthCheckStatementTimeout, .healthStatementTimeout, .healthLockTimeout, .healthTargetName,
        .healthStateFile, .healthAlertConsecutive, .healthAlertRepeat, .healthAlertRetries, .healthAlertBackoff, .healthAlertTimeout,
        .healthIdleWarning, .healthIdleCritical, .healthBloatMinSize, .healthBloatMinPercent, .healthVacuumGrace, .healthVacuumMinRows,
        .healthReplicationStandbys, .healthReplicationDelayWarning, .healthReplicationDelayCritical, .healthSlotWarning,
        .healthSlotCritical, .healthArchiveMaxAge, .healthSlowMinCalls, .healthCacheMinBlocks, .healthVerifyWarning,
    ]
}
