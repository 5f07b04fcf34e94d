import ArgumentParser
import Foundation
import Logging
import NFLDBAudit
import NFLDBCore
import NFLDBPostgres

extension AuditMode: ExpressibleByArgument {}

/// `nfldb audit install | remove | status | log | prune`: audit triggers and the append-only log.
struct AuditCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Audit triggers writing to an append-only, monthly-partitioned audit.log.",
        discussion: """
            install/remove/prune run as a superuser; status and log need read access to the audit schema. Exit status: 0 ok, \
            1 failure or (status) a problem found, 2 usage.
            """,
        subcommands: [Install.self, Remove.self, Status.self, Log.self, Prune.self])
}

/// Options shared by the audit subcommands.
struct AuditOptions: ParsableArguments {
    @Option(name: .customLong("owner-role"), help: ArgumentHelp(
        "Role that owns the audit schema (created NOLOGIN when missing). Default: the existing audit schema's owner, else \(AuditInstaller.defaultOwner).",
        valueName: "role"))
    var ownerRole: String?

    /// The installer for this run, its owner resolved against the database (``AuditInstaller/resolveOwner(_:requested:)``).
    func installer(_ connection: PostgresConnection, logger: Logger) throws -> AuditInstaller {
        AuditInstaller(connection: connection, owner: try AuditInstaller.resolveOwner(connection, requested: ownerRole), logger: logger)
    }

    @Option(help: "Output format: text or json.")
    var format: OutputFormat = .text
}

extension AuditCommand {
    struct Install: GlobalOptionsCommand {
        static let configuration = CommandConfiguration(
            abstract: "Audit tables: a row trigger (or, with --mode statement, transition-table triggers) plus a TRUNCATE trigger. Idempotent.")
        @OptionGroup var global: GlobalOptions
        @ParentCommand var root: NFLDB
        @OptionGroup var options: AuditOptions
        @Option(name: .customLong("table"), help: ArgumentHelp("Table to audit (games or nfl.games); repeat for several.", valueName: "table"))
        var tables: [String] = []
        @Flag(help: "Audit every table listed in the audit.tables setting.") var all = false
        @Option(help: """
            row or statement (cheaper for bulk loads, needs a key). Not given: a table already audited keeps its mode; a new \
            one gets statement mode when pg_stat_user_tables shows it written mostly in bulk (≥ 100,000 rows written and \
            ≥ 1,000 rows written per scan), else row mode; install prints why.
            """) var mode: AuditMode?
        @Option(
            name: .customLong("exclude-columns"), parsing: .singleValue,
            help: ArgumentHelp("Columns left out of the logged rows (comma-separated, repeatable).", valueName: "columns"))
        var excludeColumns: [String] = []

        func validate() throws {
            if tables.isEmpty && !all { throw ValidationError("give --table NAME (repeatable) or --all") }
            if !tables.isEmpty && all { throw ValidationError("give either --table or --all, not both") }
        }

        static let commandPath = "audit install"

        func run(_ context: CommandContext) throws {
            var names = tables
            if all {
                names = AuditConfig(configuration: context.configuration).tables
                if names.isEmpty { throw OperatorError("--all: audit.tables is empty", hint: "List the tables under audit.tables in nfldb.yaml (or NFLDB_AUDIT_TABLES).", exitStatus: .usage) }
            }
            let excluded = excludeColumns.flatMap { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }.filter { !$0.isEmpty }
            let connection = try context.connect()
            defer { connection.close() }
            let installer = try options.installer(connection, logger: context.logger)
            let results = try installer.install(tables: names, mode: mode, excludeColumns: excluded)
            switch options.format {
            case .json: context.output(try JSONOutput.encode(results))
            case .text:
                context.output(TextTable.render(
                    header: ["table", "mode", "key", "excluded", "result"],
                    rows: results.map { [$0.table, $0.mode.rawValue, $0.key.description, $0.excludedColumns.joined(separator: ","), $0.action] }))
                for result in results {
                    for note in result.notes { context.output("note: \(result.table): \(note)") }
                    if result.partitions > 0 { context.say("\(result.table): TRUNCATE trigger on \(result.partitions) partition\(result.partitions == 1 ? "" : "s") too") }
                }
            }
            finished(context, "audit install")
        }
    }

