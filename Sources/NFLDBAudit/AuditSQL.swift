import Foundation
import NFLDBPostgres

/// The SQL of the audit schema: the append-only log, its guards and the trigger functions.
/// Everything is static text; only the audit owner's name is spliced in, quoted.
enum AuditSQL {
    static let rowTrigger = "zz_audit_row"
    static let insertTrigger = "zz_audit_insert"
    static let updateTrigger = "zz_audit_update"
    static let deleteTrigger = "zz_audit_delete"
    static let truncateTrigger = "zz_audit_truncate"
    /// Months of partitions kept ready ahead of the current one.
    static let monthsAhead = 3

    static func quote(_ name: String) -> String { PostgresIdentifier.quote(name) }

    /// One audit trigger on an audited table: what `install` creates and `status` expects.
    struct TableTrigger: Equatable {
        let name: String
        /// `AFTER INSERT OR UPDATE OR DELETE`, …: the part before `ON <table>`.
        let events: String
        /// `FOR EACH ROW`, `REFERENCING … FOR EACH STATEMENT`: the part after `ON <table>`.
        let level: String
        let function: String
        let args: [String]

        /// `pg_trigger.tgtype` for these events and level (ROW 1, BEFORE 2, INSERT 4, DELETE 8, UPDATE 16, TRUNCATE 32).
        var tgtype: Int {
            var type = level.hasSuffix("FOR EACH ROW") ? 1 : 0
            if events.hasPrefix("BEFORE") { type |= 2 }
            for (event, bit) in [("INSERT", 4), ("DELETE", 8), ("UPDATE", 16), ("TRUNCATE", 32)] where events.contains(event) { type |= bit }
            return type
        }

        /// The transition table names in `level` (`REFERENCING OLD TABLE AS x NEW TABLE AS y`).
        var oldTable: String? { Self.transitionName("OLD TABLE AS ", in: level) }
        var newTable: String? { Self.transitionName("NEW TABLE AS ", in: level) }

        private static func transitionName(_ marker: String, in text: String) -> String? {
            guard let range = text.range(of: marker) else { return nil }
            return String(text[range.upperBound...].prefix { $0 != " " })
        }

        func createSQL(on tableSQL: String) -> String {
            "CREATE OR REPLACE TRIGGER \(name) \(events) ON \(tableSQL) \(level) EXECUTE FUNCTION audit.\(function)("
                + args.map(PostgresIdentifier.literal).joined(separator: ", ") + ")"
        }
    }

    /// The triggers of a table audited in `mode`: they call the table's generated function
    /// (``GeneratedCapture``) without arguments, and the shared TRUNCATE function.
    static func tableTriggers(_ table: AuditedTable, mode: AuditMode) -> [TableTrigger] {
        var triggers: [TableTrigger] = []
        switch mode {
        case .row:
            triggers.append(TableTrigger(
                name: rowTrigger, events: "AFTER INSERT OR UPDATE OR DELETE", level: "FOR EACH ROW",
                function: GeneratedCapture.functionName(mode: .row, oid: table.oid), args: []))
        case .statement:
            let function = GeneratedCapture.functionName(mode: .statement, oid: table.oid)
            triggers.append(TableTrigger(
                name: insertTrigger, events: "AFTER INSERT", level: "REFERENCING NEW TABLE AS audit_new_rows FOR EACH STATEMENT",
                function: function, args: []))
            triggers.append(TableTrigger(
                name: updateTrigger, events: "AFTER UPDATE",
                level: "REFERENCING OLD TABLE AS audit_old_rows NEW TABLE AS audit_new_rows FOR EACH STATEMENT", function: function, args: []))
            triggers.append(TableTrigger(
                name: deleteTrigger, events: "AFTER DELETE", level: "REFERENCING OLD TABLE AS audit_old_rows FOR EACH STATEMENT",
                function: function, args: []))
        }
        triggers.append(TableTrigger(name: truncateTrigger, events: "AFTER TRUNCATE", level: "FOR EACH STATEMENT", function: "capture_truncate", args: []))
        return triggers
    }

