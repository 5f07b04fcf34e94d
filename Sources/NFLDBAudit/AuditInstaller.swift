import Foundation
import Logging
import NFLDBCore
import NFLDBPostgres

/// How a table is audited.
public enum AuditMode: String, Sendable, Codable, CaseIterable {
    /// One AFTER … FOR EACH ROW trigger (default): constant cost per row, works for every statement shape.
    case row
    /// Three AFTER … FOR EACH STATEMENT triggers with transition tables: cheaper for bulk statements,
    /// no better for single-row ones. Needs a key.
    case statement
}

/// The columns that identify a row in the log.
public struct AuditKey: Sendable, Hashable, Codable, CustomStringConvertible {
    /// Empty when the whole row is the key.
    public let columns: [String]
    /// `primary key games_pkey`, `unique index weather_game_id_key`, or `whole row`.
    public let source: String

    public var description: String {
        columns.isEmpty ? "whole row (no primary key or unique NOT NULL index)" : "(\(columns.joined(separator: ", "))) from \(source)"
    }
}

/// What install or remove did to one table.
public struct AuditTableResult: Sendable, Codable {
    public let table: String
    public let mode: AuditMode
    public let key: AuditKey
    public let excludedColumns: [String]
    /// `installed`, `updated`, `unchanged` or `removed`.
    public let action: String
    /// Partitions given a TRUNCATE trigger (partitioned tables only).
    public let partitions: Int
    public let notes: [String]
}

/// A table the installer was asked about.
struct AuditedTable {
    let oid: Int64
    let schema: String
    let name: String
    let relkind: String
    /// Every column in attnum order, with whether `IS DISTINCT FROM` can compare it.
    let columnInfo: [AuditColumn]

    var columns: [String] { columnInfo.map(\.name) }
    var columnTypes: [String] { columnInfo.map(\.type) }

    var qualified: String { "\(schema).\(name)" }
    /// `schema.table` as a `--table` argument a shell takes as one word (printed hints must run as printed).
    var argument: String { AuditInstaller.shellArgument(qualified) }
    var sql: String { PostgresIdentifier.quote(schema) + "." + PostgresIdentifier.quote(name) }
    var isPartitioned: Bool { relkind == "p" }
}

/// Installs and removes audit triggers and the `audit` schema they write to.
///
/// Runs as a superuser: it creates the audit owner role (NOLOGIN) when missing, objects owned by
/// that role, and triggers on tables owned by other roles. Everything happens in one transaction.
public struct AuditInstaller {
    /// The schema that holds the log, the registry and the generated functions.
    public static let schema = "audit"
    /// Names of the generated functions that set no search_path because every name in their body is
    /// schema-qualified (row mode; see `GeneratedCapture`). `audit status` compares each with its
    /// generated body; `security check` does not count them as unfixed SECURITY DEFINER functions.
    public static let qualifiedCapturePattern = "^capture_row_[0-9]+$"
    let connection: PostgresConnection
    /// The role that owns schema `audit`, the log and the SECURITY DEFINER functions.
    public let owner: String
    let logger: Logger

    public static let defaultOwner = "nfl_audit_owner"

    /// Taken (session-level, per database) by `install`, `remove` and `prune`: two runs at once
    /// (two deploys, cron and an operator) would otherwise race on CREATE ROLE, the schema's
    /// privileges and the functions and fail with "duplicate key" or "tuple concurrently updated".
    public static let lockKey = AdvisoryLockKey("nfldb.audit.install")

    /// How long a run waits for another one holding ``lockKey`` before giving up, naming it.
    static let lockWait: Duration = .seconds(120)

    /// `body` under ``lockKey``: a second run waits (saying for whom) and then does its work on the
    /// state the first one left.
    func locked<T>(_ body: () throws -> T) throws -> T {
        do {
            return try connection.withAdvisoryLock(Self.lockKey, wait: Self.lockWait, onWait: { holder in
                logger.warning("waiting for another audit install/remove/prune", metadata: ["db.lock_holder": .string(holder ?? "unknown")])
            }, body)
        } catch var error as PostgresError where error.sqlState == SQLState.lockNotAvailable {
            // The run's transaction was rolled back; name who holds the tables' locks and what to do.
            if connection.transactionState == .failed { connection.rollbackQuietly() }
            if let holders = try? connection.describeLockHolders() {
                error.detail = [error.detail, "sessions holding locks: \(holders)"].compactMap { $0 }.joined(separator: "; ")
            }
            error.hint = "Nothing was changed. Audit install, remove and prune wait up to 5 s for a table's lock (writes to it queue behind meanwhile); "
                + "wait for the blocking transaction to end, or end it (SELECT pg_terminate_backend(pid)), then run the command again."
            throw error
        }
    }

    /// The audit owner for a run: the audit schema's owner when the schema exists (so a custom
    /// `--owner-role` given at the first install need not be repeated), else `requested` or the
    /// default. A `requested` role other than the existing schema's owner is refused: install and
    /// prune act as the owner, and would fail later with "must be owner of table log".
    public static func resolveOwner(_ connection: PostgresConnection, requested: String?) throws -> String {
        let row = try connection.query("""
            SELECT pg_get_userbyid(n.nspowner) AS owner, r.rolsuper AS superuser
            FROM pg_namespace n JOIN pg_roles r ON r.oid = n.nspowner WHERE n.nspname = 'audit'
            """).rows.first
        guard let row, let existing = row["owner"] else { return requested ?? defaultOwner }
        if try row.decode("superuser", as: Bool.self) {
            throw OperatorError(
                "schema audit is owned by the superuser \(existing): nfldb's audit owner must be a role without superuser rights (its functions run with them)",
                hint: "If schema audit is not nfldb's, rename it (ALTER SCHEMA audit RENAME TO …); else ALTER SCHEMA audit OWNER TO \(defaultOwner) and run install again.")
        }
        if let requested, requested != existing {
            throw OperatorError(
                "--owner-role \(requested) is not the audit schema's owner: schema audit is owned by \(existing)",
                hint: "Leave --owner-role out (the schema's owner is used), or pass --owner-role \(shellArgument(existing)).", exitStatus: .usage)
        }
        return existing
    }

