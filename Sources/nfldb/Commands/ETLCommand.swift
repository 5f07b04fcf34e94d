import ArgumentParser
import Foundation
import Logging
import NFLDBCore
import NFLDBETL
import NFLDBPostgres

/// The tables `nfldb etl` loads.
enum ETLTarget: String, ExpressibleByArgument, CaseIterable {
    case games
}

extension InvalidPolicy: ExpressibleByArgument {}

/// `nfldb etl load | validate | runs | report`: nflverse schedules into nfl.games and friends.
struct ETLCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "etl",
        abstract: "Load nflverse games (file or URL) into nfl.games, nfl.teams, nfl.stadiums, nfl.weather and nfl.odds_history.",
        discussion: """
            Every row is validated against the games data contract; invalid rows go to nfl.etl_rejects. Loads are idempotent \
            (a re-load of unchanged data writes nothing) and run in one transaction. Exit status: 0 loaded (rejects under \
            the ratio included) or skipped, 1 failed or (validate) violations found, 2 usage or configuration error.
            """,
        subcommands: [Load.self, Validate.self, Runs.self, Report.self])
}

/// A `\r`-rewritten progress line on stderr when it is a terminal.
struct ProgressLine {
    let enabled: Bool
    init(quiet: Bool, json: Bool) { enabled = !quiet && isatty(STDERR_FILENO) == 1 }
    func update(_ rows: Int) {
        guard enabled else { return }
        FileHandle.standardError.write(Data("\r\(rows) rows…".utf8))
    }
    func end() {
        guard enabled else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
    }
}

extension ETLCommand {
    struct Load: GlobalOptionsCommand {
        static let commandPath = "etl load"
        static let configuration = CommandConfiguration(
            abstract: "Validate and load a games CSV: nfldb etl load games --source PATH|URL.")
        @OptionGroup var global: GlobalOptions
        @ParentCommand var root: NFLDB
        @Argument(help: "What to load (games).") var target: ETLTarget
        @Option(help: ArgumentHelp("CSV path or http(s) URL (default: etl.games.source, nflverse's games.csv).", valueName: "path|url"))
        var source: String?
        @Flag(name: .customLong("dry-run"), help: "Validate, stage and count what would change, then roll back.") var dryRun = false
        @Option(name: .customLong("on-invalid"), help: "reject-rows (default: load the valid rows) or fail (load nothing).")
        var onInvalid: InvalidPolicy = .rejectRows
        @Option(name: .customLong("max-invalid-ratio"), help: ArgumentHelp("Share of rejected rows above which the run fails (default etl.max_invalid_ratio, 0.01).", valueName: "ratio"))
        var maxInvalidRatio: Double?
        @Option(help: "Output format: text or json.") var format: OutputFormat = .text

        func validate() throws {
            if let maxInvalidRatio, !(0...1).contains(maxInvalidRatio) {
                throw ValidationError("--max-invalid-ratio must be between 0 and 1 (got \(maxInvalidRatio))")
            }
        }

        func run(_ context: CommandContext) throws {
            do {
                try load(context)
            } catch let error where format == .json && !(error is LoadFailed) {
                // With --format json stdout is one object whatever happens (a scheduler parses it):
                // a failure before the run was recorded (connection, lock wait, configuration) too.
                let described = (error as? any NFLDBError)?.diagnostic.oneLine ?? String(describing: error)
                let result = LoadResult.failedBeforeRun(
                    source: URLRedaction.redact(source ?? "").text, error: SecretRedactor.shared.redact(SecretRedactor.redactPatterns(described)))
                context.output(try JSONOutput.encode(result))
                throw error
            }
        }

