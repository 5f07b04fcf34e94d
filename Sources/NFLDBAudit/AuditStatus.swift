import Foundation
import Logging
import NFLDBCore
import NFLDBPostgres

/// Health of one audited table.
public struct AuditTableStatus: Sendable, Codable {
    public let table: String
    public let mode: String
    public let key: [String]
    public let keySource: String
    public let installedAt: String
    public let problems: [String]
    public var ok: Bool { problems.isEmpty }
}

/// One partition of audit.log.
public struct AuditPartition: Sendable, Codable {
    public let name: String
    /// `FOR VALUES FROM (…) TO (…)` or `DEFAULT`.
    public let bound: String
}

/// `nfldb audit status`: the log's integrity and every audited table's trigger health.
public struct AuditStatusReport: Sendable, Codable {
    public var installed: Bool
    public var owner: String?
    public var tables: [AuditTableStatus]
    /// Problems with the audit schema itself (guards, owner, partitions).
    public var logProblems: [String]
    public var partitions: [AuditPartition]
    /// Upper bound of the newest monthly partition.
    public var coveredUntil: String?
    public var defaultPartitionRows: Int
    public var estimatedEntries: Int

    /// Everything is as `install` left it.
    public var healthy: Bool { installed && logProblems.isEmpty && tables.allSatisfy(\.ok) }
}