    /// The log and registry tables (run as the audit owner, inside schema `audit`).
    static let tables = """
        CREATE TABLE IF NOT EXISTS audit.log (
            id                bigint GENERATED ALWAYS AS IDENTITY,
            logged_at         timestamptz NOT NULL DEFAULT statement_timestamp(),
            table_oid         oid NOT NULL,
            table_schema      text NOT NULL,
            table_name        text NOT NULL,
            operation         text NOT NULL,
            row_key           jsonb,
            old_row           jsonb,
            new_row           jsonb,
            changed           jsonb,
            txid              bigint NOT NULL,
            session_user_name text NOT NULL,
            current_user_name text NOT NULL,
            application_name  text,
            client_addr       inet,
            correlation_id    text
        ) PARTITION BY RANGE (logged_at);
        -- No CHECK constraint and no primary key index: only the SECURITY DEFINER capture functions
        -- insert (id is an identity column), a CHECK is re-read from the catalog for every one-row
        -- INSERT a row trigger runs (a quarter of its cost), and the index was another 10-13 % of each
        -- insert while nothing looks entries up by id. (Install drops both from logs created before.)
        COMMENT ON TABLE audit.log IS 'Append-only audit trail written by nfldb audit triggers; partitioned by month; pruned only with nfldb audit prune.';
        COMMENT ON COLUMN audit.log.row_key IS 'Key of the changed row: its primary key (or the unique key / whole row named at install time).';
        COMMENT ON COLUMN audit.log.old_row IS 'UPDATE and DELETE: the whole row before the change (minus excluded columns).';
        COMMENT ON COLUMN audit.log.new_row IS 'INSERT: the whole new row. For UPDATE the new row is old_row || changed.';
        COMMENT ON COLUMN audit.log.changed IS 'UPDATE only: the columns whose value changed, with their new values.';
        COMMENT ON COLUMN audit.log.session_user_name IS 'The login role (session_user); current_user_name is the audit owner inside the SECURITY DEFINER trigger.';
        COMMENT ON COLUMN audit.log.correlation_id IS 'SET LOCAL nfldb.correlation_id of the writing transaction, when set.';
        CREATE TABLE IF NOT EXISTS audit.log_default PARTITION OF audit.log DEFAULT;
        CREATE TABLE IF NOT EXISTS audit.audited_tables (
            table_schema     text NOT NULL,
            table_name       text NOT NULL,
            table_oid        oid NOT NULL,
            mode             text NOT NULL CHECK (mode IN ('row', 'statement')),
            key_columns      text[] NOT NULL,
            key_source       text NOT NULL,
            excluded_columns text[] NOT NULL DEFAULT '{}',
            audited_columns  text[],
            installed_at     timestamptz NOT NULL DEFAULT now(),
            installed_by     text NOT NULL DEFAULT session_user,
            PRIMARY KEY (table_schema, table_name)
        );
        -- Registries created before the generated functions lack the column list.
        ALTER TABLE audit.audited_tables ADD COLUMN IF NOT EXISTS audited_columns text[];
        ALTER TABLE audit.audited_tables ADD COLUMN IF NOT EXISTS audited_types text[];
        COMMENT ON COLUMN audit.audited_tables.audited_types IS 'format_type of each of audited_columns at install (audit status names a column whose type changed).';
        COMMENT ON COLUMN audit.audited_tables.audited_columns IS 'The table''s columns when install generated its capture function (audit status compares them with the current ones).';
        COMMENT ON TABLE audit.audited_tables IS 'Tables nfldb audit install set up, with the table oid at install time (a re-created table has a new oid).';
        REVOKE ALL ON TABLE audit.log, audit.log_default, audit.audited_tables FROM PUBLIC;
        """

    /// The generic functions of earlier versions (arguments per trigger); install drops them once no
    /// trigger uses them.
    static let genericFunctions = ["capture_row", "capture_statement"]

    /// The body PostgreSQL stores for ``captureTruncate``: what `audit status` compares, so a capture
    /// function edited to log nothing (or something else) is reported.
    static var captureTruncateSource: String { captureTruncate.components(separatedBy: "$function$")[1] }

