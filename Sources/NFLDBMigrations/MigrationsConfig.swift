import Foundation
import NFLDBCore

extension ConfigKey {
    public static let migrationsDir = ConfigKey("migrations.dir", .path, default: "migrations", help: "directory of NNNN_name.up.sql/.down.sql files")
    public static let migrationsLockTimeout = ConfigKey("migrations.lock_timeout", .duration, default: "5s", help: "lock_timeout for each migration")
    public static let migrationsLockWait = ConfigKey("migrations.lock_wait", .duration, default: "5min", help: "how long a runner waits for another runner's lock")
    public static let migrationsStatementTimeout = ConfigKey(
        "migrations.statement_timeout", .duration, default: "0", help: "statement_timeout for each migration (0 = none)")
    public static let migrationsRetries = ConfigKey("migrations.lock_retries", .integer, default: "3", help: "retries when lock_timeout fires")
}

/// The `migrations:` section of `nfldb.yaml`: its keys and their typed values.
public struct MigrationsConfig: Sendable {
    /// The keys this module reads; the executable adds them to the loader's list.
    public static let keys: [ConfigKey] = [
        .migrationsDir, .migrationsLockTimeout, .migrationsLockWait, .migrationsStatementTimeout, .migrationsRetries,
    ]

    public var directory: String
    public var settings: MigratorSettings

    /// Decodes the section (defaults come from the keys). `NFLDB_MIGRATIONS_RETRY_BACKOFF` (tests
    /// only, no config key) shortens the first retry backoff.
    public init(configuration: Configuration) throws {
        directory = configuration.defaulted(.migrationsDir)
        var settings = MigratorSettings()
        if let value = try configuration.duration(.migrationsLockTimeout, postgresTimeout: true) { settings.lockTimeout = value }
        if let value = try configuration.duration(.migrationsLockWait) { settings.lockWait = value }
        let statement = try configuration.duration(.migrationsStatementTimeout, postgresTimeout: true)
        settings.statementTimeout = statement == .zero ? nil : statement
        if let value = try configuration.integer(.migrationsRetries, atLeast: 0) { settings.lockRetries = value }
        if let backoff = configuration.environment["NFLDB_MIGRATIONS_RETRY_BACKOFF"].flatMap(DurationParser.parse) {
            settings.retryBackoff = backoff
        }
        self.settings = settings
    }
}
