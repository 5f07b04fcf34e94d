import ArgumentParser
import Foundation
import Synchronization
import Logging
import NFLDBBackup
import NFLDBCore
import NFLDBPgBackRest
import NFLDBPostgres
import NFLDBSandbox

/// `nfldb backup …`: pgBackRest made easy to set up right, and a nightly restore test.
struct BackupCommand: ParsableCommand {
    /// Signal path: stops the running child (pgBackRest) and waits for it (at most 30 s), parking the
    /// main thread's wait (``ProcessRunner/stopping``); returns whether a child was running.
    static func stopChildren() -> Bool {
        defer { ProcessRunner.removeTemporaryFiles() }
        return ProcessRunner.stopActiveChildren(within: .seconds(30), park: true)
    }

    static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "pgBackRest backups with a canary and a row-count manifest, and a restore verification that proves them.",
        discussion: """
            Configuration: backup.config (NFLDB_BACKUP_CONFIG, the pgbackrest.conf passed as --config), backup.stanza \
            (NFLDB_BACKUP_STANZA, default nfldb), postgres.os_user (pgBackRest and the server programs run as this user when \
            nfldb runs as root). `nfldb sandbox env` exports both for the sandbox. Records live in the database: \
            nfldb.backup_canaries, nfldb.backup_manifests, nfldb.backup_runs, nfldb.backup_verifications.

            Exit status: 0 success; 1 failure (pgBackRest's error code and its ERROR:/HINT: lines are shown; for verify, any \
            failed check); 2 usage or configuration error.
            """,
        subcommands: [Config.self, Init.self, Run.self, Info.self, Verify.self, Restore.self])

    static func pgbackrest(_ context: CommandContext) throws -> PgBackRest {
        let settings = try BackupConfig(configuration: context.configuration)
        guard let config = settings.configPath else {
            throw OperatorError(
                "no pgBackRest config: backup.config is not set", hint: "Set backup.config in nfldb.yaml or NFLDB_BACKUP_CONFIG (`eval \"$(nfldb sandbox env)\"` sets it for the sandbox).",
                exitStatus: .usage)
        }
        return PgBackRest(configPath: config, stanza: settings.stanza, osUser: osUser(context))
    }

    static func osUser(_ context: CommandContext) -> String? {
        SandboxConfig(configuration: context.configuration).runAsUser
    }

    static func tables(_ context: CommandContext) throws -> ManagedTables {
        try BackupConfig(configuration: context.configuration).tables
    }

    /// A request refused as a usage error, for `--format json`: `status: refused` with the error, hint and detail.
    static func refusedJSON(_ error: any NFLDBError) throws -> String { try errorJSON(error, status: "refused") }

    /// A run that failed (exit 1) after it began: `status` `failed`, with the error, detail and hint.
    static func failedJSON(_ error: any NFLDBError) throws -> String { try errorJSON(error, status: "failed") }

    static func errorJSON(_ error: any NFLDBError, status: String) throws -> String {
        var object = ["status": status, "error": error.diagnostic.summary]
        if let hint = error.diagnostic.hint { object["hint"] = hint }
        if let detail = error.diagnostic.detail { object["detail"] = detail }
        return try json(object)
    }

    static func json<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }
}

