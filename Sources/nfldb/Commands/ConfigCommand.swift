import ArgumentParser
import Foundation
import NFLDBAlerting
import NFLDBCore
import NFLDBPostgres
import NFLDBQueue

/// `nfldb config show`: the effective configuration and where each value came from.
struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config", abstract: "Inspect the effective configuration.", subcommands: [Show.self])

    struct Show: GlobalOptionsCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print every setting with its value and source (flag, env, file:line, default); secrets redacted.")

        @OptionGroup var global: GlobalOptions

        @ParentCommand var root: NFLDB

        @Option(help: "Output format: text or json.")
        var format: OutputFormat = .text

        static let commandPath = "config show"

        /// A value that may be a URL (etl.games.source…): no user info, credential parameter values REDACTED.
        static func redactedURL(_ text: String) -> String {
            text.contains(":/") || text.contains("@") ? URLRedaction.redact(text).text : text
        }

        func run(_ context: CommandContext) throws {
            let config = context.configuration
            var rows: [ConfigRow] = []
            for key in config.keys where !key.isPattern && !key.isRecords {
                let entry = config.entry(key)
                var value = entry?.value.description
                if key == .dsn, let dsn = value { value = ConnectionOptions.redact(dsn) }
                if key == .redisURL, let url = value { value = QueueConfig.redact(url: url) }
                // Any other URL (etl.games.source…): no user info, credential parameter values REDACTED.
                if key != .dsn && key != .redisURL, let text = value { value = Self.redactedURL(text) }
                rows.append(ConfigRow(key: key.name, value: value, source: entry?.source.description ?? "unset", env: key.environmentVariable))
            }
            for (path, entry) in config.entries.sorted(by: { $0.key < $1.key }) where config.keys.contains(where: { $0.isPattern && $0.matches(path) }) {
                rows.append(ConfigRow(key: path, value: Self.redactedURL(entry.value.description), source: entry.source.description, env: nil))
            }
            let alerts = try AlertDestination.all(in: config).map {
                AlertRow(name: $0.name, type: $0.kind.rawValue, secretFrom: $0.secretRef ?? $0.secretEnv.map { "env \($0)" } ?? $0.secretFile.map { "file \($0)" } ?? "")
            }
            let libpq = ["PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGSERVICE", "PGSSLMODE", "PGPASSFILE", "PGAPPNAME"]
                .compactMap { name in config.environment[name].map { "\(name)=\($0)" } }
                + (config.environment["PGPASSWORD"] != nil ? ["PGPASSWORD=\(SecretRedactor.mask)"] : [])
            switch format {
            case .json:
                context.output(try JSONOutput.encode(ConfigReport(file: config.file, settings: rows, alerts: alerts, libpqEnvironment: libpq)))
            case .text:
                context.output("config file: \(config.file ?? "(none; ./nfldb.yaml not found)")")
                let width = rows.map(\.key.count).max() ?? 10
                let valueWidth = min(48, rows.map { ($0.value ?? "(unset)").count }.max() ?? 10)
                for row in rows {
                    let value = row.value ?? "(unset)"
                    context.output(
                        row.key.padding(toLength: width + 2, withPad: " ", startingAt: 0)
                            + value.padding(toLength: max(valueWidth, value.count) + 2, withPad: " ", startingAt: 0) + row.source)
                }
                if !alerts.isEmpty {
                    context.output("alerts:")
                    for alert in alerts { context.output("  \(alert.name) (\(alert.type)), secret from \(alert.secretFrom)") }
                }
                context.output("libpq environment: \(libpq.isEmpty ? "(none)" : libpq.joined(separator: " "))")
            }
        }
    }
}

struct ConfigRow: Codable {
    let key: String
    let value: String?
    let source: String
    let env: String?
}

struct AlertRow: Codable {
    let name: String
    let type: String
    let secretFrom: String
}

struct ConfigReport: Codable {
    let file: String?
    let settings: [ConfigRow]
    let alerts: [AlertRow]
    let libpqEnvironment: [String]
}
