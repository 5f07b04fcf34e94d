import Foundation
import Logging
import NFLDBCore
import NFLDBPostgres
import Synchronization

/// What to do with rows that fail the contract.
public enum InvalidPolicy: String, Sendable, Codable, CaseIterable {
    /// Load the valid rows, store the others in `nfl.etl_rejects`; fail the run when their share
    /// exceeds the maximum ratio.
    case rejectRows = "reject-rows"
    /// Fail the run (load nothing) on any invalid row.
    case fail
}

/// Options of one load run.
public struct LoadOptions: Sendable {
    public var dryRun = false
    public var policy: InvalidPolicy = .rejectRows
    public var maxInvalidRatio = 0.01
    public var correlationID: String?
    /// The queue task running this load (`nfl.etl_runs.task_id`); nil from the command line.
    public var taskID: String?
    public var lockWait: Duration = .seconds(30)
    public var lockTimeout: Duration = .seconds(10)
    public var now = Date()
    /// Called with the `nfl.etl_runs` id once the run is recorded (the command's signal handler
    /// marks that run failed when the load is interrupted).
    public var onRunRecorded: (@Sendable (Int64) -> Void)?
    /// A first load into empty tables drops the foreign keys of nfl.games, nfl.weather and
    /// nfl.odds_history (to teams, stadiums and games) and adds them back (validated) before
    /// COMMIT, through the functions of migrations 0010/0011 (`etl.suspend_foreign_keys`).
    public var suspendForeignKeys = true
    /// Polled between COPY batches, after staging and right before COMMIT (a queued load's
    /// cancellation): true rolls the load back and records the run as failed, "cancelled".
    public var isCancelled: (@Sendable () -> Bool)?
    /// Bytes of validated rows per COPY batch on the direct path (tests make it small).
    var directBatchBytes = 4 << 20
    public init() {}

    /// The options that `etl:` settings decide (ratio, lock waits, foreign-key suspension).
    public init(settings: ETLConfig) {
        maxInvalidRatio = settings.maxInvalidRatio
        lockWait = settings.lockWait
        lockTimeout = settings.lockTimeout
        suspendForeignKeys = settings.suspendForeignKeys
    }
}

/// Row counts of one table in a run.
public struct TableCounts: Sendable, Codable, Equatable {
    public var inserted = 0
    public var updated = 0
    public var unchanged = 0
    public init(inserted: Int = 0, updated: Int = 0, unchanged: Int = 0) {
        self.inserted = inserted
        self.updated = updated
        self.unchanged = unchanged
    }
}

/// The outcome of `etl load` (the JSON printed with `--format json`). Top-level counts are
/// `nfl.games` rows.
public struct LoadResult: Sendable, Codable {
    public var runID: Int64?
    /// `succeeded`, `failed`, `skipped` (304 Not Modified) or `dry-run`.
    public var status: String
    public var target = "nfl.games"
    public var source: String
    public var checksum: String?
    public var bytes = 0
    public var rowsRead = 0
    public var inserted = 0
    public var updated = 0
    public var unchanged = 0
    public var rejected = 0
    public var invalidRatio = 0.0
    public var tables: [String: TableCounts] = [:]
    public var newTeams: [String] = []
    public var metrics = QualityMetrics()
    /// The first failures (long format); all of them are in `nfl.data_quality_reports` / `nfl.etl_rejects`.
    public var failures: [ValidationFailure] = []
    public var failureCount = 0
    public var error: String?
    public var durationMS = 0.0
    /// How nfl.games was written: `direct` (COPY straight into the empty table) or `staged`
    /// (COPY into a temporary table, anti-join, upsert); nil when nothing was loaded.
    public var loadMethod: String?
    /// How the foreign keys of the loaded games, weather and odds rows were checked: `per-row` (the
    /// constraint triggers) or `at-end` (suspended for a first load, added back and validated
    /// over all rows before COMMIT); nil when nothing was loaded.
    public var foreignKeyChecks: String?
    /// Wall-clock milliseconds per phase of the run (read + parse + validate + COPY stream
    /// together; then the merge steps and the bookkeeping), for `--format json` and `bench/etl`.
    public var phaseMS: [String: Double] = [:]
    var phaseStart = ContinuousClock.now

    /// A run that stopped before anything was read or recorded (connection, lock wait, configuration):
    /// what `--format json` prints then.
    public static func failedBeforeRun(source: String, error: String) -> LoadResult {
        var result = LoadResult(status: "failed", source: source)
        result.error = error
        return result
    }

    mutating func endPhase(_ name: String) {
        let now = ContinuousClock.now
        phaseMS[name, default: 0] += (now - phaseStart).inMilliseconds
        phaseStart = now
    }

    enum CodingKeys: String, CodingKey {
        case runID = "run_id", status, target, source, checksum, bytes, rowsRead = "rows_read", inserted, updated, unchanged, rejected
        case invalidRatio = "invalid_ratio", tables, newTeams = "new_teams", metrics, failures, failureCount = "failure_count", error
        case durationMS = "duration_ms", loadMethod = "load_method", foreignKeyChecks = "foreign_key_checks", phaseMS = "phase_ms"
    }
}

/// A run that stopped: the result (with `status = failed`, stored in `nfl.etl_runs`) plus the cause.
public struct LoadFailed: NFLDBError, Sendable {
    public let result: LoadResult
    public let cause: String
    public let hint: String
    /// Trying again cannot help: the source redirected or answered 4xx, or a record is over the
    /// parser's limits. (Rows rejected past the policy are permanent too; see ``LoadResult/rejected``.)
    public var permanent = false

    public init(result: LoadResult, cause: String, hint: String, permanent: Bool = false) {
        self.result = result
        self.cause = cause
        self.hint = hint
        self.permanent = permanent
    }

    /// Whether `error`, the cause of a failed load, would recur on the same input.
    static func isPermanent(_ error: any Error) -> Bool {
        if let http = error as? HTTPSourceError { return !http.retryable }
        if let input = error as? ETLInputError { return input.permanent }
        if error is GamesLoader.LoadCancelled { return true }
        return false
    }
    public var diagnostic: Diagnostic {
        Diagnostic("etl load games failed\(result.runID.map { " (run \($0))" } ?? ""): \(cause)", hint: hint)
    }
}

/// Loads nflverse games into nfl.games, nfl.teams, nfl.stadiums, nfl.weather and nfl.odds_history.
///
/// One run = one transaction: COPY into a temporary staging table, drop the staged rows that are
/// identical to the target (anti-join), then `INSERT … ON CONFLICT … DO UPDATE … WHERE (target) IS
/// DISTINCT FROM (excluded)` for the rest, so a re-load of unchanged data writes no row version.
/// Runs of the same target are serialized by a session advisory lock; the `nfl.etl_runs` row is
/// created before the transaction (so a failure is recorded) and completed inside it.
public struct GamesLoader {
    public static let target = "nfl.games"
    public static let lockKey = AdvisoryLockKey("nfldb.etl.nfl.games")
    static let oddsSource = "nflverse"

    let connection: PostgresConnection
    let logger: Logger

    public init(connection: PostgresConnection, logger: Logger) {
        self.connection = connection
        self.logger = logger
    }

    static var columnList: String {
        GamesContract.contract.columns.map { PostgresIdentifier.quote($0.name) }.joined(separator: ", ")
    }