extension BackupCommand {
    struct Config: GlobalOptionsCommand {
        static let configuration = CommandConfiguration(
            abstract: "Render pgbackrest.conf from the built-in template (or --template) and print the server settings archiving needs.",
            discussion: """
                pg1-path, port, socket directory and user come from the live server (SHOW data_directory …). --write writes the file \
                to backup.config; --check compares the live wal_level/archive_mode/archive_command with what is required and exits 1 \
                when they differ.
                """)
        @OptionGroup var global: GlobalOptions
        @ParentCommand var root: NFLDB
        @Option(name: .customLong("repo-path"), help: "repo1-path (default backup.repo_path).") var repoPath: String?
        @Option(name: .customLong("retention-full"), help: "repo1-retention-full (default 2).") var retentionFull = 2
        @Option(name: .customLong("retention-diff"), help: "repo1-retention-diff (default 6).") var retentionDiff = 6
        @Option(name: .customLong("compress-type"), help: "compress-type: lz4, gz, zst, none (default lz4).") var compressType = "lz4"
        @Option(name: .customLong("process-max"), help: "process-max (default 2).") var processMax = 2
        @Option(name: .customLong("cipher-pass-env"), help: ArgumentHelp("Encrypt the repo (aes-256-cbc) with the passphrase in this environment variable.", valueName: "name"))
        var cipherPassEnv: String?
        @Option(name: .customLong("cipher-pass-file"), help: ArgumentHelp("Encrypt the repo with the passphrase in this file's first line.", valueName: "path"))
        var cipherPassFile: String?
        @Option(name: .customLong("cipher-pass-ref"), help: ArgumentHelp(
            "Encrypt the repo with the passphrase at this secret reference (env:NAME, file:PATH, aws-sm:ID[#key][@stage]).", valueName: "ref"))
        var cipherPassRef: String?
        @Option(name: .customLong("repo-type"), help: "posix or s3 (default backup.repo_type, posix); with s3, --repo-path is the prefix in the bucket.")
        var repoType: String?
        @Option(name: .customLong("s3-bucket"), help: "repo1-s3-bucket (default backup.s3.bucket).") var s3Bucket: String?
        @Option(name: .customLong("s3-endpoint"), help: "repo1-s3-endpoint (default backup.s3.endpoint).") var s3Endpoint: String?
        @Option(name: .customLong("s3-region"), help: "repo1-s3-region (default backup.s3.region).") var s3Region: String?
        @Option(name: .customLong("s3-uri-style"), help: "host or path (default backup.s3.uri_style, host).") var s3URIStyle: String?
        @Option(name: .customLong("s3-key-env"), help: ArgumentHelp(
            "Environment variables holding the S3 access key and secret (default backup.s3.key_env; unset: the instance's IAM role).",
            valueName: "KEY_VAR,SECRET_VAR"))
        var s3KeyEnv: String?
        @Option(name: .customLong("s3-key-ref"), help: ArgumentHelp(
            "Secret references for the S3 access key and secret (e.g. aws-sm:backup/s3#key,aws-sm:backup/s3#secret).", valueName: "KEY_REF,SECRET_REF"))
        var s3KeyRef: String?
        @Option(help: "Template file with {{…}} placeholders (default: the built-in template).") var template: String?
        @Flag(help: "Write the rendered file to backup.config (owned by postgres.os_user).") var write = false
        @Flag(help: "Compare the live server's archiving settings with the required ones; exit 1 on a difference.") var check = false

        /// The S3 repo settings from flags and config, or nil for a posix repo.
        func s3Repo(_ configuration: BackupConfig) throws -> ConfigRenderer.S3Repo? {
            let type = repoType ?? configuration.repoType
            guard type == "s3" else {
                guard type == "posix" else { throw OperatorError("--repo-type must be posix or s3 (got '\(type)')", exitStatus: .usage) }
                return nil
            }
            func required(_ flag: String?, _ configured: String?, _ key: ConfigKey, _ name: String) throws -> String {
                guard let value = flag ?? configured, !value.isEmpty else {
                    throw OperatorError("an s3 repo needs \(name): pass --\(name) or set \(key.name)", exitStatus: .usage)
                }
                return value
            }
            var repo = ConfigRenderer.S3Repo(bucket: try required(s3Bucket, configuration.s3Bucket, .backupS3Bucket, "s3-bucket"),
                                             endpoint: try required(s3Endpoint, configuration.s3Endpoint, .backupS3Endpoint, "s3-endpoint"),
                                             region: try required(s3Region, configuration.s3Region, .backupS3Region, "s3-region"))
            repo.uriStyle = s3URIStyle ?? configuration.s3URIStyle
            guard ["host", "path"].contains(repo.uriStyle) else {
                throw OperatorError("--s3-uri-style must be host or path (got '\(repo.uriStyle)')", exitStatus: .usage)
            }
            if let refs = s3KeyRef {
                let parts = refs.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                guard parts.count == 2 else {
                    throw OperatorError("--s3-key-ref must be two secret references, KEY_REF,SECRET_REF", exitStatus: .usage)
                }
                repo.key = try SecretResolver.shared.resolve(parts[0], what: "--s3-key-ref (access key)")
                repo.keySecret = try SecretResolver.shared.resolve(parts[1], what: "--s3-key-ref (secret key)")
            } else if let names = s3KeyEnv ?? configuration.s3KeyEnv {
                let parts = names.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                let environment = ProcessInfo.processInfo.environment
                guard parts.count == 2, let key = environment[parts[0]], !key.isEmpty, let secret = environment[parts[1]], !secret.isEmpty else {
                    throw OperatorError("--s3-key-env (backup.s3.key_env) must name two set environment variables, as KEY_VAR,SECRET_VAR (the names, not the values)",
                                        hint: "Export both variables, or drop --s3-key-env to use the instance's IAM role.", exitStatus: .usage)
                }
                repo.key = key
                repo.keySecret = secret
            }
            return repo
        }

