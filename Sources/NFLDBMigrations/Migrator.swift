import Foundation
import Logging
import NFLDBCore
import NFLDBPostgres

/// Knobs for a migration run (from `migrations.*` config keys and flags).
public struct MigratorSettings: Sendable {
    /// `lock_timeout` for each migration unless its file says otherwise.
    public var lockTimeout: Duration = ConfigKey.migrationsLockTimeout.defaultDuration ?? .zero
    /// `statement_timeout` for each migration; nil or zero means none.
    public var statementTimeout: Duration?
    /// How long to wait for another runner's migration lock.
    public var lockWait: Duration = ConfigKey.migrationsLockWait.defaultDuration ?? .zero
    /// Retries of a transactional migration whose `lock_timeout` fired.
    public var lockRetries = ConfigKey.migrationsRetries.defaultValue.flatMap { Int($0) } ?? 0
    /// First backoff between those retries (doubles each time).
    public var retryBackoff: Duration = .seconds(1)
    public var allowOutOfOrder = false
    public var singleTransaction = false
    /// Off only in the test of the run-time guard behind the refusal (a COMMIT that got past it).
    var checksTransactionControl = true

    public init() {}
}

/// Progress reported while a command runs (the CLI prints these).
public enum MigrationProgress: Sendable {
    case waitingForLock(holder: String?)
    case starting(id: String, direction: String, transactional: Bool)
    case finished(id: String, direction: String, milliseconds: Double)
    case retrying(id: String, attempt: Int, after: Duration, blockers: String?)
    case warning(String)
    /// A no-transaction file's own transaction block opened (at `line` of its file) or ended (nil):
    /// what a signal now would roll back with the connection.
    case ownBlock(openAt: Int?)
}

/// What a command did.
public struct MigrationRunResult: Sendable, Codable {
    public struct Step: Sendable, Codable {
        public let version: Int64
        public let name: String
        public let direction: String
        public let durationMilliseconds: Double
    }

    public var steps: [Step] = []
    public var warnings: [String] = []
    /// For `--dry-run`: the exact SQL that would run, with transaction boundaries.
    public var dryRunSQL: String?
    public var currentVersion: Int64?

}

/// Applies and rolls back migrations on one dedicated connection.
///
/// Every command that changes the ledger holds the session-level advisory lock
/// ``MigrationLedger/lockKey``, taken by polling with no transaction open, then re-reads the ledger
/// — so N concurrent runners apply each migration exactly once and the others find nothing to do.
public final class Migrator {
    let connection: PostgresConnection
    public let migrations: [Migration]
    public let settings: MigratorSettings
    public let context: MigrationContext
    let logger: Logger
    let progress: (MigrationProgress) -> Void

    public init(
        connection: PostgresConnection, migrations: [Migration], settings: MigratorSettings, context: MigrationContext,
        logger: Logger, progress: @escaping (MigrationProgress) -> Void = { _ in }
    ) {
        self.connection = connection
        self.migrations = migrations.sorted { $0.version < $1.version }
        self.settings = settings
        self.context = context
        self.logger = logger
        self.progress = progress
    }

    // MARK: - Status

    public func status() throws -> MigrationStatus {
        let rows = try MigrationLedger.rows(connection)
        // Pending files that `up` would refuse make status fail the same way (exit 2), so CI finds them.
        try refuseTransactionControl(migrations.filter { m in !rows.contains { $0.version == m.version } })
        return MigrationStatus.compute(files: migrations, rows: rows, invalidIndexes: try invalidIndexes())
    }

    /// Transactional files that control the transaction themselves (`COMMIT`, `SAVEPOINT`…), among the
    /// migrations that are about to be applied — both halves, since the down half is stored for the
    /// rollback: refused before anything runs, every file:line listed. Files already applied are not
    /// judged here: they will not run again (a down half stored before this rule is checked when a
    /// rollback would run it), so a directory that holds such an old file keeps working.
    func refuseTransactionControl(_ pending: [Migration]) throws {
        guard settings.checksTransactionControl else { return }
        var problems: [String] = []
        for migration in pending {
            problems += MigrationStatementRules.loadProblems(
                migration.upSQL, path: migration.upPath, transactional: migration.directives.transactional)
            problems += MigrationStatementRules.loadProblems(
                migration.downSQL, path: migration.downPath, transactional: MigrationDirectives.parse(migration.downSQL).0.transactional)
        }
        if !problems.isEmpty { throw MigrationError.sourceInvalid(problems) }
    }