    /// Loads one source. Throws ``LoadFailed`` (run recorded as failed) or an input/database error.
    public func load(_ source: any ByteSource, options: LoadOptions, progress: ((Int) -> Void)? = nil) throws -> LoadResult {
        let started = ContinuousClock.now
        let contract = GamesContract.contract(now: options.now)
        var result = LoadResult(status: "running", source: source.name)
        var metadata: Logger.Metadata = ["etl.source": .string(source.name), "etl.target": .string(Self.target)]
        if let id = options.correlationID { metadata["correlation_id"] = .string(id) }
        try checkWritePrivileges()
        return try connection.withAdvisoryLock(Self.lockKey, wait: options.lockWait, waitSetting: "etl.lock_wait (NFLDB_ETL_LOCK_WAIT)", onWait: { holder in
            logger.notice("waiting for another load of nfl.games", metadata: ["db.lock_holder": .string(holder ?? "unknown")])
        }) {
            if !options.dryRun {
                try markAbandonedRuns()
                result.runID = try connection.query("""
                    INSERT INTO nfl.etl_runs (source, target_table, correlation_id, task_id, status)
                    VALUES (\(source.name), \(Self.target), \(options.correlationID), \(options.taskID), 'running') RETURNING id
                    """).scalar(Int64.self)
                metadata["etl.run_id"] = .stringConvertible(result.runID!)
                options.onRunRecorded?(result.runID!)
            }
            logger.info("etl load started", metadata: metadata)
            let pipeline = ValidationPipeline(contract: contract, sourceName: source.name)
            pipeline.progress = progress
            do {
                try connection.withTransaction {
                    try runInTransaction(source, pipeline: pipeline, options: options, result: &result)
                    // A header and no rows: an upstream that lost its data, not a season with no games.
                    // Failing keeps `etl_freshness` from reporting it as a fresh load.
                    if pipeline.metrics.rowCount == 0 {
                        throw PolicyViolation(
                            description: "\(source.name) has a header but no data rows; nothing was loaded",
                            hint: "Check the upstream file (a truncated publish or an emptied export); the tables keep their rows. Load again once it has rows.")
                    }
                    result.durationMS = (ContinuousClock.now - started).inMilliseconds
                    try Self.checkCancelled(options, at: "before its COMMIT")
                    if options.dryRun {
                        result.status = "dry-run"
                        throw DryRunRollback()
                    }
                    result.status = "succeeded"
                    try finishRun(&result, pipeline: pipeline, source: source)
                }
            } catch is DryRunRollback {
                logger.info("etl dry run rolled back", metadata: metadata)
                return result
            } catch {
                result.status = "failed"
                result.durationMS = (ContinuousClock.now - started).inMilliseconds
                var (described, hint) = Self.describe(error)
                // A lock wait past etl.lock_timeout: name who held the locks (the data transaction
                // rolled back; the holders are usually still there).
                if let pg = error as? PostgresError, pg.sqlState == SQLState.lockNotAvailable, connection.isAlive,
                   let holders = try? connection.describeLockHolders() {
                    described += "; sessions holding locks: \(holders)"
                    hint = "Nothing was changed. A session named above held a lock on the load's tables past etl.lock_timeout "
                        + "(\(options.lockTimeout)): let it finish or end it (SELECT pg_terminate_backend(<pid>)), or raise etl.lock_timeout; "
                        + "then run the load again."
                }
                let cause = TextSafety.escaped(described)
                result.error = cause
                fill(&result, from: pipeline)
                if let runID = result.runID, connection.isAlive {
                    // The data transaction rolled back; record why, with the findings, in a new one.
                    func markFailed(_ error: String) throws {
                        try connection.execute("""
                            UPDATE nfl.etl_runs SET status = 'failed', finished_at = greatest(clock_timestamp(), started_at), error = \(error),
                                rows_read = \(result.rowsRead), rows_rejected = \(result.rejected),
                                input_checksum = \(result.checksum), input_bytes = \(result.bytes)
                            WHERE id = \(runID)
                            """)
                    }
                    do {
                        try connection.withTransaction {
                            if pipeline.metrics.rowCount > 0 {
                                try storeQuality(runID: runID, pipeline: pipeline, result: result)
                                try storeRejects(runID: runID, pipeline: pipeline)
                            }
                            try markFailed(cause)
                        }
                    } catch let recordError {
                        // Findings or rejects could not be stored (e.g. a grant missing on nfl.etl_rejects):
                        // the run is still marked failed with its cause, and says what was not stored, so
                        // it does not stay `running` until a later load calls it abandoned.
                        let (why, _) = Self.describe(recordError)
                        logger.error("could not store the failed run's findings and rejects", metadata: ["error": .string(why)])
                        do {
                            try connection.withTransaction {
                                try markFailed(cause + " (its findings and rejects could not be stored: " + TextSafety.escaped(why) + ")")
                            }
                        } catch let markError {
                            logger.error("could not record the failed run", metadata: ["error": .string(String(describing: markError))])
                        }
                    }
                }
                if LoadInterruption.inProgress.load(ordering: .sequentiallyConsistent) {
                    // The signal handler ended this session; it records the run and prints the one line.
                    logger.info("etl load ended by the interruption", metadata: metadata)
                } else {
                    logger.error("etl load failed", metadata: metadata.merging(["error": .string(cause)]) { $1 })
                }
                throw LoadFailed(result: result, cause: cause, hint: hint, permanent: LoadFailed.isPermanent(error))
            }
            logger.info("etl load finished", metadata: metadata.merging([
                "etl.inserted": .stringConvertible(result.inserted), "etl.updated": .stringConvertible(result.updated),
                "etl.unchanged": .stringConvertible(result.unchanged), "etl.rejected": .stringConvertible(result.rejected),
                "duration_ms": .stringConvertible(result.durationMS),
            ]) { $1 })
            return result
        }
    }

    struct DryRunRollback: Error {}

    /// A queued load whose task was cancelled while it ran: thrown before COMMIT, so the
    /// cancellation the queue reports is true (nothing changed).
    struct LoadCancelled: Error, CustomStringConvertible {
        let point: String
        var description: String { "cancelled: its queue task was cancelled while the load ran (seen \(point)); the load's transaction was rolled back" }
        static let hint = "Nothing was changed. Submit the load again if it is still wanted."
    }

    static func checkCancelled(_ options: LoadOptions, at point: String) throws {
        if options.isCancelled?() == true { throw LoadCancelled(point: point) }
    }

    struct PolicyViolation: Error, CustomStringConvertible {
        let description: String
        let hint: String
    }

    static func describe(_ error: any Error) -> (String, String) {
        switch error {
        case let error as PolicyViolation: return (error.description, error.hint)
        case let error as LoadCancelled: return (error.description, LoadCancelled.hint)
        case let error as ETLInputError: return ("\(error.source): \(error.summary)", error.hint)
        case let error as PostgresError:
            return (error.diagnostic.oneLine,
                    error.sqlState == "42501"
                        ? "Nothing was changed. The role lacks a privilege the load needs: as a superuser, `nfldb roles check --spec PATH/roles` shows the drift and `nfldb roles apply --spec PATH/roles` restores nfl_etl's grants (PATH: the nfldb checkout; --spec can be left out when run from it)."
                        : "Nothing was changed (the run's transaction rolled back). Fix the cause above and run the load again.")
        case let error as any NFLDBError: return (error.diagnostic.summary, error.diagnostic.hint ?? "Nothing was changed; run the load again.")
        default: return (String(describing: error), "Nothing was changed; run the load again.")
        }
    }

