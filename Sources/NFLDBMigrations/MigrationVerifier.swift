import Foundation
import Logging
import NFLDBCore
import NFLDBPostgres

/// `nfldb migrate verify`: proves every down undoes its up, on a scratch database.
///
/// For each migration in order: dump the schema, apply up, apply down, dump again and compare
/// (a difference names that migration), then apply up again. Finally compare the schema after
/// the first full up with the one after a full down + up. Dumps are `pg_dump --schema-only`,
/// normalized (comments, SET lines and blank lines dropped; the `nfldb` schema excluded).
public struct MigrationVerifier {
    public struct Report: Sendable, Codable {
        public struct Problem: Sendable, Codable {
            public let version: Int64
            public let name: String
            public let difference: String
            /// True when the up or down failed on the scratch database (no schema difference to show).
            public var failed = false
        }

        public var scratchDatabase: String
        public var migrationsChecked = 0
        public var problems: [Problem] = []
        public var roundTripIdentical = true
        public var roundTripDifference: String?

        public var passed: Bool { problems.isEmpty && roundTripIdentical }
    }

    public let migrations: [Migration]
    public let scratch: ConnectionOptions
    public let scratchName: String
    public let settings: MigratorSettings
    public let context: MigrationContext
    public let logger: Logger
    public let progress: (String) -> Void

    public init(
        migrations: [Migration], scratch: ConnectionOptions, scratchName: String, settings: MigratorSettings,
        context: MigrationContext, logger: Logger, progress: @escaping (String) -> Void = { _ in }
    ) {
        self.migrations = migrations
        self.scratch = scratch
        self.scratchName = scratchName
        self.settings = settings
        self.context = context
        self.logger = logger
        self.progress = progress
    }

    public func run() throws -> Report {
        var report = Report(scratchDatabase: scratchName)
        let connection = try PostgresConnection.connect(scratch, logger: logger)
        defer { connection.close() }
        if try MigrationLedger.exists(connection), !(try MigrationLedger.rows(connection).isEmpty) {
            throw MigrationError(
                "the scratch database \(connection.target) already has migrations applied", hint: "Verify needs an empty scratch database.",
                exitStatus: .usage)
        }
        let migrator = Migrator(connection: connection, migrations: migrations, settings: settings, context: context, logger: logger)
        for migration in migrations.sorted(by: { $0.version < $1.version }) {
            do {
                let before = try dumpSchema()
                _ = try migrator.up(to: migration.version)
                _ = try migrator.down(count: 1)
                let after = try dumpSchema()
                if before != after {
                    report.problems.append(.init(
                        version: migration.version, name: migration.name,
                        difference: lineDiff(old: before, new: after, oldLabel: "schema before \(migration.id) up", newLabel: "schema after its up + down")))
                    progress("\(migration.id): down does NOT undo up")
                    // The scratch schema has diverged: rebuild it as if this down were right, and go on.
                    try rebuild(connection, migrator, upTo: migration.version)
                    continue
                }
                progress("\(migration.id): up + down restores the schema")
                _ = try migrator.up(to: migration.version)
                report.migrationsChecked += 1
            } catch {
                report.problems.append(.init(version: migration.version, name: migration.name, difference: Self.scratchFailure(error), failed: true))
                progress("\(migration.id): failed during verify")
                do {
                    try rebuild(connection, migrator, upTo: migration.version)
                } catch {
                    // Later migrations depend on this one; there is nothing sound left to check.
                    let reason = (error as? any NFLDBError)?.diagnostic.summary ?? "\(error)"
                    progress("could not rebuild the scratch schema up to \(migration.id) (\(reason)); later migrations not checked")
                    report.roundTripIdentical = false
                    report.roundTripDifference = "not checked: the scratch schema could not be rebuilt after \(migration.id) failed"
                    return report
                }
            }
        }
        do {
            let first = try dumpSchema()
            let applied = try MigrationLedger.rows(connection).filter { !$0.isBaseline }.count
            if applied > 0 { _ = try migrator.down(count: applied) }
            _ = try migrator.up()
            let second = try dumpSchema()
            if first != second {
                report.roundTripIdentical = false
                report.roundTripDifference = lineDiff(old: first, new: second, oldLabel: "schema after up all", newLabel: "schema after down all + up all")
            }
        } catch {
            report.roundTripIdentical = false
            report.roundTripDifference = Self.scratchFailure(error)
        }
        return report
    }

    /// A failure on the scratch database, without the error's hint: its hints (`migrate down 1`,
    /// `resolve … --force`) are for a real database and would act on the wrong one if followed there.
    static func scratchFailure(_ error: any Error) -> String {
        guard let error = error as? any NFLDBError else { return "failed on the scratch database: \(error)" }
        let diagnostic = error.diagnostic
        return "failed on the scratch database: \(diagnostic.summary)" + (diagnostic.detail.map { "\n\($0)" } ?? "")
            + "\nFix the migration file and run `nfldb migrate verify` again (the real database was not touched)."
    }

    /// Empties the scratch database (every non-system schema) and applies the migrations up to `version`.
    func rebuild(_ connection: PostgresConnection, _ migrator: Migrator, upTo version: Int64) throws {
        let schemas = try connection.query("""
            SELECT nspname FROM pg_namespace
            WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema' ORDER BY 1
            """).rows.map { try $0.decode("nspname", as: String.self) }
        try connection.withTransaction {
            for schema in schemas { try connection.execute("DROP SCHEMA \(identifier: schema) CASCADE") }
            try connection.execute("CREATE SCHEMA public")
        }
        _ = try migrator.up(to: version)
    }

    func dumpSchema() throws -> String {
        try SchemaDump.dump(scratch)
    }
}

/// `pg_dump --schema-only`, normalized for comparison. The password goes to the child through
/// `PGPASSWORD` in its environment, never on its command line.
public enum SchemaDump {
    public static func dump(_ options: ConnectionOptions, excludeSchemas: [String] = ["nfldb"]) throws -> String {
        let pgDump = try ProcessRunner.resolveExecutable("pg_dump")
        let (conninfo, environment) = try options.forSubprocess()
        var arguments = ["--schema-only", "--no-owner", "--no-privileges", "--no-comments"]
        for schema in excludeSchemas { arguments += ["--exclude-schema", schema] }
        arguments += ["--dbname", conninfo]
        let result = try ProcessRunner().run(pgDump, arguments, environment: environment, timeout: .seconds(300))
        guard result.succeeded else {
            throw MigrationError("pg_dump --schema-only failed (exit \(result.status))", detail: result.stderrTail(),
                                 hint: "pg_dump must be at least the server's major version (apt-get install postgresql-client-15).")
        }
        return normalize(result.standardOutput)
    }

    public static func normalize(_ dump: String) -> String {
        dump.split(separator: "\n").filter { line in
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            return !trimmed.isEmpty && !trimmed.hasPrefix("--") && !trimmed.hasPrefix("SET ")
                && !trimmed.hasPrefix("SELECT pg_catalog.set_config") && !trimmed.hasPrefix("\\")
        }.joined(separator: "\n")
    }
}