extension AuditInstaller {
    /// Inspects the audit schema and every registered table. Needs SELECT on audit.audited_tables
    /// (a superuser or the audit owner); changes nothing.
    public func status() throws -> AuditStatusReport {
        var report = AuditStatusReport(
            installed: false, owner: nil, tables: [], logProblems: [], partitions: [], coveredUntil: nil, defaultPartitionRows: 0,
            estimatedEntries: 0)
        let schemaOwner = try connection.query("SELECT pg_get_userbyid(nspowner) AS o FROM pg_namespace WHERE nspname = 'audit'").rows.first?["o"]
        guard let schemaOwner, try connection.query("SELECT to_regclass('audit.log') IS NOT NULL").scalar(Bool.self) else {
            report.logProblems.append("the audit schema is not installed: run `nfldb audit install --table …`")
            return report
        }
        report.installed = true
        report.owner = schemaOwner
        guard try connection.query("SELECT has_table_privilege('audit.audited_tables', 'SELECT')").scalar(Bool.self) else {
            throw OperatorError(
                "cannot read audit.audited_tables as \(connection.target)",
                hint: "Run `nfldb audit status` as a superuser (or as a member of \(schemaOwner)).")
        }
        try checkLog(owner: schemaOwner, into: &report)
        let registry = try connection.query("""
            SELECT table_schema, table_name, table_oid::int8 AS oid, mode, array_to_json(key_columns)::text AS keys, key_source,
                   array_to_json(excluded_columns)::text AS excluded, array_to_json(audited_columns)::text AS audited,
                   array_to_json(audited_types)::text AS audited_types,
                   installed_at::text AS installed_at
            FROM audit.audited_tables ORDER BY 1, 2
            """).rows
        var registeredOIDs = Set<Int64>()
        for row in registry {
            let schema = row["table_schema"] ?? "", name = row["table_name"] ?? ""
            let oid = try row.decode("oid", as: Int64.self)
            registeredOIDs.insert(oid)
            let keys = Self.jsonList(row["keys"]), excluded = Self.jsonList(row["excluded"])
            let mode = AuditMode(rawValue: row["mode"] ?? "row") ?? .row
            var problems: [String] = []
            let current = try connection.query("""
                SELECT c.oid::int8 AS oid, c.relkind::text AS relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = \(schema) AND c.relname = \(name)
                """).rows.first
            if let current {
                let currentOID = try current.decode("oid", as: Int64.self)
                registeredOIDs.insert(currentOID)
                if currentOID != oid {
                    problems.append("re-created since install (oid \(oid) → \(currentOID)): a new table does not inherit the old one's triggers")
                }
                let table = AuditedTable(
                    oid: currentOID, schema: schema, name: name, relkind: current["relkind"] ?? "r", columnInfo: try tableColumns(currentOID))
                if mode == .statement && table.isPartitioned {
                    problems.append(AuditInstaller.statementOnPartitioned(table.qualified))
                }
                problems += try inheritanceProblems(table)
                problems += try checkTriggers(table, mode: mode)
                problems += try checkFunction(
                    table, mode: mode, keys: keys, excluded: excluded, installedColumns: row["audited"].map { Self.jsonList($0) },
                    installedTypes: row["audited_types"].map { Self.jsonList($0) }, owner: schemaOwner)
                let key = try resolveKey(table)
                if key.columns != keys {
                    problems.append("key changed: installed with \(keys.isEmpty ? "the whole row" : "(\(keys.joined(separator: ", ")))"), the table's key is now \(key)")
                }
            } else if let renamed = try connection.query("""
                SELECT n.nspname || '.' || c.relname AS t FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = \(oid)::oid
                """).rows.first?["t"] {
                problems.append("renamed to \(renamed): run `nfldb audit install --table \(AuditInstaller.shellArgument(renamed))` to re-register it")
            } else {
                problems.append("table no longer exists (dropped); its log entries remain")
            }
            report.tables.append(AuditTableStatus(
                table: "\(schema).\(name)", mode: mode.rawValue, key: keys, keySource: row["key_source"] ?? "",
                installedAt: row["installed_at"] ?? "", problems: problems))
        }
        // Audit triggers on tables the registry does not know (copied by hand, or left by a failed remove).
        let stray = try connection.query("""
            SELECT DISTINCT c.oid::int8 AS oid, n.nspname || '.' || c.relname AS t
            FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE t.tgname LIKE 'zz\\_audit\\_%' AND t.tgparentid = 0 AND NOT c.relispartition ORDER BY 2
            """).rows
        for row in stray where !registeredOIDs.contains(try row.decode("oid", as: Int64.self)) {
            let table = AuditInstaller.shellArgument(row["t"] ?? "")
            let names = Set(try existingTriggers(try row.decode("oid", as: Int64.self)).map(\.name).filter { $0.hasPrefix("zz_audit_") })
            // Install puts only the TRUNCATE trigger on a partition (the row trigger is the parent's,
            // cloned): a table left with just that one was most likely detached from an audited table,
            // and its writes since are not logged. Install on it would block a later ATTACH (the clone's
            // name is taken), so say how to re-attach first (an attack probe followed the old hint there).
            let problem = names == [AuditSQL.truncateTrigger]
                ? "has only the TRUNCATE audit trigger that install puts on partitions, so it looks detached from an audited partitioned table: "
                    + "its writes since are not logged. Re-attach it as a superuser (ALTER TABLE <parent> ATTACH PARTITION \(row["t"] ?? "") FOR VALUES …; "
                    + "the attach clones the parent's audit trigger back; the table's owner cannot, the capture function is the audit owner's). "
                    + "If it stays detached: `nfldb audit install --table \(table)` audits it on its own (run `nfldb audit remove --table \(table)` before any later ATTACH), "
                    + "or `nfldb audit remove --table \(table)` drops the leftover trigger"
                : "has audit triggers but is not registered: run `nfldb audit install --table \(table)` or `audit remove`"
            report.tables.append(AuditTableStatus(
                table: row["t"] ?? "", mode: "?", key: [], keySource: "", installedAt: "",
                problems: [problem]))
        }
        return report
    }

