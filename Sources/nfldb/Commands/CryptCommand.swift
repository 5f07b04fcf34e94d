import ArgumentParser
import Foundation
import Logging
import NFLDBCore
import NFLDBCrypt
import NFLDBFernet
import NFLDBPostgres

/// `nfldb crypt keygen | encrypt | decrypt | rotate`: Fernet field-level encryption.
struct CryptCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "crypt",
        abstract: "Fernet field-level encryption (compatible with Python cryptography): keys, encrypt/decrypt, column key rotation.",
        discussion: """
            Keys are given only by reference: --key-ref env:NAME or file:PATH (mode 0600), comma-separated, newest first. \
            The newest key encrypts; any key decrypts. Exit status: 0 ok, 1 failure (or rows that no key opens), 2 usage.
            """,
        subcommands: [Keygen.self, Encrypt.self, Decrypt.self, Rotate.self, Bench.self])
}

/// `--key-ref REF[,REF…]`.
struct KeyRefOption: ParsableArguments {
    @Option(
        name: .customLong("key-ref"),
        help: ArgumentHelp("Key references, newest first: env:NAME or file:PATH, comma-separated.", valueName: "ref[,ref…]"))
    var keyRef: String
}

extension CryptCommand {
    struct Keygen: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print a new random Fernet key (44 characters). Store it where a key reference can find it.")

        func run() throws {
            print(try FernetKey.generate().encoded)
        }
    }

    struct Encrypt: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Encrypt standard input, one value per line, to one token per line, with the newest key.")
        @OptionGroup var keys: KeyRefOption

        func run() throws {
            _ = try FernetStream.run(.encrypt, ring: KeyRing.load(keys.keyRef))
        }
    }

    struct Decrypt: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Decrypt tokens from standard input, one per line, trying every key; stops at the first line no key opens.")
        @OptionGroup var keys: KeyRefOption
        @Option(help: ArgumentHelp("Reject tokens older than this many seconds (and more than 60 s in the future).", valueName: "seconds"))
        var ttl: Int64?

        func validate() throws {
            if let ttl, ttl < 0 { throw ValidationError("--ttl must not be negative") }
        }

        func run() throws {
            _ = try FernetStream.run(.decrypt(ttl: ttl), ring: KeyRing.load(keys.keyRef))
        }
    }

    struct Rotate: GlobalOptionsCommand {
        static let configuration = CommandConfiguration(
            abstract: "Re-encrypt a column with the newest key, in primary-key batches; resumable, under an advisory lock.",
            discussion: """
                Rows the newest key already opens are skipped, so an interrupted run is resumed by running it again. Rows no \
                key opens are listed by primary key, left unchanged, and make the exit status 1.
                """)
        @OptionGroup var global: GlobalOptions
        @ParentCommand var root: NFLDB
        @OptionGroup var keys: KeyRefOption
        @Option(help: ArgumentHelp("Table, as in SQL: games, nfl.games, \"My Schema\".\"Odd \"\"T\"\"\".", valueName: "table"))
        var table: String
        @Option(help: ArgumentHelp("Column holding Fernet tokens (exact name, no quotes).", valueName: "column"))
        var column: String
        @Option(name: .customLong("batch-size"), help: "Rows per batch (one transaction each).")
        var batchSize = 5000
        @Option(name: .customLong("lock-timeout"), help: ArgumentHelp("lock_timeout for each batch.", valueName: "duration"))
        var lockTimeout = "5s"
        @Option(name: .customLong("lock-wait"), help: ArgumentHelp("Wait this long for another rotate of the same column (default: refuse at once).", valueName: "duration"))
        var lockWait = "0s"
        @Option(help: "Output format: text or json.")
        var format: OutputFormat = .text

        func validate() throws {
            guard batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1") }
            guard let timeout = DurationParser.parse(lockTimeout) else { throw ValidationError("--lock-timeout: not a duration (e.g. 5s, 500ms)") }
            if let problem = DurationParser.postgresTimeoutProblem(timeout) {
                throw ValidationError("--lock-timeout '\(lockTimeout)' \(problem); give 24d or less (0 turns it off)")
            }
            guard DurationParser.parse(lockWait) != nil else { throw ValidationError("--lock-wait: not a duration (e.g. 0s, 2m)") }
        }

        static let commandPath = "crypt rotate"

        func run(_ context: CommandContext) throws {
            let ring = try KeyRing.load(keys.keyRef)
            var options = RotationOptions(table: table, column: column)
            options.batchSize = batchSize
            options.lockTimeout = DurationParser.parse(lockTimeout)!
            options.lockWait = DurationParser.parse(lockWait)!
            let connection = try context.connect()
            defer { connection.close() }
            let tty = isatty(STDERR_FILENO) == 1 && !context.quiet
            let rotator = ColumnRotator(connection: connection, ring: ring, logger: context.logger, readerOptions: try context.connectionOptions())
            let report = try rotator.run(options) { step in
                guard tty else { return }
                let total = max(step.estimatedRows, step.scanned)
                FileHandle.standardError.write(Data("\rcrypt rotate: \(step.scanned)/~\(total) rows scanned, \(step.rotated) re-encrypted".utf8))
            }
            if tty { FileHandle.standardError.write(Data("\n".utf8)) }
            switch format {
            case .json: context.output(try JSONOutput.encode(report))
            case .text:
                context.output("\(report.table).\(report.column): \(report.rotated) re-encrypted, \(report.alreadyCurrent) already under the newest key, \(report.nulls) NULL, \(report.undecryptableCount) undecryptable (\(report.scanned) rows, \(report.batches) batches, \(String(format: "%.1f", report.seconds)) s)")
                for entry in report.openedBy { context.output("  opened with \(entry.reference): \(entry.rows)") }
                for row in report.undecryptable { context.output("  undecryptable: \(row.key): \(row.reason)") }
                if report.undecryptableCount > report.undecryptable.count {
                    context.output("  … and \(report.undecryptableCount - report.undecryptable.count) more undecryptable rows")
                }
                if report.changedConcurrently > 0 { context.output("  \(report.changedConcurrently) rows changed while rotating and were left alone; run again") }
            }
            finished(context, "crypt rotate")
            if report.undecryptableCount > 0 {
                throw OperatorError(
                    "crypt rotate: \(report.undecryptableCount) row\(report.undecryptableCount == 1 ? "" : "s") of \(report.table).\(report.column) open with none of the \(ring.keys.count) keys; left unchanged",
                    hint: "Add the key that encrypted them to --key-ref (after the newest) and run again; the rows listed above are identified by primary key.")
            }
        }
    }

    /// Hidden: the in-process measurement used by bench/crypt.
    struct Bench: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Encrypt then decrypt N short values in-process (for bench/crypt).", shouldDisplay: false)
        @Option var count = 1_000_000
        @Option(name: .customLong("value-length")) var valueLength = 20
        @Option(help: "buffer (encrypt(_:into:), as crypt encrypt/decrypt/rotate use) or string (String in, [UInt8] out).")
        var api = "buffer"

        func validate() throws {
            guard FernetBench.API(rawValue: api) != nil else { throw ValidationError("--api: buffer or string") }
        }

        func run() throws {
            let result = try FernetBench.run(count: count, valueLength: valueLength, api: FernetBench.API(rawValue: api)!)
            print(String(format: "count=%d encrypt_s=%.3f decrypt_s=%.3f total_s=%.3f cpu_s=%.3f", result.count, result.encryptSeconds, result.decryptSeconds,
                         result.totalSeconds, result.cpuSeconds))
        }
    }
}
