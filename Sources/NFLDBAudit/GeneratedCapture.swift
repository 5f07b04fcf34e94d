import Foundation
import NFLDBPostgres

/// One column of an audited table, as the generated capture function needs it.
struct AuditColumn: Sendable, Equatable {
    let name: String
    /// The column's type has a default btree or hash equality in pg_catalog (so `IS DISTINCT FROM`
    /// works on the function's search_path and means equality); otherwise the function compares the
    /// text forms (`json`, `point`, arrays, enums, extension types such as hstore and citext, …).
    let comparable: Bool
    /// `format_type` of the column (what `audit status` compares with the type at install).
    var type: String = ""
}

/// The capture function `audit install` generates for one table (issue 16): specialised to the
/// table's columns and key, so a row costs only what it records.
///
/// * Key: `jsonb_build_object('k1', OLD.k1, …)` straight from the key columns (the whole row when the
///   table has no key).
/// * UPDATE: a no-op (no audited column `IS DISTINCT FROM` its old value) returns before any jsonb is
///   built; otherwise `old_row = to_jsonb(OLD)` and `changed` is built from the changed columns only
///   (`jsonb_build_object` per changed column, joined with `||`; no `jsonb_each`, no subquery, no
///   conversion of the whole new row). Row mode computes key, old row and changed as PL/pgSQL
///   expressions before the INSERT (their expression state is built once per transaction, the
///   INSERT's once per row).
/// * Statement mode: one `INSERT … SELECT` per statement, with the session values read once; UPDATE
///   pairs the old and new transition tables on the key columns with `=` (a FULL JOIN: rows whose key
///   changed are logged as an unpaired old and new half, as before).
///
/// Identifiers are quoted (`PostgresIdentifier.quote`), names as literals; the body is dollar-quoted
/// with a tag it does not contain. SECURITY DEFINER, owned by the audit owner: writers can neither call
/// nor replace it. `audit status` regenerates the body from the table's current columns and compares it
/// with `pg_proc.prosrc`.
///
/// Every name the body resolves is schema-qualified — functions (`pg_catalog.to_jsonb`), operators
/// (`OPERATOR(pg_catalog.=)`; `IS DISTINCT FROM` and `NULLIF` are spelled out, since they look `=` up
/// on the search_path), types (`pg_catalog.jsonb`) and relations (`audit.log`) — so the caller's
/// search_path cannot put its own `=` or `to_jsonb` into a function that runs as the audit owner. That
/// lets the row-mode function go without `SET search_path`: a function-level setting costs a GUC save,
/// set and restore on every call, which was 7 % of row mode's time (issue 16; measured in
/// docs/roles-audit.md). The statement-mode function keeps `SET search_path = pg_catalog, pg_temp` as
/// a second fence (it runs once per statement, so the setting costs nothing there) and `jit = off`.
/// `GeneratedCaptureTests` checks the bodies for any unqualified name; `AuditGeneratedTests` runs
/// writers whose search_path holds hijacking `=`, `||` and `to_jsonb`.
struct GeneratedCapture {
    let schema: String
    let name: String
    let oid: Int64
    let isPartitioned: Bool
    let mode: AuditMode
    /// Every column of the table in attnum order (excluded ones too: they are only left out).
    let columns: [AuditColumn]
    let keys: [String]
    let excluded: [String]

    static func functionName(mode: AuditMode, oid: Int64) -> String {
        mode == .row ? "capture_row_\(oid)" : "capture_statement_\(oid)"
    }

    /// Generated function names start like this (followed by the table oid).
    static let namePattern = "^capture_(row|statement)_[0-9]+$"

    var functionName: String { Self.functionName(mode: mode, oid: oid) }

    private var audited: [AuditColumn] { columns.filter { !excluded.contains($0.name) } }

    /// Install's note when some columns are compared by their text form.
    var textComparedNote: String? {
        let names = audited.filter { !$0.comparable }.map(\.name)
        return names.isEmpty ? nil : "compared as text (their type has no default equality in pg_catalog): \(names.joined(separator: ", "))"
    }