        static let commandPath = "backup config"

        func run(_ context: CommandContext) throws {
            let backupConfig = try BackupConfig(configuration: context.configuration)
            let pg = try BackupCommand.pgbackrest(context)
            let db = try context.connect()
            defer { db.close() }
            var renderer = try ConfigRenderer.forServer(
                db, stanza: pg.stanza, configPath: pg.configPath, repoPath: repoPath ?? backupConfig.repoPath ?? "/var/lib/pgbackrest")
            renderer.retentionFull = retentionFull
            renderer.retentionDiff = retentionDiff
            renderer.compressType = compressType
            renderer.processMax = processMax
            if let cipherPassRef {
                renderer.cipherPass = try SecretResolver.shared.resolve(cipherPassRef, what: "--cipher-pass-ref")
            } else if let cipherPassEnv {
                guard let pass = ProcessInfo.processInfo.environment[cipherPassEnv], !pass.isEmpty else {
                    throw OperatorError("--cipher-pass-env \(cipherPassEnv) is not set", exitStatus: .usage)
                }
                renderer.cipherPass = pass
            } else if let cipherPassFile {
                // The same rule as a file: reference: group or world access is refused.
                renderer.cipherPass = try SecretResolver.shared.resolve(
                    SecretReference(scheme: "file", identifier: cipherPassFile), what: "--cipher-pass-file")
            }
            if let pass = renderer.cipherPass { SecretRedactor.shared.register(pass) }
            renderer.s3 = try s3Repo(backupConfig)
            if let secret = renderer.s3?.keySecret { SecretRedactor.shared.register(secret) }
            if check {
                let differences = try renderer.differences(db)
                for (name, value) in renderer.requiredSettings {
                    let diff = differences.first { $0.name == name }
                    context.output(diff == nil ? "ok    \(name) = \(value)" : "DIFF  \(name): live '\(diff?.live ?? "")', required '\(value)'")
                }
                if !differences.isEmpty {
                    throw OperatorError(
                        "\(differences.count) archiving setting(s) differ from what stanza \(pg.stanza) needs",
                        hint: "Set them with ALTER SYSTEM (archive_mode needs a restart), then run `nfldb backup init`.")
                }
                return
            }
            let templateText = try template.map { try String(contentsOfFile: $0, encoding: .utf8) } ?? ConfigRenderer.defaultTemplate
            let missing = renderer.missingSlots(in: templateText)
            guard missing.isEmpty else {
                throw OperatorError(
                    "the template \(template ?? "(built-in)") has no slot for \(missing.joined(separator: " and "))",
                    hint: "Add the placeholder to the template (the built-in one, rendered by `nfldb backup config`, shows where), or render without those options.",
                    exitStatus: .usage)
            }
            let text = renderer.render(template: templateText)
            if write {
                try renderer.install(template: templateText, osUser: BackupCommand.osUser(context))
                context.say("wrote \(pg.configPath)")
            } else {
                context.output(SecretRedactor.shared.redact(text))
            }
            context.output("# PostgreSQL settings archiving into stanza \(pg.stanza) needs:")
            for (name, value) in renderer.requiredSettings { context.output("#   \(name) = '\(value)'") }
        }
    }

