import ArgumentParser
import Foundation
import Synchronization
import Logging
import NFLDBCore
import NFLDBMigrations
import NFLDBPostgres

/// `nfldb migrate …`: versioned up/down migrations.
struct MigrateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Versioned up/down migrations that are safe in CI and reversible in an incident.",
        discussion: """
            Files: migrations/NNNN_snake_name.up.sql and .down.sql. History: nfldb.schema_migrations (with the down SQL as \
            applied) and nfldb.migration_events. Exit status: 0 ok (also when nothing was pending), 1 failure, 2 usage or \
            bad migration files; `status --exit-code` exits 3 when migrations are pending and 4 on drift or a dirty version.
            """,
        subcommands: [Up.self, Down.self, Status.self, History.self, Redo.self, Baseline.self, Resolve.self, Repair.self,
                      Verify.self, Lint.self, Create.self])
}

/// Options shared by the migrate subcommands.
struct MigrateOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Migrations directory (default: migrations.dir, ./migrations).", valueName: "path"))
    var dir: String?

    @Option(name: .customLong("lock-timeout"), help: ArgumentHelp("lock_timeout per migration (default 5s).", valueName: "duration"))
    var lockTimeout: String?

    @Option(name: .customLong("lock-wait"), help: ArgumentHelp("How long to wait for another runner (default 5min).", valueName: "duration"))
    var lockWait: String?

    @Option(help: "Output format: text or json.")
    var format: OutputFormat = .text
}

extension MigrateOptions {
    func directory(_ context: CommandContext) throws -> String {
        try dir ?? MigrationsConfig(configuration: context.configuration).directory
    }

    func load(_ context: CommandContext, checkingTransactionControl: Bool = true) throws -> [Migration] {
        try MigrationDirectory(path: directory(context)).load(checkingTransactionControl: checkingTransactionControl)
    }

    func settings(_ context: CommandContext) throws -> MigratorSettings {
        var settings = try MigrationsConfig(configuration: context.configuration).settings
        func duration(_ flag: String, _ name: String) throws -> Duration {
            guard let value = DurationParser.parse(flag) else { throw ValidationError("\(name) '\(flag)' is not a duration (e.g. 5s, 2min)") }
            return value
        }
        if let lockTimeout {
            settings.lockTimeout = try duration(lockTimeout, "--lock-timeout")
            if let problem = DurationParser.postgresTimeoutProblem(settings.lockTimeout) {
                throw ValidationError("--lock-timeout '\(lockTimeout)' \(problem); give 24d or less (0 turns it off)")
            }
        }
        if let lockWait { settings.lockWait = try duration(lockWait, "--lock-wait") }
        return settings
    }

    /// - Parameter recordsCommit: the command writes history rows that carry the git commit (up,
    ///   redo, baseline); only then is `git rev-parse` run.
    func makeMigrator(
        _ context: CommandContext, settings: MigratorSettings? = nil, migrations: [Migration]? = nil, recordsCommit: Bool = false
    ) throws -> Migrator {
        // Transaction control is judged by the Migrator on the files it is about to run (pending ones,
        // redo's file), not on files already applied: an old applied file with a COMMIT must not make
        // the directory unusable. `verify`, which replays every file, loads with the check on.
        let files = try migrations ?? load(context, checkingTransactionControl: false)
        let connection = try context.connect()
        let migrationContext = try MigrationContext(
            nfldbVersion: NFLDBVersion.string, correlationID: context.correlationID,
            gitCommit: recordsCommit ? MigrationContext.gitCommit(for: directory(context)) : nil)
        let text = format == .text
        let resolved = try settings ?? self.settings(context)
        // In one transaction for the whole batch, a step that ran is not done until the batch commits.
        let batch = resolved.singleTransaction
        return Migrator(
            connection: connection, migrations: files, settings: resolved, context: migrationContext,
            logger: context.logger,
            progress: { event in
                MigrateInterrupt.shared.record(event)
                guard text else { return }
                switch event {
                case .waitingForLock(let holder):
                    context.say("waiting for another migration runner\(holder.map { " (\($0))" } ?? "") to release the lock…")
                case .starting(let id, let direction, let transactional):
                    if !context.quiet {
                        print("\(direction == "up" ? "applying" : "rolling back") \(id)\(transactional ? "" : " (no-transaction)") … ", terminator: "")
                        fflush(nil)
                    }
                case .finished(_, _, let ms):
                    context.say(batch ? String(format: "ran (%.1f ms; commits with the batch)", ms) : String(format: "ok (%.1f ms)", ms))
                case .retrying(let id, let attempt, let after, let blockers):
                    context.say("lock_timeout fired in \(id); retry \(attempt) in \(after)\(blockers.map { ". Blocking: \($0)" } ?? "")")
                case .warning(let text):
                    Self.warn([text])
                case .ownBlock:
                    break
                }
            })
    }