    private func q(_ name: String) -> String { PostgresIdentifier.quote(name) }
    private func lit(_ value: String) -> String { PostgresIdentifier.literal(value) }

    /// `r.c`, quoted.
    private func field(_ row: String, _ column: String) -> String { "\(row).\(q(column))" }

    /// The whole row as jsonb without the excluded columns.
    private func rowJSON(_ row: String) -> String {
        let base = mode == .row ? "pg_catalog.to_jsonb(\(row))" : "pg_catalog.to_jsonb(\(row).*)"
        guard !excluded.isEmpty else { return base }
        return "(\(base) OPERATOR(pg_catalog.-) ARRAY[\(excluded.map(lit).joined(separator: ", "))]::pg_catalog.text[])"
    }

    private func key(_ row: String) -> String {
        guard !keys.isEmpty else { return rowJSON(row) }
        return "pg_catalog.jsonb_build_object(" + keys.map { "\(lit($0)), \(field(row, $0))" }.joined(separator: ", ") + ")"
    }

    /// `n.c IS DISTINCT FROM o.c` with pg_catalog's `=` named explicitly (`IS DISTINCT FROM` itself
    /// would look `=` up on the caller's search_path): true when exactly one side is NULL or both are
    /// set and not equal. (Only scalar types are compared this way — a composite's `IS NOT NULL` means
    /// "every field set" — composites and arrays go through their text forms.) Types without a
    /// pg_catalog equality compare their text forms, which are never NULL.
    private func distinct(_ column: AuditColumn, new: String, old: String) -> String {
        let n = field(new, column.name), o = field(old, column.name)
        guard column.comparable else { return "NOT (\(textForm(n)) OPERATOR(pg_catalog.=) \(textForm(o)))" }
        return "((NOT (\(n) OPERATOR(pg_catalog.=) \(o))) IS NOT FALSE AND (\(n) IS NOT NULL OR \(o) IS NOT NULL))"
    }

    /// A value's text form without a cast: `ROW(v)::text` is `record_out`, which calls the column
    /// type's output function directly. `v::text` would run a cast from the column's type to text,
    /// and the owner of a user-defined type can create one (CREATE CAST) whose function would then
    /// run as the audit owner inside this SECURITY DEFINER function. Null-safe: `()` for NULL,
    /// `("")` for an empty string.
    private func textForm(_ value: String) -> String { "ROW(\(value))::pg_catalog.text" }

    private func anyChanged(new: String, old: String, indent: String) -> String {
        let terms = audited.map { distinct($0, new: new, old: old) }
        return terms.isEmpty ? "false" : terms.joined(separator: "\n\(indent)OR ")
    }

    /// The new values of the changed columns, built from those columns only: one
    /// `CASE WHEN n.c IS DISTINCT FROM o.c THEN jsonb_build_object('c', n.c) ELSE '{}' END` per audited
    /// column, joined with `||` as a balanced tree (`jsonb ||` returns the other operand when one is
    /// empty, so unchanged columns cost a comparison; k changed columns cost O(k log k) instead of the
    /// O(k²) of a left-deep chain). Same values as `to_jsonb(new) - ARRAY[unchanged]` (both encode
    /// each column by its type), without converting the whole new row and deleting from it: in
    /// `bench/audit`'s UPDATE of 2 of 9 columns that was a fifth of row mode's and a sixth of statement
    /// mode's backend CPU; with every column changed it costs about the same in row mode and ~10 %
    /// more in statement mode.
    private func changed(new: String, old: String, indent: String) -> String {
        let terms = audited.map {
            "CASE WHEN \(distinct($0, new: new, old: old)) THEN pg_catalog.jsonb_build_object(\(lit($0.name)), \(field(new, $0.name))) ELSE '{}'::pg_catalog.jsonb END"
        }
        guard !terms.isEmpty else { return "'{}'::pg_catalog.jsonb" }
        func tree(_ part: ArraySlice<String>) -> String {
            if part.count == 1 { return part[part.startIndex] }
            let middle = part.startIndex + part.count / 2
            return "(\(tree(part[..<middle]))\n\(indent)OPERATOR(pg_catalog.||) \(tree(part[middle...])))"
        }
        return tree(terms[...])
    }

