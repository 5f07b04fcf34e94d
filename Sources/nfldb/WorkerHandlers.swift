import Foundation
import Logging
import NFLDBBackup
import NFLDBCore
import NFLDBETL
import NFLDBPgBackRest
import NFLDBPostgres
import NFLDBQueue
import NFLDBSandbox

/// The task types `nfldb worker` runs: the queue's own built-ins (`noop`, `sleep`, `fail`,
/// `db.vacuum_analyze`) plus handlers that call other capability modules (`etl.load`,
/// `backup.verify`).
///
/// They are composed here, in the executable, because capability modules are siblings: NFLDBQueue
/// must not import NFLDBETL or NFLDBBackup (that would make the queue depend on every kind of work
/// it carries, and the ETL/backup modules on nothing queue-shaped). Each handler reads its module's
/// settings from the worker's configuration when a task runs — a bad `etl.*` setting fails those
/// tasks (dead-lettered, exit-2 class errors are permanent), not the worker's start.
enum WorkerHandlers {
    static func all(configuration: Configuration, database: ConnectionOptions) -> [String: TaskHandler] {
        var handlers = BuiltinHandlers.all
        handlers["etl.load"] = { try etlLoad($0, configuration: configuration) }
        handlers["backup.verify"] = { try backupVerify($0, configuration: configuration, database: database) }
        return handlers
    }

    /// `etl.load`: `{"target": "games", "source": "PATH|URL", "options": {"on_invalid": "reject-rows|fail",
    /// "max_invalid_ratio": 0.01, "dry_run": false}}`; `source` defaults to `etl.games.source`. Runs the
    /// same loader as `nfldb etl load` on the worker thread's connection, with the task's correlation
    /// id: it lands in `nfl.etl_runs.correlation_id` and (through `nfldb.correlation_id`, set in the
    /// load's transaction) in every `audit.log` row the load writes. Returns the load's JSON result.
    /// Rows rejected past the policy are a permanent failure (the same input fails the same way);
    /// a missing file, a file outside `etl.source_roots`, a bad setting, a redirect or 4xx answer and
    /// a record over the parser's limits too; lock waits, connection errors, 429/5xx and database
    /// errors are retried.
    static func etlLoad(_ task: TaskContext, configuration: Configuration) throws -> String {
        let type = "etl.load"
        let payload = try task.payload(allowing: ["target", "source", "options"])
        guard let targetName = payload["target"] as? String else {
            // The payload itself is not repeated: its source may be a URL with credentials in it.
            let given = payload.keys.sorted().map { "\"\($0)\"" }.joined(separator: ", ")
            throw TaskFailure("\(type) needs {\"target\": \"games\", \"source\": \"PATH|URL\"}; the payload has \(given.isEmpty ? "no keys" : "only " + given)",
                              permanent: true)
        }
        guard ETLTarget(rawValue: targetName) != nil else {
            throw TaskFailure("\(type): unknown target \"\(targetName.prefix(100))\" (known: \(ETLTarget.allCases.map(\.rawValue).joined(separator: ", ")))",
                              permanent: true)
        }
        if let source = payload["source"], !(source is String) { throw TaskFailure("\(type): \"source\" must be a path or URL string", permanent: true) }
        let optionsObject: [String: Any]
        switch payload["options"] {
        case nil: optionsObject = [:]
        case let object as [String: Any]: optionsObject = object
        default: throw TaskFailure("\(type): \"options\" must be an object", permanent: true)
        }
        let known: Set<String> = ["on_invalid", "max_invalid_ratio", "dry_run"]
        let unknown = Set(optionsObject.keys).subtracting(known)
        if !unknown.isEmpty {
            throw TaskFailure("\(type): unknown option\(unknown.count == 1 ? "" : "s") \(unknown.sorted().joined(separator: ", ")) (known: \(known.sorted().joined(separator: ", ")))",
                              permanent: true)
        }
        do {
            let settings = try ETLConfig(configuration: configuration)
            var options = LoadOptions(settings: settings)
            options.correlationID = task.correlationID
            options.taskID = task.task.id
            // A cancel seen before COMMIT rolls the load back, so "cancelled" means nothing changed.
            options.isCancelled = task.cancellationCheck
            if let value = optionsObject["on_invalid"] {
                guard let text = value as? String, let policy = InvalidPolicy(rawValue: text) else {
                    throw TaskFailure("\(type): options.on_invalid must be \"reject-rows\" or \"fail\" (got \(value))", permanent: true)
                }
                options.policy = policy
            }
            if let value = optionsObject["max_invalid_ratio"] {
                guard let ratio = value as? Double, (0...1).contains(ratio) else {
                    throw TaskFailure("\(type): options.max_invalid_ratio must be a number between 0 and 1 (got \(value))", permanent: true)
                }
                options.maxInvalidRatio = ratio
            }
            if let value = optionsObject["dry_run"] {
                guard let flag = value as? Bool else { throw TaskFailure("\(type): options.dry_run must be true or false", permanent: true) }
                options.dryRun = flag
            }
            // Surrounding white space is not part of a path or URL (` https://…` must not be read as a file name).
            let source = (payload["source"] as? String)?.trimmingCharacters(in: .whitespacesAndNewlines) ?? settings.gamesSource
            try ETLSourcePolicy.check(source, roots: ETLSourcePolicy.roots(configuration, gamesSource: settings.gamesSource))
            if task.isCancelled { throw TaskFailure("\(type): cancelled before the load started", permanent: true) }
            let result = try ETLRunner.loadGames(
                connection: try task.database(), source: source, options: options, http: settings.http, logger: task.logger)
            return try JSONOutput.encode(result)
        } catch let http as HTTPSourceError {
            // A dry run does not record a run, so its HTTP failure arrives unwrapped.
            throw TaskFailure("\(type): \(http.diagnostic.oneLine)", permanent: !http.retryable)
        } catch let input as ETLInputError where input.permanent {
            throw TaskFailure("\(type): \(input.diagnostic.oneLine)", permanent: true)
        } catch let failed as LoadFailed {
            // Rejected rows over the policy, a redirect or 4xx, a record over the parser's limits: the
            // same input fails the same way, so do not retry it.
            throw TaskFailure("\(type): \(failed.diagnostic.oneLine)", permanent: failed.result.rejected > 0 || failed.permanent)
        } catch {
            throw TaskFailure.wrapping(error, type)
        }
    }

