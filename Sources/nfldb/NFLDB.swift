import ArgumentParser
import Foundation
import Logging
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
        subcommands: [Ping.self, ConfigCommand.self, SandboxCommand.self, MigrateCommand.self, RolesCommand.self, AuditCommand.self, HealthCommand.self, BackupCommand.self, ETLCommand.self]
    )

    @OptionGroup var global: GlobalOptions

    /// Parses, runs, and maps every error to a message on stderr and an exit status from the table
    /// in ``ExitStatus``; usage errors exit 2 (not argument-parser's 64).
    static func main() {
        let arguments = Array(CommandLine.arguments.dropFirst())
        do {
            var command = try parseAsRoot(arguments)
            if var routed = command as? any GlobalOptionsCommand {
                routed.inheritGlobals(from: arguments)
                command = routed
            }
            try command.run()
        } catch {
            exitWithError(error)
        }
    }

    static func exitWithError(_ error: any Error) -> Never {
        if let error = error as? any NFLDBError {
            report(error.diagnostic.description, status: error.exitStatus.code)
        }
        if let code = error as? ExitCode {
            Foundation.exit(code.rawValue)
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
        report(message, status: status)
    }

    static func report(_ message: String, status: Int32) -> Never {
        let redacted = SecretRedactor.shared.redact(message)
        if Runtime.bootstrapped && Runtime.logFormat == .json {
            // Machine mode: stderr stays one JSON object per line.
            Logger(label: "nfldb").error("\(redacted)", metadata: ["exit_code": .stringConvertible(Int(status))])
        } else {
            FileHandle.standardError.write(Data("error: \(redacted)\n".utf8))
        }
        Foundation.exit(status)
    }
}

/// A command with an `@OptionGroup var global: GlobalOptions`, so root-level options given before
/// the subcommand name (`nfldb --dsn … ping`) reach it.
protocol GlobalOptionsCommand: ParsableCommand {
    var global: GlobalOptions { get set }
}

extension GlobalOptionsCommand {
    mutating func inheritGlobals(from arguments: [String]) {
        // argument-parser gives root-level options to the root; re-parse them for the leaf.
        var names: Set<String> = []
        for command in NFLDB.configuration.subcommands {
            names.insert(command._commandName)
            for child in command.configuration.subcommands { names.insert(child._commandName) }
        }
        let prefix = Array(arguments.prefix { !names.contains($0) })
        if !prefix.isEmpty, let parent = try? GlobalOptions.parse(prefix) {
            global = global.merged(over: parent)
        }
    }

    /// Logs the end of the command with its duration (`duration_ms`) for cron traceability.
    func finished(_ context: CommandContext, _ message: Logger.Message = "done") {
        let ms = (ContinuousClock.now - context.started).inMilliseconds
        context.logger.info(message, metadata: ["duration_ms": .stringConvertible((ms * 10).rounded() / 10)])
    }
}
