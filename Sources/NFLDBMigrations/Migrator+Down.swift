import Foundation
import Logging
import NFLDBCore
import NFLDBPostgres

extension Migrator {
    // MARK: - Down

    /// Rolls back the newest `count` applied migrations, or all above `target`, using the down SQL
    /// stored when each was applied (so an edited or deleted file cannot change what runs).
    public func down(count: Int? = nil, to target: Int64? = nil, dryRun: Bool = false) throws -> MigrationRunResult {
        if dryRun {
            let rows = try MigrationLedger.rows(connection)
            let victims = try rollbackPlan(rows: rows, count: count, target: target)
            // The same refusals as the real run: a stored down SQL that cannot run is named now.
            _ = try rollbackSteps(victims)
            var result = MigrationRunResult()
            result.warnings = downFileWarnings(victims)
            result.dryRunSQL = victims.isEmpty ? "-- nothing to roll back" : try dryRunDown(victims)
            return result
        }
        return try locked {
            let rows = try MigrationLedger.rows(connection)
            let victims = try rollbackPlan(rows: rows, count: count, target: target)
            // Every stored down SQL is judged before the first rollback runs: a refusal for the
            // third version must not come after the two above it were already rolled back.
            let steps = try rollbackSteps(victims)
            var result = MigrationRunResult()
            result.warnings = downFileWarnings(victims)
            result.warnings.forEach { progress(.warning($0)) }
            if settings.singleTransaction {
                result.steps = try rollbackBatchInOneTransaction(victims, steps: steps)
            } else {
                for (row, step) in zip(victims, steps) { result.steps.append(try rollback(row, step: step)) }
            }
            result.currentVersion = try MigrationLedger.currentVersion(connection)
            return result
        }
    }

    func rollbackPlan(rows: [LedgerRow], count: Int?, target: Int64?) throws -> [LedgerRow] {
        try refuseDirty(rows)
        let applied = rows.filter { $0.state == .applied }.sorted { $0.version > $1.version }
        let reversible = Array(applied.prefix { !$0.isBaseline })
        if let target {
            let victims = applied.filter { $0.version > target }
            if let baseline = victims.first(where: \.isBaseline) {
                throw MigrationError(
                    "cannot roll back to \(target): \(baseline.id) is part of the baseline, which has no down SQL",
                    hint: "The lowest version `down` can reach is \(baseline.version).", exitStatus: .usage)
            }
            return victims
        }
        guard let count else {
            throw MigrationError("`migrate down` needs a count or --to VERSION", hint: "Example: `nfldb migrate down 1`.", exitStatus: .usage)
        }
        guard count >= 1 else { throw MigrationError("the count must be at least 1", exitStatus: .usage) }
        guard count <= reversible.count else {
            let why = reversible.count < applied.count ? " above the baseline (version \(applied.first(where: \.isBaseline)?.version ?? 0))" : ""
            throw MigrationError(
                "cannot roll back \(count) migration\(count == 1 ? "" : "s"): only \(reversible.count) \(reversible.count == 1 ? "is" : "are") applied\(why)",
                hint: "Run `nfldb migrate status` to see what is applied.", exitStatus: .usage)
        }
        return Array(reversible.prefix(count))
    }

    /// Warnings for rollbacks whose down file changed or disappeared since apply.
    func downFileWarnings(_ victims: [LedgerRow]) -> [String] {
        victims.compactMap { row in
            guard let file = migrations.first(where: { $0.version == row.version }) else {
                return "\(row.id): its files are no longer in the migrations directory; rolling back with the down SQL stored when it was applied"
            }
            guard let stored = row.downSQL, file.downChecksum != row.downChecksum else { return nil }
            return "\(file.downPath) changed since \(row.id) was applied; running the stored down SQL (as applied), not the file. Changes in the file:\n" + lineDiff(old: stored, new: file.downSQL)
        }
    }

    /// What rolling back one row runs: its stored down script (named after the file when the file
    /// still matches), its directives, and the statement that deletes its history row with an event.
    struct RollbackStep {
        let script: SQLScript
        let directives: MigrationDirectives
        let name: String
        let forget: PostgresQuery
    }

    /// The steps of a planned rollback, newest first; refuses the whole plan if any one cannot run.
    func rollbackSteps(_ victims: [LedgerRow]) throws -> [RollbackStep] {
        try victims.enumerated().map { index, row in try rollbackStep(row, above: index) }
    }