    /// `backup.verify`: `{"set": "LABEL", "target_time": "TIMESTAMPTZ", "reuse_scratch": false, "full": false}`, all
    /// optional — the same verification as `nfldb backup verify` (restore into scratch, prove the data,
    /// tear down, receipt in `nfldb.backup_verifications`). Returns the receipt. A verification whose
    /// checks fail is a permanent failure (dead-lettered with the failed checks: it is a finding, not
    /// a transient error); one that could not record its receipt is retried.
    static func backupVerify(_ task: TaskContext, configuration: Configuration, database: ConnectionOptions) throws -> String {
        let type = "backup.verify"
        let payload = try task.payload(allowing: ["set", "target_time", "reuse_scratch", "full"])
        for key in ["set", "target_time"] where payload[key] != nil && !(payload[key] is String) {
            throw TaskFailure("\(type): \"\(key)\" must be a string", permanent: true)
        }
        for key in ["reuse_scratch", "full"] where payload[key] != nil && !(payload[key] is Bool) {
            throw TaskFailure("\(type): \"\(key)\" must be true or false", permanent: true)
        }
        let receipt: VerificationReceipt
        do {
            let settings = try BackupConfig(configuration: configuration)
            guard let configPath = settings.configPath else {
                throw OperatorError("no pgBackRest config: backup.config is not set",
                                    hint: "Set backup.config in nfldb.yaml or NFLDB_BACKUP_CONFIG for the worker.", exitStatus: .usage)
            }
            let sandbox = SandboxConfig(configuration: configuration)
            let pg = PgBackRest(configPath: configPath, stanza: settings.stanza, osUser: sandbox.runAsUser)
            var options = VerifyOptions(binaries: try PostgresBinaries.locate(configured: sandbox.binDirectory),
                                        set: payload["set"] as? String, targetTime: payload["target_time"] as? String)
            options.apply(settings)
            if let reuse = payload["reuse_scratch"] as? Bool { options.reuseScratch = reuse }
            options.full = payload["full"] as? Bool ?? false
            options.scratchDirectory = settings.scratchDirectory.map {
                ($0 as NSString).appendingPathComponent(options.reuseScratch
                    ? "nfldb-verify-\(pg.stanza)" : "nfldb-verify-\(UUID().uuidString.prefix(8).lowercased())")
            }
            if task.isCancelled { throw TaskFailure("\(type): cancelled before the verification started", permanent: true) }
            // Its own connection: the verifier records into nfldb.* and must not share the thread's session state.
            let primary = try PostgresConnection.connect(database, logger: task.logger)
            defer { primary.close() }
            receipt = try Verifier(pgbackrest: pg, primary: primary, options: options, logger: task.logger).run()
        } catch {
            throw TaskFailure.wrapping(error, type)
        }
        guard receipt.passed else {
            let failed = receipt.failedChecks.map { "\($0.name): \($0.evidence)" }.joined(separator: "; ")
            throw TaskFailure("\(type): stanza \(receipt.stanza) failed verification: \(failed.prefix(1500)) "
                              + "(receipt in nfldb.backup_verifications; run `nfldb backup verify` to see it in full)", permanent: true)
        }
        return receipt.encoded()
    }
}