    /// The data a load writes and its run record, as the shipped `nfl_etl` role grants them
    /// (roles/platform.yaml, etl_write).
    static let writePrivileges: [(table: String, privilege: String)] = [
        ("nfl.games", "INSERT"), ("nfl.games", "UPDATE"), ("nfl.teams", "INSERT"), ("nfl.teams", "UPDATE"),
        ("nfl.stadiums", "INSERT"), ("nfl.stadiums", "UPDATE"), ("nfl.weather", "INSERT"), ("nfl.weather", "UPDATE"),
        ("nfl.odds_history", "INSERT"), ("nfl.etl_runs", "INSERT"), ("nfl.etl_runs", "UPDATE"),
    ]  // Not the findings tables (data_quality_reports, etl_rejects): a run that cannot store them is
       // still recorded failed with what was not stored (LoadTests/malformedInputs).

    /// A login that may not write what a load writes is refused before anything runs, naming what it
    /// lacks and the way out: before, a reader got PostgreSQL's 42501 on the first UPDATE of
    /// nfl.etl_runs and a hint to restore nfl_etl's grants, which `roles check` then found intact
    /// (an attack probe).
    private func checkWritePrivileges() throws {
        let tables = Self.writePrivileges.map(\.table), privileges = Self.writePrivileges.map(\.privilege)
        let rows = try connection.query("""
            SELECT current_user AS login, p.tbl || ' (' || string_agg(p.priv, ', ' ORDER BY p.ord) || ')' AS missing,
                   CASE WHEN to_regrole('nfl_etl') IS NOT NULL THEN pg_has_role(current_user, 'nfl_etl', 'MEMBER') ELSE false END AS member
            FROM unnest(\(tables)::text[], \(privileges)::text[]) WITH ORDINALITY AS p(tbl, priv, ord)
            WHERE to_regclass(p.tbl) IS NOT NULL AND NOT has_table_privilege(p.tbl, p.priv)
            GROUP BY p.tbl ORDER BY min(p.ord)
            """).rows
        guard let first = rows.first else { return }
        let login = first["login"] ?? "?"
        let missing = rows.compactMap { $0["missing"] }.joined(separator: ", ")
        let hint = first["member"] == "t"
            ? "\(login) is a member of nfl_etl, so nfl_etl's grants have drifted: as a superuser, `nfldb roles check --spec PATH/roles` shows the drift and `nfldb roles apply --spec PATH/roles` restores them (PATH: the nfldb checkout)."
            : "Load as a loader login (a member of nfl_etl, such as nfl_loader in roles/platform.yaml), or make \(login) one (`member_of: [nfl_etl]` in the roles spec, then `nfldb roles apply`)."
        throw OperatorError("etl load games: login \(login) may not write what a load writes: it lacks \(missing); nothing was changed", hint: hint)
    }

    /// Runs left `running` by a process that died (no session holds the lock now, we do): failed.
    private func markAbandonedRuns() throws {
        let n = try connection.execute("""
            UPDATE nfl.etl_runs SET status = 'failed', finished_at = greatest(clock_timestamp(), started_at),
                error = 'abandoned: the loading process ended without finishing the run (killed or crashed); its transaction was rolled back'
            WHERE target_table = \(Self.target) AND status = 'running'
            """)
        if n > 0 { logger.warning("marked abandoned etl runs as failed", metadata: ["etl.abandoned": .stringConvertible(n)]) }
    }

    private func fill(_ result: inout LoadResult, from pipeline: ValidationPipeline) {
        result.checksum = pipeline.checksum.isEmpty ? nil : pipeline.checksum
        result.bytes = pipeline.bytesRead
        result.rowsRead = pipeline.metrics.rowCount
        result.rejected = pipeline.metrics.rejectedRows
        result.invalidRatio = result.rowsRead == 0 ? 0 : Double(result.rejected) / Double(result.rowsRead)
        result.metrics = pipeline.metrics
        result.failures = Array(pipeline.failures.prefix(50))
        result.failureCount = pipeline.validator.failureCount
    }

    private func runInTransaction(_ source: any ByteSource, pipeline: ValidationPipeline, options: LoadOptions, result: inout LoadResult) throws {
        try connection.execute("SELECT set_config('lock_timeout', \(String(Int(options.lockTimeout.inMilliseconds)) + "ms"), true)")
        if let id = options.correlationID {
            try connection.execute("SELECT set_config('nfldb.correlation_id', \(id), true)")
        }
        result.phaseStart = .now
        var input = try PeekedSource(source)
        // An empty target (the first load of a database): COPY straight into nfl.games, still
        // validated, in the same transaction. Needs a source that can be read again: a game_id
        // duplicated across COPY batches (rare) starts the input over through the staging path.
        if let order = Self.contractOrder(input.header), let replayable = source as? any ReplayableSource, replayable.canReplay, try targetIsEmptyAndLocked() {
            try connection.execute("SAVEPOINT etl_direct_load")
            do {
                result.loadMethod = "direct"
                let suspended = options.suspendForeignKeys ? try suspendForeignKeys() : 0
                result.foreignKeyChecks = suspended > 0 ? "at-end" : "per-row"
                try loadDirect(input, order: order, pipeline: pipeline, options: options, result: &result)
                if suspended > 0 {
                    try connection.execute("SELECT nfl.etl_restore_game_foreign_keys()")
                    result.endPhase("restore_foreign_keys")
                }
                try connection.execute("RELEASE SAVEPOINT etl_direct_load")
                return
            } catch let abandoned as DirectLoadAbandoned {
                // Also undoes a foreign-key suspension: the staging path checks each row.
                try connection.execute("ROLLBACK TO SAVEPOINT etl_direct_load")
                logger.notice("direct load into the empty nfl.games abandoned; reading the input again through the staging table",
                              metadata: ["etl.reason": .string(abandoned.reason)])
                pipeline.reset()
                input = try PeekedSource(replayable.replay())
            }
        }
        result.loadMethod = "staged"
        result.foreignKeyChecks = "per-row"
        pipeline.keepRawLines = true
        try connection.execute("""
            CREATE TEMP TABLE etl_stage_games ON COMMIT DROP AS
            SELECT \(unsafeRaw: Self.columnList), 0::bigint AS etl_row, 0::bigint AS etl_line FROM nfl.games WITH NO DATA
            """)
        // When the header names exactly the contract's columns (nflverse's file as published), a
        // valid row's raw CSV line goes to COPY as it came, with the column list in the header's
        // order; otherwise each row is re-encoded as COPY text in the contract's order.
        let copy: PostgresQuery
        let encoding: RowValidator.CopyEncoding
        if let order = Self.contractOrder(input.header) {
            let columns = order.map { PostgresIdentifier.quote($0) }.joined(separator: ", ")
            copy = """
                COPY pg_temp.etl_stage_games (\(unsafeRaw: columns), etl_row, etl_line) FROM STDIN (FORMAT csv, FORCE_NULL (\(unsafeRaw: Self.columnList)))
                """
            encoding = .rawCSV
        } else {
            copy = "COPY pg_temp.etl_stage_games FROM STDIN"
            encoding = .text
        }
        try connection.copyIn(copy) { writer in
            var lines = 0
            try pipeline.run(input, encoding: encoding, appendRowNumber: true) { line in
                lines &+= 1
                if lines & 8191 == 0 { try Self.checkCancelled(options, at: "while staging the input") }
                try writer.write(line)
            }
        }
        // Every member of a duplicated key is rejected: the first occurrences were staged before
        // the duplicate arrived, so take them out again.
        result.endPhase("stage_copy")
        try Self.checkCancelled(options, at: "after staging the input")
        // (A key holding NUL failed its encoding check, so was never staged; it cannot be a parameter either.)
        let duplicated = pipeline.validator.duplicatedKeys.keys.filter { !$0.utf8.contains(0) }
        if !duplicated.isEmpty {
            let rows = try connection.query("""
                DELETE FROM pg_temp.etl_stage_games s WHERE s.game_id = ANY(\(Self.arrayLiteral(duplicated))::text[])
                RETURNING s.etl_row, s.etl_line, s.game_id, concat_ws(',', \(unsafeRaw: Self.columnList)) AS rebuilt
                """).rows
            // The first occurrence's input line as it came (kept while staging); past the memory
            // budget for kept lines (64 MiB: never for nflverse's file), rebuilt from the staged values.
            try pipeline.rejectFirstOccurrences(rows.map { row in
                let dataRow = try row.decode("etl_row", as: Int.self)
                let raw = pipeline.rawLine(row: dataRow) ?? (row["rebuilt"] ?? "")
                return (dataRow, try row.decode("etl_line", as: Int.self), row["game_id"] ?? "", raw)
            })
        }
        fill(&result, from: pipeline)
        try checkPolicy(result, options: options)
        // Statistics only for the columns the merge joins and groups on: ANALYZE of all 48 columns
        // wrote ~0.3 MB of pg_statistic WAL per run (most of a no-op re-load's WAL).
        try connection.execute("ANALYZE pg_temp.etl_stage_games (game_id, stadium_id, away_team, home_team)")
        result.endPhase("stage_dedupe_analyze")
        // A first load that had to stage (an HTTP source, the default, cannot be read twice; or a
        // direct load abandoned above) checks the foreign keys once at the end too.
        var suspended = 0
        if options.suspendForeignKeys, result.rowsRead > result.rejected, try targetIsEmptyAndLocked() {
            suspended = try suspendForeignKeys()
        }
        result.foreignKeyChecks = suspended > 0 ? "at-end" : "per-row"
        try merge(&result)
        if suspended > 0 {
            try connection.execute("SELECT nfl.etl_restore_game_foreign_keys()")
            result.endPhase("restore_foreign_keys")
        }
    }