    /// The table's generated capture function: present, owned by the audit owner, SECURITY DEFINER with
    /// exactly the settings install gives it (statement mode: a fixed search_path and jit off; row mode:
    /// none, its body qualifies every name), and its body what install would generate for the table's current columns
    /// (an ALTER TABLE ADD/DROP/RENAME COLUMN since install, or a hand edit, makes it differ).
    private func checkFunction(
        _ table: AuditedTable, mode: AuditMode, keys: [String], excluded: [String], installedColumns: [String]?,
        installedTypes: [String]? = nil, owner: String
    ) throws -> [String] {
        let capture = GeneratedCapture(
            schema: table.schema, name: table.name, oid: table.oid, isPartitioned: table.isPartitioned, mode: mode,
            columns: table.columnInfo, keys: keys, excluded: excluded.filter(table.columns.contains))
        let fix = "run `nfldb audit install --table \(table.argument)` to regenerate it"
        let rows = try connection.query("""
            SELECT prosrc, pg_get_userbyid(proowner) AS owner, prosecdef,
                   coalesce(array_to_string(proconfig, ','), '') AS config
            FROM pg_proc WHERE pronamespace = 'audit'::regnamespace AND proname = \(capture.functionName) AND pronargs = 0
            """).rows
        guard let function = rows.first else {
            return ["generated function audit.\(capture.functionName)() is missing (installed by an older nfldb, or dropped): \(fix)"]
        }
        var problems: [String] = []
        if function["owner"] != owner { problems.append("audit.\(capture.functionName)() is owned by \(function["owner"] ?? "?"), not \(owner): \(fix)") }
        if try !function.decode("prosecdef", as: Bool.self) {
            problems.append("audit.\(capture.functionName)() is not SECURITY DEFINER: writers would need INSERT on the log; \(fix)")
        }
        if function["config"] != capture.config {
            let found = function["config"] ?? "", wanted = capture.config
            problems.append("audit.\(capture.functionName)() has the settings [\(found)], not [\(wanted)] as install sets them: \(fix)")
        }
        if function["prosrc"] != capture.body {
            if let installedColumns, installedColumns != table.columns {
                let added = table.columns.filter { !installedColumns.contains($0) }
                let gone = installedColumns.filter { !table.columns.contains($0) }
                var what: [String] = []
                if !added.isEmpty { what.append("added: \(added.joined(separator: ", "))") }
                if !gone.isEmpty { what.append("dropped or renamed: \(gone.joined(separator: ", "))") }
                if what.isEmpty { what.append("reordered") }
                problems.append(
                    "columns changed since install (\(what.joined(separator: "; "))): the generated function audit.\(capture.functionName)() no longer "
                        + "matches the table — after a DROP or RENAME COLUMN every write to it fails, after an ADD COLUMN an UPDATE of only "
                        + "the new column is not logged; \(fix)")
            } else if let installedTypes, installedTypes.count == table.columns.count, installedTypes != table.columnTypes {
                let retyped = table.columnInfo.indices.filter { installedTypes[$0] != table.columnInfo[$0].type }
                    .map { "\(table.columnInfo[$0].name) (\(installedTypes[$0]) → \(table.columnInfo[$0].type))" }
                problems.append(
                    "column types changed since install: \(retyped.joined(separator: ", ")); the generated function audit.\(capture.functionName)() "
                        + "still compares them as before, which can make every UPDATE of the table fail (\"operator does not exist\"); \(fix)")
            } else {
                problems.append("generated function audit.\(capture.functionName)() differs from what install generates for the table (edited by hand, or generated by an earlier nfldb): \(fix)")
            }
        }
        return problems
    }

    private func checkTriggers(_ table: AuditedTable, mode: AuditMode) throws -> [String] {
        var problems: [String] = []
        let fix = "run `nfldb audit install --table \(table.argument)` to repair it"
        let triggers = try existingTriggers(table.oid).filter { !$0.cloned }
        for wanted in AuditSQL.tableTriggers(table, mode: mode) {
            let name = wanted.name
            guard let trigger = triggers.first(where: { $0.name == name }) else {
                problems.append("trigger \(name) is missing on \(table.qualified): changes are not audited; \(fix)")
                continue
            }
            if !trigger.firesOnOrigin {
                problems.append(Self.notFiring(trigger, on: table.sql, fix: fix))
            }
            if let difference = trigger.difference(from: wanted) {
                problems.append("trigger \(name) differs from the installed definition (\(difference)): changes it skips are not audited; \(fix)")
            }
        }
        for partition in try partitionOIDs(table) {
            let partitionTriggers = try existingTriggers(partition)
            let name = try relationSQL(partition)
            if !partitionTriggers.contains(where: { $0.name == AuditSQL.truncateTrigger }) {
                problems.append("partition \(name) has no TRUNCATE audit trigger (added after install?): \(fix)")
            }
            if mode == .row, !partitionTriggers.contains(where: { $0.name == AuditSQL.rowTrigger }) {
                problems.append("partition \(name) has no row audit trigger: \(fix)")
            }
            for trigger in partitionTriggers where !trigger.firesOnOrigin {
                problems.append(Self.notFiring(trigger, on: name, fix: fix))
            }
        }
        return problems
    }