    public func history(limit: Int = 100) throws -> [MigrationEvent] {
        guard try MigrationLedger.exists(connection) else { return [] }
        return try connection.query("""
            SELECT id, at, version, name, event, actor, client_host, correlation_id, detail::text AS detail
            FROM nfldb.migration_events ORDER BY id DESC LIMIT \(limit)
            """).rows.map { row in
            MigrationEvent(
                id: try row.decode("id"), at: try row.decode("at"), version: try row.decode("version"), name: try row.decode("name"),
                event: try row.decode("event"), actor: try row.decode("actor"), clientHost: try row.decode("client_host"),
                correlationID: try row.decode("correlation_id"), detail: try row.decode("detail"))
        }
    }

    /// Indexes left INVALID (e.g. by a failed `CREATE INDEX CONCURRENTLY`).
    public func invalidIndexes() throws -> [String] {
        try connection.query("""
            SELECT format('%I.%I', n.nspname, c.relname) AS name
            FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE NOT i.indisvalid ORDER BY 1
            """).rows.map { try $0.decode("name") }
    }

    // MARK: - Up

    /// Applies pending migrations up to `target` (all when nil).
    public func up(to target: Int64? = nil, dryRun: Bool = false) throws -> MigrationRunResult {
        if dryRun {
            let rows = try MigrationLedger.rows(connection)
            let pending = try plan(rows: rows, target: target)
            var result = MigrationRunResult()
            result.dryRunSQL = pending.isEmpty ? "-- nothing to apply" : try dryRunUp(pending)
            return result
        }
        return try locked {
            let rows = try MigrationLedger.rows(connection)
            let pending = try plan(rows: rows, target: target)
            var result = MigrationRunResult()
            if settings.singleTransaction {
                result.steps = try applyBatchInOneTransaction(pending)
            } else {
                for migration in pending { result.steps.append(try apply(migration)) }
            }
            result.currentVersion = try MigrationLedger.currentVersion(connection)
            return result
        }
    }

    /// The pending migrations, after refusing dirty, drifted and out-of-order states.
    func plan(rows: [LedgerRow], target: Int64?) throws -> [Migration] {
        try refuseDirty(rows)
        let status = MigrationStatus.compute(files: migrations, rows: rows)
        if !status.drifted.isEmpty {
            let files = status.drifted.map { entry in
                migrations.first { $0.version == entry.version }.map { "\($0.upPath) (applied \(rows.first { $0.version == entry.version }?.upChecksum.suffix(12) ?? "")…, file \($0.upChecksum.suffix(12))…)" } ?? entry.name
            }
            throw MigrationError(
                "\(files.count) applied migration file\(files.count == 1 ? " was" : "s were") changed after being applied",
                detail: "\n  " + files.joined(separator: "\n  "),
                hint: "Restore the file(s) from version control (`git log -p -- <file>`), or, if the change is deliberate and already reflected in the database, run `nfldb migrate repair` to accept the new checksum.")
        }
        var pending = migrations.filter { m in !rows.contains { $0.version == m.version } }
        if let target { pending = pending.filter { $0.version <= target } }
        let maxApplied = rows.map(\.version).max() ?? Int64.min
        let late = pending.filter { $0.version < maxApplied }
        if !late.isEmpty && !settings.allowOutOfOrder {
            throw MigrationError(
                "\(late.map(\.id).joined(separator: ", ")) \(late.count == 1 ? "is" : "are") older than the newest applied version \(maxApplied) but not applied (out of order, e.g. from a merged branch)",
                hint: "Renumber the file(s) above \(maxApplied), or apply them deliberately with `nfldb migrate up --allow-out-of-order`.")
        }
        try refuseTransactionControl(pending)
        if settings.singleTransaction, let blocker = pending.first(where: { !$0.directives.transactional }) {
            throw MigrationError(
                "\(blocker.id) is marked nfldb:no-transaction and cannot run inside --single-transaction",
                hint: "Apply it on its own: `nfldb migrate up --to \(blocker.version)` without --single-transaction.", exitStatus: .usage)
        }
        return pending
    }

    func refuseDirty(_ rows: [LedgerRow]) throws {
        guard let dirty = rows.first(where: \.isDirty) else { return }
        var detail = "state \(dirty.state.rawValue), statements done \(dirty.statementsDone ?? 0) of \(dirty.statementsTotal ?? 0)"
        if let line = dirty.failedStatementLine { detail += ", failed at \(dirty.upPath ?? dirty.id):\(line)" }
        if let error = dirty.error { detail += ": \(error)" }
        throw MigrationError(
            "migration \(dirty.id) is \(dirty.state == .running ? "still marked running (its runner may have died)" : "dirty: it stopped half-way"); nothing else runs until it is resolved",
            detail: detail,
            hint: "Inspect the database, finish or undo the remaining statements by hand, then record what you did: `nfldb migrate resolve \(dirty.version) --applied` or `nfldb migrate resolve \(dirty.version) --rolled-back`.")
    }