    public init(connection: PostgresConnection, owner: String = AuditInstaller.defaultOwner, logger: Logger) {
        self.connection = connection
        self.owner = owner
        self.logger = logger
    }

    /// Installs (or refreshes) auditing on `tables` (`games` or `nfl.games`). Idempotent: triggers
    /// that already match are left alone.
    ///
    /// - Parameters:
    ///   - excludeColumns: columns left out of the logged rows (e.g. `updated_at`); each must exist in
    ///     at least one of the tables and may not be a key column.
    ///   - mode: `nil` = keep the mode of a table already audited, else choose with
    ///     ``recommendMode(_:key:)`` (statement mode for tables written mostly in bulk).
    /// - Throws: ``OperatorError`` for unknown tables/columns, a non-superuser runner, or statement
    ///   mode without a key; ``PostgresError`` from the server.
    public func install(tables: [String], mode: AuditMode? = nil, excludeColumns: [String] = []) throws -> [AuditTableResult] {
        try requireSuperuser("audit install")
        return try locked { try connection.withTransaction {
            try connection.execute("SET LOCAL lock_timeout = '5s'")
            try ensureSchema()
            let resolved = try tables.map(resolveTable)
            for column in excludeColumns where !resolved.contains(where: { $0.columns.contains(column) }) {
                throw OperatorError(
                    "--exclude-columns: no column \(column) in \(resolved.map(\.qualified).joined(separator: ", "))",
                    exitStatus: .usage)
            }
            // Refused before anything is installed (one transaction: nothing changes).
            if let risk = try riskyCastProblems(tables: resolved.map(\.oid)).first {
                throw OperatorError("cannot audit: \(risk.problem); nothing was changed", hint: risk.hint + " Then run the same `nfldb audit install` again.", exitStatus: .usage)
            }
            var results: [AuditTableResult] = []
            for table in resolved {
                results.append(try installOne(table, mode: mode, excluded: excludeColumns.filter(table.columns.contains)))
            }
            try dropUnusedFunctions()
            return results
        } }
    }

    /// Drops the audit triggers of `tables` and forgets them; the log is never touched.
    public func remove(tables: [String]) throws -> [AuditTableResult] {
        try requireSuperuser("audit remove")
        return try locked { try connection.withTransaction {
            try connection.execute("SET LOCAL lock_timeout = '5s'")
            var results: [AuditTableResult] = []
            for name in tables {
                let table = try resolveTable(name)
                var dropped = 0
                for relation in [table.oid] + (try partitionOIDs(table)) {
                    for trigger in try existingTriggers(relation) where !trigger.cloned {
                        let target = try relationName(relation)
                        try connection.execute("DROP TRIGGER IF EXISTS \(identifier: trigger.name) ON \(qualified: target.schema, target.name)")
                        dropped += 1
                    }
                }
                for mode in AuditMode.allCases {
                    try connection.execute("DROP FUNCTION IF EXISTS audit.\(identifier: GeneratedCapture.functionName(mode: mode, oid: table.oid))()")
                }
                if try registryExists() {
                    try connection.execute("DELETE FROM audit.audited_tables WHERE table_oid = \(table.oid) OR (table_schema = \(table.schema) AND table_name = \(table.name))")
                }
                results.append(AuditTableResult(
                    table: table.qualified, mode: .row, key: AuditKey(columns: [], source: "-"), excludedColumns: [],
                    action: dropped > 0 ? "removed" : "unchanged", partitions: 0,
                    notes: dropped > 0 ? ["dropped \(dropped) trigger\(dropped == 1 ? "" : "s"); audit.log keeps every entry"] : ["was not audited"]))
            }
            return results
        } }
    }

    /// Every table in the registry (for `remove --all`).
    public func registeredTables() throws -> [String] {
        guard try registryExists() else { return [] }
        return try connection.query("SELECT table_schema || '.' || table_name AS t FROM audit.audited_tables ORDER BY 1").rows.compactMap { $0["t"] }
    }

    // MARK: - Schema

