import ArgumentParser
import Foundation
import Logging
import NFLDBCore
import NFLDBPostgres
import NFLDBSecurity

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

    /// These options over the root's (`nfldb --dsn … ping`): a value given after the subcommand
    /// name wins.
    func merged(over parent: GlobalOptions) -> GlobalOptions {
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
/// the log format (for how the final error is printed), and how to open connections.
struct CommandContext {
    let configuration: Configuration
    let logger: Logger
    let logFormat: LogFormat
    let correlationID: String
    let quiet: Bool
    let started = ContinuousClock.now

    /// Connection options from the effective configuration. No credential has a default: an unset
    /// DSN means libpq's own environment and files. The password is registered with the redactor
    /// by ``Configuration/password()``, where it is resolved.
    func connectionOptions() throws -> ConnectionOptions {
        var options = ConnectionOptions(
            dsn: configuration.string(.dsn), password: try configuration.password(),
            connectTimeout: try configuration.duration(.connectTimeout))
        options.requireTLS = try SecurityConfig(configuration: configuration).requireTLS
        return options
    }

    func connect() throws -> PostgresConnection {
        try PostgresConnection.connect(try connectionOptions(), logger: logger)
    }

    /// Prints command output on stdout (never suppressed: it is the result), with every registered
    /// secret masked as in `--format json` (``JSONOutput``): a task's payload or error, an audit entry
    /// or a server message can echo a password nfldb resolved.
    func output(_ text: String) {
        print(SecretRedactor.shared.redact(text))
    }

    /// Prints progress for humans on stdout, unless `--quiet`.
    func say(_ text: String) {
        if !quiet { print(SecretRedactor.shared.redact(text)) }
    }
}

extension GlobalOptions {
    /// The log format and level before the config file is read (flags, then environment), so a
    /// configuration error is already printed in the right format.
    func earlyLogging(_ environment: [String: String]) -> (format: LogFormat, level: Logger.Level) {
        let format = LogFormat(rawValue: logFormat ?? environment["NFLDB_LOG_FORMAT"] ?? "text") ?? .text
        let level = Logger.Level(rawValue: quiet ? "error" : (logLevel ?? environment["NFLDB_LOG_LEVEL"] ?? Self.defaultLevel(format))) ?? .info
        return (format, level)
    }

    /// Text logs default to warnings only (stdout already narrates); JSON logs default to info for cron traceability.
    static func defaultLevel(_ format: LogFormat) -> String { format == .json ? "info" : "warning" }

    /// Loads the configuration (flag > env > file > default) and bootstraps logging. Called once
    /// per process, by ``NFLDB/main()``: swift-log may be bootstrapped only once.
    func makeContext(
        command: String, settingFlags: [String: (value: String, flag: String)] = [:], environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> CommandContext {
        let (earlyFormat, earlyLevel) = earlyLogging(environment)
        let correlationID = CorrelationID.resolve(environment: environment)
        func bootstrap(_ format: LogFormat, _ level: Logger.Level) {
            let metadata: Logger.Metadata = ["correlation_id": .string(correlationID), "command": .string(command)]
            LoggingSystem.bootstrap { label in NFLDBLogHandler(label: label, format: format, level: level, metadata: metadata) }
        }
        let configuration: Configuration
        do {
            configuration = try ConfigurationLoader(keys: Settings.keys, environment: environment, flags: flagOverrides.merging(settingFlags) { global, _ in global }, explicitPath: config).load()
            try Settings.check(configuration)
        } catch {
            bootstrap(earlyFormat, earlyLevel)
            throw error
        }
        let format = LogFormat(rawValue: configuration.defaulted(.logFormat)) ?? earlyFormat
        let level = Logger.Level(rawValue: configuration.string(.logLevel) ?? Self.defaultLevel(format)) ?? earlyLevel
        bootstrap(format, level)
        return CommandContext(
            configuration: configuration, logger: Logger(label: "nfldb.\(command.replacingOccurrences(of: " ", with: "."))"),
            logFormat: format, correlationID: correlationID, quiet: quiet)
    }
}