    /// Applies one migration: in its own transaction with its history row, or statement by statement.
    func apply(_ migration: Migration) throws -> MigrationRunResult.Step {
        progress(.starting(id: migration.id, direction: "up", transactional: migration.directives.transactional))
        let start = ContinuousClock.now
        let script = try migration.upScript()
        if migration.directives.transactional {
            do {
                try withLockRetries(migration.id, timeoutSource: lockTimeoutSource(migration)) {
                    try runInTransaction(script, directives: migration.directives) {
                        recordApplied(migration, statements: script.statements.count, milliseconds: elapsed(since: start))
                    }
                } onFailure: { error in
                    _ = try? connection.execute(MigrationLedger.eventQuery(
                        "fail", version: migration.version, name: migration.name, context: context,
                        detail: ["error": error.message, "location": error.location ?? "", "sqlstate": error.sqlState ?? ""]))
                    throw MigrationError.statementFailed(
                        migration.id, error, extra: rolledBackClaim("the migration was rolled back; the database is unchanged"),
                        hint: Self.outsideTransactionHint(error) ?? Self.lockTimeoutHint(error) ?? Self.notTheFileHint(error)
                            ?? "Fix \(migration.upPath) and run `nfldb migrate up` again.")
                }
            } catch let ended as TransactionEnded {
                _ = try? connection.execute(MigrationLedger.eventQuery(
                    "fail", version: migration.version, name: migration.name, context: context,
                    detail: ["error": "a statement ended the migration's transaction", "location": ended.location]))
                throw ended.error(migration.id)
            }
        } else {
            try applyWithoutTransaction(migration, script: script, start: start)
        }
        let ms = elapsed(since: start)
        progress(.finished(id: migration.id, direction: "up", milliseconds: ms))
        logger.info("applied migration", metadata: ["migration.version": .stringConvertible(migration.version), "duration_ms": .stringConvertible(ms)])
        return .init(version: migration.version, name: migration.name, direction: "up", durationMilliseconds: ms)
    }

    func applyBatchInOneTransaction(_ pending: [Migration]) throws -> [MigrationRunResult.Step] {
        guard !pending.isEmpty else { return [] }
        var steps: [MigrationRunResult.Step] = []
        let items = try pending.map { migration in
            let script = try migration.upScript()
            return BatchItem(
                id: migration.id, version: migration.version, name: migration.name, direction: "up",
                directives: migration.directives, script: script
            ) { ms in self.recordApplied(migration, statements: script.statements.count, milliseconds: ms) }
        }
        do {
            try withLockRetries("the batch") {
                steps = try runBatchInOneTransaction(items)
            } onFailure: { error in
                let file = error.location.map { String($0.split(separator: ":").first ?? "") } ?? ""
                let id = file.isEmpty ? "the batch" : URL(fileURLWithPath: file).lastPathComponent.replacingOccurrences(of: ".up.sql", with: "")
                throw MigrationError.statementFailed(
                    id, error, extra: rolledBackClaim("--single-transaction: the whole batch was rolled back; the database is unchanged"),
                    hint: Self.outsideTransactionHint(error) ?? "Fix the migration and run `nfldb migrate up --single-transaction` again.")
            }
        } catch let ended as TransactionEnded {
            throw ended.error(
                "the --single-transaction batch",
                ledger: "earlier migrations of the batch were committed with it, with their history rows; check `nfldb migrate status`")
        }
        return steps
    }