    /// AFTER TRUNCATE (statement). TG_ARGV: [0]/[1] the audited table's schema/name ('' = the firing table).
    static let captureTruncate = """
        CREATE OR REPLACE FUNCTION audit.capture_truncate() RETURNS trigger
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $function$
        BEGIN
            INSERT INTO audit.log (table_oid, table_schema, table_name, operation, txid,
                                   session_user_name, current_user_name, application_name, client_addr, correlation_id)
            VALUES (TG_RELID, coalesce(nullif(TG_ARGV[0], ''), TG_TABLE_SCHEMA), coalesce(nullif(TG_ARGV[1], ''), TG_TABLE_NAME),
                    'TRUNCATE', txid_current(), session_user, current_user, current_setting('application_name'),
                    inet_client_addr(), nullif(current_setting('nfldb.correlation_id', true), ''));
            RETURN NULL;
        END
        $function$;
        """

    /// Guard on the log and every partition: UPDATE, DELETE and TRUNCATE raise, even for the owner
    /// or a superuser. The one exception is `nfldb audit prune` deleting old rows from the DEFAULT
    /// partition (as the audit owner, with `nfldb.audit_prune` set for its transaction): monthly
    /// partitions are only ever dropped whole. The row guard is cloned to every partition, so
    /// `TG_TABLE_NAME` is the partition the row lives in, whichever table the DELETE named.
    /// The body PostgreSQL stores (`pg_proc.prosrc`) for ``rejectChange(owner:)``: what `audit status`
    /// compares, so a guard function edited to let changes through is reported.
    static func rejectChangeSource(owner: String) -> String {
        rejectChange(owner: owner).components(separatedBy: "$function$")[1]
    }

    static func rejectChange(owner: String) -> String {
        """
        CREATE OR REPLACE FUNCTION audit.reject_change() RETURNS trigger
        LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $function$
        BEGIN
            IF TG_OP = 'DELETE' AND TG_LEVEL = 'ROW' AND TG_TABLE_SCHEMA = 'audit' AND TG_TABLE_NAME = 'log_default'
               AND current_setting('nfldb.audit_prune', true) = 'on'
               AND current_user = \(PostgresIdentifier.literal(owner)) THEN
                RETURN OLD;
            END IF;
            RAISE EXCEPTION 'audit.log is append-only: % on % is not allowed', TG_OP, TG_TABLE_NAME
                USING ERRCODE = 'insufficient_privilege',
                      HINT = 'Old entries are removed with nfldb audit prune --older-than; nothing else may change the log.';
        END
        $function$;
        """
    }

    /// The event trigger that keeps casts away from non-superusers (created by a superuser: event
    /// triggers must be). Why: the capture functions run as the audit owner (SECURITY DEFINER) and
    /// `to_jsonb` converts a value of a user-defined type (enum, range, composite…) through that
    /// type's cast to json when one exists. The type's owner may `CREATE CAST … WITH FUNCTION` their
    /// own function, which would then run with the audit owner's rights on the next write to an
    /// audited table — enough to disable the guards and erase or forge the log. Existing casts whose
    /// function a non-superuser owns, from a type in an audited table, are refused by install and reported by `audit status` (``riskyJSONCasts(tables:)``).
    static let castGuardName = "nfldb_audit_cast_guard"

    /// Run as the audit owner, which owns everything in schema audit.
    static let castGuardFunction = """
        CREATE OR REPLACE FUNCTION audit.refuse_cast() RETURNS event_trigger
        LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $function$
        BEGIN
            IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = current_user AND rolsuper) THEN
                RAISE EXCEPTION 'only a superuser may run % in this database: nfldb audit is installed', tg_tag
                    USING ERRCODE = 'insufficient_privilege',
                          HINT = 'The audit triggers run as the audit owner and convert values of user-defined types through their casts, '
                                 'so a cast''s function would run with the audit owner''s rights. Ask a superuser to create the cast.';
            END IF;
        END
        $function$;
        """

    /// Run as a superuser (only a superuser may create an event trigger).
    static let castGuardTrigger = """
        DO $guard$
        BEGIN
            IF NOT EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname = 'nfldb_audit_cast_guard') THEN
                CREATE EVENT TRIGGER nfldb_audit_cast_guard ON ddl_command_start WHEN TAG IN ('CREATE CAST')
                    EXECUTE FUNCTION audit.refuse_cast();
            END IF;
        END
        $guard$;
        ALTER EVENT TRIGGER nfldb_audit_cast_guard ENABLE;
        """

