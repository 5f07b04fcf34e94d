import ArgumentParser
import Foundation
import Logging
import NFLDBAWSSecrets
import NFLDBCore

/// nfldb's version, also recorded in the migration history.
enum NFLDBVersion {
    static let string = "0.1.0"
}

@main
struct NFLDB: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nfldb",
        abstract: "PostgreSQL DevOps toolkit for the NFL analytics platform.",
        discussion: """
            Exit status: 0 success; 1 failure; 2 usage or configuration error; \
            3/4 from `migrate status --exit-code`; `health` uses 0/1/2/3 = OK/WARNING/CRITICAL/UNKNOWN.
            """,
        version: NFLDBVersion.string,
        subcommands: [Ping.self, ConfigCommand.self, SandboxCommand.self, MigrateCommand.self, RolesCommand.self, AuditCommand.self, HealthCommand.self, BackupCommand.self, CryptCommand.self, SecurityCommand.self, ETLCommand.self, QueueCommand.self, WorkerCommand.self]
    )

    @OptionGroup var global: GlobalOptions

    /// Parses, builds the command's context (configuration, logging) once, runs, and maps every
    /// error to a message on stderr and an exit status from the table in ``ExitStatus``; usage
    /// errors exit 2 (not argument-parser's 64).
    static func main() {
        // Secret schemes beyond env:/file: are supplied here, so Core knows no outside system.
        AWSSecretsProvider.register()
        var command: any ParsableCommand
        do {
            command = try parseAsRoot(Array(CommandLine.arguments.dropFirst()))
        } catch {
            exitWithError(error, logFormat: .text)
        }
        guard let leaf = command as? any GlobalOptionsCommand else {
            do { try command.run() } catch { exitWithError(error, logFormat: .text) }
            Foundation.exit(0)
        }
        let environment = ProcessInfo.processInfo.environment
        let options = leaf.globals
        let context: CommandContext
        do {
            context = try options.makeContext(command: type(of: leaf).commandPath, settingFlags: leaf.settingFlags, environment: environment)
        } catch {
            exitWithError(leaf.mapError(error), logFormat: options.earlyLogging(environment).format)
        }
        do {
            try leaf.run(context)
        } catch {
            exitWithError(leaf.mapError(error), logFormat: context.logFormat)
        }
        Foundation.exit(0)
    }

    static func exitWithError(_ error: any Error, logFormat: LogFormat) -> Never {
        // A signal handler that ended this command's work prints the one line and exits 128+signal.
        SignalExit.yieldToHandler()
        if let status = error as? ExitStatus {
            // The command printed its result; only the status is left to report.
            Foundation.exit(status.code)
        }
        if let error = error as? any NFLDBError {
            report(error.diagnostic.description, status: error.exitStatus.code, logFormat: logFormat)
        }
        let code = exitCode(for: error)
        var message = fullMessage(for: error)
        if message.hasPrefix("Error: ") { message = String(message.dropFirst("Error: ".count)) }
        if code == .success {
            if !message.isEmpty { print(message) }
            Foundation.exit(0)
        }
        // Argument errors (unknown flag, bad value): usage status 2.
        let status: Int32 = (code == .validationFailure || code.rawValue == 64) ? ExitStatus.usage.code : code.rawValue
        report(message, status: status, logFormat: logFormat)
    }

    static func report(_ message: String, status: Int32, logFormat: LogFormat) -> Never {
        let redacted = SecretRedactor.shared.redact(message)
        if logFormat == .json {
            // Machine mode: stderr stays one JSON object per line.
            Logger(label: "nfldb").error("\(redacted)", metadata: ["exit_code": .stringConvertible(Int(status))])
        } else {
            FileHandle.standardError.write(Data("error: \(redacted)\n".utf8))
        }
        Foundation.exit(status)
    }
}

/// A leaf command. Global options reach it from both sides of its name: its own
/// `@OptionGroup var global` (`nfldb ping --dsn …`) and the root's, through `@ParentCommand`
/// (`nfldb --dsn … ping`). ``NFLDB/main()`` builds the context once and calls ``run(_:)``.
protocol GlobalOptionsCommand: ParsableCommand {
    var global: GlobalOptions { get }
    var root: NFLDB { get }
    /// The command's name in logs (`migrate up`).
    static var commandPath: String { get }
    func run(_ context: CommandContext) throws
    /// Lets a command map failures to its own exit convention (`health`: UNKNOWN).
    func mapError(_ error: any Error) -> any Error
    /// The command's own flags that set a configuration key (`--amcheck-jobs` →
    /// `backup.verify.amcheck_jobs`): applied like global flags, over file and environment, before
    /// the settings are checked.
    var settingFlags: [String: (value: String, flag: String)] { get }
}

extension GlobalOptionsCommand {
    /// The leaf's global options over the root's.
    var globals: GlobalOptions { global.merged(over: root.global) }

    func mapError(_ error: any Error) -> any Error { error }

    var settingFlags: [String: (value: String, flag: String)] { [:] }

    /// Logs the end of the command with its duration (`duration_ms`) for cron traceability.
    func finished(_ context: CommandContext, _ message: Logger.Message = "done") {
        let ms = (ContinuousClock.now - context.started).inMilliseconds
        context.logger.info(message, metadata: ["duration_ms": .stringConvertible((ms * 10).rounded() / 10)])
    }
}