    /// `--on-invalid fail` with any rejected row, or more rejected rows than the ratio allows: the
    /// run fails (its transaction rolls back).
    private func checkPolicy(_ result: LoadResult, options: LoadOptions) throws {
        guard result.rejected > 0 else { return }
        if options.policy == .fail {
            throw PolicyViolation(
                description: "\(result.rejected) of \(result.rowsRead) rows failed the nfl.games contract and --on-invalid is fail",
                hint: "Nothing was loaded. See `nfldb etl report \(result.runID.map(String.init) ?? "RUN_ID")` for every failure, fix the source, or use --on-invalid reject-rows.")
        }
        if result.invalidRatio > options.maxInvalidRatio {
            throw PolicyViolation(
                description: String(format: "%d of %d rows (%.2f %%) failed the nfl.games contract, above --max-invalid-ratio %.4g", result.rejected, result.rowsRead, result.invalidRatio * 100, options.maxInvalidRatio),
                hint: "Nothing was loaded. See `nfldb etl report \(result.runID.map(String.init) ?? "RUN_ID")` for every failure; fix the source or raise --max-invalid-ratio if these rows may be skipped.")
        }
    }

    struct DirectLoadAbandoned: Error { let reason: String }

    /// Whether nfl.games is empty, checked again under a SHARE ROW EXCLUSIVE lock (taken only when
    /// it looks empty; held to the end of the run, so no other writer adds games meanwhile —
    /// readers are not blocked). nfl_etl may take it: it has UPDATE on the table.
    private func targetIsEmptyAndLocked() throws -> Bool {
        guard try connection.query("SELECT NOT EXISTS (SELECT FROM nfl.games) AS empty").scalar(Bool.self) else { return false }
        try connection.execute("LOCK TABLE nfl.games IN SHARE ROW EXCLUSIVE MODE")
        return try connection.query("SELECT NOT EXISTS (SELECT FROM nfl.games) AS empty").scalar(Bool.self)
    }

    /// SQLSTATEs for which a first load goes on with per-row foreign-key checks instead of
    /// suspending them: the functions are missing (migration 0010 not applied) or not executable,
    /// the caller may not write a table, a table is not empty, or a reader holds a lock past
    /// `lock_timeout`, or a deadlock with a reader that holds teams or stadiums and waits for a
    /// loaded table (the suspension takes ACCESS EXCLUSIVE on both). Anything else (a cancel, a
    /// lost connection) fails the run.
    static let suspensionDeclined: Set<String> = ["42883", "42501", "55000", "55P03", "3F000", "40P01"]

    /// Drops the foreign keys of the empty nfl.games, nfl.weather and nfl.odds_history for this
    /// transaction (`nfl.etl_suspend_game_foreign_keys()` of migration 0010, since 0011 also
    /// nfl.games' own keys to teams and stadiums; it runs as the schema owner and
    /// refuses unless this transaction holds write locks on the three tables and they are empty).
    /// Returns how many it dropped; 0, with a notice saying why, when it declined.
    private func suspendForeignKeys() throws -> Int {
        try connection.execute("SAVEPOINT etl_fk_suspend")
        do {
            try connection.execute("LOCK TABLE nfl.games, nfl.weather, nfl.odds_history IN ROW EXCLUSIVE MODE")
            let dropped = try connection.query("SELECT nfl.etl_suspend_game_foreign_keys() AS dropped").scalar(Int.self)
            try connection.execute("RELEASE SAVEPOINT etl_fk_suspend")
            if dropped > 0 {
                logger.info("first load: the foreign keys of games, weather and odds are checked once, at the end",
                            metadata: ["etl.suspended_foreign_keys": .stringConvertible(dropped)])
            }
            return dropped
        } catch let error as PostgresError where error.sqlState.map(Self.suspensionDeclined.contains) == true && connection.isAlive {
            try connection.execute("ROLLBACK TO SAVEPOINT etl_fk_suspend")
            logger.notice("first load checks each row's foreign keys (could not suspend them)",
                          metadata: ["error": .string(error.diagnostic.oneLine)])
            return 0
        }
    }