    func applyWithoutTransaction(_ migration: Migration, script: SQLScript, start: ContinuousClock.Instant) throws {
        let total = script.statements.count
        try connection.query(MigrationLedger.eventQuery(
            "start", version: migration.version, name: migration.name, context: context, detail: ["checksum": migration.upChecksum],
            after: """
              INSERT INTO nfldb.schema_migrations (version, name, state, transactional, up_checksum, down_checksum, up_sql, down_sql,
                up_path, statements_total, statements_done, client_host, nfldb_version, git_commit)
              VALUES (\(migration.version), \(migration.name), 'running', false, \(migration.upChecksum), \(migration.downChecksum),
                \(migration.upSQL), \(migration.downSQL), \(migration.upPath), \(total), 0, \(context.clientHost), \(context.nfldbVersion), \(context.gitCommit))
              """))
        try setTimeouts(migration.directives, local: false)
        defer { resetTimeouts() }
        // Statements whose effects are committed. A file may open its own transaction block (BEGIN …
        // COMMIT): statements inside it count once the block commits, progress is written only
        // outside it (inside, nfldb's own write would belong to the file's transaction), and a
        // failure inside it rolls the block back first.
        var done = 0
        var block = OwnBlock()
        let invalidAtStart = Set((try? invalidIndexes()) ?? [])
        for (index, statement) in script.statements.enumerated() {
            // Each statement commits on its own, so a lock_timeout is retried like a transactional
            // migration's — unless the attempt left an INVALID index behind (a CONCURRENTLY build
            // that timed out in a later phase), which a retry would trip over, or it ran inside the
            // file's own block (a retry of one statement would not redo the block).
            var failure: PostgresError?
            let inBlock = block.isOpen
            try withLockRetries(migration.id, timeoutSource: lockTimeoutSource(migration),
                                canRetry: { self.newInvalidIndexes(since: invalidAtStart).isEmpty && !inBlock }) {
                try connection.run(statement, in: migration.upPath)
            } onFailure: { failure = $0 }
            if let error = failure {
                let line = statement.line(of: error)
                let undone = block.rollBack(connection)
                let leftBehind = newInvalidIndexes(since: invalidAtStart)
                if done == 0 && leftBehind.isEmpty && !statement.mayCommitInside {
                    // The first statement failed as a whole: nothing ran, nothing to clean up.
                    let forgotten = (try? connection.execute(MigrationLedger.eventQuery(
                        "fail", version: migration.version, name: migration.name, context: context,
                        detail: ["error": error.message, "location": error.location ?? "", "statements_done": "0", "sqlstate": error.sqlState ?? ""],
                        after: "DELETE FROM nfldb.schema_migrations WHERE version = \(migration.version) AND state = 'running'"))) != nil
                    guard forgotten else {
                        // The connection is gone (a terminated session): the history row still says running.
                        throw MigrationError.statementFailed(
                            migration.id, error,
                            extra: (undone.map { "\($0) by the server, so nothing of the file stays" } ?? "nothing of the file ran")
                                + "; the connection was lost before nfldb could remove the history row, so \(migration.id) still shows as running",
                            hint: "Nothing of it is applied: record that with `nfldb migrate resolve \(migration.version) --rolled-back`, then fix the cause and run `nfldb migrate up` again.")
                    }
                    throw MigrationError.statementFailed(
                        migration.id, error,
                        extra: (undone.map { "\($0), so nothing of the file stays" } ?? "its first statement failed, so nothing ran") + "; \(migration.id) is not applied and not dirty",
                        hint: Self.lockTimeoutHint(error) ?? "Fix the cause (\(migration.upPath):\(line)) and run `nfldb migrate up` again.")
                }
                let invalid = (try? invalidIndexes()) ?? []
                _ = try? connection.execute("""
                    UPDATE nfldb.schema_migrations SET state = 'failed', statements_done = \(done), failed_statement_line = \(line),
                      error = \(error.message), duration_ms = \(Int64(elapsed(since: start)))
                    WHERE version = \(migration.version)
                    """)
                _ = try? connection.execute(MigrationLedger.eventQuery(
                    "fail", version: migration.version, name: migration.name, context: context,
                    detail: ["error": error.message, "location": error.location ?? "", "statements_done": String(done), "invalid_indexes": invalid.joined(separator: ",")]))
                var hint = "The first \(done) of \(total) statements ran; what they committed stays applied\(undone.map { " (\($0))" } ?? ""); the version is now dirty and blocks `up`/`down`. Finish or undo the work by hand, then run `nfldb migrate resolve \(migration.version) --applied` or `--rolled-back`."
                if !invalid.isEmpty {
                    hint += " INVALID index(es) left behind: \(invalid.joined(separator: ", ")); drop them with DROP INDEX CONCURRENTLY before retrying."
                }
                throw MigrationError.statementFailed(migration.id, error, hint: hint)
            }
            if connection.parameterStatus("standard_conforming_strings") == "off" {
                _ = block.rollBack(connection)
                _ = try? connection.execute("SET standard_conforming_strings = on")
                _ = try? connection.execute("""
                    UPDATE nfldb.schema_migrations SET state = 'failed', statements_done = \(done), failed_statement_line = \(statement.line),
                      error = 'the statement turned standard_conforming_strings off' WHERE version = \(migration.version)
                    """)
                try requireStandardStrings(after: statement, in: script)
            }
            guard block.after(statement, connection, progress: progress) else { continue }
            done = index + 1
            guard !block.isOpen else { continue }  // a COMMIT AND CHAIN: counted, written once outside the block
            try connection.execute("UPDATE nfldb.schema_migrations SET statements_done = \(done) WHERE version = \(migration.version)")
        }
        if let open = block.start {
            // BEGIN without COMMIT: recording "applied" now would land in the file's open block and be
            // lost with the connection. Rolled back and recorded as failed instead.
            _ = block.rollBack(connection)
            _ = try? connection.execute("""
                UPDATE nfldb.schema_migrations SET state = 'failed', statements_done = \(done), failed_statement_line = \(open.line),
                  error = 'the file ends inside its own transaction block (BEGIN without COMMIT)', duration_ms = \(Int64(elapsed(since: start)))
                WHERE version = \(migration.version)
                """)
            _ = try? connection.execute(MigrationLedger.eventQuery(
                "fail", version: migration.version, name: migration.name, context: context,
                detail: ["error": "the file ends inside its own transaction block (BEGIN without COMMIT)", "location": "\(migration.upPath):\(open.line)",
                         "statements_done": String(done)]))
            throw MigrationError(
                "\(migration.upPath):\(open.line): \(migration.id) ends inside its own transaction block (BEGIN without COMMIT); that block was rolled back",
                detail: "\(done) of \(total) statements ran and stay applied",
                hint: "Add the COMMIT. The version is dirty: undo or finish the work by hand, then `nfldb migrate resolve \(migration.version) --rolled-back` or `--applied`.")
        }
        try connection.query(MigrationLedger.eventQuery(
            "apply", version: migration.version, name: migration.name, context: context,
            detail: ["checksum": migration.upChecksum, "git_commit": context.gitCommit],
            after: """
              UPDATE nfldb.schema_migrations SET state = 'applied', applied_at = now(), duration_ms = \(Int64(elapsed(since: start)))
              WHERE version = \(migration.version)
              """))
    }