    /// `warning: …` lines on stderr (text output; JSON carries them in `warnings`).
    static func warn(_ messages: [String]) {
        messages.forEach { FileHandle.standardError.write(Data("warning: \($0)\n".utf8)) }
    }

    func printResult(_ result: MigrationRunResult, _ context: CommandContext, verb: String) throws {
        switch format {
        case .json:
            context.output(try JSONOutput.encode(result))
        case .text:
            if let sql = result.dryRunSQL {
                Self.warn(result.warnings)
                context.output(sql)
            } else if result.steps.isEmpty {
                context.say("nothing to do; database at version \(result.currentVersion.map(String.init) ?? "none")")
            } else {
                context.say("\(verb): \(result.steps.count) migration\(result.steps.count == 1 ? "" : "s"); database at version \(result.currentVersion.map(String.init) ?? "none")")
            }
        }
    }
}

extension MigrateCommand {
    struct Up: GlobalOptionsCommand {
        static let configuration = CommandConfiguration(
            abstract: "Apply pending migrations, each in its own transaction with its history row.",
            discussion: "Concurrent runners are serialized by an advisory lock; the others wait, then exit 0 with nothing to do.")
        @OptionGroup var global: GlobalOptions
        @ParentCommand var root: NFLDB
        @OptionGroup var options: MigrateOptions
        @Option(help: "Apply up to and including this version.") var to: Int64?
        @Flag(name: .customLong("dry-run"), help: "Print the exact SQL that would run, with transaction boundaries.") var dryRun = false
        @Flag(name: .customLong("single-transaction"), help: "Apply the whole batch atomically.") var singleTransaction = false
        @Flag(name: .customLong("allow-out-of-order"), help: "Apply pending versions older than the newest applied one.") var allowOutOfOrder = false

        static let commandPath = "migrate up"

        func run(_ context: CommandContext) throws {
            var settings = try options.settings(context)
            settings.singleTransaction = singleTransaction
            settings.allowOutOfOrder = allowOutOfOrder
            let migrator = try options.makeMigrator(context, settings: settings, recordsCommit: true)
            if !dryRun { MigrateInterrupt.install(singleTransaction: singleTransaction) }
            let result = try migrator.up(to: to, dryRun: dryRun)
            try options.printResult(result, context, verb: "applied")
            finished(context, "migrate up")
        }
    }

    struct Down: GlobalOptionsCommand {
        static let configuration = CommandConfiguration(
            abstract: "Roll back the newest N migrations (or all above --to) with the down SQL stored when they were applied.")
        @OptionGroup var global: GlobalOptions
        @ParentCommand var root: NFLDB
        @OptionGroup var options: MigrateOptions
        @Argument(help: "How many migrations to roll back.") var count: Int?
        @Option(help: "Roll back every migration above this version.") var to: Int64?
        @Flag(name: .customLong("dry-run"), help: "Print the exact SQL that would run.") var dryRun = false
        @Flag(name: .customLong("single-transaction"), help: "Roll back the whole batch atomically (all or nothing).") var singleTransaction = false

        func validate() throws {
            if count == nil && to == nil { throw ValidationError("give a count (`nfldb migrate down 1`) or --to VERSION") }
            if count != nil && to != nil { throw ValidationError("give either a count or --to, not both") }
        }

        static let commandPath = "migrate down"

        func run(_ context: CommandContext) throws {
            var settings = try options.settings(context)
            settings.singleTransaction = singleTransaction
            // down runs the stored down SQL: problems in the files are warnings here, not errors.
            let loaded = try MigrationDirectory(path: options.directory(context)).loadForRollback()
            if options.format == .text && !dryRun {
                MigrateOptions.warn(loaded.warnings)
            }
            let migrator = try options.makeMigrator(context, settings: settings, migrations: loaded.migrations)
            if !dryRun { MigrateInterrupt.install(singleTransaction: singleTransaction) }
            var result = try migrator.down(count: count, to: to, dryRun: dryRun)
            result.warnings = loaded.warnings + result.warnings
            try options.printResult(result, context, verb: "rolled back")
            finished(context, "migrate down")
        }
    }