    /// `above`: how many versions of the same plan are rolled back before this one (they are
    /// newer), so a hint can say how to get to this one first.
    func rollbackStep(_ row: LedgerRow, above: Int = 0) throws -> RollbackStep {
        // `resolve --rolled-back --force` only takes the newest applied version: the ones above go first.
        let first = above == 0 ? "" : "Nothing was rolled back. First `nfldb migrate down \(above)` (the \(above) newer version\(above == 1 ? "" : "s") above it); then "
        guard let downSQL = row.downSQL else {
            throw MigrationError(
                "\(row.id) has no stored down SQL", hint: "\(first.isEmpty ? "R" : first + "r")oll it back by hand, then `nfldb migrate resolve \(row.version) --rolled-back --force`.")
        }
        let file = migrations.first { $0.version == row.version }
        // Named after the file only when the stored SQL is the file's text (not merely its checksum).
        let name = (file.map { $0.downChecksum == row.downChecksum && $0.downSQL == downSQL } ?? false)
            ? file!.downPath : "nfldb.schema_migrations[\(row.version)].down_sql"
        let forget = MigrationLedger.eventQuery(
            "rollback", version: row.version, name: row.name, context: context, detail: ["down_checksum": row.downChecksum, "source": name],
            after: "DELETE FROM nfldb.schema_migrations WHERE version = \(row.version)")
        let script = try Migration.script(downSQL, path: name)
        let directives = MigrationDirectives.parse(downSQL).0
        // Stored before nfldb refused such files at load time: it would commit half of the rollback.
        if let finding = MigrationStatementRules.transactionControlFindings(script, transactional: directives.transactional).first {
            throw MigrationError(
                "\(finding.file):\(finding.line): the down SQL of \(row.id) is transactional but controls the transaction itself; nothing was rolled back",
                detail: finding.message,
                hint: "\(first.isEmpty ? "U" : first + "u")ndo \(row.id) by hand and record that with `nfldb migrate resolve \(row.version) --rolled-back --force`.", exitStatus: .usage)
        }
        // A statement PostgreSQL refuses inside a transaction block would fail this step after the
        // newer versions were rolled back: judged with the plan, before anything runs.
        if directives.transactional,
           let (statement, what) = script.statements.lazy.compactMap({ s in MigrationStatementRules.outsideTransactionOnly(s).map { (s, $0) } }).first {
            throw MigrationError(
                "\(name):\(statement.line): the down SQL of \(row.id) runs \(what), which cannot run inside a transaction block, and it is not marked nfldb:no-transaction; nothing was rolled back",
                hint: (first.isEmpty ? "" : "The \(above) newer version\(above == 1 ? "" : "s") above it can go first (`nfldb migrate down \(above)`). ")
                    + Self.outsideTransactionDownHint(row).replacingOccurrences(of: "Nothing changed and \(row.id) is still applied. ", with: ""),
                exitStatus: .usage)
        }
        return RollbackStep(script: script, directives: directives, name: name, forget: forget)
    }

    /// `down --single-transaction`: every rollback and its history change in one transaction, so a
    /// failing down leaves every migration applied.
    func rollbackBatchInOneTransaction(_ victims: [LedgerRow], steps: [RollbackStep]) throws -> [MigrationRunResult.Step] {
        if let index = steps.firstIndex(where: { !$0.directives.transactional }) {
            throw MigrationError(
                "the down SQL of \(victims[index].id) is marked nfldb:no-transaction and cannot run inside --single-transaction; nothing was rolled back",
                hint: "Roll back without --single-transaction: `nfldb migrate down \(victims.count)` (each version in its own transaction).", exitStatus: .usage)
        }
        let items = zip(victims, steps).map { row, step in
            BatchItem(
                id: row.id, version: row.version, name: row.name, direction: "down", directives: step.directives, script: step.script,
                bookkeeping: nil)
        }
        // Every history row and rollback event in one statement at the end of the batch (same
        // transaction, so the same all-or-nothing), instead of one statement per migration.
        let forgetAll = MigrationLedger.eventQuery(
            "rollback",
            zip(victims, steps).map { row, step in
                MigrationLedger.Event(version: row.version, name: row.name, detail: ["down_checksum": row.downChecksum, "source": step.name])
            },
            context: context, after: "DELETE FROM nfldb.schema_migrations WHERE version = ANY(\(victims.map(\.version))::bigint[])")
        var done: [MigrationRunResult.Step] = []
        try withLockRetries("the batch rollback") {
            done = try runBatchInOneTransaction(items, finally: forgetAll)
        } onFailure: { error in
            // Rollbacks above the failing one ran fine inside the batch: `down N` for those works as is.
            let file = error.location.map { String($0[..<($0.lastIndex(of: ":") ?? $0.endIndex)]) }
            let failing = steps.firstIndex { $0.name == file }
            let hint: String
            if let failing, failing > 0 {
                hint = "\(victims[failing].id) is the one whose down SQL fails. `nfldb migrate down \(failing)` rolls back the \(failing) above it; then fix the cause and run `nfldb migrate down 1`, or undo it by hand and run `nfldb migrate resolve \(victims[failing].version) --rolled-back --force`."
            } else if let failing {
                hint = Self.stillAppliedHint(victims[failing])
            } else {
                hint = "Fix the cause and run the command again; `nfldb migrate status` shows what is applied."
            }
            throw MigrationError.statementFailed(
                "the batch rollback", error, extra: "--single-transaction: nothing was rolled back; every migration is still applied", hint: hint)
        }
        return done
    }

