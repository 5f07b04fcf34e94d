import Foundation
import NFLDBCore
import NFLDBMigrations
import Testing

/// `migrations.*`: declared and decoded by NFLDBMigrations; defaults written once, in the keys.
@Suite("Migrations configuration")
struct MigrationsConfigTests {
    @Test("the section decodes with the keys' defaults, which MigratorSettings() shares; set values win")
    func decode() throws {
        let empty = try MigrationsConfig(configuration: Configuration(keys: ConfigKey.global + MigrationsConfig.keys, entries: [:]))
        #expect(empty.directory == "migrations")
        #expect(empty.settings.lockTimeout == .seconds(5))
        #expect(empty.settings.lockWait == .seconds(300))
        #expect(empty.settings.lockRetries == 3)
        #expect(empty.settings.statementTimeout == nil, "0 means none")
        let plain = MigratorSettings()
        #expect(plain.lockTimeout == empty.settings.lockTimeout && plain.lockWait == empty.settings.lockWait
            && plain.lockRetries == empty.settings.lockRetries)

        let entries = [
            "migrations.lock_timeout": ConfigEntry(path: "migrations.lock_timeout", value: .scalar("750ms"), source: .environment("NFLDB_MIGRATIONS_LOCK_TIMEOUT")),
            "migrations.statement_timeout": ConfigEntry(path: "migrations.statement_timeout", value: .scalar("10min"), source: .defaultValue),
        ]
        let set = try MigrationsConfig(configuration: Configuration(keys: MigrationsConfig.keys, entries: entries))
        #expect(set.settings.lockTimeout == .milliseconds(750))
        #expect(set.settings.statementTimeout == .seconds(600))
    }
}