    /// `trigger zz_audit_row on "nfl"."games" is ENABLE REPLICA: …` with the command that fixes it.
    static func notFiring(_ trigger: TriggerInfo, on relation: String, fix: String) -> String {
        "trigger \(trigger.name) on \(relation) is \(trigger.stateDescription): changes made by ordinary sessions are not audited; "
            + "\(fix) (or ALTER TABLE \(relation) ENABLE TRIGGER \(PostgresIdentifier.quote(trigger.name)))"
    }

    private func checkLog(owner: String, into report: inout AuditStatusReport) throws {
        let log = try connection.query("""
            SELECT pg_get_userbyid(c.relowner) AS owner, c.relkind::text AS relkind,
                   (SELECT rolcanlogin FROM pg_roles WHERE rolname = \(owner)) AS login,
                   (SELECT string_agg(m.rolname, ', ') FROM pg_auth_members am JOIN pg_roles r ON r.oid = am.roleid
                      JOIN pg_roles m ON m.oid = am.member WHERE r.rolname = \(owner)) AS members,
                   (SELECT count(*) FROM aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a
                     WHERE a.grantee <> c.relowner AND a.privilege_type IN ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE')) AS writers
            FROM pg_class c WHERE c.oid = 'audit.log'::regclass
            """).singleRow()
        if log["owner"] != owner { report.logProblems.append("audit.log is owned by \(log["owner"] ?? "?"), not the audit schema's owner \(owner)") }
        if log["relkind"] != "p" { report.logProblems.append("audit.log is not partitioned") }
        if try log.decode("login", as: Bool?.self) == true {
            report.logProblems.append("audit owner \(owner) can log in: whoever logs in as it can rewrite the log")
        }
        if let members = log["members"] {
            report.logProblems.append("\(members) \(members.contains(",") ? "are members" : "is a member") of the audit owner \(owner): they can drop the guards and rewrite the log")
        }
        if try log.decode("writers", as: Int.self) > 0 {
            report.logProblems.append("someone other than \(owner) holds INSERT/UPDATE/DELETE/TRUNCATE on audit.log")
        }
        let functions = try connection.query("""
            SELECT p.proname, pg_get_userbyid(p.proowner) AS owner, p.prosecdef,
                   coalesce(array_to_string(p.proconfig, ','), '') LIKE '%search_path=%' AS fixed_path
            FROM pg_proc p WHERE p.pronamespace = 'audit'::regnamespace
              AND p.proname IN ('capture_truncate', 'reject_change')
            """).rows
        for name in ["capture_truncate", "reject_change"] {
            guard let row = functions.first(where: { $0["proname"] == name }) else {
                report.logProblems.append("function audit.\(name)() is missing")
                continue
            }
            if row["owner"] != owner { report.logProblems.append("audit.\(name)() is owned by \(row["owner"] ?? "?"), not \(owner)") }
            if name != "reject_change", try !row.decode("prosecdef", as: Bool.self) {
                report.logProblems.append("audit.\(name)() is not SECURITY DEFINER: writers would need INSERT on the log")
            }
            if try !row.decode("fixed_path", as: Bool.self) { report.logProblems.append("audit.\(name)() has no fixed search_path") }
        }
        // Install repairs the schema-wide parts too, but it needs a table: name one that is audited.
        let anyTable = try connection.query("""
            SELECT table_schema || '.' || table_name AS t FROM audit.audited_tables ORDER BY 1 LIMIT 1
            """).rows.first?["t"]
        let reinstall = "run `nfldb audit install --table \(anyTable.map(AuditInstaller.shellArgument) ?? "…")` (any audited table, or `--all`)"
        let castGuard = try connection.query("""
            SELECT evtenabled::text AS enabled FROM pg_event_trigger WHERE evtname = \(AuditSQL.castGuardName)
            """).rows.first?["enabled"]
        if castGuard != "O" && castGuard != "A" {
            report.logProblems.append(
                "event trigger \(AuditSQL.castGuardName) is \(castGuard == nil ? "missing" : "disabled"): the owner of a type in an audited table "
                    + "could create a cast whose function runs as the audit owner; \(reinstall)")
        }
        let rewriteLog = try connection.query("""
            SELECT e.evtenabled::text AS enabled, e.evtevent AS event, p.proname = 'log_rewrite' AND n.nspname = 'audit' AS ours
            FROM pg_event_trigger e JOIN pg_proc p ON p.oid = e.evtfoid JOIN pg_namespace n ON n.oid = p.pronamespace
            WHERE e.evtname = \(AuditSQL.rewriteLogName)
            """).rows.first
        // evtenabled is O or A when it fires in ordinary sessions, D or R when it does not.
        let rewriteLogState: String? = switch rewriteLog {
        case nil: "missing"
        case let row? where row["enabled"] == "D" || row["enabled"] == "R": "disabled"
        case let row? where row["event"] != "table_rewrite" || row["ours"] != "t": "not the one install creates"
        default: nil
        }
        if let rewriteLogState {
            report.logProblems.append(
                "event trigger \(AuditSQL.rewriteLogName) is \(rewriteLogState): "
                    + "an ALTER TABLE that rewrites an audited table's rows (ALTER COLUMN … TYPE … USING) would change them with no log entry; \(reinstall)")
        }
        let audited = try connection.query("""
            SELECT c.oid::int8 AS oid FROM audit.audited_tables a
            JOIN pg_namespace n ON n.nspname = a.table_schema JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = a.table_name
            """).rows.map { try $0.decode("oid", as: Int64.self) }
        report.logProblems += try riskyCastProblems(tables: audited).map { "\($0.problem). \($0.hint)" }
        let partitions = try connection.query("""
            SELECT c.oid::int8 AS oid, c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound
            FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'audit.log'::regclass ORDER BY c.relname
            """).rows
        let guards = try connection.query("""
            SELECT t.tgrelid::int8 AS oid, t.tgname, t.tgenabled::text AS enabled FROM pg_trigger t
            WHERE t.tgname IN ('audit_guard_row', 'audit_guard_truncate') AND t.tgqual IS NULL AND t.tgattr::text = ''
              AND t.tgfoid = 'audit.reject_change()'::regprocedure
              AND t.tgtype = CASE t.tgname WHEN 'audit_guard_row' THEN 27 ELSE 34 END
              AND t.tgrelid IN (SELECT 'audit.log'::regclass UNION ALL SELECT inhrelid FROM pg_inherits WHERE inhparent = 'audit.log'::regclass)
            """).rows
        func hasGuard(_ oid: Int64, _ name: String) -> Bool {
            guards.contains { (try? $0.decode("oid", as: Int64.self)) == oid && $0["tgname"] == name && ($0["enabled"] == "O" || $0["enabled"] == "A") }
        }
        let logOID = try connection.query("SELECT 'audit.log'::regclass::oid::int8").scalar(Int64.self)
        let notFiring = "is missing, does not fire (disabled or ENABLE REPLICA) or differs from the installed one (a WHEN condition, other events or another function)"
        if !hasGuard(logOID, "audit_guard_row") { report.logProblems.append("guard trigger audit_guard_row on audit.log \(notFiring): \(reinstall)") }
        if !hasGuard(logOID, "audit_guard_truncate") { report.logProblems.append("guard trigger audit_guard_truncate on audit.log \(notFiring): \(reinstall)") }
        let guardSource = try connection.query("SELECT prosrc FROM pg_proc WHERE oid = to_regprocedure('audit.reject_change()')").rows.first?["prosrc"]
        let truncateSource = try connection.query("SELECT prosrc FROM pg_proc WHERE oid = to_regprocedure('audit.capture_truncate()')").rows.first?["prosrc"]
        if let truncateSource, truncateSource != AuditSQL.captureTruncateSource {
            report.logProblems.append("function audit.capture_truncate() differs from the installed one (edited: TRUNCATE of an audited table may go unlogged): \(reinstall)")
        }
        if guardSource != AuditSQL.rejectChangeSource(owner: owner) {
            report.logProblems.append("guard function audit.reject_change() \(guardSource == nil ? "is missing" : "differs from the installed one (edited: it may let changes to the log through)"): \(reinstall)")
        }
        var newest: (Int, Int)?
        for row in partitions {
            let oid = try row.decode("oid", as: Int64.self)
            let name = row["relname"] ?? ""
            report.partitions.append(AuditPartition(name: name, bound: row["bound"] ?? ""))
            if !hasGuard(oid, "audit_guard_truncate") {
                report.logProblems.append("partition audit.\(name) has no TRUNCATE guard: a TRUNCATE aimed at it would erase entries")
            }
            if !hasGuard(oid, "audit_guard_row") { report.logProblems.append("partition audit.\(name) has no row guard") }
            if let month = AuditSQL.parsePartitionName(name), newest.map({ month > $0 }) ?? true { newest = month }
        }
        if let (year, month) = newest {
            let next = AuditSQL.nextMonth(year, month)
            let until = String(format: "%04d-%02d-01", next.0, next.1)
            report.coveredUntil = until
            let daysLeft = try connection.query("SELECT (\(until)::date - (now() AT TIME ZONE 'UTC')::date)::int").scalar(Int.self)
            if daysLeft < 28 {
                report.logProblems.append("monthly partitions end on \(until) (\(daysLeft) days): run `nfldb audit prune` (it creates the next months) from cron")
            }
            // A month missing between now and the newest partition: its writes land in audit.log_default.
            let months = Set(partitions.compactMap { AuditSQL.parsePartitionName($0["relname"] ?? "") }.map { $0.year * 12 + $0.month - 1 })
            let current = try connection.query("""
                SELECT (extract(year FROM now() AT TIME ZONE 'UTC')::int * 12 + extract(month FROM now() AT TIME ZONE 'UTC')::int - 1) AS m
                """).scalar(Int.self)
            let missing = (current...max(current, year * 12 + month - 1)).filter { !months.contains($0) }
                .map { String(format: "%04d-%02d", $0 / 12, $0 % 12 + 1) }
            if !missing.isEmpty {
                report.logProblems.append("no monthly partition for \(missing.joined(separator: ", ")): that month's entries land in audit.log_default; run `nfldb audit prune --older-than <retention>` (it creates missing months and moves their entries out of the default partition)")
            }
        } else {
            report.logProblems.append("audit.log has no monthly partitions: every entry lands in audit.log_default")
        }
        if try connection.query("SELECT to_regclass('audit.log_default') IS NOT NULL").scalar(Bool.self) {
            report.defaultPartitionRows = try connection.query("SELECT count(*) FROM (SELECT 1 FROM audit.log_default LIMIT 100000) s").scalar(Int.self)
            if report.defaultPartitionRows > 0 {
                report.logProblems.append("\(report.defaultPartitionRows) entries in audit.log_default: a monthly partition was missing when they were written; `nfldb audit prune --older-than <retention>` moves them into monthly partitions")
            }
        }
        report.estimatedEntries = try connection.query("""
            SELECT coalesce(sum(greatest(c.reltuples, 0)), 0)::int8 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = 'audit.log'::regclass
            """).scalar(Int.self)
    }

    static func jsonList(_ text: String?) -> [String] {
        (try? JSONDecoder().decode([String].self, from: Data((text ?? "[]").utf8))) ?? []
    }
}