    struct Init: GlobalOptionsCommand {
        static let configuration = CommandConfiguration(
            abstract: "stanza-create, then check (archive_command works, WAL reaches the repo).",
            discussion: "Typical failures: 082 archive timeout (archive_command broken), 075/037 stanza missing, 027/056 database down.")
        @OptionGroup var global: GlobalOptions
        @ParentCommand var root: NFLDB
        @Option(name: .customLong("archive-timeout"), help: "Seconds `check` waits for WAL to be archived (default 60).") var archiveTimeout = 60

        static let commandPath = "backup init"

        func run(_ context: CommandContext) throws {
            let pg = try BackupCommand.pgbackrest(context)
            try pg.runChecked("stanza-create", ["--log-level-console=warn"], timeout: .seconds(300), logger: context.logger)
            context.say("stanza \(pg.stanza) created (or already present)")
            try pg.runChecked("check", ["--archive-timeout=\(archiveTimeout)", "--log-level-console=warn"], timeout: .seconds(Int64(archiveTimeout) + 60), logger: context.logger)
            context.say("check passed: archiving into stanza \(pg.stanza) works")
            finished(context, "backup init")
        }
    }

    struct Run: GlobalOptionsCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a canary and a row-count manifest, then run a pgBackRest backup; recorded in nfldb.backup_runs.")
        @OptionGroup var global: GlobalOptions
        @ParentCommand var root: NFLDB
        @Option(help: "full, diff or incr.") var type = "full"
        @Option(help: "Output format: text or json.") var format: OutputFormat = .text

        static let commandPath = "backup run"