    /// The event trigger that logs a rewrite of an audited table (or of a partition of one). Why: an
    /// `ALTER TABLE … ALTER COLUMN … TYPE … USING <expr>` (even to the same type) rewrites every row
    /// with new values and fires no row trigger, so the table's owner could change audited data
    /// with no entry at all (found by an attack probe). `table_rewrite` fires before any such
    /// rewrite (ALTER COLUMN TYPE, ADD COLUMN with a volatile default, SET LOGGED/UNLOGGED, SET
    /// ACCESS METHOD; not VACUUM FULL or CLUSTER, which keep the values): one `REWRITE` entry names
    /// the table, who, and the command (`changed` = {"command" (the client's query string, cut at
    /// 8,192 characters), "reason", "relation"}); `audit log --key` lists
    /// it with the row's history, like a TRUNCATE. A failure to log refuses the rewrite (as a
    /// failing capture refuses a write).
    static let rewriteLogName = "nfldb_audit_rewrite_log"

    /// Run as the audit owner (SECURITY DEFINER: the DDL's runner may not write the log).
    static let rewriteLogFunction = """
        CREATE OR REPLACE FUNCTION audit.log_rewrite() RETURNS event_trigger
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $function$
        DECLARE
            rel oid := pg_event_trigger_table_rewrite_oid();
            audited record;
        BEGIN
            SELECT a.table_schema, a.table_name INTO audited
            FROM audit.audited_tables a
            -- pg_partition_ancestors() returns no rows for a table that is not a partition.
            WHERE a.table_oid = rel OR a.table_oid IN (SELECT p.relid FROM pg_partition_ancestors(rel) AS p)
            LIMIT 1;
            IF NOT FOUND THEN
                RETURN;
            END IF;
            INSERT INTO audit.log (table_oid, table_schema, table_name, operation, changed, txid,
                                   session_user_name, current_user_name, application_name, client_addr, correlation_id)
            VALUES (rel, audited.table_schema, audited.table_name, 'REWRITE',
                    jsonb_build_object('command', CASE WHEN length(current_query()) > 8192
                                                       THEN left(current_query(), 8192) || ' …(cut at 8192 characters)'
                                                       ELSE current_query() END,
                                       'reason', pg_event_trigger_table_rewrite_reason(),
                                       'relation', rel::regclass::text),
                    txid_current(), session_user, current_user, current_setting('application_name'),
                    inet_client_addr(), nullif(current_setting('nfldb.correlation_id', true), ''));
        END
        $function$;
        REVOKE ALL ON FUNCTION audit.log_rewrite() FROM PUBLIC;
        """

    /// Run as a superuser (only a superuser may create an event trigger).
    static let rewriteLogTrigger = """
        DO $guard$
        BEGIN
            IF NOT EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname = 'nfldb_audit_rewrite_log') THEN
                CREATE EVENT TRIGGER nfldb_audit_rewrite_log ON table_rewrite EXECUTE FUNCTION audit.log_rewrite();
            END IF;
        END
        $guard$;
        ALTER EVENT TRIGGER nfldb_audit_rewrite_log ENABLE;
        """