    /// Creates the owner role, schema, log, registry, functions, guards and partitions when missing.
    func ensureSchema() throws {
        let role = try connection.query("SELECT rolcanlogin FROM pg_roles WHERE rolname = \(owner)").rows.first
        if role == nil {
            try connection.execute("CREATE ROLE \(identifier: owner) NOLOGIN")
            try connection.execute("COMMENT ON ROLE \(identifier: owner) IS 'owner of the audit schema (nfldb audit); no login, no members'")
            logger.info("created audit owner role", metadata: ["audit.owner": .string(owner)])
        }
        try connection.execute("CREATE SCHEMA IF NOT EXISTS audit AUTHORIZATION \(identifier: owner)")
        let schemaOwner = try connection.query("SELECT pg_get_userbyid(nspowner) AS o FROM pg_namespace WHERE nspname = 'audit'").scalar(String.self)
        if schemaOwner != owner {
            try connection.execute("ALTER SCHEMA audit OWNER TO \(identifier: owner)")
        }
        try connection.execute("REVOKE ALL ON SCHEMA audit FROM PUBLIC")
        try connection.execute("SET LOCAL ROLE \(identifier: owner)")
        try connection.runScript(unsafeSQL: AuditSQL.tables)
        for constraint in try connection.query("""
            SELECT conname FROM pg_constraint WHERE conrelid = 'audit.log'::regclass AND conname = ANY(\(AuditSQL.droppedLogConstraints)::text[])
            """).rows.compactMap({ $0["conname"] }) {
            try connection.execute("ALTER TABLE audit.log DROP CONSTRAINT \(identifier: constraint)")
            logger.info("dropped audit.log constraint", metadata: ["audit.constraint": .string(constraint)])
        }
        try connection.runScript(unsafeSQL: AuditSQL.captureTruncate)
        try connection.runScript(unsafeSQL: AuditSQL.rejectChange(owner: owner))
        try connection.runScript(unsafeSQL: AuditSQL.functionPrivileges)
        try connection.runScript(unsafeSQL: AuditSQL.guardTriggers)
        _ = try ensurePartitions()
        try connection.runScript(unsafeSQL: AuditSQL.castGuardFunction)
        try connection.runScript(unsafeSQL: AuditSQL.rewriteLogFunction)
        try connection.execute("RESET ROLE")
        try connection.runScript(unsafeSQL: AuditSQL.castGuardTrigger)
        try connection.runScript(unsafeSQL: AuditSQL.rewriteLogTrigger)
        _ = connection.drainNotices()
    }

    /// Creates the monthly partitions from the current month to ``AuditSQL/monthsAhead`` months
    /// ahead and puts the TRUNCATE guard on every partition. Run as the audit owner.
    /// - Returns: names of the partitions created.
    ///   - adoptDefaultRows: (prune) a month whose entries sit in audit.log_default (its partition was
    ///     missing when they were written) gets its partition, and the entries are moved into it.
    func ensurePartitions(adoptDefaultRows: Bool = false) throws -> [String] {
        let now = try connection.query("""
            SELECT extract(year FROM now() AT TIME ZONE 'UTC')::int AS y, extract(month FROM now() AT TIME ZONE 'UTC')::int AS m
            """).singleRow()
        var year: Int = try now.decode("y"), month: Int = try now.decode("m")
        var created: [String] = []
        let existing = Set(try partitions())
        for _ in 0...AuditSQL.monthsAhead {
            let name = AuditSQL.partitionName(year: year, month: month)
            if !existing.contains(name) {
                try connection.execute("SAVEPOINT nfldb_audit_partition")
                do {
                    try connection.runScript(unsafeSQL: AuditSQL.createPartition(year: year, month: month))
                    try connection.execute("RELEASE SAVEPOINT nfldb_audit_partition")
                    created.append(name)
                } catch let error as PostgresError {
                    // Rows for this month already sit in the DEFAULT partition: install leaves them
                    // there (status reports them); prune moves them into the month's partition.
                    try connection.execute("ROLLBACK TO SAVEPOINT nfldb_audit_partition")
                    if adoptDefaultRows && error.sqlState == "23514" {
                        try adoptDefaultMonth(year: year, month: month)
                        created.append(name)
                    } else {
                        logger.warning("could not create audit partition", metadata: ["audit.partition": .string(name), "error": .string(error.message)])
                    }
                }
            }
            (year, month) = AuditSQL.nextMonth(year, month)
        }
        if adoptDefaultRows {
            let months = try connection.query("""
                SELECT DISTINCT extract(year FROM logged_at AT TIME ZONE 'UTC')::int AS y, extract(month FROM logged_at AT TIME ZONE 'UTC')::int AS m
                FROM audit.log_default ORDER BY 1, 2
                """).rows
            let now = Set(try partitions())
            for row in months {
                let (y, m): (Int, Int) = (try row.decode("y"), try row.decode("m"))
                guard !now.contains(AuditSQL.partitionName(year: y, month: m)) else { continue }
                try adoptDefaultMonth(year: y, month: m)
                created.append(AuditSQL.partitionName(year: y, month: m))
            }
        }
        for partition in try partitions() {
            try connection.runScript(unsafeSQL: AuditSQL.partitionGuard(partition))
            try connection.execute("REVOKE ALL ON TABLE audit.\(identifier: partition) FROM PUBLIC")
        }
        return created
    }

    /// Creates one month's partition whose entries already sit in audit.log_default: a plain table
    /// of the log's columns, the entries moved into it (DELETE … RETURNING from the default partition,
    /// which the guard allows the owner under `nfldb.audit_prune`), then attached. One transaction
    /// with the caller's: the entries are never in both places, nor in neither.
    func adoptDefaultMonth(year: Int, month: Int) throws {
        let name = AuditSQL.partitionName(year: year, month: month)
        let next = AuditSQL.nextMonth(year, month)
        let from = String(format: "%04d-%02d-01 00:00:00+00", year, month)
        let to = String(format: "%04d-%02d-01 00:00:00+00", next.0, next.1)
        let columns = try connection.query("""
            SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) AS cols FROM pg_attribute
            WHERE attrelid = 'audit.log'::regclass AND attnum > 0 AND NOT attisdropped
            """).scalar(String.self)
        try connection.execute("SET LOCAL nfldb.audit_prune = 'on'")
        try connection.execute("CREATE TABLE audit.\(identifier: name) (LIKE audit.log)")
        let moved = try connection.execute("""
            WITH moved AS (DELETE FROM audit.log_default WHERE logged_at >= \(from)::timestamptz AND logged_at < \(to)::timestamptz RETURNING \(unsafeRaw: columns))
            INSERT INTO audit.\(identifier: name) (\(unsafeRaw: columns)) SELECT \(unsafeRaw: columns) FROM moved
            """)
        try connection.execute("SET LOCAL nfldb.audit_prune = 'off'")
        try connection.execute("ALTER TABLE audit.log ATTACH PARTITION audit.\(identifier: name) FOR VALUES FROM (\(unsafeRaw: PostgresIdentifier.literal(from))) TO (\(unsafeRaw: PostgresIdentifier.literal(to)))")
        logger.notice("created a missing audit partition and moved its entries out of audit.log_default",
                      metadata: ["audit.partition": .string(name), "audit.entries_moved": .stringConvertible(moved)])
    }