    func rollback(_ row: LedgerRow, step: RollbackStep? = nil) throws -> MigrationRunResult.Step {
        let step = try step ?? rollbackStep(row)
        let (script, directives, name, forget) = (step.script, step.directives, step.name, step.forget)
        progress(.starting(id: row.id, direction: "down", transactional: directives.transactional))
        let start = ContinuousClock.now
        if directives.transactional {
            do {
                try withLockRetries(row.id) {
                    try runInTransaction(script, directives: directives) { forget }
                } onFailure: { error in
                    _ = try? connection.execute(MigrationLedger.eventQuery(
                        "fail", version: row.version, name: row.name, context: context, detail: ["direction": "down", "error": error.message]))
                    throw MigrationError.statementFailed(
                        "rollback of \(row.id)", error,
                        extra: rolledBackClaim("the rollback was undone; \(row.id) is still applied and not dirty"),
                        hint: error.sqlState == "25001" ? Self.outsideTransactionDownHint(row) : Self.stillAppliedHint(row))
                }
            } catch let ended as TransactionEnded {
                throw ended.error("rollback of \(row.id)", ledger: "the history still records \(row.id) as applied", rollbackOf: row.version)
            }
        } else {
            try setTimeouts(directives, local: false)
            defer { resetTimeouts() }
            // Recorded as running first, like a no-transaction `up`: a run killed half-way leaves a
            // dirty version, not a clean "applied" one whose objects are half gone.
            try connection.execute("UPDATE nfldb.schema_migrations SET state = 'running', error = NULL WHERE version = \(row.version)")
            // Committed statements only; the file's own BEGIN … COMMIT is followed as in `up`.
            var done = 0
            var block = OwnBlock()
            let invalidAtStart = Set((try? invalidIndexes()) ?? [])
            for (index, statement) in script.statements.enumerated() {
                var failure: PostgresError?
                let inBlock = block.isOpen
                try withLockRetries(row.id, canRetry: { self.newInvalidIndexes(since: invalidAtStart).isEmpty && !inBlock }) {
                    try connection.run(statement, in: name)
                } onFailure: { failure = $0 }
                if let error = failure {
                    let line = statement.line(of: error)
                    let undone = block.rollBack(connection)
                    if done == 0 && newInvalidIndexes(since: invalidAtStart).isEmpty && !statement.mayCommitInside {
                        // Nothing of the down SQL ran: the migration is still cleanly applied.
                        _ = try? connection.execute("UPDATE nfldb.schema_migrations SET state = 'applied' WHERE version = \(row.version)")
                        _ = try? connection.execute(MigrationLedger.eventQuery(
                            "fail", version: row.version, name: row.name, context: context,
                            detail: ["direction": "down", "error": error.message, "location": "\(name):\(line)", "statements_done": "0"]))
                        throw MigrationError.statementFailed(
                            "rollback of \(row.id)", error,
                            extra: (undone.map { "\($0), so nothing of the down SQL stays" } ?? "its first down statement failed, so nothing ran")
                                + "; \(row.id) is still applied and not dirty",
                            hint: Self.stillAppliedHint(row))
                    }
                    // failed_statement_line is a line of up_path; a down failure names its own file:line in the error.
                    _ = try? connection.execute("""
                        UPDATE nfldb.schema_migrations SET state = 'failed', error = \("down failed at \(name):\(line) after \(done) of \(script.statements.count) statements: " + error.message),
                          failed_statement_line = NULL
                        WHERE version = \(row.version)
                        """)
                    _ = try? connection.execute(MigrationLedger.eventQuery(
                        "fail", version: row.version, name: row.name, context: context,
                        detail: ["direction": "down", "error": error.message, "location": "\(name):\(line)", "statements_done": String(done)]))
                    throw MigrationError.statementFailed(
                        "rollback of \(row.id)", error,
                        hint: "The first \(done) of \(script.statements.count) down statements ran; what they committed stays\(undone.map { " (\($0))" } ?? ""). The version is dirty; finish the rollback by hand, then `nfldb migrate resolve \(row.version) --rolled-back` (or redo what ran, then `--applied`).")
                }
                if connection.parameterStatus("standard_conforming_strings") == "off" {
                    _ = block.rollBack(connection)
                    _ = try? connection.execute("SET standard_conforming_strings = on")
                    _ = try? connection.execute("""
                        UPDATE nfldb.schema_migrations SET state = 'failed', error = \("down stopped at \(name):\(statement.line): the statement turned standard_conforming_strings off")
                        WHERE version = \(row.version)
                        """)
                    try requireStandardStrings(after: statement, in: script)
                }
                if block.after(statement, connection, progress: progress) { done = index + 1 }
            }
            if let open = block.start {
                _ = block.rollBack(connection)
                _ = try? connection.execute("""
                    UPDATE nfldb.schema_migrations SET state = 'failed', failed_statement_line = NULL,
                      error = \("down failed at \(name):\(open.line): the down SQL ends inside its own transaction block (BEGIN without COMMIT)")
                    WHERE version = \(row.version)
                    """)
                throw MigrationError(
                    "\(name):\(open.line): the down SQL of \(row.id) ends inside its own transaction block (BEGIN without COMMIT); that block was rolled back",
                    detail: "\(done) of \(script.statements.count) down statements ran and stay",
                    hint: "The version is dirty: finish the rollback by hand, then `nfldb migrate resolve \(row.version) --rolled-back`.")
            }
            try connection.query(forget)
        }
        let ms = elapsed(since: start)
        progress(.finished(id: row.id, direction: "down", milliseconds: ms))
        logger.info("rolled back migration", metadata: ["migration.version": .stringConvertible(row.version), "duration_ms": .stringConvertible(ms)])
        return .init(version: row.version, name: row.name, direction: "down", durationMilliseconds: ms)
    }