        private func load(_ context: CommandContext) throws {
            let settings = try ETLConfig(configuration: context.configuration)
            var options = LoadOptions(settings: settings)
            options.dryRun = dryRun
            options.policy = onInvalid
            options.maxInvalidRatio = maxInvalidRatio ?? settings.maxInvalidRatio
            options.correlationID = context.correlationID
            let connection = try context.connect()
            defer { connection.close() }
            // Interrupted loads are recorded as failed with the signal (``ETLInterrupt``).
            let interrupt = ETLInterrupt(options: try context.connectionOptions(), logger: context.logger,
                                         jsonSource: format == .json ? URLRedaction.redact(source ?? settings.gamesSource).text : nil)
            interrupt.install(backend: connection.backendPID)
            options.onRunRecorded = { interrupt.recorded($0) }
            let progress = ProgressLine(quiet: context.quiet, json: format == .json)
            let result: LoadResult
            do {
                result = try ETLRunner.loadGames(
                    connection: connection, source: source ?? settings.gamesSource, options: options, http: settings.http,
                    logger: context.logger, progress: progress.update)
                progress.end()
            } catch let failed as LoadFailed {
                progress.end()
                if format == .json { context.output(try JSONOutput.encode(failed.result)) }
                throw failed
            }
            switch format {
            case .json: context.output(try JSONOutput.encode(result))
            case .text: context.output(ETLText.load(result))
            }
            finished(context, "etl load")
        }
    }

    struct Validate: GlobalOptionsCommand {
        static let commandPath = "etl validate"
        static let configuration = CommandConfiguration(
            abstract: "Check a games CSV against the data contract without loading it; exit 1 on any violation.")
        @OptionGroup var global: GlobalOptions
        @ParentCommand var root: NFLDB
        @Argument(help: "What to validate (games).") var target: ETLTarget
        @Option(help: ArgumentHelp("CSV path or http(s) URL (default: etl.games.source).", valueName: "path|url")) var source: String?
        @Option(help: "Output format: text or json.") var format: OutputFormat = .text

        func run(_ context: CommandContext) throws {
            let settings = try ETLConfig(configuration: context.configuration)
            let progress = ProgressLine(quiet: context.quiet, json: format == .json)
            let result = try ETLRunner.validateGames(
                source: source ?? settings.gamesSource, http: settings.http, correlationID: context.correlationID,
                logger: context.logger, progress: progress.update)
            progress.end()
            switch format {
            case .json: context.output(try JSONOutput.encode(result))
            case .text:
                var lines = ["\(result.source): \(result.rowsRead) rows, \(result.rejected) invalid, \(result.metrics.warningRows) with warnings — \(result.status)"]
                lines.append(contentsOf: ETLText.quality(result))
                context.output(lines.joined(separator: "\n"))
            }
            if result.rejected > 0 || result.rowsRead == 0 { throw ExitStatus.failure }
        }
    }

    struct Runs: GlobalOptionsCommand {
        static let commandPath = "etl runs"
        static let configuration = CommandConfiguration(abstract: "List the latest ETL runs (nfl.etl_runs), newest first.")
        @OptionGroup var global: GlobalOptions
        @ParentCommand var root: NFLDB
        @Option(help: "How many runs (at least 1).") var limit = 20
        @Option(help: "Output format: text or json.") var format: OutputFormat = .text

        func validate() throws {
            if limit < 1 { throw ValidationError("--limit must be at least 1 (got \(limit))") }
        }

        func run(_ context: CommandContext) throws {
            let connection = try context.connect()
            defer { connection.close() }
            let runs = try ETLRuns.list(connection, limit: limit)
            switch format {
            case .json: context.output(try JSONOutput.encode(runs))
            case .text: context.output(ETLText.runs(runs))
            }
        }
    }

    struct Report: GlobalOptionsCommand {
        static let commandPath = "etl report"
        static let configuration = CommandConfiguration(abstract: "The data-quality report of one run: findings, failures and rejected rows.")
        @OptionGroup var global: GlobalOptions
        @ParentCommand var root: NFLDB
        @Argument(help: "Run id (from `nfldb etl runs` or the load's output).") var runID: Int64
        @Option(help: "Output format: text or json.") var format: OutputFormat = .text

        func run(_ context: CommandContext) throws {
            let connection = try context.connect()
            defer { connection.close() }
            let report = try ETLRuns.report(connection, runID: runID)
            switch format {
            case .json: context.output(try JSONOutput.encode(report))
            case .text: context.output(ETLText.report(report))
            }
        }
    }
}