    /// Casts whose function a non-superuser owns (its owner can change what it does at any time),
    /// as `source → target via function() owned by role`.
    /// Casts to json whose function a non-superuser owns, from a type that `to_jsonb` meets in a row
    /// of one of `tables`: a column's type, or what it is built from (array elements, a domain's base
    /// type, a composite's fields, recursively). `to_jsonb` converts a value of a non-built-in scalar
    /// type through its cast to json when one exists (jsonb.c, `JSONBTYPE_JSONCAST`), so inside the
    /// SECURITY DEFINER capture function that cast's function runs as the audit owner. Every column
    /// counts, excluded ones too: the row is converted whole before they are removed.
    static func riskyJSONCasts(tables: [Int64]) -> PostgresQuery {
        """
        WITH RECURSIVE cols AS (
            SELECT a.attrelid AS rel, a.attname::text AS col, a.atttypid AS typ
            FROM pg_attribute a WHERE a.attrelid = ANY(\(tables)::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
          UNION
            SELECT cols.rel, cols.col, x.typ
            FROM cols JOIN pg_type t ON t.oid = cols.typ
            CROSS JOIN LATERAL (
                SELECT t.typelem WHERE t.typelem <> 0
                UNION ALL SELECT t.typbasetype WHERE t.typbasetype <> 0
                UNION ALL SELECT f.atttypid FROM pg_attribute f
                          WHERE t.typrelid <> 0 AND f.attrelid = t.typrelid AND f.attnum > 0 AND NOT f.attisdropped
            ) AS x(typ)
        )
        SELECT DISTINCT format('%s.%I', cols.rel::regclass, cols.col) AS column_name, c.castsource::regtype::text AS type_name,
               c.castfunc::regprocedure::text AS function_name,
               format('%s → %s via %s owned by %s', c.castsource::regtype, c.casttarget::regtype, c.castfunc::regprocedure, r.rolname) AS cast_text
        FROM cols JOIN pg_cast c ON c.castsource = cols.typ AND c.casttarget = 'pg_catalog.json'::pg_catalog.regtype
        JOIN pg_type st ON st.oid = c.castsource
        JOIN pg_proc p ON p.oid = c.castfunc JOIN pg_roles r ON r.oid = p.proowner
        WHERE c.castfunc <> 0 AND NOT r.rolsuper
          -- What to_jsonb looks a cast up for: a type that is not built in (FirstNormalObjectId), not a
          -- domain (it uses the base type), not a composite and not a true array (converted field by
          -- field, element by element).
          AND c.castsource >= 16384 AND st.typtype NOT IN ('d', 'c', 'p')
          AND NOT (st.typelem <> 0 AND st.typsubscript = 'pg_catalog.array_subscript_handler'::pg_catalog.regproc)
        ORDER BY 1, 4
        """
    }

    /// Constraints older versions put on audit.log that cost every insert (see ``tables``).
    static let droppedLogConstraints = ["log_operation_values", "log_pkey"]

    /// Ownership and EXECUTE of the functions (nobody calls them directly; triggers do not check EXECUTE).
    static let functionPrivileges = """
        REVOKE ALL ON FUNCTION audit.capture_truncate(), audit.reject_change() FROM PUBLIC;
        """

    static let guardTriggers = """
        CREATE OR REPLACE TRIGGER audit_guard_row BEFORE UPDATE OR DELETE ON audit.log
            FOR EACH ROW EXECUTE FUNCTION audit.reject_change();
        CREATE OR REPLACE TRIGGER audit_guard_truncate BEFORE TRUNCATE ON audit.log
            FOR EACH STATEMENT EXECUTE FUNCTION audit.reject_change();
        """

    /// The statement-level TRUNCATE guard on one partition (row triggers are cloned to partitions,
    /// statement triggers are not: a TRUNCATE aimed at a partition would bypass the parent's).
    static func partitionGuard(_ partition: String) -> String {
        "CREATE OR REPLACE TRIGGER audit_guard_truncate BEFORE TRUNCATE ON audit.\(quote(partition)) FOR EACH STATEMENT EXECUTE FUNCTION audit.reject_change();"
    }

    /// `log_y2025m01`: the partition holding one calendar month (UTC).
    static func partitionName(year: Int, month: Int) -> String {
        String(format: "log_y%04dm%02d", year, month)
    }

    /// The calendar month after (`year`, `month`): a monthly partition's upper bound.
    static func nextMonth(_ year: Int, _ month: Int) -> (Int, Int) {
        month == 12 ? (year + 1, 1) : (year, month + 1)
    }

    static func createPartition(year: Int, month: Int) -> String {
        let next = nextMonth(year, month)
        let from = String(format: "%04d-%02d-01 00:00:00+00", year, month)
        let to = String(format: "%04d-%02d-01 00:00:00+00", next.0, next.1)
        return """
            CREATE TABLE IF NOT EXISTS audit.\(quote(partitionName(year: year, month: month))) PARTITION OF audit.log
                FOR VALUES FROM ('\(from)') TO ('\(to)')
            """
    }

    /// Parses `log_y2025m01` → (2025, 1).
    static func parsePartitionName(_ name: String) -> (year: Int, month: Int)? {
        guard name.count == 12, name.hasPrefix("log_y"), let y = Int(name.dropFirst(5).prefix(4)),
            name.dropFirst(9).first == "m", let m = Int(name.suffix(2)), (1...12).contains(m)
        else { return nil }
        return (y, m)
    }
}
