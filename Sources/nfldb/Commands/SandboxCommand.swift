import ArgumentParser
import Foundation
import Logging
import NFLDBCore
import NFLDBPostgres
import NFLDBSandbox

/// `nfldb sandbox up|down|status|env`: a throwaway local PostgreSQL 15 cluster.
struct SandboxCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sandbox",
        abstract: "A throwaway local PostgreSQL cluster for demos and development.",
        discussion: """
            The cluster listens on a free 127.0.0.1 port, with data checksums, pg_stat_statements preloaded and \
            WAL archiving into a pgBackRest stanza under its state dir. Its password lives only in the state dir's \
            pgpass file. As root, the server runs as postgres.os_user (default postgres).
            """,
        subcommands: [Up.self, Down.self, Status.self, Env.self])

    static func sandbox(_ context: CommandContext, dir: String?) -> Sandbox {
        let config = SandboxConfig(configuration: context.configuration)
        return Sandbox(stateDirectory: dir ?? config.stateDirectory, osUser: config.osUser, binDirectory: config.binDirectory)
    }

    struct Up: GlobalOptionsCommand {
        static let configuration = CommandConfiguration(abstract: "Create (first time) and start the sandbox; idempotent.")
        @OptionGroup var global: GlobalOptions
        @ParentCommand var root: NFLDB
        @Option(help: "State directory (default: sandbox.dir, .nfldb/sandbox).") var dir: String?

        static let commandPath = "sandbox up"

        func run(_ context: CommandContext) throws {
            let sandbox = SandboxCommand.sandbox(context, dir: dir)
            let state = try sandbox.up(logger: context.logger)
            context.say("sandbox running: \(state.dsn) (state in \(sandbox.stateDirectory))")
            // The hint must work as printed: with --dir, env needs the same directory.
            let dirArgument = dir.map { " --dir \(ShellWord.quote($0))" } ?? ""
            context.say("use it with: eval \"$(nfldb sandbox env\(dirArgument))\"")
            finished(context, "sandbox up")
        }
    }

    struct Down: GlobalOptionsCommand {
        static let configuration = CommandConfiguration(abstract: "Stop the sandbox and delete it.")
        @OptionGroup var global: GlobalOptions
        @ParentCommand var root: NFLDB
        @Option(help: "State directory.") var dir: String?

        static let commandPath = "sandbox down"

        func run(_ context: CommandContext) throws {
            let sandbox = SandboxCommand.sandbox(context, dir: dir)
            try sandbox.down(logger: context.logger)
            context.say("sandbox removed (\(sandbox.stateDirectory))")
            finished(context, "sandbox down")
        }
    }

    struct Status: GlobalOptionsCommand {
        static let configuration = CommandConfiguration(
            abstract: "Say whether the sandbox is running.", discussion: "Exit status 0 when running, 1 otherwise.")
        @OptionGroup var global: GlobalOptions
        @ParentCommand var root: NFLDB
        @Option(help: "State directory.") var dir: String?
        @Option(help: "Output format: text or json.") var format: OutputFormat = .text

        static let commandPath = "sandbox status"

        func run(_ context: CommandContext) throws {
            let sandbox = SandboxCommand.sandbox(context, dir: dir)
            guard let state = sandbox.loadState() else {
                throw OperatorError("no sandbox in \(sandbox.stateDirectory)", hint: "Run `nfldb sandbox up`.")
            }
            let running = sandbox.isRunning(state)
            switch format {
            case .json:
                context.output(try JSONOutput.encode(SandboxStatusReport(running: running, dsn: state.dsn, state: state)))
            case .text:
                context.output("\(running ? "running" : "stopped"): \(state.dsn)")
                context.output("cluster: \(state.clusterRoot) (binaries \(state.binDirectory)\(state.osUser.map { ", OS user \($0)" } ?? ""))")
                context.output("pgBackRest: \(state.pgbackrestConfig.map { "stanza \(state.stanza), config \($0)" } ?? "not configured")")
            }
            if !running { throw ExitStatus.failure }
        }
    }

    struct Env: GlobalOptionsCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print export lines for eval: NFLDB_DSN and PG* (the password stays in PGPASSFILE).")
        @OptionGroup var global: GlobalOptions
        @ParentCommand var root: NFLDB
        @Option(help: "State directory.") var dir: String?

        static let commandPath = "sandbox env"

        func run(_ context: CommandContext) throws {
            let sandbox = SandboxCommand.sandbox(context, dir: dir)
            guard let state = sandbox.loadState() else {
                throw OperatorError("no sandbox in \(sandbox.stateDirectory)", hint: "Run `nfldb sandbox up` first.")
            }
            sandbox.environmentLines(state).forEach { context.output($0) }
        }
    }
}

struct SandboxStatusReport: Codable {
    let running: Bool
    let dsn: String
    let state: SandboxState
}