    /// A stored down SQL with a statement PostgreSQL runs only outside a transaction block, in a
    /// transactional file: the fix goes into the down file, and `repair` stores it.
    static func outsideTransactionDownHint(_ row: LedgerRow) -> String {
        "Nothing changed and \(row.id) is still applied. Put that statement in a down file marked `-- nfldb:no-transaction` (a comment before its first statement), "
            + "store the fixed down SQL with `nfldb migrate repair \(row.version)`, then roll back again. "
            + "Or undo \(row.id) by hand and record that with `nfldb migrate resolve \(row.version) --rolled-back --force`."
    }

    /// What to do after a rollback that changed nothing: the version is still applied and clean, so
    /// `resolve --rolled-back --force` (after undoing it by hand) and `down 1` (after fixing the cause) both work.
    static func stillAppliedHint(_ row: LedgerRow) -> String {
        "Nothing changed and \(row.id) is still applied. Fix what makes its down SQL fail and run `nfldb migrate down 1` again (it runs the down SQL stored at apply time: after changing the down file, store it first with `nfldb migrate repair \(row.version)`); or undo it by hand and record that with `nfldb migrate resolve \(row.version) --rolled-back --force`."
    }

    /// `down 1` then `up` of that same version, under one lock hold.
    public func redo() throws -> MigrationRunResult {
        try locked {
            let rows = try MigrationLedger.rows(connection)
            let victims = try rollbackPlan(rows: rows, count: 1, target: nil)
            guard let row = victims.first else { return MigrationRunResult() }
            guard let migration = migrations.first(where: { $0.version == row.version }) else {
                throw MigrationError("cannot redo \(row.id): its files are not in the migrations directory", hint: "Restore the files, or use `migrate down 1`.")
            }
            // The file is applied again after the rollback: refuse it now, before anything runs.
            try refuseTransactionControl([migration])
            var result = MigrationRunResult()
            result.warnings = downFileWarnings(victims)
            if migration.upChecksum != row.upChecksum {
                result.warnings.append("\(migration.upPath) changed since \(row.id) was applied: redo applies the file as it is now, not what was applied")
            }
            result.warnings.forEach { progress(.warning($0)) }
            result.steps.append(try rollback(row))
            do {
                result.steps.append(try apply(migration))
            } catch let error as any NFLDBError {
                // The rollback committed: "the database is unchanged" is true only of the failed apply.
                let now = (try? MigrationLedger.currentVersion(connection)).flatMap { $0 }.map(String.init) ?? "none"
                // A no-transaction file that failed part-way is dirty, not pending.
                let state = (try? MigrationLedger.rows(connection))?.first { $0.version == row.version }?.state
                let summary = error.diagnostic.summary.replacingOccurrences(of: "the database is unchanged", with: "that attempt changed nothing")
                throw MigrationError(
                    "redo of \(row.id): the rollback committed, then applying it again failed — \(summary)",
                    detail: [error.diagnostic.detail?.replacingOccurrences(of: "the database is unchanged", with: "that attempt changed nothing"),
                             state == nil ? "\(row.id) is now pending; the database is at version \(now)"
                                 : "\(row.id) is now \(state!.rawValue) (dirty): part of it ran"].compactMap { $0 }.joined(separator: "; "),
                    hint: (state == nil ? "Fix \(migration.upPath) and run `nfldb migrate up` (it applies \(row.id) again)."
                        : "Finish or undo by hand what ran, then `nfldb migrate resolve \(row.version) --applied` or `--rolled-back`.")
                        + (error.diagnostic.hint.map { " " + $0.replacingOccurrences(of: "the database is unchanged", with: "that attempt changed nothing") } ?? ""),
                    exitStatus: error.exitStatus)
            }
            result.currentVersion = try MigrationLedger.currentVersion(connection)
            return result
        }
    }