    struct Remove: GlobalOptionsCommand {
        static let configuration = CommandConfiguration(abstract: "Drop the audit triggers of tables. The log is never dropped or changed.")
        @OptionGroup var global: GlobalOptions
        @ParentCommand var root: NFLDB
        @OptionGroup var options: AuditOptions
        @Option(name: .customLong("table"), help: ArgumentHelp("Table to stop auditing; repeat for several.", valueName: "table"))
        var tables: [String] = []
        @Flag(help: "Every audited table.") var all = false

        func validate() throws {
            if tables.isEmpty == !all { throw ValidationError("give --table NAME (repeatable) or --all") }
        }

        static let commandPath = "audit remove"

        func run(_ context: CommandContext) throws {
            let connection = try context.connect()
            defer { connection.close() }
            let installer = try options.installer(connection, logger: context.logger)
            let names = all ? try installer.registeredTables() : tables
            let results = try installer.remove(tables: names)
            switch options.format {
            case .json: context.output(try JSONOutput.encode(results))
            case .text:
                if results.isEmpty { context.output("no audited tables") }
                for result in results { context.output("\(result.table): \(result.action) (\(result.notes.joined(separator: "; ")))") }
            }
        }
    }

    struct Status: GlobalOptionsCommand {
        static let configuration = CommandConfiguration(
            abstract: "Audited tables and trigger health (missing, disabled, re-created or renamed tables), guards and partitions; exit 1 on any problem.")
        @OptionGroup var global: GlobalOptions
        @ParentCommand var root: NFLDB
        @OptionGroup var options: AuditOptions

        static let commandPath = "audit status"

        func run(_ context: CommandContext) throws {
            let connection = try context.connect()
            defer { connection.close() }
            let report = try options.installer(connection, logger: context.logger).status()
            switch options.format {
            case .json: context.output(try JSONOutput.encode(report))
            case .text:
                if report.installed {
                    context.output(TextTable.render(
                        header: ["table", "mode", "key", "state", "problems"],
                        rows: report.tables.map {
                            [$0.table, $0.mode, $0.key.isEmpty ? "whole row" : $0.key.joined(separator: ","), $0.ok ? "ok" : "PROBLEM",
                             $0.problems.joined(separator: "; ")]
                        }))
                    context.output("log: audit.log owned by \(report.owner ?? "?"); \(report.partitions.count) partitions, monthly ones until \(report.coveredUntil ?? "-"); ~\(report.estimatedEntries) entries")
                }
                for problem in report.logProblems { context.output("PROBLEM: \(problem)") }
                context.output(report.healthy ? "audit: healthy" : "audit: problems found")
            }
            if !report.healthy { throw ExitStatus.failure }
        }
    }

    struct Log: GlobalOptionsCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the history of a row: nfldb audit log --table games --key '{\"game_id\":\"2024_01_BAL_KC\"}'.")
        @OptionGroup var global: GlobalOptions
        @ParentCommand var root: NFLDB
        @OptionGroup var options: AuditOptions
        @Option(help: ArgumentHelp("Table (games or nfl.games).", valueName: "table")) var table: String
        @Option(help: ArgumentHelp("JSON object matched against the logged key (a partial key matches every row it contains).", valueName: "json"))
        var key: String?
        @Option(help: "Only entries newer than this (e.g. 30d).") var since: String?
        @Option(help: "At most this many entries (oldest first).") var limit = 200

        static let commandPath = "audit log"

        func run(_ context: CommandContext) throws {
            var window: Duration?
            if let since {
                guard let parsed = DurationParser.parse(since) else { throw ValidationError("--since '\(since)' is not a duration (e.g. 30d)") }
                window = parsed
            }
            let connection = try context.connect()
            defer { connection.close() }
            let entries = try options.installer(connection, logger: context.logger)
                .history(table: table, key: key, limit: limit, since: window)
            switch options.format {
            case .json: context.output(try JSONOutput.encode(entries))
            case .text:
                if entries.isEmpty { context.output("no entries") }
                for entry in entries { context.output(Self.render(entry)) }
            }
        }