    /// One step of a `--single-transaction` batch (up or down).
    struct BatchItem {
        let id: String
        let version: Int64
        let name: String
        let direction: String
        let directives: MigrationDirectives
        let script: SQLScript
        /// The history change for this step, given its duration in milliseconds; nil when the batch
        /// records every step at once (``runBatchInOneTransaction(_:finally:)``).
        let bookkeeping: ((Double) -> PostgresQuery)?
    }

    /// `BEGIN`, then per item its `SET LOCAL` timeouts, its script and its history change, then `finally` (history changes recorded for the
    /// whole batch at once), then `COMMIT`; any error rolls the whole batch back and is rethrown.
    func runBatchInOneTransaction(_ items: [BatchItem], finally: PostgresQuery? = nil) throws -> [MigrationRunResult.Step] {
        var steps: [MigrationRunResult.Step] = []
        try connection.execute("BEGIN")
        do {
            for item in items {
                progress(.starting(id: item.id, direction: item.direction, transactional: true))
                let start = ContinuousClock.now
                // Every item again: a script may SET LOCAL its own timeouts, which must not leak into the next.
                try setTimeouts(item.directives, local: true)
                try connection.run(item.script) { try self.requireOpenTransaction(after: $0, in: item.script) }
                let ms = elapsed(since: start)
                if let bookkeeping = item.bookkeeping { try connection.query(bookkeeping(ms)) }
                steps.append(.init(version: item.version, name: item.name, direction: item.direction, durationMilliseconds: ms))
                progress(.finished(id: item.id, direction: item.direction, milliseconds: ms))
            }
            if let finally { try connection.query(finally) }
            try connection.execute("COMMIT")
        } catch {
            connection.rollbackQuietly()
            throw error
        }
        return steps
    }

    /// `BEGIN; SET LOCAL timeouts`, the script, then the bookkeeping statement, `COMMIT`; any error
    /// rolls the whole step back, so the script and its history change land together or not at all.
    func runInTransaction(_ script: SQLScript, directives: MigrationDirectives, bookkeeping: () -> PostgresQuery) throws {
        // One round trip for both (generated text: durations nfldb formatted itself); a per-migration
        // round trip more is measurable in `down 200`.
        try connection.runScript(unsafeSQL: "BEGIN; " + timeoutSettings(directives, local: true))
        do {
            try connection.run(script) { try self.requireOpenTransaction(after: $0, in: script) }
            try connection.query(bookkeeping())
            try connection.execute("COMMIT")
        } catch {
            connection.rollbackQuietly()
            throw error
        }
    }

    /// Stops a transactional run as soon as a statement ended nfldb's transaction (a `COMMIT` the
    /// load-time check could not see): what ran so far is committed, and nothing more may run.
    func requireOpenTransaction(after statement: SQLStatement, in script: SQLScript) throws {
        try requireStandardStrings(after: statement, in: script)
        guard connection.transactionState != .inTransaction else { return }
        throw TransactionEnded(location: "\(script.name):\(statement.line)", statement: statement.folded)
    }

