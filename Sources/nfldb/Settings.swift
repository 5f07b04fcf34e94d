import NFLDBAlerting
import NFLDBAudit
import NFLDBBackup
import NFLDBCore
import NFLDBETL
import NFLDBHealth
import NFLDBMigrations
import NFLDBQueue
import NFLDBRoles
import NFLDBSandbox
import NFLDBSecurity

/// Every key nfldb understands, assembled from the modules that own them (Core: connection and
/// logging; each capability: its own section). `config show` prints them in this order.
enum Settings {
    static let keys: [ConfigKey] = ConfigKey.global + MigrationsConfig.keys + RolesConfig.keys + AuditConfig.keys
        + BackupConfig.keys + SandboxConfig.keys + HealthSettings.keys + AlertConfig.keys + SecurityConfig.keys + ETLConfig.keys + QueueConfig.keys
        + QueueHealthProbe.keys

    /// Decodes every module's section once, so a bad value (an `alerts:` entry without a type, …)
    /// fails every command at start-up with its `file:line`, as a bad key does.
    static func check(_ configuration: Configuration) throws {
        _ = try MigrationsConfig(configuration: configuration)
        _ = try BackupConfig(configuration: configuration)
        _ = try HealthSettings(configuration: configuration)
        _ = try AlertConfig(configuration: configuration)
        _ = try SecurityConfig(configuration: configuration)
        _ = try ETLConfig(configuration: configuration)
        _ = try QueueConfig(configuration: configuration, resolveSecrets: false)
    }
}