    /// The direct load into an empty nfl.games: valid rows are buffered (raw CSV) and sent in
    /// COPY batches, each followed by COPY batches of its weather and odds rows (they reference
    /// it); before each batch the teams and stadiums it references are inserted (the foreign keys
    /// are checked at the end of each COPY). Batch k's COPYs run on the server while the client
    /// validates batch k+1 (``CopyQueue``). A duplicated game_id whose first occurrence is still in
    /// the buffer takes that row out (both are rejected); one already sent abandons the direct
    /// load (``DirectLoadAbandoned``: a COPY still receiving data is aborted, the caller rolls
    /// back to its savepoint). With `--on-invalid fail`, nothing more is sent after the first
    /// rejected row (the run will roll back).
    private func loadDirect(_ input: PeekedSource, order: [String], pipeline: ValidationPipeline, options: LoadOptions, result: inout LoadResult) throws {
        let columns = order.map { PostgresIdentifier.quote($0) }.joined(separator: ", ")
        typealias C = GamesContract.Column
        // 0 away, 1 home, 2 stadium_id, 3 stadium, 4 gameday, 5 game_id, 6 temp, 7 wind, 8-15 the odds columns
        // (spread, total, away/home moneyline, away/home spread odds, under, over).
        pipeline.trackColumns = [C.awayTeam, C.homeTeam, C.stadiumID, C.stadium, C.gameday, C.gameID, C.temp, C.wind,
                                 C.spreadLine, C.totalLine, C.awayMoneyline, C.homeMoneyline, C.awaySpreadOdds, C.homeSpreadOdds,
                                 C.underOdds, C.overOdds]
        // Weather and odds rows go out as COPY batches too, right after the games batch they refer
        // to (COPY text: the values are validated numbers and game ids, nothing to escape).
        let observedAt = try connection.query("SELECT now()::text AS now").scalar(String.self)
        var weatherLines = SideBuffer(), oddsLines = SideBuffer()
        var weatherCopied = 0, oddsCopied = 0
        defer {
            pipeline.trackColumns = []
            pipeline.onDuplicate = nil
        }
        var buffer: [UInt8] = []
        buffer.reserveCapacity(options.directBatchBytes + (1 << 16))
        var lineStarts: [Int] = []
        /// Data row and input line of each buffered line (for an error the server reports at a COPY line).
        var lineRows: [(row: Int, line: Int)] = []
        var buffered: [String: (index: Int, row: Int, line: Int)] = [:]
        var dropped: [Int] = []
        var firstOccurrences: [(row: Int, line: Int, key: String, raw: String)] = []
        var knownTeams = Set<String>(), pendingTeams = Set<String>(), insertedTeams: [String] = []
        // Per stadium: the name of its newest game so far (gameday, then game_id, as the staging path).
        var stadiumLatest: [String: (gameday: String, gameID: String, name: String)] = [:]
        var pendingStadiums: [String] = []
        /// Per buffered line: the teams and stadium it references. Taken into the teams and stadiums
        /// at its batch's flush, for the lines kept only: a game dropped as a duplicate must not add
        /// (or rename) a team or stadium (an attack probe committed a stadium name from a rejected row).
        var lineRefs: [(away: String, home: String, stadiumID: String, stadium: String, gameday: String, gameID: String)] = []
        var insertedStadiums = Set<String>()
        var copied = 0
        var batch = 0

        pipeline.onDuplicate = { key in
            guard let first = buffered[key] else {
                throw DirectLoadAbandoned(reason: "game_id \(key) is duplicated and its first occurrence was already copied (or rejected)")
            }
            buffered[key] = nil
            dropped.append(first.index)
            let end = first.index + 1 < lineStarts.count ? lineStarts[first.index + 1] : buffer.count
            let raw = String(decoding: buffer[lineStarts[first.index]..<(end - 1)], as: UTF8.self)
            firstOccurrences.append((first.row, first.line, key, raw))
        }
        // Batch k's COPYs (games, then its weather and odds) run on the server while the client
        // parses and validates batch k+1 (CopyQueue); before batch k+1's teams and stadiums are
        // inserted, batch k has finished. At most two batches are in memory.
        try connection.withCopyQueue { queue in
            func flush() throws {
                guard !lineStarts.isEmpty else { return }
                try Self.checkCancelled(options, at: "between COPY batches")
                batch += 1
                try queue.waitUntilDone()
                defer {
                    weatherLines = SideBuffer()
                    oddsLines = SideBuffer()
                    buffer = []
                    buffer.reserveCapacity(options.directBatchBytes + (1 << 16))
                    lineStarts.removeAll(keepingCapacity: true)
                    lineRows = []
                    lineRefs.removeAll(keepingCapacity: true)
                    buffered.removeAll(keepingCapacity: true)
                    dropped.removeAll()
                }
                // --on-invalid fail with a rejected row: the run will roll back; send nothing more.
                if options.policy == .fail && pipeline.validator.rejectedRows > 0 { return }
                let skip = Set(dropped)
                for (i, ref) in lineRefs.enumerated() where !skip.contains(i) {
                    if !knownTeams.contains(ref.away) { pendingTeams.insert(ref.away) }
                    if !knownTeams.contains(ref.home) { pendingTeams.insert(ref.home) }
                    if let latest = stadiumLatest[ref.stadiumID] {
                        if (ref.gameday, ref.gameID) > (latest.gameday, latest.gameID) { stadiumLatest[ref.stadiumID] = (ref.gameday, ref.gameID, ref.stadium) }
                    } else {
                        stadiumLatest[ref.stadiumID] = (ref.gameday, ref.gameID, ref.stadium)
                        pendingStadiums.append(ref.stadiumID)
                    }
                }
                if !pendingTeams.isEmpty {
                    insertedTeams += try connection.query("""
                        INSERT INTO nfl.teams (team_abbr) SELECT unnest(\(Self.arrayLiteral(pendingTeams.sorted()))::text[])
                        ON CONFLICT (team_abbr) DO NOTHING RETURNING team_abbr
                        """).rows.compactMap { $0["team_abbr"] }
                    knownTeams.formUnion(pendingTeams)
                    pendingTeams = []
                }
                if !pendingStadiums.isEmpty {
                    let names = pendingStadiums.map { stadiumLatest[$0]!.name }
                    for row in try connection.query("""
                        INSERT INTO nfl.stadiums (stadium_id, name)
                        SELECT * FROM unnest(\(Self.arrayLiteral(pendingStadiums))::text[], \(Self.arrayLiteral(names))::text[])
                        ON CONFLICT (stadium_id) DO NOTHING RETURNING stadium_id
                        """).rows {
                        if let id = row["stadium_id"] { insertedStadiums.insert(id) }
                    }
                    pendingStadiums = []
                }
                var games = buffer
                var kept = Array(lineRows.indices)
                if !skip.isEmpty {
                    games = []
                    kept = kept.filter { !skip.contains($0) }
                    for i in kept {
                        games += buffer[lineStarts[i]..<(i + 1 < lineStarts.count ? lineStarts[i + 1] : buffer.count)]
                    }
                }
                // The input row of COPY line n, for copy lines that came from these buffered lines.
                let rows = lineRows
                func describe(_ lines: [Int]) -> (Int) -> String? {
                    { n in n >= 1 && n <= lines.count ? "input row \(rows[lines[n - 1]].row) (line \(rows[lines[n - 1]].line))" : nil }
                }
                try queue.enqueue(QueuedCopy("""
                    COPY nfl.games (\(unsafeRaw: columns)) FROM STDIN (FORMAT csv, FORCE_NULL (\(unsafeRaw: Self.columnList)))
                    """, data: games, label: "COPY nfl.games batch \(batch)", describeLine: describe(kept), completion: { copied += $0 }))
                if !weatherLines.isEmpty {
                    let (data, gameLines) = weatherLines.data(skipping: skip)
                    try queue.enqueue(QueuedCopy("COPY nfl.weather (game_id, source, temp_f, wind_mph) FROM STDIN", data: data,
                                                 label: "COPY nfl.weather batch \(batch)",
                                                 describeLine: describe(gameLines),
                                                 completion: { weatherCopied += $0 }))
                }
                if !oddsLines.isEmpty {
                    let (data, gameLines) = oddsLines.data(skipping: skip)
                    try queue.enqueue(QueuedCopy("""
                        COPY nfl.odds_history (game_id, source, observed_at, spread_line, total_line, away_moneyline, home_moneyline,
                                               away_spread_odds, home_spread_odds, under_odds, over_odds) FROM STDIN
                        """, data: data, label: "COPY nfl.odds_history batch \(batch)",
                        describeLine: describe(gameLines),
                        completion: { oddsCopied += $0 }))
                }
            }

            var sincePoll = 0
            try pipeline.run(input, encoding: .rawCSV) { line in
                let v = pipeline.tracked
                lineRefs.append((v[0], v[1], v[2], v[3], v[4], v[5]))
                if let key = pipeline.current.key { buffered[key] = (lineStarts.count, pipeline.current.row, pipeline.current.line) }
                if !v[6].isEmpty || !v[7].isEmpty {
                    weatherLines.add(gameLine: lineStarts.count, [v[5], Self.oddsSource, v[6], v[7]])
                }
                if !v[8].isEmpty || !v[9].isEmpty || !v[10].isEmpty || !v[11].isEmpty {
                    oddsLines.add(gameLine: lineStarts.count, [v[5], Self.oddsSource, observedAt, v[8], v[9], v[10], v[11], v[12], v[13], v[14], v[15]])
                }
                lineStarts.append(buffer.count)
                lineRows.append((pipeline.current.row, pipeline.current.line))
                buffer.append(contentsOf: line)
                if buffer.count >= options.directBatchBytes {
                    try flush()
                } else {
                    sincePoll += 1
                    if sincePoll >= 64 {
                        sincePoll = 0
                        try queue.poll()
                    }
                }
            }
            try flush()
        }
        result.endPhase("direct_copy")
        if !firstOccurrences.isEmpty { pipeline.rejectFirstOccurrences(firstOccurrences) }
        fill(&result, from: pipeline)
        try checkPolicy(result, options: options)

        // Stadium names: the newest game's, for stadiums inserted earlier in this run with an older
        // game's name and for existing stadiums (nfl.games held no newer game: it was empty).
        let renamed = try connection.query("""
            UPDATE nfl.stadiums t SET name = v.name
            FROM unnest(\(Self.arrayLiteral(Array(stadiumLatest.keys)))::text[], \(Self.arrayLiteral(stadiumLatest.values.map(\.name)))::text[]) AS v(stadium_id, name)
            WHERE t.stadium_id = v.stadium_id AND t.name IS DISTINCT FROM v.name
            RETURNING t.stadium_id
            """).rows.compactMap { $0["stadium_id"] }
        result.endPhase("direct_stadium_names")
        let renamedExisting = renamed.filter { !insertedStadiums.contains($0) }.count
        result.tables["nfl.stadiums"] = TableCounts(inserted: insertedStadiums.count, updated: renamedExisting,
                                                    unchanged: stadiumLatest.count - insertedStadiums.count - renamedExisting)
        result.newTeams = insertedTeams.sorted()
        result.tables["nfl.teams"] = TableCounts(inserted: insertedTeams.count, unchanged: knownTeams.count - insertedTeams.count)
        result.tables["nfl.games"] = TableCounts(inserted: copied)
        result.inserted = copied
        result.updated = 0
        result.unchanged = 0

        result.tables["nfl.weather"] = TableCounts(inserted: weatherCopied)
        result.tables["nfl.odds_history"] = TableCounts(inserted: oddsCopied)
    }

