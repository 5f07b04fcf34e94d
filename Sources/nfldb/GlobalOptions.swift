import ArgumentParser
import Foundation
import Logging
import NFLDBCore
import NFLDBPostgres

/// Options every subcommand accepts (`nfldb ping --dsn …` and `nfldb --dsn … ping` alike).
struct GlobalOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Connection string or postgresql:// URL (overrides NFLDB_DSN, DATABASE_URL, the config file and libpq's PG* variables).", valueName: "dsn"))
    var dsn: String?

    @Option(name: .long, help: ArgumentHelp("Config file (default: ./nfldb.yaml when present).", valueName: "path"))
    var config: String?

    @Option(name: .customLong("log-format"), help: ArgumentHelp("Log line format on stderr: text or json.", valueName: "format"))
    var logFormat: String?

    @Option(name: .customLong("log-level"), help: ArgumentHelp("trace, debug, info, notice, warning, error or critical.", valueName: "level"))
    var logLevel: String?

    @Flag(name: [.long, .short], help: "Print only errors (and the command's result).")
    var quiet = false

    /// Merges these options with another set (the root's), the subcommand's taking precedence.
    func merged(over parent: GlobalOptions?) -> GlobalOptions {
        guard let parent else { return self }
        var copy = self
        copy.dsn = dsn ?? parent.dsn
        copy.config = config ?? parent.config
        copy.logFormat = logFormat ?? parent.logFormat
        copy.logLevel = logLevel ?? parent.logLevel
        copy.quiet = quiet || parent.quiet
        return copy
    }

    var flagOverrides: [String: (value: String, flag: String)] {
        var flags: [String: (value: String, flag: String)] = [:]
        if let dsn { flags[ConfigKey.dsn.name] = (dsn, "--dsn") }
        if let logFormat { flags[ConfigKey.logFormat.name] = (logFormat, "--log-format") }
        if let logLevel { flags[ConfigKey.logLevel.name] = (logLevel, "--log-level") }
        if quiet { flags[ConfigKey.logLevel.name] = ("error", "--quiet") }
        return flags
    }
}

/// What a command runs with: the effective configuration, a logger carrying the correlation id,
/// and how to open connections.
struct CommandContext {
    let configuration: Configuration
    let logger: Logger
    let correlationID: String
    let quiet: Bool
    let started = ContinuousClock.now

    /// Connection options from the effective configuration. No credential has a default: an unset
    /// DSN means libpq's own environment and files.
    func connectionOptions() throws -> ConnectionOptions {
        ConnectionOptions(
            dsn: configuration.string(.dsn), password: try configuration.password(),
            connectTimeout: try configuration.duration(.connectTimeout))
    }

    func connect() throws -> PostgresConnection {
        try PostgresConnection.connect(try connectionOptions(), logger: logger)
    }

    /// Prints command output on stdout (never suppressed: it is the result).
    func output(_ text: String) {
        print(text)
    }

    /// Prints progress for humans on stdout, unless `--quiet`.
    func say(_ text: String) {
        if !quiet { print(text) }
    }
}

enum Runtime {
    nonisolated(unsafe) static var bootstrapped = false
    nonisolated(unsafe) static var logFormat: LogFormat = .text
    nonisolated(unsafe) static var correlationID = CorrelationID.resolve()
    nonisolated(unsafe) static var commandName = "nfldb"

    /// Bootstraps swift-log once per process with nfldb's handler.
    static func bootstrap(format: LogFormat, level: Logger.Level) {
        guard !bootstrapped else { return }
        bootstrapped = true
        logFormat = format
        let metadata: Logger.Metadata = ["correlation_id": .string(correlationID), "command": .string(commandName)]
        LoggingSystem.bootstrap { label in
            NFLDBLogHandler(label: label, format: format, level: level, metadata: metadata)
        }
    }
}

extension GlobalOptions {
    /// Loads the configuration (flag > env > file > default) and bootstraps logging.
    func makeContext(command: String) throws -> CommandContext {
        Runtime.commandName = command
        let environment = ProcessInfo.processInfo.environment
        // Logging is set up before the file is read, so that a config error is logged in the right format.
        let earlyFormat = LogFormat(rawValue: logFormat ?? environment["NFLDB_LOG_FORMAT"] ?? "text") ?? .text
        // Text logs default to warnings only (stdout already narrates); JSON logs default to info for cron traceability.
        let defaultLevel: (LogFormat) -> String = { $0 == .json ? "info" : "warning" }
        let earlyLevel = Logger.Level(rawValue: quiet ? "error" : (logLevel ?? environment["NFLDB_LOG_LEVEL"] ?? defaultLevel(earlyFormat))) ?? .info
        do {
            let configuration = try ConfigurationLoader(keys: Settings.keys, environment: environment, flags: flagOverrides, explicitPath: config).load()
            try Settings.check(configuration)
            let format = LogFormat(rawValue: configuration.string(.logFormat) ?? "text") ?? earlyFormat
            let level = Logger.Level(rawValue: configuration.string(.logLevel) ?? defaultLevel(format)) ?? earlyLevel
            Runtime.bootstrap(format: format, level: level)
            return CommandContext(
                configuration: configuration, logger: Logger(label: "nfldb.\(command.replacingOccurrences(of: " ", with: "."))"),
                correlationID: Runtime.correlationID, quiet: quiet)
        } catch {
            Runtime.bootstrap(format: earlyFormat, level: earlyLevel)
            throw error
        }
    }
}