    struct Status: GlobalOptionsCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show every version: state, applied_at, drift; with --exit-code, exit 3 if pending and 4 on drift or dirty.")
        @OptionGroup var global: GlobalOptions
        @ParentCommand var root: NFLDB
        @OptionGroup var options: MigrateOptions
        @Flag(name: .customLong("exit-code"), help: "Exit 3 when migrations are pending, 4 on drift or a dirty version.") var exitCode = false

        static let commandPath = "migrate status"

        func run(_ context: CommandContext) throws {
            let migrator = try options.makeMigrator(context)
            let status = try migrator.status()
            switch options.format {
            case .json:
                context.output(try JSONOutput.encode(status))
            case .text:
                let formatter = ISO8601DateFormatter()
                let rows = status.entries.map { entry -> [String] in
                    var flags: [String] = []
                    if entry.drift { flags.append("DRIFT (file changed after apply)") }
                    if entry.outOfOrder { flags.append("out of order") }
                    if entry.fileMissing { flags.append("file missing") }
                    if entry.downChanged { flags.append("down file changed") }
                    if let detail = entry.detail { flags.append(detail) }
                    return [String(format: "%04lld", entry.version), entry.name, entry.state.rawValue,
                            entry.appliedAt.map { formatter.string(from: $0) } ?? "-", flags.joined(separator: "; ")]
                }
                context.output(TextTable.render(header: ["version", "name", "state", "applied_at", "notes"], rows: rows))
                context.output("current version: \(status.currentVersion.map(String.init) ?? "none"); pending: \(status.pending.count); drift: \(status.drifted.count); dirty: \(status.dirty.count)")
                if !status.invalidIndexes.isEmpty {
                    context.output("INVALID indexes (left by a failed CREATE INDEX CONCURRENTLY?): \(status.invalidIndexes.joined(separator: ", "))")
                }
            }
            if exitCode {
                if !status.drifted.isEmpty || !status.dirty.isEmpty { throw ExitStatus.drift }
                if !status.pending.isEmpty { throw ExitStatus.pending }
            }
        }
    }

    struct History: GlobalOptionsCommand {
        static let configuration = CommandConfiguration(abstract: "Show the append-only log of migration events.")
        @OptionGroup var global: GlobalOptions
        @ParentCommand var root: NFLDB
        @OptionGroup var options: MigrateOptions
        @Option(help: "How many events (newest first).") var limit = 50

        static let commandPath = "migrate history"

        func run(_ context: CommandContext) throws {
            let migrator = try options.makeMigrator(context, migrations: [])
            let events = try migrator.history(limit: limit)
            switch options.format {
            case .json: context.output(try JSONOutput.encode(events))
            case .text:
                let formatter = ISO8601DateFormatter()
                context.output(TextTable.render(
                    header: ["id", "at", "version", "event", "actor", "host", "detail"],
                    rows: events.map { [String($0.id), formatter.string(from: $0.at), $0.version.map(String.init) ?? "-", $0.event, $0.actor, $0.clientHost ?? "", $0.detail ?? ""] }))
            }
        }
    }

    struct Redo: GlobalOptionsCommand {
        static let configuration = CommandConfiguration(abstract: "Roll back the newest migration and apply it again.")
        @OptionGroup var global: GlobalOptions
        @ParentCommand var root: NFLDB
        @OptionGroup var options: MigrateOptions

        static let commandPath = "migrate redo"

        func run(_ context: CommandContext) throws {
            let migrator = try options.makeMigrator(context, recordsCommit: true)
            MigrateInterrupt.install(singleTransaction: false)
            let result = try migrator.redo()
            try options.printResult(result, context, verb: "redone")
            finished(context, "migrate redo")
        }
    }

    struct Baseline: GlobalOptionsCommand {
        static let configuration = CommandConfiguration(
            abstract: "Adopt an existing database: mark every migration up to VERSION as applied without running it.")
        @OptionGroup var global: GlobalOptions
        @ParentCommand var root: NFLDB
        @OptionGroup var options: MigrateOptions
        @Argument(help: "The version the database already has.") var version: Int64

        static let commandPath = "migrate baseline"

        func run(_ context: CommandContext) throws {
            let result = try options.makeMigrator(context, recordsCommit: true).baseline(version: version)
            try options.printResult(result, context, verb: "baselined")
        }
    }

    struct Resolve: GlobalOptionsCommand {
        static let configuration = CommandConfiguration(
            abstract: "Record the operator's decision about a dirty (failed or running) version after a manual fix.",
            discussion: """
                A clean applied version is refused (exit 2): roll it back with `migrate down`. Only when its down SQL \
                cannot run and you undid it by hand, `--rolled-back --force` records the newest applied version as rolled back.
                """)
        @OptionGroup var global: GlobalOptions
        @ParentCommand var root: NFLDB
        @OptionGroup var options: MigrateOptions
        @Argument(help: "The dirty version.") var version: Int64
        @Flag(help: "The migration's remaining work was completed by hand.") var applied = false
        @Flag(name: .customLong("rolled-back"), help: "The migration's partial work was undone by hand.") var rolledBack = false
        @Option(help: "Why (recorded in the event log).") var reason: String?
        @Flag(help: "With --rolled-back: accept the newest applied (not dirty) version, undone by hand because its down SQL cannot run.")
        var force = false

        func validate() throws {
            guard applied != rolledBack else { throw ValidationError("give exactly one of --applied or --rolled-back") }
            guard !force || rolledBack else { throw ValidationError("--force only goes with --rolled-back") }
        }

        static let commandPath = "migrate resolve"

        func run(_ context: CommandContext) throws {
            let result = try options.makeMigrator(context).resolve(version: version, applied: applied, reason: reason, force: force)
            if options.format == .text { MigrateOptions.warn(result.warnings) }
            try options.printResult(result, context, verb: "resolved")
        }
    }

    struct Repair: GlobalOptionsCommand {
        static let configuration = CommandConfiguration(
            abstract: "Deliberately accept changed files of applied migrations (records old and new checksums).")
        @OptionGroup var global: GlobalOptions
        @ParentCommand var root: NFLDB
        @OptionGroup var options: MigrateOptions
        @Argument(help: "Versions to repair (default: every drifted one).") var versions: [Int64] = []

        static let commandPath = "migrate repair"

        func run(_ context: CommandContext) throws {
            let result = try options.makeMigrator(context).repair(versions: versions)
            try options.printResult(result, context, verb: "repaired")
        }
    }

    struct Verify: GlobalOptionsCommand {
        static let configuration = CommandConfiguration(
            abstract: "On a scratch database: up, down and up again per migration, comparing pg_dump --schema-only; fails if a down does not undo its up.")
        @OptionGroup var global: GlobalOptions
        @ParentCommand var root: NFLDB
        @OptionGroup var options: MigrateOptions
        @Option(name: .customLong("scratch-dsn"), help: "Use this (empty) database instead of creating <db>_nfldb_verify_<pid>.") var scratchDSN: String?

        static let commandPath = "migrate verify"

        func run(_ context: CommandContext) throws {
            let migrations = try options.load(context)
            let settings = try options.settings(context)
            let target = try context.connectionOptions()
            // SIGTERM/SIGHUP/SIGINT drop the scratch database (kill -9 cannot: the next verify does).
            let scratchName = ScratchName()
            let logger = context.logger
            if scratchDSN == nil {
                SignalExit.install { signal in
                    scratchName.interrupted.withLock { $0 = true }
                    guard let name = scratchName.value.withLock({ $0 }) else { return "migrate verify interrupted by \(signal) before its scratch database existed; nothing to clean up" }
                    do {
                        try MigrationVerifier.dropScratchDatabase(target: target, name: name, logger: logger)
                        return "migrate verify interrupted by \(signal): scratch database \(name) dropped; the real database was not touched"
                    } catch {
                        return "migrate verify interrupted by \(signal): could not drop scratch database \(name) (\(error)); the next migrate verify drops it"
                    }
                }
            }
            // Once a signal arrived, the handler owns the ending (its drop ends this run's sessions): the
            // failures that follow are not reported, the handler prints one line and exits.
            let verified = Result {
                try MigrationVerifier.withScratchDatabase(
                    target: target, scratchDSN: scratchDSN, logger: context.logger, report: { context.say($0) },
                    onCreate: { name in scratchName.value.withLock { $0 = name } }
                ) { scratch, name in
                    try MigrationVerifier(
                        migrations: migrations, scratch: scratch, scratchName: name, settings: settings,
                        context: MigrationContext(nfldbVersion: NFLDBVersion.string, correlationID: context.correlationID), logger: context.logger,
                        progress: { line in
                            scratchName.parkIfInterrupted()
                            if options.format == .text { context.say(line) }
                        }
                    ).run()
                }
            }
            scratchName.parkIfInterrupted()
            let report = try verified.get()
            switch options.format {
            case .json: context.output(try JSONOutput.encode(report))
            case .text:
                for problem in report.problems {
                    let id = Migration.id(version: problem.version, name: problem.name)
                    context.output(problem.failed ? "FAIL \(id): \(problem.difference)" : "FAIL \(id): down does not undo up; schema difference:\n\(problem.difference)")
                }
                if !report.roundTripIdentical {
                    let difference = report.roundTripDifference ?? ""
                    context.output(difference.hasPrefix("not checked") || difference.hasPrefix("failed")
                        ? "FAIL full round trip (up all, down all, up all): \(difference)"
                        : "FAIL full round trip (up all, down all, up all) changed the schema:\n\(difference)")
                }
                context.output(report.passed ? "verify passed: \(report.migrationsChecked) migrations, every down undoes its up, round trip identical" : "verify FAILED")
            }
            if !report.passed { throw ExitStatus.failure }
        }
    }

    struct Lint: GlobalOptionsCommand {
        static let configuration = CommandConfiguration(
            abstract: "Flag dangerous operations in pending migrations (file:line, rule, how to do it safely).",
            discussion: "Connects to find pending files; --all lints every file without a database. Exit 1 on errors, or on warnings with --strict.")
        @OptionGroup var global: GlobalOptions
        @ParentCommand var root: NFLDB
        @OptionGroup var options: MigrateOptions
        @Flag(help: "Lint every file, not only pending ones (no database needed).") var all = false
        @Flag(help: "Warnings fail too.") var strict = false

        static let commandPath = "migrate lint"

        func run(_ context: CommandContext) throws {
            // Transaction-control statements are reported below as findings, not as a refused directory.
            var migrations = try options.load(context, checkingTransactionControl: false)
            if !all {
                let status = try options.makeMigrator(context, migrations: migrations).status()
                let pending = Set(status.pending.map(\.version))
                migrations = migrations.filter { pending.contains($0.version) }
            }
            let findings = try migrations.flatMap { try MigrationLinter.lint($0) }
            switch options.format {
            case .json: context.output(try JSONOutput.encode(findings))
            case .text:
                for f in findings {
                    context.output("\(f.file):\(f.line): \(f.severity.rawValue) [\(f.rule)] \(f.message)\n    fix: \(f.fix)")
                }
                context.output("\(migrations.count) file(s) linted: \(findings.filter { $0.severity == .error }.count) error(s), \(findings.filter { $0.severity == .warning }.count) warning(s)")
            }
            if findings.contains(where: { $0.severity == .error }) || (strict && !findings.isEmpty) { throw ExitStatus.failure }
        }
    }

    struct Create: GlobalOptionsCommand {
        static let configuration = CommandConfiguration(abstract: "Write the next NNNN_name.up.sql / .down.sql pair.")
        @OptionGroup var global: GlobalOptions
        @ParentCommand var root: NFLDB
        @OptionGroup var options: MigrateOptions
        @Argument(help: "snake_case name, e.g. add_weather_index.") var name: String

        static let commandPath = "migrate create"

        func run(_ context: CommandContext) throws {
            let (up, down) = try MigrationDirectory(path: options.directory(context)).create(name: name)
            context.output("created \(up)\ncreated \(down)")
        }
    }
}

/// A plain left-aligned text table.
enum TextTable {
    static func render(header: [String], rows: [[String]]) -> String {
        var widths = header.map(\.count)
        for row in rows { for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], min(cell.count, 60)) } }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { i, cell in i == cells.count - 1 ? cell : cell.padding(toLength: max(widths[i], cell.count), withPad: " ", startingAt: 0) }
                .joined(separator: "  ")
        }
        return ([line(header)] + rows.map(line)).joined(separator: "\n")
    }
}

/// The scratch database of a running `migrate verify`, for its signal handler.
final class ScratchName: Sendable {
    let value = Mutex<String?>(nil)
    let interrupted = Mutex(false)

    /// Waits for the signal handler's exit once it has started.
    func parkIfInterrupted() {
        while interrupted.withLock({ $0 }) { sleep(1) }
    }
}