    /// COPY text lines of a side table (weather, odds), each tied to the games line it belongs to,
    /// so a dropped games line (a duplicate) drops its side rows too. Empty values become `\N`.
    struct SideBuffer {
        var bytes: [UInt8] = []
        var lines: [(gameLine: Int, start: Int)] = []
        var isEmpty: Bool { lines.isEmpty }

        mutating func add(gameLine: Int, _ fields: [String]) {
            lines.append((gameLine, bytes.count))
            for (i, field) in fields.enumerated() {
                if i > 0 { bytes.append(0x09) }
                if field.isEmpty { bytes.append(0x5C); bytes.append(0x4E) } else { bytes.append(contentsOf: field.utf8) }
            }
            bytes.append(0x0A)
        }

        /// The lines to copy, without those of dropped games lines, and the games line of each.
        func data(skipping dropped: Set<Int>) -> ([UInt8], [Int]) {
            if dropped.isEmpty { return (bytes, lines.map(\.gameLine)) }
            var out: [UInt8] = [], gameLines: [Int] = []
            for (i, line) in lines.enumerated() where !dropped.contains(line.gameLine) {
                out += bytes[line.start..<(i + 1 < lines.count ? lines[i + 1].start : bytes.count)]
                gameLines.append(line.gameLine)
            }
            return (out, gameLines)
        }
    }

    /// The contract's column names in the header's order, when the header names exactly the
    /// contract's columns (no extra, none missing, none twice); nil otherwise.
    static func contractOrder(_ header: [String]?) -> [String]? {
        guard let header else { return nil }
        let names = GamesContract.contract.columns.map(\.name)
        guard header.count == names.count, Set(header) == Set(names) else { return nil }
        return header.map { name in names.first { $0 == name }! }
    }

    static func arrayLiteral(_ values: [String]) -> String {
        "{" + values.map { "\"" + $0.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\"" }.joined(separator: ",") + "}"
    }