    /// `nullif(current_setting('nfldb.correlation_id', true), '')` without NULLIF (which looks `=` up on
    /// the search_path): NULL when unset or empty.
    static let correlationID = "CASE WHEN pg_catalog.current_setting('nfldb.correlation_id', true) OPERATOR(pg_catalog.<>) '' THEN pg_catalog.current_setting('nfldb.correlation_id', true) END"

    private static let logColumns = "table_oid, table_schema, table_name, operation, row_key, old_row, new_row, changed, txid,\n                               session_user_name, current_user_name, application_name, client_addr, correlation_id"

    /// The function body (what `pg_proc.prosrc` holds).
    var body: String { mode == .row ? rowBody : statementBody }

    private var rowBody: String {
        // A partition fires its parent's cloned trigger: entries name the audited (parent) table.
        let schemaExpr = isPartitioned ? lit(schema) : "TG_TABLE_SCHEMA"
        let nameExpr = isPartitioned ? lit(name) : "TG_TABLE_NAME"
        let oidExpr = isPartitioned ? "\(oid)::pg_catalog.oid" : "TG_RELID"
        let session = "pg_catalog.txid_current(), session_user, current_user, pg_catalog.current_setting('application_name'), pg_catalog.inet_client_addr(),\n                \(Self.correlationID)"
        func insert(_ operation: String, key: String, old: String, new: String, changed: String) -> String {
            """
                    INSERT INTO audit.log (\(Self.logColumns))
                    VALUES (\(oidExpr), \(schemaExpr), \(nameExpr), '\(operation)', \(key), \(old), \(new), \(changed),
                            \(session));
            """
        }
        return """

            DECLARE
                audit_key     pg_catalog.jsonb;
                audit_old     pg_catalog.jsonb;
                audit_changed pg_catalog.jsonb;
            BEGIN
                IF TG_OP OPERATOR(pg_catalog.=) 'INSERT' THEN
            \(insert("INSERT", key: key("NEW"), old: "NULL", new: rowJSON("NEW"), changed: "NULL"))
                ELSIF TG_OP OPERATOR(pg_catalog.=) 'UPDATE' THEN
                    IF NOT (\(anyChanged(new: "NEW", old: "OLD", indent: "            "))) THEN
                        RETURN NULL;  -- nothing audited changed
                    END IF;
                    audit_key := \(key("OLD"));
                    audit_old := \(rowJSON("OLD"));
                    audit_changed := \(changed(new: "NEW", old: "OLD", indent: "                        "));
            \(insert("UPDATE", key: "audit_key", old: "audit_old", new: "NULL", changed: "audit_changed"))
                ELSE
            \(insert("DELETE", key: key("OLD"), old: rowJSON("OLD"), new: "NULL", changed: "NULL"))
                END IF;
                RETURN NULL;
            END

            """
    }