    /// Names of audit.log's partitions.
    func partitions() throws -> [String] {
        try connection.query("""
            SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = to_regclass('audit.log') ORDER BY 1
            """).rows.compactMap { $0["relname"] }
    }

    // MARK: - Tables

    /// Statement triggers are not cloned to partitions, so a write aimed at a partition
    /// (`INSERT INTO nfl.plays_2024 …`) would not be logged; the row trigger is cloned to every
    /// partition, including ones attached later.
    static func statementOnPartitioned(_ table: String) -> String {
        "statement mode cannot audit the partitioned table \(table): statement triggers are not cloned to its partitions, so writes aimed at a "
            + "partition would not be logged; run `nfldb audit install --table \(shellArgument(table)) --mode row` (its row trigger reaches every partition)"
    }

    /// Inheritance children (not partitions) the table's triggers do not reach, unless each is audited too.
    func inheritanceProblems(_ table: AuditedTable) throws -> [String] {
        guard !table.isPartitioned else { return [] }
        let children = try connection.query("""
            SELECT format('%I.%I', n.nspname, c.relname) AS child FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE i.inhparent = \(table.oid)::oid
              AND NOT EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = c.oid AND t.tgname LIKE 'zz\\_audit\\_%')
            ORDER BY 1
            """).rows.compactMap { $0["child"] }
        guard !children.isEmpty else { return [] }
        return ["inheritance \(children.count == 1 ? "child" : "children") \(children.joined(separator: ", ")) not audited: rows stored there are "
                + "not logged by \(table.qualified)'s triggers; audit each child too (nfldb audit install --table …)"]
    }

    /// Casts to json that would run a non-superuser's function as the audit owner when a row of one
    /// of `tables` is logged (``AuditSQL/riskyJSONCasts(tables:)``), with the fix, one line each.
    func riskyCastProblems(tables: [Int64]) throws -> [(problem: String, hint: String)] {
        guard !tables.isEmpty else { return [] }
        return try connection.query(AuditSQL.riskyJSONCasts(tables: tables)).rows.map { row in
            let column = row["column_name"] ?? "", type = row["type_name"] ?? "", function = row["function_name"] ?? ""
            return ("cast \(row["cast_text"] ?? "") (not a superuser), met by column \(column): the capture function converts rows with to_jsonb "
                        + "as the audit owner, so this function would run with the audit owner's rights on every logged write",
                    "Drop the cast (DROP CAST (\(type) AS json)); or, once a superuser has read the function's body (it runs as the audit owner whenever such a value is logged), have a superuser own it (ALTER FUNCTION \(function) OWNER TO …).")
        }
    }