    /// Teams and stadiums first (games reference them), then games, then weather and odds (they
    /// reference games). Every step anti-joins identical rows away before it writes.
    private func merge(_ result: inout LoadResult) throws {
        // Teams: new abbreviations only (the schedule carries no team names).
        let newTeams = try connection.query("""
            INSERT INTO nfl.teams (team_abbr)
            SELECT DISTINCT t.abbr FROM pg_temp.etl_stage_games s
            CROSS JOIN LATERAL (VALUES (s.away_team), (s.home_team)) AS t(abbr)
            WHERE NOT EXISTS (SELECT 1 FROM nfl.teams x WHERE x.team_abbr = t.abbr)
            ORDER BY 1
            ON CONFLICT (team_abbr) DO NOTHING
            RETURNING team_abbr
            """).rows.compactMap { $0["team_abbr"] }
        let teamCount = try connection.query("""
            SELECT count(DISTINCT t.abbr) FROM pg_temp.etl_stage_games s CROSS JOIN LATERAL (VALUES (s.away_team), (s.home_team)) AS t(abbr)
            """).scalar(Int.self)
        result.newTeams = newTeams
        result.tables["nfl.teams"] = TableCounts(inserted: newTeams.count, unchanged: teamCount - newTeams.count)

        // Stadiums: the name of the newest game in this input, unless the table already holds a
        // newer game at that stadium (loading an old season must not rename a stadium back).
        let stadiums = try connection.query("""
            WITH latest AS (
                SELECT DISTINCT ON (stadium_id) stadium_id, stadium AS name, gameday
                FROM pg_temp.etl_stage_games ORDER BY stadium_id, gameday DESC, game_id DESC
            ), changed AS (
                SELECT l.stadium_id, l.name FROM latest l LEFT JOIN nfl.stadiums x ON x.stadium_id = l.stadium_id
                WHERE x.stadium_id IS NULL
                   OR (x.name IS DISTINCT FROM l.name
                       AND NOT EXISTS (SELECT 1 FROM nfl.games g WHERE g.stadium_id = l.stadium_id AND g.gameday > l.gameday))
            ), up AS (
                INSERT INTO nfl.stadiums AS t (stadium_id, name) SELECT stadium_id, name FROM changed
                ON CONFLICT (stadium_id) DO UPDATE SET name = excluded.name WHERE t.name IS DISTINCT FROM excluded.name
                RETURNING (xmax = 0) AS inserted
            )
            SELECT (SELECT count(*) FROM latest) AS total,
                   count(*) FILTER (WHERE inserted) AS inserted, count(*) FILTER (WHERE NOT inserted) AS updated FROM up
            """).singleRow()
        result.tables["nfl.stadiums"] = try Self.counts(stadiums)

        result.endPhase("merge_teams_stadiums")
        // Games. Each merge finds its new and changed rows first, in a statement that does not
        // write the target, then writes them in a second one: a join that reads the table the same
        // statement inserts into is linear only if the planner hashes it; a per-row scan of it (a
        // nested loop, chosen for a table known to be empty) would re-read the statement's own
        // inserts — quadratic, as the odds merge was (see its comment).
        let cols = GamesContract.contract.columns.map(\.name).filter { $0 != "game_id" }
        let target = cols.map { "t." + PostgresIdentifier.quote($0) }.joined(separator: ", ")
        let staged = cols.map { "s." + PostgresIdentifier.quote($0) }.joined(separator: ", ")
        let excluded = cols.map { "excluded." + PostgresIdentifier.quote($0) }.joined(separator: ", ")
        let set = cols.map { PostgresIdentifier.quote($0) + " = excluded." + PostgresIdentifier.quote($0) }.joined(separator: ", ")
        try connection.execute("""
            CREATE TEMP TABLE etl_stage_games_changed ON COMMIT DROP AS
            SELECT \(unsafeRaw: GamesContract.contract.columns.map { "s." + PostgresIdentifier.quote($0.name) }.joined(separator: ", "))
            FROM pg_temp.etl_stage_games s LEFT JOIN nfl.games t ON t.game_id = s.game_id
            WHERE t.game_id IS NULL OR (\(unsafeRaw: target)) IS DISTINCT FROM (\(unsafeRaw: staged))
            """)
        let games = try connection.query("""
            WITH up AS (
                INSERT INTO nfl.games AS t (\(unsafeRaw: Self.columnList))
                SELECT \(unsafeRaw: Self.columnList) FROM pg_temp.etl_stage_games_changed
                ON CONFLICT (game_id) DO UPDATE SET \(unsafeRaw: set)
                WHERE (\(unsafeRaw: target)) IS DISTINCT FROM (\(unsafeRaw: excluded))
                RETURNING (xmax = 0) AS inserted
            )
            SELECT (SELECT count(*) FROM pg_temp.etl_stage_games) AS total,
                   count(*) FILTER (WHERE inserted) AS inserted, count(*) FILTER (WHERE NOT inserted) AS updated FROM up
            """).singleRow()
        let gameCounts = try Self.counts(games)
        result.tables["nfl.games"] = gameCounts
        result.inserted = gameCounts.inserted
        result.updated = gameCounts.updated
        result.unchanged = gameCounts.unchanged

        result.endPhase("merge_games")
        // Weather: the schedule's kickoff temperature (°F) and wind (mph), stored in the table's
        // explicit units (temp_f, wind_mph); games without either have no weather row.
        let hasWeather = "temp IS NOT NULL OR wind IS NOT NULL"
        try connection.execute("""
            CREATE TEMP TABLE etl_stage_weather ON COMMIT DROP AS
            SELECT s.game_id, s.temp_f, s.wind_mph
            FROM (SELECT game_id, temp::numeric(4,1) AS temp_f, wind::numeric(4,1) AS wind_mph
                  FROM pg_temp.etl_stage_games WHERE \(unsafeRaw: hasWeather)) s
            LEFT JOIN nfl.weather w ON w.game_id = s.game_id
            WHERE w.game_id IS NULL OR (w.source, w.temp_f, w.wind_mph) IS DISTINCT FROM (\(Self.oddsSource), s.temp_f, s.wind_mph)
            """)
        let weather = try connection.query("""
            WITH up AS (
                INSERT INTO nfl.weather AS t (game_id, source, temp_f, wind_mph)
                SELECT game_id, \(Self.oddsSource), temp_f, wind_mph FROM pg_temp.etl_stage_weather
                ON CONFLICT (game_id) DO UPDATE SET source = excluded.source, temp_f = excluded.temp_f, wind_mph = excluded.wind_mph, loaded_at = now()
                WHERE (t.source, t.temp_f, t.wind_mph) IS DISTINCT FROM (excluded.source, excluded.temp_f, excluded.wind_mph)
                RETURNING (xmax = 0) AS inserted
            )
            SELECT (SELECT count(*) FROM pg_temp.etl_stage_games WHERE \(unsafeRaw: hasWeather)) AS total,
                   count(*) FILTER (WHERE inserted) AS inserted, count(*) FILTER (WHERE NOT inserted) AS updated FROM up
            """).singleRow()
        result.tables["nfl.weather"] = try Self.counts(weather)

        result.endPhase("merge_weather")
        // Odds: a history. A new snapshot only when the game's lines differ from its latest one.
        // Found first, like the games: looked up in the same statement as the INSERT, the per-row
        // lookup, planned as a sequential scan once the table was vacuumed while empty, re-read every
        // row the statement had inserted so far — quadratic: 7 minutes and counting for 1M games.
        let lineColumns = ["spread_line", "total_line", "away_moneyline", "home_moneyline", "away_spread_odds", "home_spread_odds", "under_odds", "over_odds"]
        func lines(_ alias: String = "") -> String { lineColumns.map { alias + $0 }.joined(separator: ", ") }
        func hasLine(_ alias: String = "") -> String { "num_nonnulls(\(lineColumns.prefix(4).map { alias + $0 }.joined(separator: ", "))) > 0" }
        try connection.execute("""
            CREATE TEMP TABLE etl_stage_odds ON COMMIT DROP AS
            SELECT s.game_id, \(unsafeRaw: lines("s."))
            FROM pg_temp.etl_stage_games s
            LEFT JOIN LATERAL (
                SELECT o.* FROM nfl.odds_history o WHERE o.game_id = s.game_id AND o.source = \(Self.oddsSource)
                ORDER BY o.observed_at DESC LIMIT 1) last ON true
            WHERE \(unsafeRaw: hasLine("s."))
              AND (last.game_id IS NULL OR (\(unsafeRaw: lines("last."))) IS DISTINCT FROM (\(unsafeRaw: lines("s."))))
            """)
        let odds = try connection.query("""
            WITH ins AS (
                INSERT INTO nfl.odds_history (game_id, source, observed_at, \(unsafeRaw: lines()))
                SELECT game_id, \(Self.oddsSource), now(), \(unsafeRaw: lines()) FROM pg_temp.etl_stage_odds
                ON CONFLICT DO NOTHING
                RETURNING 1
            )
            SELECT (SELECT count(*) FROM pg_temp.etl_stage_games WHERE \(unsafeRaw: hasLine())) AS total, count(*) AS inserted, 0 AS updated FROM ins
            """).singleRow()
        result.tables["nfl.odds_history"] = try Self.counts(odds)
        result.endPhase("merge_odds")
    }