    private var statementBody: String {
        let session = "tx, login, runner, app, client, corr"
        // Keys are NOT NULL (statement mode needs a primary key or unique NOT NULL index), so a NULL
        // key column marks the missing side of the FULL JOIN.
        let first = keys.first ?? ""
        // Pairs by the key's value; by its text form when its type has no pg_catalog equality (a citext
        // or other extension-type key: its `=` is not on the function's search_path).
        let join = keys.map { key in
            columns.first { $0.name == key }?.comparable == false
                ? "\(textForm("o.\(q(key))")) OPERATOR(pg_catalog.=) \(textForm("n.\(q(key))"))" : "o.\(q(key)) OPERATOR(pg_catalog.=) n.\(q(key))"
        }.joined(separator: " AND ")
        let oldMissing = "o.\(q(first)) IS NULL", newMissing = "n.\(q(first)) IS NULL"
        // The variables are named in a query over the transition tables: a table column of the same
        // name (`tx`, `login`, …) would make them ambiguous, and every column here is qualified.
        return """

            #variable_conflict use_variable
            DECLARE
                tx     pg_catalog.int8 := pg_catalog.txid_current();
                app    pg_catalog.text := pg_catalog.current_setting('application_name');
                client pg_catalog.inet := pg_catalog.inet_client_addr();
                corr   pg_catalog.text := \(Self.correlationID);
                login  pg_catalog.text := session_user;
                runner pg_catalog.text := current_user;
            BEGIN
                IF TG_OP OPERATOR(pg_catalog.=) 'INSERT' THEN
                    INSERT INTO audit.log (\(Self.logColumns))
                    SELECT TG_RELID, TG_TABLE_SCHEMA, TG_TABLE_NAME, 'INSERT', \(key("n")), NULL, \(rowJSON("n")), NULL,
                           \(session)
                      FROM audit_new_rows AS n;
                ELSIF TG_OP OPERATOR(pg_catalog.=) 'DELETE' THEN
                    INSERT INTO audit.log (\(Self.logColumns))
                    SELECT TG_RELID, TG_TABLE_SCHEMA, TG_TABLE_NAME, 'DELETE', \(key("o")), \(rowJSON("o")), NULL, NULL,
                           \(session)
                      FROM audit_old_rows AS o;
                ELSE
                    INSERT INTO audit.log (\(Self.logColumns))
                    SELECT TG_RELID, TG_TABLE_SCHEMA, TG_TABLE_NAME, 'UPDATE',
                           CASE WHEN \(oldMissing) THEN \(key("n")) ELSE \(key("o")) END,
                           CASE WHEN NOT \(oldMissing) THEN \(rowJSON("o")) END,
                           CASE WHEN \(oldMissing) THEN \(rowJSON("n")) END,
                           CASE WHEN NOT \(oldMissing) AND NOT \(newMissing) THEN
                               \(changed(new: "n", old: "o", indent: "                                   "))
                           END,
                           \(session)
                      FROM audit_old_rows AS o FULL JOIN audit_new_rows AS n ON \(join)
                     WHERE \(oldMissing) OR \(newMissing)
                        OR \(anyChanged(new: "n", old: "o", indent: "                        "));
                END IF;
                RETURN NULL;
            END

            """
    }

    /// A dollar-quote tag the body does not contain (a column may be named `$function$`).
    static func dollarTag(for body: String) -> String {
        var tag = "$audit$"
        var n = 0
        while body.contains(tag) {
            n += 1
            tag = "$audit\(n)$"
        }
        return tag
    }

    /// `pg_proc.proconfig` of the function as `array_to_string(proconfig, ',')` ("" for none). Row mode
    /// sets nothing: its body qualifies every name (see the type's comment), and a function-level
    /// setting would cost a GUC save and restore per row.
    var config: String { mode == .statement ? "search_path=pg_catalog, pg_temp,jit=off" : "" }

    /// CREATE OR REPLACE FUNCTION (run as the audit owner, so the owner owns it).
    var createSQL: String {
        let tag = Self.dollarTag(for: body)
        let settings = mode == .statement ? " SET search_path = pg_catalog, pg_temp SET jit = off" : ""
        return """
            CREATE OR REPLACE FUNCTION audit.\(q(functionName))() RETURNS trigger
            LANGUAGE plpgsql SECURITY DEFINER\(settings) AS \(tag)\(body)\(tag);
            REVOKE ALL ON FUNCTION audit.\(q(functionName))() FROM PUBLIC;
            COMMENT ON FUNCTION audit.\(q(functionName))() IS \(lit("nfldb audit: generated capture function (\(mode.rawValue) mode) for \(schema).\(name); regenerated by nfldb audit install"));
            """
    }
}