    private func installOne(_ table: AuditedTable, mode requested: AuditMode?, excluded: [String]) throws -> AuditTableResult {
        var notes: [String] = []
        if table.schema == "audit" {
            throw OperatorError("refusing to audit \(table.qualified): the audit schema's own tables are not audited", exitStatus: .usage)
        }
        let key = try resolveKey(table)
        let mode: AuditMode
        if let requested {
            mode = requested
        } else if let current = try connection.query(
            "SELECT mode FROM audit.audited_tables WHERE table_schema = \(table.schema) AND table_name = \(table.name)").rows.first?["mode"]
            .flatMap(AuditMode.init(rawValue:))
        {
            mode = current
            notes.append("mode \(current.rawValue): kept from the existing installation (give --mode to change it)")
        } else {
            let recommendation = try recommendMode(table, key: key)
            mode = recommendation.mode
            notes.append("mode \(mode.rawValue) chosen: \(recommendation.reason)")
        }
        if mode == .statement && table.isPartitioned {
            throw OperatorError(Self.statementOnPartitioned(table.qualified), exitStatus: .usage)
        }
        notes += try inheritanceProblems(table)
        if mode == .statement && key.columns.isEmpty {
            throw OperatorError(
                "statement mode needs a key to pair old and new rows, and \(table.qualified) has no primary key or unique NOT NULL index",
                hint: "Add a primary key, or audit it with --mode row (the whole row is then the key).", exitStatus: .usage)
        }
        if let clash = excluded.first(where: key.columns.contains) {
            throw OperatorError("cannot exclude \(clash): it is part of the key of \(table.qualified)", exitStatus: .usage)
        }
        if key.columns.isEmpty {
            notes.append("no primary key or unique NOT NULL index: the whole row is the key in the log")
        }
        let capture = GeneratedCapture(
            schema: table.schema, name: table.name, oid: table.oid, isPartitioned: table.isPartitioned, mode: mode,
            columns: table.columnInfo, keys: key.columns, excluded: excluded)
        var changed = false
        let function = try connection.query("""
            SELECT prosrc, pg_get_userbyid(proowner) AS owner, prosecdef, coalesce(array_to_string(proconfig, ','), '') AS config
            FROM pg_proc WHERE pronamespace = 'audit'::regnamespace AND proname = \(capture.functionName) AND pronargs = 0
            """).rows.first
        if let function, function["owner"] != owner {
            // Replaced by hand under another owner: take it back before the owner replaces it.
            try connection.execute("ALTER FUNCTION audit.\(identifier: capture.functionName)() OWNER TO \(identifier: owner)")
            notes.append("audit.\(capture.functionName)() was owned by \(function["owner"] ?? "?"); given back to \(owner)")
        }
        if function?["prosrc"] != capture.body || function?["prosecdef"] != "t"
            || function?["config"] != capture.config
        {
            try connection.execute("SET LOCAL ROLE \(identifier: owner)")
            try connection.runScript(unsafeSQL: capture.createSQL)
            try connection.execute("RESET ROLE")
            changed = true
        }
        if let text = capture.textComparedNote { notes.append(text) }
        let wanted = AuditSQL.tableTriggers(table, mode: mode)

        let existing = try existingTriggers(table.oid).filter { !$0.cloned }
        for trigger in wanted {
            let current = existing.first { $0.name == trigger.name }
            if current.map({ $0.difference(from: trigger) != nil }) ?? true {
                try connection.runScript(unsafeSQL: trigger.createSQL(on: table.sql))
                changed = true
            }
            if let current, !current.firesOnOrigin {
                try connection.execute("ALTER TABLE \(qualified: table.schema, table.name) ENABLE TRIGGER \(identifier: trigger.name)")
                notes.append("re-enabled trigger \(trigger.name) (it was \(current.stateDescription))")
                changed = true
            }
        }
        for trigger in existing where !wanted.contains(where: { $0.name == trigger.name }) {
            try connection.execute("DROP TRIGGER \(identifier: trigger.name) ON \(qualified: table.schema, table.name)")
            changed = true
        }
        // The other mode's generated function, if the table switched modes.
        let other = GeneratedCapture.functionName(mode: mode == .row ? .statement : .row, oid: table.oid)
        if try generatedSource(other) != nil {
            try connection.execute("DROP FUNCTION audit.\(identifier: other)()")
        }
        // Statement triggers are not cloned to partitions: a TRUNCATE aimed at a partition needs its own.
        var partitionCount = 0
        for partition in try partitionOIDs(table) {
            partitionCount += 1
            let triggers = try existingTriggers(partition)
            let target = try relationName(partition)
            if !triggers.contains(where: { $0.name == AuditSQL.truncateTrigger && $0.function == "capture_truncate" }) {
                try connection.execute(
                    "CREATE OR REPLACE TRIGGER \(identifier: AuditSQL.truncateTrigger) AFTER TRUNCATE ON \(qualified: target.schema, target.name) FOR EACH STATEMENT EXECUTE FUNCTION audit.capture_truncate()")
                changed = true
            }
            // A partition's own (or cloned row) audit trigger switched to DISABLED or REPLICA stops auditing there.
            for trigger in try existingTriggers(partition) where !trigger.firesOnOrigin {
                try connection.execute("ALTER TABLE \(qualified: target.schema, target.name) ENABLE TRIGGER \(identifier: trigger.name)")
                notes.append("re-enabled trigger \(trigger.name) on partition \(target.schema).\(target.name) (it was \(trigger.stateDescription))")
                changed = true
            }
        }
        let registered = try connection.query("""
            SELECT count(*) FROM audit.audited_tables
            WHERE table_schema = \(table.schema) AND table_name = \(table.name) AND table_oid = \(table.oid) AND mode = \(mode.rawValue)
              AND key_columns = \(key.columns)::text[] AND excluded_columns = \(excluded)::text[]
              AND audited_columns IS NOT DISTINCT FROM \(table.columns)::text[]
              AND audited_types IS NOT DISTINCT FROM \(table.columnTypes)::text[]
            """).scalar(Int.self) == 1
        let wasRegistered = try connection.query(
            "SELECT count(*) FROM audit.audited_tables WHERE table_schema = \(table.schema) AND table_name = \(table.name)").scalar(Int.self) == 1
        if !registered {
            try connection.execute("DELETE FROM audit.audited_tables WHERE table_oid = \(table.oid) AND (table_schema, table_name) <> (\(table.schema), \(table.name))")
            try connection.execute("""
                INSERT INTO audit.audited_tables (table_schema, table_name, table_oid, mode, key_columns, key_source, excluded_columns, audited_columns,
                                                  audited_types)
                VALUES (\(table.schema), \(table.name), \(table.oid), \(mode.rawValue), \(key.columns)::text[], \(key.source), \(excluded)::text[],
                        \(table.columns)::text[], \(table.columnTypes)::text[])
                ON CONFLICT (table_schema, table_name) DO UPDATE SET
                    table_oid = EXCLUDED.table_oid, mode = EXCLUDED.mode, key_columns = EXCLUDED.key_columns,
                    key_source = EXCLUDED.key_source, excluded_columns = EXCLUDED.excluded_columns, audited_columns = EXCLUDED.audited_columns,
                    audited_types = EXCLUDED.audited_types,
                    installed_at = now(), installed_by = session_user
                """)
        }
        let action = !changed && registered ? "unchanged" : (wasRegistered || !existing.isEmpty ? "updated" : "installed")
        logger.info("audit \(action)", metadata: ["audit.table": .string(table.qualified), "audit.mode": .string(mode.rawValue)])
        return AuditTableResult(
            table: table.qualified, mode: mode, key: key, excludedColumns: excluded, action: action, partitions: partitionCount, notes: notes)
    }