    // MARK: - Operator decisions

    /// Marks every migration up to `version` as applied without running it (adopting an existing database).
    public func baseline(version: Int64) throws -> MigrationRunResult {
        try locked {
            let rows = try MigrationLedger.rows(connection)
            try refuseDirty(rows)
            if let above = rows.first(where: { $0.version > version }) {
                throw MigrationError(
                    "cannot baseline at \(version): \(above.id) above it is already applied", exitStatus: .usage)
            }
            let adopt = migrations.filter { m in m.version <= version && !rows.contains { $0.version == m.version } }
            guard !adopt.isEmpty else { return MigrationRunResult() }
            var result = MigrationRunResult()
            try connection.withTransaction {
                for migration in adopt {
                    try connection.query(MigrationLedger.eventQuery(
                        "baseline", version: migration.version, name: migration.name, context: context, detail: ["baseline": String(version)],
                        after: """
                          INSERT INTO nfldb.schema_migrations (version, name, state, kind, transactional, up_checksum, down_checksum,
                            up_path, client_host, nfldb_version, git_commit)
                          VALUES (\(migration.version), \(migration.name), 'applied', 'baseline', \(migration.directives.transactional),
                            \(migration.upChecksum), NULL, \(migration.upPath), \(context.clientHost), \(context.nfldbVersion), \(context.gitCommit))
                          """))
                    result.steps.append(.init(version: migration.version, name: migration.name, direction: "baseline", durationMilliseconds: 0))
                }
            }
            result.currentVersion = version
            return result
        }
    }