    /// Stops a run right after a statement turned `standard_conforming_strings` off, however it did
    /// (`SET "standard_conforming_strings"`, `set_config`, a function): the server reports the
    /// setting with every change, and the rest of the file was split with it on.
    func requireStandardStrings(after statement: SQLStatement, in script: SQLScript) throws {
        guard connection.parameterStatus("standard_conforming_strings") == "off" else { return }
        throw MigrationError(
            "\(script.name):\(statement.line): this statement turned standard_conforming_strings off; nfldb stopped before the next one",
            detail: "the rest of the file was split into statements with the setting on, so with it off a quoted string could hide a different statement",
            hint: "Remove what turns the setting off and write such strings as E'…'. A transactional file was rolled back; a no-transaction file's earlier statements stay (check `nfldb migrate status`).",
            exitStatus: .usage)
    }

    /// `claim` (the failed transaction was rolled back) when the connection is still there to have
    /// done it; otherwise what is and is not known.
    func rolledBackClaim(_ claim: String) -> String {
        if connection.isAlive && connection.transactionState == .idle { return claim }
        return "the connection to the server was lost, so nfldb could not confirm the rollback; PostgreSQL rolls back an open transaction when its connection ends, but a loss during COMMIT may have committed it: check `nfldb migrate status` and the database before running again"
    }

    /// Failures whose cause is not the file: the server went away, or the role may not do it.
    static func notTheFileHint(_ error: PostgresError) -> String? {
        if error.kind == .connection || error.sqlState.map({ $0.hasPrefix("08") || $0 == SQLState.adminShutdown || $0 == SQLState.cannotConnectNow }) == true {
            return "The connection to the server was lost (the file is not the cause): check that PostgreSQL is up (`pg_isready`), "
                + "then run `nfldb migrate status` and `nfldb migrate up` again."
        }
        if error.sqlState == SQLState.insufficientPrivilege {
            return "The role nfldb connected as may not do this: run migrations as the schema's owner (nfl_owner in roles/platform.yaml, "
                + "e.g. --dsn 'user=nfl_owner …'), or grant what the statement needs (`nfldb roles apply`)."
        }
        return nil
    }

    /// Where a migration's lock wait is bounded: the file's own `-- nfldb:lock-timeout` directive,
    /// else `migrations.lock_timeout`. Named in the lock advice ``withLockRetries(_:timeoutSource:canRetry:_:onFailure:)``
    /// gives (an attack probe was told to raise the setting when the file's directive set 500 ms).
    func lockTimeoutSource(_ migration: Migration) -> String {
        migration.directives.lockTimeout.map { "the file's `-- nfldb:lock-timeout \(DurationParser.postgresSetting($0))` directive (\(migration.upPath))" }
            ?? "migrations.lock_timeout (NFLDB_MIGRATIONS_LOCK_TIMEOUT, now \(DurationParser.postgresSetting(settings.lockTimeout)))"
    }

    /// For SQLSTATE 55P03 (lock_timeout ran out after the retries): the lock advice is already on the
    /// error (``withLockRetries(_:timeoutSource:canRetry:_:onFailure:)``); the file is not the cause,
    /// so no "Fix the file" either.
    static func lockTimeoutHint(_ error: PostgresError) -> String? {
        guard error.sqlState == SQLState.lockNotAvailable else { return nil }
        return "Run `nfldb migrate up` again once the lock is free: the file itself is not the cause."
    }

    /// For SQLSTATE 25001 (`… cannot run inside a transaction block`): the engine's marker.
    static func outsideTransactionHint(_ error: PostgresError) -> String? {
        guard error.sqlState == "25001" else { return nil }
        return "This statement runs only outside a transaction block, and nfldb runs each migration in one: move it to a migration of its own and \(MigrationStatementRules.markerFix), then run `nfldb migrate up` again."
    }

    /// The history row and `apply` event, inserted inside the migration's transaction.
    func recordApplied(_ migration: Migration, statements: Int, milliseconds: Double) -> PostgresQuery {
        MigrationLedger.eventQuery(
            "apply", version: migration.version, name: migration.name, context: context,
            detail: ["checksum": migration.upChecksum, "git_commit": context.gitCommit],
            after: """
              INSERT INTO nfldb.schema_migrations (version, name, state, transactional, up_checksum, down_checksum, up_sql, down_sql,
                up_path, statements_total, statements_done, client_host, duration_ms, nfldb_version, git_commit)
              VALUES (\(migration.version), \(migration.name), 'applied', true, \(migration.upChecksum), \(migration.downChecksum),
                \(migration.upSQL), \(migration.downSQL), \(migration.upPath), \(statements), \(statements), \(context.clientHost),
                \(Int64(milliseconds)), \(context.nfldbVersion), \(context.gitCommit))
              """)
    }

    /// Sets `lock_timeout` and `statement_timeout` for the session, or (`local`) for the open
    /// transaction only — what ``timeoutSettings(_:local:)`` prints, with the values bound.
    func setTimeouts(_ directives: MigrationDirectives, local: Bool) throws {
        let lock = DurationParser.postgresSetting(directives.lockTimeout ?? settings.lockTimeout)
        let statement = DurationParser.postgresSetting(directives.statementTimeout ?? settings.statementTimeout ?? .zero)
        try connection.execute("SELECT set_config('lock_timeout', \(lock), \(local)), set_config('statement_timeout', \(statement), \(local))")
    }