    /// Statement mode pays off only for statements that write many rows; the other counters that
    /// would tell (rows per write statement) are not kept per table, so this reads
    /// `pg_stat_user_tables` (since the last statistics reset):
    ///
    ///     written = n_tup_ins + n_tup_upd + n_tup_del      rows written
    ///     scans   = seq_scan + idx_scan                    statements that read the table
    ///                                                      (every UPDATE/DELETE does, reads too)
    ///
    /// and recommends statement mode when the table has a key, `written ≥ 100,000`, `scans ≥ 1` and
    /// `written / scans ≥ 1,000`: on average each statement that touched the table went with at least
    /// 1,000 written rows — bulk loads (COPY, INSERT … SELECT, batch UPDATEs). Otherwise row mode,
    /// which is never far off (its cost per row does not depend on the statement shape). Blind spot:
    /// single-row INSERTs do not scan the table, so an insert-only table that is rarely read also
    /// looks bulk-written; pass `--mode row` for it.
    func recommendMode(_ table: AuditedTable, key: AuditKey) throws -> (mode: AuditMode, reason: String) {
        guard !table.isPartitioned else {
            return (.row, "a partitioned table: its row trigger is cloned to every partition (statement triggers are not)")
        }
        guard !key.columns.isEmpty else {
            return (.row, "no key to pair old and new rows in statement mode")
        }
        guard let row = try connection.query("""
            SELECT (n_tup_ins + n_tup_upd + n_tup_del)::int8 AS written, (coalesce(seq_scan, 0) + coalesce(idx_scan, 0))::int8 AS scans
            FROM pg_stat_user_tables WHERE relid = \(table.oid)::oid
            """).rows.first
        else { return (.row, "no statistics for the table (pg_stat_user_tables)") }
        let written = try row.decode("written", as: Int64.self), scans = try row.decode("scans", as: Int64.self)
        let counters = "\(written) rows written and \(scans) scans since the statistics reset (pg_stat_user_tables)"
        if written >= Self.bulkMinimumRows && scans >= 1 && written / scans >= Self.bulkRowsPerScan {
            return (.statement, "\(counters): ≥ \(Self.bulkRowsPerScan) rows per statement, written mostly in bulk")
        }
        if written < Self.bulkMinimumRows {
            return (.row, "\(counters): too little history to call it bulk-written (statement mode needs ≥ \(Self.bulkMinimumRows) rows written)")
        }
        return (.row, "\(counters): fewer than \(Self.bulkRowsPerScan) rows written per scan, so not mostly bulk")
    }

    static let bulkMinimumRows: Int64 = 100_000
    static let bulkRowsPerScan: Int64 = 1_000

    /// Resolves `games` (searched in every non-system schema; must be unique) or `nfl.games`.
    /// `schema.table`, quoted for a POSIX shell only when it has to be (`'public.Odd Name'`).
    public static func shellArgument(_ text: String) -> String { ShellWord.quote(text) }

    /// `schema.table` or `table` as written (exact names), or with SQL-quoted parts
    /// (`public."Odd Name"`, `"My.Schema"."t"`) as `format('%I.%I')` and psql print them.
    static func tableNameParts(_ name: String, sqlQuoted: Bool = true) -> (schema: String?, relname: String) {
        guard sqlQuoted, name.contains("\"") else {
            let parts = name.split(separator: ".", maxSplits: 1).map(String.init)
            return (parts.count == 2 ? parts[0] : nil, parts.last ?? name)
        }
        var parts: [String] = [], current = "", quoted = false
        var chars = Array(name)[...]
        while let c = chars.popFirst() {
            if quoted {
                if c == "\"" {
                    if chars.first == "\"" { current.append("\""); chars.removeFirst() } else { quoted = false }
                } else { current.append(c) }
            } else if c == "\"" {
                quoted = true
            } else if c == "." {
                parts.append(current); current = ""
            } else {
                current.append(c)
            }
        }
        parts.append(current)
        return parts.count >= 2 ? (parts[0], parts[1...].joined(separator: ".")) : (nil, parts[0])
    }

    func resolveTable(_ name: String) throws -> AuditedTable {
        // Exact names first (a name may itself hold a `"`); then the SQL-quoted reading.
        var (schema, relname) = Self.tableNameParts(name, sqlQuoted: false)
        var rows = try tableRows(schema: schema, relname: relname)
        if rows.isEmpty, name.contains("\"") {
            (schema, relname) = Self.tableNameParts(name)
            rows = try tableRows(schema: schema, relname: relname)
        }
        return try resolvedTable(name, rows: rows, relname: relname)
    }

    private func tableRows(schema: String?, relname: String) throws -> [PostgresRow] {
        try connection.query("""
            SELECT c.oid, n.nspname, c.relname, c.relkind::text AS relkind, c.relispartition
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relname = \(relname) AND (\(schema)::text IS NULL OR n.nspname = \(schema))
              AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
              AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
            ORDER BY n.nspname
            """).rows
    }