    static func counts(_ row: PostgresRow) throws -> TableCounts {
        let total = try row.decode("total", as: Int.self)
        let inserted = try row.decode("inserted", as: Int.self)
        let updated = try row.decode("updated", as: Int.self)
        return TableCounts(inserted: inserted, updated: updated, unchanged: total - inserted - updated)
    }

    /// Inside the data transaction: rejects, quality findings, source state, and the run row.
    private func finishRun(_ result: inout LoadResult, pipeline: ValidationPipeline, source: any ByteSource) throws {
        guard let runID = result.runID else { return }
        try storeRejects(runID: runID, pipeline: pipeline)
        try storeQuality(runID: runID, pipeline: pipeline, result: result)
        let validators = source.validators
        let remember = (source as? any HTTPSourceMarker)?.remembersValidators ?? (validators.etag != nil || validators.lastModified != nil)
        if remember {
            try connection.execute("""
                INSERT INTO nfl.etl_source_state AS t (source, etag, last_modified, checksum)
                VALUES (\(source.name), \(validators.etag), \(validators.lastModified), \(result.checksum))
                ON CONFLICT (source) DO UPDATE SET etag = excluded.etag, last_modified = excluded.last_modified,
                    checksum = excluded.checksum, updated_at = now()
                WHERE (t.etag, t.last_modified, t.checksum) IS DISTINCT FROM (excluded.etag, excluded.last_modified, excluded.checksum)
                """)
        }
        try connection.execute("""
            UPDATE nfl.etl_runs SET status = 'succeeded', finished_at = greatest(clock_timestamp(), started_at),
                rows_read = \(result.rowsRead), rows_inserted = \(result.inserted), rows_updated = \(result.updated),
                rows_unchanged = \(result.unchanged), rows_rejected = \(result.rejected),
                input_checksum = \(result.checksum), input_bytes = \(result.bytes)
            WHERE id = \(runID)
            """)
        result.endPhase("finish_rejects_quality_run")
    }

    private func storeRejects(runID: Int64, pipeline: ValidationPipeline) throws {
        guard !pipeline.rejects.isEmpty else { return }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try connection.copyIn("COPY nfl.etl_rejects (etl_run_id, target, row_number, row_key, reasons, raw_line) FROM STDIN") { writer in
            for reject in pipeline.rejects {
                // Text columns and jsonb cannot hold NUL (jsonb not even as \u0000): stored as \x00.
                let reasons = reject.failures.map {
                    ["column": $0.column, "check": $0.check, "value": TextSafety.escaped($0.value), "severity": $0.severity.rawValue, "line": String($0.line)]
                }
                let json = String(decoding: try encoder.encode(reasons), as: UTF8.self)
                try writer.writeTextRow([String(runID), Self.target, String(reject.row), TextSafety.escaped(reject.key), json, TextSafety.escaped(reject.raw)])
            }
        }
    }

    /// Findings in `nfl.data_quality_reports`: metrics (info), every check's violation count
    /// (error/warning), new teams (referential), and the first 1000 individual errors and 100 warnings.
    private func storeQuality(runID: Int64, pipeline: ValidationPipeline, result: LoadResult) throws {
        let m = pipeline.metrics
        var rows: [[String?]] = []
        func add(_ check: String, _ severity: String, _ column: String?, _ rowRef: String?, _ value: String?, _ count: Int?, _ message: String) {
            rows.append([String(runID), check, severity, Self.target, column, TextSafety.escaped(rowRef), TextSafety.escaped(value), count.map(String.init), TextSafety.escaped(message)])
        }
        add("row_count", "info", nil, nil, nil, m.rowCount, "\(m.rowCount) data rows read, \(m.validRows) valid, \(m.rejectedRows) rejected, \(m.warningRows) with warnings")
        for (column, count) in m.nullCounts.sorted(by: { $0.key < $1.key }) where count > 0 {
            add("null_count", "info", column, nil, nil, count, "\(count) of \(m.rowCount) rows have no \(column)")
        }
        add("duplicate_count", m.duplicateKeys > 0 ? "error" : "info", "game_id", nil, nil, m.duplicateRows, "\(m.duplicateKeys) game_id values occur more than once (\(m.duplicateRows) rows)")
        for (key, count) in m.violations.sorted(by: { $0.key < $1.key }) {
            let parts = key.split(separator: "|", maxSplits: 1, omittingEmptySubsequences: false)
            let column = parts[0].isEmpty ? nil : String(parts[0])
            let check = String(parts[1])
            let severity = pipeline.failures.first { $0.check == check && $0.column == column }?.severity.rawValue ?? "error"
            add(check, severity, column, nil, nil, count, "\(count) rows fail \(check)\(column.map { " on \($0)" } ?? "")")
        }
        for column in m.extraColumns {
            add("column_not_in_contract", "warning", column, nil, nil, nil, "column \(column) is not in the nfl.games contract; ignored")
        }
        if !result.newTeams.isEmpty {
            add("new_reference_rows", "info", "team_abbr", nil, result.newTeams.joined(separator: ","), result.newTeams.count,
                "team abbreviations not yet in nfl.teams were added: \(result.newTeams.joined(separator: ", "))")
        }
        for (table, counts) in result.tables.sorted(by: { $0.key < $1.key }) {
            add("load_counts", "info", nil, nil, "inserted=\(counts.inserted) updated=\(counts.updated) unchanged=\(counts.unchanged)",
                counts.inserted + counts.updated, "\(table): \(counts.inserted) inserted, \(counts.updated) updated, \(counts.unchanged) unchanged")
        }
        // Errors: the first 1000 (their rows are also in nfl.etl_rejects with every reason);
        // warnings: the first 100 (a steady feed repeats the same warnings every run, and each
        // stored row is WAL; the per-check counts above are complete).
        var errors = 0, warnings = 0
        for failure in pipeline.failures {
            if failure.severity == .error { errors += 1 } else { warnings += 1 }
            if (failure.severity == .error && errors > 1000) || (failure.severity != .error && warnings > 100) { continue }
            add(failure.check, failure.severity.rawValue, failure.column, failure.key, failure.value, 1,
                "row \(failure.row) (line \(failure.line)) fails \(failure.check)")
        }
        try connection.copyIn("""
            COPY nfl.data_quality_reports (etl_run_id, check_name, severity, table_name, column_name, row_ref, failure_value, failure_count, message) FROM STDIN
            """) { writer in
            for row in rows { try writer.writeTextRow(row) }
        }
    }
}

/// Sources whose validators are remembered even when the server sent none — unless
/// `remembersValidators` says their name cannot key them.
public protocol HTTPSourceMarker {
    var remembersValidators: Bool { get }
}