        func run(_ context: CommandContext) throws {
            let pg = try BackupCommand.pgbackrest(context)
            let db = try context.connect()
            defer { db.close() }
            // SIGTERM/SIGHUP/SIGINT (cron's or systemd's timeout, a dropped ssh session): stop pgBackRest, record the
            // run as failed, one line, exit 128+signal. Before, pgBackRest finished as an orphan and the row stayed running.
            let runID = Mutex<Int64?>(nil)
            let target = try context.connectionOptions()
            let logger = context.logger
            SignalExit.install { signal in
                let stoppedChild = BackupCommand.stopChildren()
                let stopped = stoppedChild ? "pgBackRest was stopped (its next backup resumes or removes the partial one)" : "pgBackRest was not running"
                guard let id = runID.withLock({ $0 }) else { return "backup run interrupted by \(signal) before its run was recorded; \(stopped)" }
                do {
                    if let label = try BackupRunner.recordInterrupted(runID: id, signal: signal, target: target, logger: logger) {
                        // The backup had finished and is recorded ok: the signal stopped its retention (pgbackrest expire).
                        let expire = stoppedChild ? "its retention (pgbackrest expire) was stopped" : "its retention was not running"
                        return "backup run interrupted by \(signal) after its backup \(label) finished: run \(id) stays recorded ok; "
                            + "\(expire); the next backup run applies the retention"
                    }
                    return "backup run interrupted by \(signal): \(stopped); run \(id) recorded as failed; run it again"
                } catch {
                    return "backup run interrupted by \(signal): \(stopped); run \(id) could not be marked failed (\(error)); the next backup run marks it"
                }
            }
            let report = try BackupRunner(pgbackrest: pg, connection: db, tables: BackupCommand.tables(context), logger: context.logger)
                .run(type: type, onStarted: { id in runID.withLock { $0 = id } })
            if format == .json {
                context.output(try BackupCommand.json(report))
            } else {
                context.output("backup \(report.label) (\(report.type)) ok in \(String(format: "%.1f", report.durationSeconds)) s; "
                    + "canary \(report.token); manifest of \(report.counts.count) table(s); repo delta \(report.repoDeltaBytes.map(String.init) ?? "?") bytes"
                    + (report.retention.map { "; retention \($0)" + (report.retentionDetail.map { ": \($0)" } ?? "") } ?? ""))
            }
            finished(context, "backup run")
        }
    }

    struct Info: GlobalOptionsCommand {
        static let configuration = CommandConfiguration(
            abstract: "Backups, ages, sizes and the WAL archive range (pgbackrest info, with every stanza's status checked).",
            discussion: "Exits 1 when a stanza's status is not ok (pgBackRest itself exits 0 for a missing stanza).")
        @OptionGroup var global: GlobalOptions
        @ParentCommand var root: NFLDB
        @Option(help: "Output format: text or json.") var format: OutputFormat = .text

        static let commandPath = "backup info"

        func run(_ context: CommandContext) throws {
            let pg = try BackupCommand.pgbackrest(context)
            let stanzas = try pg.info(requireOK: false, logger: context.logger)
            if format == .json {
                context.output(try BackupCommand.json(stanzas))
            } else {
                let now = Date().timeIntervalSince1970
                for stanza in stanzas {
                    context.output("stanza \(stanza.name): status \(stanza.status.code) (\(stanza.status.message))")
                    for db in stanza.db { context.output("  db \(db.id): PostgreSQL \(db.version), system-id \(db.systemID)") }
                    for archive in stanza.archive { context.output("  wal archive \(archive.id): \(archive.min ?? "-") … \(archive.max ?? "-")") }
                    for b in stanza.backup {
                        let age = (now - Double(b.timestamp.stop)) / 3600
                        context.output(String(format: "  %@  %@  age %.1f h  size %@  repo delta %@", b.label, b.type, age,
                                              b.info?.size.map(String.init) ?? "?", b.info?.repository?.delta.map(String.init) ?? "?"))
                    }
                }
            }
            try StanzaInfo.requireOK(stanzas, configPath: pg.configPath)
        }
    }

    struct Verify: GlobalOptionsCommand {
        static let configuration = CommandConfiguration(
            abstract: "Prove the latest (or a chosen) backup restores to a working database with the right data.",
            discussion: """
                Pre-flight (info status, `pgbackrest verify` text, WAL continuity, archive timeline, scratch free space), restore \
                into a scratch dir (--type=immediate, or --type=time with --target-time; with --reuse-scratch, --delta into the \
                copy kept last time) with archive_mode off, start on a free 127.0.0.1 port, wait until promoted, then check the \
                canary, row counts and reference-table checksums against the manifest, schema version, pg_amcheck \
                --heapallindexed (with --reuse-scratch it skips relation groups whose files, catalog rows and tuple visibility \
                provably did not change since a clean check younger than backup.verify.amcheck_recheck_interval, 7d), \
                page checksums (pgBackRest's page check at backup time plus every page read after the restore; \
                a pg_checksums pass with backup.verify.page_checksums: pg_checksums or --full) and the server log. The full \
                `pgbackrest verify` runs when the last passing one is older than backup.verify.repo_verify_interval (7d) or with \
                --full; otherwise the archive is listed for WAL continuity. The copy is always stopped, and removed unless kept with \
                --reuse-scratch (also on SIGTERM). The JSON receipt goes to nfldb.backup_verifications and --receipt. Exit 0 \
                only if every check passed.
                """)
        @OptionGroup var global: GlobalOptions
        @ParentCommand var root: NFLDB
        @Option(help: "Backup label to verify (default: the latest).") var set: String?
        @Option(name: .customLong("target-time"), help: "Point-in-time restore to this timestamptz instead.") var targetTime: String?
        @Option(help: "Scratch directory (must not exist unless --reuse-scratch; default backup.scratch_dir or /var/tmp, in nfldb-verify-<random>).") var scratch: String?
        @Flag(name: .customLong("reuse-scratch"), inversion: .prefixedNo,
              help: "Keep the stopped copy and restore into it with --delta next time (default backup.verify.reuse_scratch; dir <scratch_dir>/nfldb-verify-<stanza>, else /var/lib/nfldb/nfldb-verify-<stanza>).")
        var reuseScratch: Bool?
        @Flag(name: .customLong("skip-space-check"), help: "Skip the free-space pre-flight on the scratch filesystem (for filesystems whose statvfs misreports).")
        var skipSpaceCheck = false
        @Option(name: .customLong("amcheck-jobs"), help: "pg_amcheck --jobs (default backup.verify.amcheck_jobs, else the CPU count, at most 8).") var amcheckJobs: Int?
        @Flag(help: "Do every check this run whatever backup.verify.* says: the full `pgbackrest verify` of every repo file (else only when the last one is older than backup.verify.repo_verify_interval, 7d), a pg_checksums pass on the stopped copy (else backup.verify.page_checksums), and pg_amcheck of every relation (no skipping of unchanged ones).")
        var full = false
        @Option(help: "Port for the restored copy (default: a free one).") var port: Int?
        @Option(help: "Also write the JSON receipt to this file.") var receipt: String?
        @Option(help: "Output format: text or json.") var format: OutputFormat = .text

        static let commandPath = "backup verify"

        /// `--amcheck-jobs` replaces `backup.verify.amcheck_jobs` before the settings are checked, so a
        /// bad value in the file does not block the flag meant to override it.
        var settingFlags: [String: (value: String, flag: String)] {
            amcheckJobs.map { [ConfigKey.backupAmcheckJobs.name: (String($0), "--amcheck-jobs")] } ?? [:]
        }

        func run(_ context: CommandContext) throws {
            do {
                try verify(context)
            } catch let error as any NFLDBError where error.exitStatus == .usage && format == .json {
                // A refused request: valid JSON on stdout too (no receipt: nothing ran or was recorded).
                context.output(try BackupCommand.refusedJSON(error))
                throw error
            }
        }

        func verify(_ context: CommandContext) throws {
            let pg = try BackupCommand.pgbackrest(context)
            let binaries = try PostgresBinaries.locate(configured: SandboxConfig(configuration: context.configuration).binDirectory)
            // --amcheck-jobs is in the configuration already (``settingFlags``), checked at start-up.
            let backupConfig = try BackupConfig(configuration: context.configuration)
            let db = try context.connect()
            defer { db.close() }
            ActiveScratch.installSignalHandlers()
            var options = VerifyOptions(binaries: binaries, set: set, targetTime: targetTime, port: port, receiptPath: receipt)
            options.skipSpaceCheck = skipSpaceCheck
            options.apply(backupConfig)
            options.full = full
            if let reuseScratch { options.reuseScratch = reuseScratch }
            // Without a scratch_dir, Verifier picks /var/tmp/nfldb-verify-<random>, or for a kept copy
            // ReusableScratch.defaultDirectory (not world-writable /var/tmp: the name is predictable).
            options.scratchDirectory = scratch ?? backupConfig.scratchDirectory.map {
                ($0 as NSString).appendingPathComponent(options.reuseScratch
                    ? "nfldb-verify-\(pg.stanza)" : "nfldb-verify-\(UUID().uuidString.prefix(8).lowercased())")
            }
            let result = try Verifier(pgbackrest: pg, primary: db, options: options, logger: context.logger).run()
            context.output(format == .json ? result.encoded() : result.renderText())
            finished(context, "backup verify")
            if !result.passed {
                let failed = result.failedChecks.map { "\($0.name): \($0.evidence)" }.joined(separator: "\n")
                throw OperatorError("backup verification failed", detail: failed)
            }
        }
    }

    struct Restore: GlobalOptionsCommand {
        static let configuration = CommandConfiguration(
            abstract: "Restore a backup into a directory for a real recovery (never into a running cluster's data dir).",
            discussion: """
                Every tablespace is restored under --tablespace-dir (default <to>_tablespaces), never to its original path \
                (on the same host that is the primary's live tablespace). Every check runs before the directory is touched: refuses \
                a --to or --tablespace-dir that is, lies inside or contains a running cluster's data directory or tablespace, a \
                non-empty directory without --delta, a non-empty non-data directory with --delta, a path the OS user cannot reach, an unknown --set and a \
                --target-time before the first backup (exit 2). Without --target-time, restores to the end of the WAL archive.
                """)
        @OptionGroup var global: GlobalOptions
        @ParentCommand var root: NFLDB
        @Option(help: "Target data directory.") var to: String
        @Option(help: "Backup label (default: chosen by pgBackRest).") var set: String?
        @Option(name: .customLong("target-time"), help: "Recover to this time and promote.") var targetTime: String?
        @Flag(help: "Reuse the files already in the directory (pgbackrest --delta).") var delta = false
        @Option(name: .customLong("tablespace-dir"), help: ArgumentHelp(
            "Restore every tablespace into <dir>/<name> (pgbackrest --tablespace-map-all; default <to>_tablespaces, beside it: pgBackRest refuses one inside the data directory). Never the original paths.",
            valueName: "dir"))
        var tablespaceDir: String?
        @Option(help: "Output format: text or json.") var format: OutputFormat = .text

        static let commandPath = "backup restore"

        /// `--format json`: what was restored where and the next step; a refused request is JSON too.
        struct Restored: Encodable {
            let status = "restored"
            let target: String
            let backup: String?
            let targetTime: String?
            let delta: Bool
            let tablespaces: [[String: String]]
            let notes: [String]
            let nextStep: String
            enum CodingKeys: String, CodingKey {
                case status, target, backup, delta, tablespaces, notes
                case targetTime = "target_time", nextStep = "next_step"
            }
        }

        func run(_ context: CommandContext) throws {
            // SIGTERM/SIGHUP/SIGINT: stop pgBackRest (it kept restoring as an orphan), say what is left, exit 128+signal.
            let target = to
            SignalExit.install { signal in
                let stopped = BackupCommand.stopChildren()
                return "backup restore interrupted by \(signal): \(stopped ? "pgBackRest was stopped" : "pgBackRest was not running"); "
                    + "\(target) holds a partial restore: do not start a server on it; remove it, or restore into it again with --delta"
            }
            let report: Restorer.Report
            // The primary holds the expire guard while the restore runs; a recovery often runs with it down.
            var primary: PostgresConnection?
            var unavailable: String?
            do {
                primary = try context.connect()
            } catch {
                unavailable = (error as? any NFLDBError)?.diagnostic.summary ?? "\(error)"
                context.logger.warning("no connection to the primary: the restore goes on without the expire guard",
                                       metadata: ["error": .string(unavailable ?? "")])
            }
            defer { primary?.close() }
            do {
                report = try Restorer(pgbackrest: try BackupCommand.pgbackrest(context), logger: context.logger, primary: primary, primaryUnavailable: unavailable)
                    .restore(Restorer.Request(target: to, set: set, targetTime: targetTime, delta: delta, tablespaceDirectory: tablespaceDir))
            } catch let error as any NFLDBError where format == .json {
                // Refused before the directory was touched (exit 2), or failed (exit 1): valid JSON on stdout too.
                context.output(try error.exitStatus == .usage ? BackupCommand.refusedJSON(error) : BackupCommand.failedJSON(error))
                throw error
            }
            if format == .json {
                context.output(try BackupCommand.json(Restored(
                    target: report.target, backup: report.backup, targetTime: targetTime, delta: delta,
                    tablespaces: report.tablespaces.map { ["oid": $0.oid, "path": $0.path] }, notes: report.notes, nextStep: report.nextStep)))
            } else {
                report.lines.forEach { context.output($0) }
            }
            finished(context, "backup restore")
        }
    }
}