    private func resolvedTable(_ name: String, rows: [PostgresRow], relname: String) throws -> AuditedTable {
        guard let row = rows.first else {
            throw OperatorError("no table \(name)", hint: "Give the table as schema.table (e.g. nfl.games), or with SQL-quoted names (nfl.\"Odd Name\").", exitStatus: .usage)
        }
        guard rows.count == 1 else {
            throw OperatorError(
                "table name \(name) is ambiguous: \(rows.compactMap { $0["nspname"] }.map { "\($0).\(relname)" }.joined(separator: ", "))",
                hint: "Qualify it with its schema.", exitStatus: .usage)
        }
        let relkind = row["relkind"] ?? "r"
        let qualified = "\(row["nspname"] ?? "").\(row["relname"] ?? "")"
        guard relkind == "r" || relkind == "p" else {
            throw OperatorError("\(qualified) is not a table (relkind \(relkind)); only tables can be audited", exitStatus: .usage)
        }
        if try row.decode("relispartition", as: Bool.self) {
            throw OperatorError(
                "\(qualified) is a partition; audit its partitioned parent instead (its row trigger reaches every partition)",
                exitStatus: .usage)
        }
        let oid = try row.decode("oid", as: Int64.self)
        return AuditedTable(
            oid: oid, schema: row["nspname"] ?? "", name: row["relname"] ?? "", relkind: relkind, columnInfo: try tableColumns(oid))
    }

    /// The table's columns in attnum order. `comparable`: the type (or a domain's base type) is not an
    /// array or composite and has a default btree or hash operator class **in pg_catalog** for itself or
    /// a type it is binary-coercible to — then `IS DISTINCT FROM` means equality; other columns are
    /// compared as text. The capture function runs with `search_path = pg_catalog, pg_temp`, so an
    /// extension type's `=` (hstore, citext, ltree: in the extension's schema) is not found there:
    /// `IS DISTINCT FROM` on such a column made every UPDATE of the audited table fail ("operator does
    /// not exist: public.hstore = public.hstore"). Their text forms are compared instead. (citext is
    /// binary-coercible to text, so it compares as text: a case-only change is recorded.) The cast
    /// must be implicit, as for `IS DISTINCT FROM` to find it (xml's to text is not: xml has no `=`).
    /// A column with a nondeterministic collation is compared as text too: its `=` would call
    /// 'bob@x.com' → 'BOB@X.COM' no change.
    func tableColumns(_ oid: Int64) throws -> [AuditColumn] {
        try connection.query("""
            SELECT a.attname::text AS name, format_type(a.atttypid, a.atttypmod) AS type,
                   (bt.typtype IN ('b', 'r', 'm', 'e') AND bt.typcategory <> 'A' AND EXISTS (
                        SELECT 1 FROM pg_opclass oc JOIN pg_am am ON am.oid = oc.opcmethod
                         WHERE am.amname IN ('btree', 'hash') AND oc.opcdefault AND oc.opcnamespace = 'pg_catalog'::regnamespace
                           AND (oc.opcintype = bt.oid OR EXISTS (SELECT 1 FROM pg_cast k WHERE k.castsource = bt.oid
                                                                   AND k.casttarget = oc.opcintype AND k.castmethod = 'b'
                                                                   AND k.castcontext = 'i')))
                    AND NOT EXISTS (SELECT 1 FROM pg_collation co WHERE co.oid = a.attcollation AND NOT co.collisdeterministic)) AS comparable
            FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
            JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
            WHERE a.attrelid = \(oid)::oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum
            """).rows.map {
                AuditColumn(name: $0["name"] ?? "", comparable: try $0.decode("comparable", as: Bool.self), type: $0["type"] ?? "")
            }
    }

    /// The body of a function in schema audit, or nil when there is none.
    func generatedSource(_ name: String) throws -> String? {
        try connection.query("SELECT prosrc FROM pg_proc WHERE pronamespace = 'audit'::regnamespace AND proname = \(name) AND pronargs = 0")
            .rows.first?["prosrc"]
    }

    /// Drops generated capture functions no trigger calls (a table re-created, removed or restored
    /// with new oids) and the generic functions of earlier versions once unused.
    func dropUnusedFunctions() throws {
        let unused = try connection.query("""
            SELECT p.proname FROM pg_proc p
            WHERE p.pronamespace = 'audit'::regnamespace AND p.pronargs = 0
              AND (p.proname ~ \(GeneratedCapture.namePattern) OR p.proname = ANY(\(AuditSQL.genericFunctions)::text[]))
              AND NOT EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgfoid = p.oid)
            """).rows.compactMap { $0["proname"] }
        for name in unused {
            try connection.execute("DROP FUNCTION audit.\(identifier: name)()")
            logger.info("dropped unused audit function", metadata: ["audit.function": .string(name)])
        }
    }

    /// The primary key; else the smallest unique, non-partial, non-expression index whose columns are
    /// all NOT NULL; else the whole row.
    func resolveKey(_ table: AuditedTable) throws -> AuditKey {
        let rows = try connection.query("""
            SELECT ci.relname AS index_name, i.indisprimary,
                   array_to_json(array_agg(a.attname::text ORDER BY k.ord))::text AS columns, bool_and(a.attnotnull) AS not_null
            FROM pg_index i JOIN pg_class ci ON ci.oid = i.indexrelid
            CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
            JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
            WHERE i.indrelid = \(table.oid) AND (i.indisprimary OR i.indisunique) AND i.indpred IS NULL AND i.indexprs IS NULL
            GROUP BY ci.relname, i.indisprimary
            ORDER BY i.indisprimary DESC, count(*), ci.relname
            """).rows
        for row in rows {
            let primary = try row.decode("indisprimary", as: Bool.self)
            let notNull = try row.decode("not_null", as: Bool.self)
            guard primary || notNull else { continue }
            let columns = (try? JSONDecoder().decode([String].self, from: Data((row["columns"] ?? "[]").utf8))) ?? []
            return AuditKey(columns: columns, source: "\(primary ? "primary key" : "unique index") \(row["index_name"] ?? "")")
        }
        return AuditKey(columns: [], source: "whole row")
    }