    /// Records the operator's decision about a dirty version (state `failed` or `running`) after a
    /// manual fix. A clean applied version is refused: removing it from the history would leave its
    /// objects in the database with nothing recording them. The one exception, `force` with
    /// `--rolled-back`, is the newest applied version after its down failed (or it has no stored
    /// down SQL) and the operator undid it by hand — what a failed `down` suggests.
    public func resolve(version: Int64, applied: Bool, reason: String?, force: Bool = false) throws -> MigrationRunResult {
        try locked {
            let rows = try MigrationLedger.rows(connection)
            guard let row = rows.first(where: { $0.version == version }) else {
                throw MigrationError(
                    "version \(version) has no history row; nothing to resolve",
                    hint: "`nfldb migrate status` lists dirty versions.", exitStatus: .usage)
            }
            if !row.isDirty {
                let newest = rows.filter { $0.state == .applied }.map(\.version).max()
                let clean = "\(row.id) is applied and clean, not dirty (state \(row.state.rawValue)); resolve only records how a migration that stopped half-way (state failed or running) was finished or undone by hand"
                if applied {
                    throw MigrationError("\(clean); nothing changed", hint: "\(row.id) is already recorded as applied.", exitStatus: .usage)
                }
                if !force {
                    throw MigrationError(
                        "\(clean); nothing changed",
                        detail: "removing it from the history would leave its objects in the database unrecorded",
                        hint: "To roll it back, use `nfldb migrate down` (`down --to \(version - 1)` rolls back it and everything above it). Only if its down SQL cannot run and you already undid it by hand: `nfldb migrate resolve \(version) --rolled-back --force`.",
                        exitStatus: .usage)
                }
                if row.isBaseline {
                    throw MigrationError(
                        "\(row.id) is part of the baseline (adopted with `migrate baseline`, never run by nfldb); nothing changed",
                        detail: "--force --rolled-back records that a migration's down SQL was undone by hand; a baseline version has no down SQL and `down` never goes below it",
                        hint: "`nfldb migrate status` shows the baseline version; `down` stops above it. Versions above the baseline can be rolled back with `nfldb migrate down --to \(version)`.",
                        exitStatus: .usage)
                }
                if let newest, newest != version {
                    throw MigrationError(
                        "\(row.id) is not the newest applied version (\(newest) is); nothing changed",
                        detail: "--force --rolled-back only records the newest applied version (the one `down 1` would roll back) as undone by hand",
                        hint: "Roll back the versions above it first: `nfldb migrate down --to \(version)`.",
                        exitStatus: .usage)
                }
            }
            let event = applied ? "resolve-applied" : "resolve-rolled-back"
            try connection.withTransaction {
                if applied {
                    try connection.execute("UPDATE nfldb.schema_migrations SET state = 'applied', error = NULL, failed_statement_line = NULL WHERE version = \(version)")
                } else {
                    try connection.execute("DELETE FROM nfldb.schema_migrations WHERE version = \(version)")
                }
                try connection.execute(MigrationLedger.eventQuery(
                    event, version: version, name: row.name, context: context,
                    detail: ["reason": reason ?? "", "previous_state": row.state.rawValue, "force": force ? "true" : "false", "error": row.error ?? "",
                             "statements_done": String(row.statementsDone ?? 0)]))
            }
            var result = MigrationRunResult()
            result.steps.append(.init(version: version, name: row.name, direction: event, durationMilliseconds: 0))
            result.currentVersion = try MigrationLedger.currentVersion(connection)
            // A failed CREATE INDEX CONCURRENTLY leaves an INVALID index behind: recorded as rolled
            // back, the migration's next `up` would stop at "already exists" (an attack probe).
            let invalid = try invalidIndexes()
            if !applied && !invalid.isEmpty {
                result.warnings.append("INVALID index\(invalid.count == 1 ? "" : "es") left in the database (a failed CREATE INDEX CONCURRENTLY leaves one): "
                    + invalid.joined(separator: ", ") + "; if \(row.id) creates \(invalid.count == 1 ? "it" : "them"), its next `nfldb migrate up` fails with 'already exists': "
                    + "drop \(invalid.count == 1 ? "it" : "them") first (" + invalid.map { "DROP INDEX CONCURRENTLY \($0);" }.joined(separator: " ") + ")")
            }
            return result
        }
    }