    /// Back to the server's defaults after a non-transactional step; a failure is only logged.
    func resetTimeouts() {
        do {
            try connection.execute("RESET lock_timeout")
            try connection.execute("RESET statement_timeout")
        } catch {
            logger.debug("could not reset timeouts", metadata: ["error": .string(String(describing: error))])
        }
    }

    /// The `SET` statements ``setTimeouts(_:local:)`` amounts to, for `--dry-run` output.
    func timeoutSettings(_ directives: MigrationDirectives, local: Bool) -> String {
        let lock = directives.lockTimeout ?? settings.lockTimeout
        let statement = directives.statementTimeout ?? settings.statementTimeout ?? .zero
        let scope = local ? "SET LOCAL" : "SET"
        return "\(scope) lock_timeout = '\(DurationParser.postgresSetting(lock))'; \(scope) statement_timeout = '\(DurationParser.postgresSetting(statement))'"
    }

    /// Retries `body` when PostgreSQL's `lock_timeout` fires (SQLSTATE 55P03), with doubling backoff;
    /// other errors (and the last lock timeout) go to `onFailure`.
    /// INVALID indexes that were not INVALID in `before` (left behind by this run).
    func newInvalidIndexes(since before: Set<String>) -> [String] {
        ((try? invalidIndexes()) ?? []).filter { !before.contains($0) }
    }

    func withLockRetries(
        _ id: String, timeoutSource: String? = nil, canRetry: () -> Bool = { true }, _ body: () throws -> Void,
        onFailure: (PostgresError) throws -> Void
    ) throws {
        var attempt = 0
        var backoff = settings.retryBackoff
        while true {
            do {
                try body()
                return
            } catch let error as PostgresError {
                if error.sqlState == SQLState.lockNotAvailable && attempt < settings.lockRetries && canRetry() {
                    attempt += 1
                    let blockers = try? connection.describeLockHolders()
                    progress(.retrying(id: id, attempt: attempt, after: backoff, blockers: blockers))
                    logger.info("lock_timeout fired; retrying", metadata: ["migration": .string(id), "attempt": .stringConvertible(attempt)])
                    Thread.sleep(forTimeInterval: backoff.inSeconds)
                    backoff = backoff * 2
                    continue
                }
                var annotated = error
                // Inside a no-transaction file's own BEGIN … COMMIT the failed block refuses every query
                // until it ends; it is rolled back next anyway (``OwnBlock/rollBack(_:)`` still reports
                // it), so end it now and the lock holders can be looked up.
                if error.sqlState == SQLState.lockNotAvailable, connection.transactionState == .failed {
                    connection.rollbackQuietly()
                }
                if error.sqlState == SQLState.lockNotAvailable, let blockers = try? connection.describeLockHolders() {
                    annotated.detail = [error.detail, "gave up after \(attempt) retries; sessions holding locks: \(blockers)"].compactMap { $0 }.joined(separator: "; ")
                    // What to run next depends on what the failure left (the caller's hint says); this is only about the lock.
                    let bound = timeoutSource ?? "the file's `-- nfldb:lock-timeout` directive if it has one, else migrations.lock_timeout"
                    annotated.hint = MigrationError.ownHint("Another session held a lock this needs (DETAIL names it): wait for it to finish or end it "
                        + "(SELECT pg_terminate_backend(pid)). The wait is bounded by \(bound); raise that to wait longer.")
                }
                try onFailure(annotated)
                return
            }
        }
    }

    func elapsed(since start: ContinuousClock.Instant) -> Double {
        (ContinuousClock.now - start).inMilliseconds.rounded(toPlaces: 1)
    }

    /// Unqualified names in migrations must not land in nfldb's own schema. That happens when the
    /// migrating role is itself named `nfldb` and search_path has the default `"$user", public`.
    func refuseBookkeepingSearchPath() throws {
        let schema = try connection.query("SELECT coalesce(current_schema(), '') AS s").scalar(String.self)
        if schema == MigrationLedger.schema {
            throw MigrationError(
                "unqualified objects would be created in nfldb's bookkeeping schema \"nfldb\" (search_path starts with \"$user\" and the role is named nfldb)",
                hint: "Give the role a search_path without it (ALTER ROLE nfldb SET search_path = public), or migrate as another role.",
                exitStatus: .usage)
        }
    }