        static func render(_ entry: AuditLogEntry) -> String {
            var head = "\(entry.loggedAt)  \(entry.operation.padding(toLength: 8, withPad: " ", startingAt: 0)) \(entry.table)"
            if let key = entry.rowKey, entry.operation != "TRUNCATE", entry.operation != "REWRITE" { head += " \(key)" }
            var who = "by \(entry.sessionUser)"
            if let app = entry.applicationName, !app.isEmpty { who += " via \(app)" }
            if let address = entry.clientAddr { who += " from \(address)" }
            who += ", tx \(entry.txid)"
            if let correlation = entry.correlationID { who += ", correlation \(correlation)" }
            var lines = [head, "    \(who)"]
            switch entry.operation {
            case "INSERT": if let row = entry.newRow { lines.append("    new: \(row)") }
            case "DELETE": if let row = entry.oldRow { lines.append("    old: \(row)") }
            case "UPDATE":
                let old = entry.oldRow.flatMap(jsonObject) ?? [:]
                if let changed = entry.changed.flatMap(jsonObject) {
                    for column in changed.keys.sorted() {
                        lines.append("    \(column): \(jsonText(old[column])) → \(jsonText(changed[column]))")
                    }
                } else if let row = entry.newRow {
                    lines.append("    new (key changed): \(row)")
                }
            case "REWRITE":
                // An ALTER TABLE that rewrote every row (no row trigger fires): what ran, and why PostgreSQL rewrote.
                let detail = entry.changed.flatMap(jsonObject) ?? [:]
                lines.append("    every row rewritten by: \((detail["command"] as? String).map { $0.trimmingCharacters(in: .whitespacesAndNewlines) } ?? "?")")
                if let relation = detail["relation"] as? String, relation != entry.table { lines.append("    (partition \(relation))") }
            default: break
            }
            return lines.joined(separator: "\n")
        }

        static func jsonObject(_ text: String) -> [String: Any]? {
            (try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])) as? [String: Any]
        }

        static func jsonText(_ value: Any?) -> String {
            guard let value, !(value is NSNull) else { return "null" }
            if let data = try? JSONSerialization.data(withJSONObject: value, options: [.fragmentsAllowed, .sortedKeys]) {
                return String(decoding: data, as: UTF8.self)
            }
            return "\(value)"
        }
    }

    struct Prune: GlobalOptionsCommand {
        static let configuration = CommandConfiguration(
            abstract: "Drop monthly partitions older than the cutoff (and old rows of the DEFAULT partition); create the coming months' partitions. Run monthly from cron.")
        @OptionGroup var global: GlobalOptions
        @ParentCommand var root: NFLDB
        @OptionGroup var options: AuditOptions
        @Option(name: .customLong("older-than"), help: ArgumentHelp("Retention, e.g. 400d.", valueName: "duration")) var olderThan: String
        @Flag(name: .customLong("dry-run"), help: "Say what would be dropped.") var dryRun = false

        static let commandPath = "audit prune"

        func run(_ context: CommandContext) throws {
            guard let retention = DurationParser.parse(olderThan), retention > .zero else {
                throw ValidationError("--older-than '\(olderThan)' is not a duration (e.g. 400d)")
            }
            // Pruning cannot be undone: a bare number (which elsewhere means seconds) is refused here,
            // so '--older-than 400' cannot drop last month's entries when 400 days were meant.
            if olderThan.trimmingCharacters(in: .whitespaces).allSatisfy({ $0.isNumber || $0 == "." }) {
                throw ValidationError("--older-than '\(olderThan)' has no unit: pruning deletes entries for good, so say days, e.g. \(olderThan.trimmingCharacters(in: .whitespaces))d")
            }
            let connection = try context.connect()
            defer { connection.close() }
            let result = try options.installer(connection, logger: context.logger).prune(olderThan: retention, dryRun: dryRun)
            switch options.format {
            case .json: context.output(try JSONOutput.encode(result))
            case .text:
                let verb = dryRun ? "would drop" : "dropped"
                context.output("cutoff \(result.cutoff): \(verb) \(result.droppedPartitions.count) partition\(result.droppedPartitions.count == 1 ? "" : "s")\(result.droppedPartitions.isEmpty ? "" : " (\(result.droppedPartitions.joined(separator: ", ")))"), \(dryRun ? "would delete" : "deleted") \(result.deletedDefaultRows) rows from audit.log_default")
                if !result.createdPartitions.isEmpty { context.output("created \(result.createdPartitions.joined(separator: ", "))") }
            }
            finished(context, "audit prune")
        }
    }
}