    /// Accepts the current files' checksums (and down SQL) for applied migrations whose files changed.
    public func repair(versions: [Int64] = []) throws -> MigrationRunResult {
        try locked {
            let rows = try MigrationLedger.rows(connection)
            let changed: [(LedgerRow, Migration)] = rows.compactMap { row in
                // A changed up file (drift) or a changed down file (a fix for a rollback that cannot run).
                guard versions.isEmpty || versions.contains(row.version),
                      let file = migrations.first(where: { $0.version == row.version }),
                      file.upChecksum != row.upChecksum
                        || (!row.isBaseline && (file.downChecksum != row.downChecksum || file.downSQL != row.downSQL)) else { return nil }
                return (row, file)
            }
            // The down half is stored for a later rollback: one that controls the transaction itself
            // would be refused only when `down` needs it. Refused now, before anything is stored.
            try refuseTransactionControl(changed.map(\.1))
            for (_, file) in changed where MigrationDirectives.parse(file.downSQL).0.transactional {
                let script = try Migration.script(file.downSQL, path: file.downPath)
                if let (statement, what) = script.statements.lazy.compactMap({ s in MigrationStatementRules.outsideTransactionOnly(s).map { (s, $0) } }).first {
                    throw MigrationError(
                        "\(file.downPath):\(statement.line): \(what) cannot run inside a transaction block, and the down file is transactional; nothing was stored",
                        hint: "Mark the down file `-- nfldb:no-transaction` (a comment before its first statement), then run `nfldb migrate repair` again.",
                        exitStatus: .usage)
                }
            }
            var result = MigrationRunResult()
            try connection.withTransaction {
                for (row, file) in changed {
                    try connection.execute("""
                        UPDATE nfldb.schema_migrations SET up_checksum = \(file.upChecksum), up_sql = \(file.upSQL),
                          down_checksum = \(file.downChecksum), down_sql = \(file.downSQL)
                        WHERE version = \(row.version)
                        """)
                    try connection.execute(MigrationLedger.eventQuery(
                        "repair", version: row.version, name: row.name, context: context,
                        detail: ["old_checksum": row.upChecksum, "new_checksum": file.upChecksum,
                                 "old_down_checksum": row.downChecksum ?? "", "new_down_checksum": file.downChecksum]))
                    result.steps.append(.init(version: row.version, name: row.name, direction: "repair", durationMilliseconds: 0))
                }
            }
            result.currentVersion = try MigrationLedger.currentVersion(connection)
            return result
        }
    }

    // MARK: - Dry runs

    func dryRunUp(_ pending: [Migration]) throws -> String {
        var out = ["-- nfldb migrate up --dry-run: \(pending.count) migration(s); lock: SELECT pg_try_advisory_lock(\(MigrationLedger.lockKey.value)) (polled)"]
        if settings.singleTransaction { out.append("BEGIN;") }
        for migration in pending {
            let script = try migration.upScript()
            let tx = migration.directives.transactional
            out.append("")
            out.append("-- \(migration.upPath) (\(tx ? "one transaction with its history row" : "nfldb:no-transaction: statement by statement, progress recorded"))")
            if tx {
                out.append(settings.singleTransaction ? timeoutSettings(migration.directives, local: true) + ";" : "BEGIN; " + timeoutSettings(migration.directives, local: true) + ";")
            } else {
                out.append("INSERT INTO nfldb.schema_migrations (version, name, state, …) VALUES (\(migration.version), \(PostgresIdentifier.literal(migration.name)), 'running', …);")
                out.append(timeoutSettings(migration.directives, local: false) + ";")
            }
            // Inside the file's own BEGIN … COMMIT, progress is written only after the block (as the real run does).
            var inBlock = false
            for statement in script.statements {
                var text = statement.text
                if !text.hasSuffix(";") { text += ";" }
                out.append(text)
                if let data = statement.copyData { out.append(data.text + "\\.") }
                let control = MigrationStatementRules.transactionControl(statement)
                let chained = MigrationStatementRules.sqlTokens(statement.folded).filter { $0 != ";" }.suffix(2).map { $0.uppercased() } == ["AND", "CHAIN"]
                switch control {
                case "BEGIN", "START TRANSACTION": inBlock = true
                case "COMMIT", "END", "ROLLBACK", "ABORT": inBlock = chained
                default: break
                }
                if !tx && !inBlock { out.append("UPDATE nfldb.schema_migrations SET statements_done = \(statement.index + 1) WHERE version = \(migration.version);") }
            }
            if tx {
                out.append("INSERT INTO nfldb.schema_migrations (version, name, state, up_checksum, down_sql, …) VALUES (\(migration.version), \(PostgresIdentifier.literal(migration.name)), 'applied', '\(migration.upChecksum)', <down SQL>, …);")
                out.append("INSERT INTO nfldb.migration_events (version, event, …) VALUES (\(migration.version), 'apply', …);")
                if !settings.singleTransaction { out.append("COMMIT;") }
            } else {
                out.append("UPDATE nfldb.schema_migrations SET state = 'applied' WHERE version = \(migration.version);")
                out.append("RESET lock_timeout; RESET statement_timeout;")
            }
        }
        if settings.singleTransaction { out.append("COMMIT;") }
        return out.joined(separator: "\n")
    }