    /// Runs `body` holding the migration lock, after making sure the ledger exists.
    func locked<T>(_ body: () throws -> T) throws -> T {
        // If this runner is killed mid-statement, the server notices within a second and rolls the
        // migration back (releasing the session's advisory lock) instead of finishing it unattended.
        if connection.serverVersionNumber >= 140000 {
            try connection.execute("SET client_connection_check_interval = '1s'")
        }
        // Files are split with standard_conforming_strings on (as psql does by default); a database or
        // role default of off (ALTER DATABASE … SET) must not change what a statement means.
        try connection.execute("SET standard_conforming_strings = on")
        do {
            return try connection.withAdvisoryLock(MigrationLedger.lockKey, wait: settings.lockWait, waitSetting: "--lock-wait (migrations.lock_wait)", onWait: { holder in
                self.progress(.waitingForLock(holder: holder))
            }) {
                try MigrationLedger.ensure(connection)
                try refuseBookkeepingSearchPath()
                return try body()
            }
        } catch let timeout as AdvisoryLockTimeout {
            throw MigrationError(
                "another migration runner held the lock for longer than \(settings.lockWait)",
                detail: timeout.holder.map { "held by \($0)" },
                hint: "Wait for it to finish (`nfldb migrate status`), or raise --lock-wait / migrations.lock_wait.")
        }
    }
}

/// A statement of a transactional run left nfldb's transaction (see ``Migrator/requireOpenTransaction(after:in:)``).
/// A no-transaction file's own transaction block (`BEGIN` … `COMMIT`), followed statement by
/// statement through the connection's transaction status.
struct OwnBlock {
    /// The statement that opened the block that is open now.
    private(set) var start: SQLStatement?
    var isOpen: Bool { start != nil }

    /// After a statement succeeded: true when every statement up to it is in its final state —
    /// outside any block, or a `COMMIT AND CHAIN` that committed the block and opened the next one
    /// (progress is then written only once the connection is outside a block: ``isOpen``). A block
    /// that opened or ended is reported through `progress` (``MigrationProgress/ownBlock(openAt:)``).
    mutating func after(_ statement: SQLStatement, _ connection: PostgresConnection, progress: (MigrationProgress) -> Void) -> Bool {
        let wasOpenAt = start?.line
        let settled = advance(statement, connection)
        if start?.line != wasOpenAt { progress(.ownBlock(openAt: start?.line)) }
        return settled
    }

    private mutating func advance(_ statement: SQLStatement, _ connection: PostgresConnection) -> Bool {
        if connection.transactionState == .idle {
            start = nil
            return true
        }
        let control = MigrationStatementRules.transactionControl(statement)
        if control == "COMMIT" || control == "END" {
            start = statement  // committed; the chained transaction starts here
            return true
        }
        if start == nil || control == "ROLLBACK" || control == "ABORT" { start = statement }
        return false
    }

    /// After a failure: rolls back the file's open (or failed) block, returning what that undid.
    /// (A failed COMMIT ends the block too: the server rolled it back, nothing is left to do.)
    mutating func rollBack(_ connection: PostgresConnection) -> String? {
        defer { start = nil }
        let state = connection.transactionState
        let open = state == .inTransaction || state == .failed
        if open { connection.rollbackQuietly() }
        guard open || start != nil else { return nil }
        return "the file's own transaction block" + (start.map { " from line \($0.line)" } ?? "") + " was rolled back"
    }
}

struct TransactionEnded: Error {
    let location: String
    let statement: String

    func error(_ what: String, ledger: String = "the migration is not recorded as applied", rollbackOf version: Int64? = nil) -> MigrationError {
        let next = version.map {
            "Inspect the database and finish (or redo) by hand the rollback up to \(location); fix the down file and store it with `nfldb migrate repair \($0)`, then `nfldb migrate down 1` (or, if the rollback is complete, `nfldb migrate resolve \($0) --rolled-back --force`)."
        } ?? "Inspect the database and undo (or finish) by hand what the file did up to \(location); then remove the statement, or \(MigrationStatementRules.markerFix) if it must manage its own transactions, and run `nfldb migrate up` again."
        return MigrationError(
            "\(location): \(what) stopped: this statement ended nfldb's transaction (`\(statement.prefix(80))`)",
            detail: "what ran up to and including it was committed on its own; nothing after it ran; \(ledger)",
            hint: next)
    }
}

extension Double {
    func rounded(toPlaces places: Int) -> Double {
        let factor = pow(10, Double(places))
        return (self * factor).rounded() / factor
    }
}

extension SQLStatement {
    /// `CALL` and `DO` can COMMIT inside (outside a transaction block), so a failure may leave work behind.
    var mayCommitInside: Bool {
        let text = normalized
        return text.hasPrefix("CALL ") || text.hasPrefix("DO ") || text.hasPrefix("DO$")
    }
}