    /// Every partition (at any depth) of a partitioned table; empty for a plain table.
    func partitionOIDs(_ table: AuditedTable) throws -> [Int64] {
        guard table.isPartitioned else { return [] }
        return try connection.query("SELECT relid::oid AS oid FROM pg_partition_tree(\(table.oid)::oid::regclass) WHERE relid <> \(table.oid)::oid::regclass ORDER BY 1")
            .rows.map { try $0.decode("oid", as: Int64.self) }
    }

    func relationSQL(_ oid: Int64) throws -> String {
        let target = try relationName(oid)
        return PostgresIdentifier.quote(target.schema) + "." + PostgresIdentifier.quote(target.name)
    }

    func relationName(_ oid: Int64) throws -> (schema: String, name: String) {
        let row = try connection.query("SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = \(oid)::oid").singleRow()
        return (row["nspname"] ?? "", row["relname"] ?? "")
    }

    struct TriggerInfo {
        let name: String
        let function: String
        let args: [String]
        /// `pg_trigger.tgenabled`: `O` origin/local sessions (the default), `A` always, `R` replica only, `D` disabled.
        let enabled: String
        let cloned: Bool
        /// `pg_trigger.tgtype`: row/statement, timing and events.
        var type = 0
        /// A `WHEN (…)` condition (`tgqual`): rows that fail it are not audited.
        var condition: String? = nil
        /// An `UPDATE OF col, …` list (`tgattr`): updates of other columns are not audited.
        var columnList = false
        var oldTable: String? = nil
        var newTable: String? = nil

        /// Why this trigger is not the one install creates (nil when it is).
        func difference(from wanted: AuditSQL.TableTrigger) -> String? {
            if function != wanted.function || args != wanted.args { return "function \(function), args \(args)" }
            if let condition { return "it fires only WHEN \(condition)" }
            if columnList { return "it fires only for UPDATE OF some columns" }
            if type != wanted.tgtype { return "its events or level differ (tgtype \(type), expected \(wanted.tgtype))" }
            if oldTable != wanted.oldTable || newTable != wanted.newTable { return "its transition tables differ" }
            return nil
        }

        /// Fires in ordinary sessions (`session_replication_role` = origin). `R` and `D` triggers do not:
        /// changes made by ordinary sessions are then not audited.
        var firesOnOrigin: Bool { enabled == "O" || enabled == "A" }

        var stateDescription: String {
            switch enabled {
            case "D": return "DISABLED"
            case "R": return "ENABLE REPLICA: fires only when session_replication_role = replica"
            case "A": return "ENABLE ALWAYS"
            case "O": return "enabled"
            default: return "tgenabled \(enabled)"
            }
        }
    }

    /// nfldb's audit triggers (`zz_audit_*`) on one relation.
    func existingTriggers(_ oid: Int64) throws -> [TriggerInfo] {
        try connection.query("""
            SELECT t.tgname, p.proname, encode(t.tgargs, 'escape') AS args, t.tgenabled::text AS enabled, t.tgparentid <> 0 AS cloned,
                   t.tgtype::int AS type, substring(pg_get_triggerdef(t.oid) FROM ' WHEN (.*) EXECUTE ') AS condition,
                   t.tgattr::text <> '' AS column_list, t.tgoldtable::text AS old_table, t.tgnewtable::text AS new_table
            FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
            WHERE t.tgrelid = \(oid)::oid AND t.tgname LIKE 'zz\\_audit\\_%' ORDER BY 1
            """).rows.map { row in
            TriggerInfo(
                name: row["tgname"] ?? "", function: row["proname"] ?? "", args: Self.decodeTriggerArgs(row["args"] ?? ""),
                enabled: row["enabled"] ?? "O", cloned: try row.decode("cloned"), type: try row.decode("type"),
                condition: row["condition"], columnList: try row.decode("column_list"),
                oldTable: row["old_table"], newTable: row["new_table"])
        }
    }

    /// Decodes `encode(tgargs, 'escape')`: NUL-terminated strings, `\\` for a backslash, `\ooo` octal bytes.
    static func decodeTriggerArgs(_ text: String) -> [String] {
        var args: [String] = []
        var current: [UInt8] = []
        let bytes = Array(text.utf8)
        var i = 0
        while i < bytes.count {
            if bytes[i] == UInt8(ascii: "\\") && i + 1 < bytes.count {
                if bytes[i + 1] == UInt8(ascii: "\\") {
                    current.append(UInt8(ascii: "\\"))
                    i += 2
                    continue
                }
                if i + 3 < bytes.count, let value = UInt8(String(decoding: bytes[(i + 1)...(i + 3)], as: UTF8.self), radix: 8) {
                    if value == 0 {
                        args.append(String(decoding: current, as: UTF8.self))
                        current = []
                    } else {
                        current.append(value)
                    }
                    i += 4
                    continue
                }
            }
            current.append(bytes[i])
            i += 1
        }
        if !current.isEmpty { args.append(String(decoding: current, as: UTF8.self)) }
        return args
    }

    func registryExists() throws -> Bool {
        try connection.query("SELECT to_regclass('audit.audited_tables') IS NOT NULL").scalar(Bool.self)
    }

    func requireSuperuser(_ command: String) throws {
        let superuser = try connection.query("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").scalar(Bool.self)
        guard superuser else {
            throw OperatorError(
                "\(command) must run as a superuser",
                detail: "it creates the audit owner role and objects owned by it, and triggers on tables owned by other roles",
                hint: "Connect as a superuser (e.g. postgres) for install, remove and prune; status and log work for readers of audit.log.")
        }
    }
}