    func dryRunDown(_ victims: [LedgerRow]) throws -> String {
        var out = ["-- nfldb migrate down --dry-run: \(victims.count) migration(s), using the down SQL stored at apply time"]
        for row in victims {
            let sql = row.downSQL ?? ""
            let (directives, _) = MigrationDirectives.parse(sql)
            let script = try Migration.script(sql, path: "nfldb.schema_migrations[\(row.version)].down_sql")
            out.append("")
            out.append("-- rollback of \(row.id)")
            out.append(directives.transactional ? "BEGIN; " + timeoutSettings(directives, local: true) + ";" : timeoutSettings(directives, local: false) + ";")
            for statement in script.statements {
                out.append(statement.text.hasSuffix(";") ? statement.text : statement.text + ";")
                if let data = statement.copyData { out.append(data.text + "\\.") }
            }
            out.append("DELETE FROM nfldb.schema_migrations WHERE version = \(row.version);")
            out.append("INSERT INTO nfldb.migration_events (version, event, …) VALUES (\(row.version), 'rollback', …);")
            if directives.transactional { out.append("COMMIT;") }
        }
        return out.joined(separator: "\n")
    }
}

/// A small line diff for warnings: lines only in `old` as `-`, only in `new` as `+`.
func lineDiff(old: String, new: String, oldLabel: String = "old", newLabel: String = "new") -> String {
    let a = old.replacingOccurrences(of: "\r\n", with: "\n").split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    let b = new.replacingOccurrences(of: "\r\n", with: "\n").split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    // Common head and tail first; a longest common subsequence over the (usually short) middle, so
    // a line that also occurs elsewhere (`);`, `id integer NOT NULL,`) is still shown where it changed.
    var head = 0
    while head < a.count, head < b.count, a[head] == b[head] { head += 1 }
    var tail = 0
    while tail < a.count - head, tail < b.count - head, a[a.count - 1 - tail] == b[b.count - 1 - tail] { tail += 1 }
    let x = Array(a[head..<(a.count - tail)])
    let y = Array(b[head..<(b.count - tail)])
    // Operations over the middle: (" ", line) kept, ("-", line) only in old, ("+", line) only in new.
    var ops: [(Character, String)] = []
    if head > 0 { ops.append((" ", a[head - 1])) }
    if x.count * y.count <= 4_000_000 {
        // lcs[i][j]: length of the LCS of x[i...] and y[j...].
        var lcs = [[Int32]](repeating: [Int32](repeating: 0, count: y.count + 1), count: x.count + 1)
        for i in stride(from: x.count - 1, through: 0, by: -1) {
            for j in stride(from: y.count - 1, through: 0, by: -1) {
                lcs[i][j] = x[i] == y[j] ? lcs[i + 1][j + 1] + 1 : max(lcs[i + 1][j], lcs[i][j + 1])
            }
        }
        var i = 0, j = 0
        while i < x.count || j < y.count {
            if i < x.count, j < y.count, x[i] == y[j] {
                ops.append((" ", x[i])); i += 1; j += 1
            } else if i < x.count, j == y.count || lcs[i + 1][j] >= lcs[i][j + 1] {
                // The old line first on a tie, as diff(1) shows a changed line: `-` then `+`.
                ops.append(("-", x[i])); i += 1
            } else {
                ops.append(("+", y[j])); j += 1
            }
        }
    } else {
        ops += x.map { (Character("-"), $0) } + y.map { (Character("+"), $0) }
    }
    if tail > 0 { ops.append((" ", a[a.count - tail])) }
    // Both sides, each change with one line of context; long unchanged runs folded.
    var near = [Bool](repeating: false, count: ops.count)
    for index in ops.indices where ops[index].0 != " " {
        for k in max(0, index - 1)...min(ops.count - 1, index + 1) { near[k] = true }
    }
    var out = ["  --- \(oldLabel)", "  +++ \(newLabel)"]
    var lastShown = -1
    for (index, op) in ops.enumerated() {
        guard near[index] else { continue }
        if lastShown >= 0 && index > lastShown + 1 { out.append("    …") }
        out.append(op.0 == " " ? "    \(op.1)" : "  \(op.0) \(op.1)")
        lastShown = index
    }
    return out.joined(separator: "\n")
}
