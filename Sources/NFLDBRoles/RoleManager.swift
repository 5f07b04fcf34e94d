import Foundation
import Logging
import NFLDBCore
import NFLDBPostgres

/// Why `apply` stopped; nothing was changed (the transaction was rolled back) unless stated.
public struct RoleApplyError: NFLDBError, Sendable {
    public enum Reason: Sendable {
        /// The server answered a statement with a WARNING (e.g. `no privileges were granted`):
        /// PostgreSQL reports success, but the statement did not do what it says.
        case serverWarning(statement: String, warning: String)
        /// A statement failed.
        case statementFailed(statement: String, error: PostgresError)
        /// The transaction committed, but planning again still finds work: the plan does not settle.
        case notConverged(remaining: [String])
    }

    public let reason: Reason

    public var diagnostic: Diagnostic {
        switch reason {
        case .serverWarning(let statement, let warning):
            return Diagnostic(
                "roles apply rolled back: the server answered with WARNING: \(warning)",
                detail: "statement: \(statement)",
                hint: "PostgreSQL reports such a statement as successful although it changed nothing. Run apply as a superuser, or as the owner (or a member of the owner role) of the objects.")
        case .statementFailed(let statement, let error):
            var diagnostic = error.diagnostic
            diagnostic.summary = "roles apply rolled back: \(diagnostic.summary)"
            diagnostic.detail = ["statement: \(statement)", error.sqlState.map { "SQLSTATE \($0)" }].compactMap { $0 }.joined(separator: "; ")
            if error.sqlState == "42501" {
                diagnostic.hint = "Nothing was changed. roles apply creates roles and grants on objects other roles own: run it as a superuser "
                    + "(e.g. --dsn 'user=postgres …'); `nfldb roles plan` shows the statements it would run."
            }
            return diagnostic
        case .notConverged(let remaining):
            return Diagnostic(
                "roles apply committed, but planning again still finds \(remaining.count) statement\(remaining.count == 1 ? "" : "s") to run",
                detail: remaining.prefix(10).joined(separator: "\n"),
                hint: "Something outside nfldb changed the roles concurrently, or nfldb cannot express this state; run `nfldb roles plan` to see it.")
        }
    }
}

/// The outcome of `apply`.
public struct RoleApplyResult: Sendable, Codable {
    /// The plan that was run.
    public let plan: RolePlan
    public let executed: Int
    /// The plan computed after committing; has nothing left to run.
    public let after: RolePlan
}

/// Entry points for `nfldb roles plan | apply | check`.
public enum RoleManager {
    /// The advisory lock every `apply` takes (per database).
    public static let lockKey = AdvisoryLockKey("nfldb.roles.apply")

    /// Reads the catalog and computes the plan; changes nothing.
    public static func plan(_ connection: PostgresConnection, spec: RoleSpec, options: RolePlanOptions, logger: Logger) throws -> RolePlan {
        let snapshot = try CatalogInspector.snapshot(connection, spec: spec, logger: logger)
        var planner = RolePlanner(spec: spec, snapshot: snapshot, options: options)
        return try planner.plan(target: connection.target, serverVersion: connection.serverVersion)
    }

    /// Plans and runs the plan in one transaction under an advisory lock, treating any server
    /// WARNING as an error, then plans again and fails unless nothing is left to run.
    ///
    /// Password statements are sent with `log_statement`, `log_min_duration_statement` and
    /// `pg_stat_statements.track_utility` switched off for that statement when the runner is a
    /// superuser (they carry a SCRAM verifier, never the clear text).
    ///
    /// - Throws: ``RoleApplyError``, ``AdvisoryLockTimeout``, ``MissingPasswordError``, ``PostgresError``.
    @discardableResult
    public static func apply(
        _ connection: PostgresConnection, spec: RoleSpec, options: RolePlanOptions, lockWait: Duration = .seconds(60), logger: Logger,
        onWait: (String?) -> Void = { _ in }
    ) throws -> RoleApplyResult {
        try connection.withAdvisoryLock(lockKey, wait: lockWait, waitSetting: "--lock-wait", onWait: onWait) {
            let plan = try connection.withTransaction {
                try connection.execute("SET LOCAL lock_timeout = '10s'")
                let snapshot = try CatalogInspector.snapshot(connection, spec: spec, logger: logger)
                var planner = RolePlanner(spec: spec, snapshot: snapshot, options: options)
                let plan = try planner.plan(target: connection.target, serverVersion: connection.serverVersion)
                let quietPasswords = snapshot.isSuperuser
                var hasStatementTracking = false
                if quietPasswords {
                    hasStatementTracking = try connection.query(
                        "SELECT count(*) FROM pg_settings WHERE name = 'pg_stat_statements.track_utility'").scalar(Int.self) > 0
                }
                _ = connection.drainNotices()
                for statement in plan.pending {
                    let isPassword = statement.kind == .password
                    if isPassword && quietPasswords {
                        try connection.execute("SET LOCAL log_statement = 'none'")
                        try connection.execute("SET LOCAL log_min_duration_statement = -1")
                        if hasStatementTracking { try connection.execute("SET LOCAL pg_stat_statements.track_utility = off") }
                    }
                    do {
                        try connection.runScript(unsafeSQL: statement.executableSQL)
                    } catch var error as PostgresError {
                        error.statement = statement.sql  // never the verifier
                        throw RoleApplyError(reason: .statementFailed(statement: statement.sql, error: error))
                    }
                    let warnings = connection.drainNotices().filter { $0.severity == "WARNING" }
                    if let warning = warnings.first {
                        throw RoleApplyError(reason: .serverWarning(statement: statement.sql, warning: warning.message))
                    }
                    if isPassword && quietPasswords {
                        try connection.execute("SET LOCAL log_statement TO DEFAULT")
                        try connection.execute("SET LOCAL log_min_duration_statement TO DEFAULT")
                        if hasStatementTracking { try connection.execute("SET LOCAL pg_stat_statements.track_utility TO DEFAULT") }
                    }
                    logger.debug("roles statement", metadata: ["roles.role": .string(statement.role), "roles.kind": .string(statement.kind.rawValue)])
                }
                return plan
            }
            logger.info("roles applied", metadata: [
                "db.name": .string(plan.database), "roles.statements": .stringConvertible(plan.pending.count),
            ])
            var afterOptions = options
            afterOptions.requirePasswords = false
            let after = try self.plan(connection, spec: spec, options: afterOptions, logger: logger)
            if !after.isEmpty {
                throw RoleApplyError(reason: .notConverged(remaining: after.pending.map(\.sql)))
            }
            return RoleApplyResult(plan: plan, executed: plan.pending.count, after: after)
        }
    }
}
