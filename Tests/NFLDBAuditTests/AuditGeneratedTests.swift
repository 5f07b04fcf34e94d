import Foundation
import Synchronization
import NFLDBCore
import NFLDBPostgres
import NFLDBTestSupport
import Testing

@testable import NFLDBAudit

/// Issue 16: the per-table generated capture functions.
@Suite("generated audit functions against a real server")
struct AuditGeneratedTests {
    @Test("a column added, dropped or renamed after install: status names it and the fix (exit 1), the printed fix (install again) makes it healthy and captures the new column")
    func columnChangesAfterInstall() throws {
        try AuditWorld.with(roles: false) { world in
            let admin = try world.admin()
            defer { admin.close() }
            try admin.runScript(unsafeSQL: """
                CREATE TABLE nfl.r (id int PRIMARY KEY, v int, w text);
                CREATE TABLE nfl.s (id int PRIMARY KEY, v int, w text);
                """)
            _ = try world.withInstaller { installer, _ in try installer.install(tables: ["nfl.r"], mode: .row) }
            _ = try world.withInstaller { installer, _ in try installer.install(tables: ["nfl.s"], mode: .statement) }
            #expect(try world.withInstaller { installer, _ in try installer.status() }.healthy)
            func problems(_ table: String) throws -> String {
                try world.withInstaller { installer, _ in try installer.status() }.tables.first { $0.table == table }?.problems.joined(separator: " | ") ?? ""
            }
            func status() throws -> ProcessResult {
                try CLIRunner.run(["audit", "status", "--owner-role", world.owner, "--dsn", world.db.dsn])
            }
            let oidR = try admin.query("SELECT 'nfl.r'::regclass::oid::int8").scalar(Int64.self)

            // ADD COLUMN: writes still work, but an UPDATE of only the new column is not logged until install runs again.
            try admin.runScript(unsafeSQL: "ALTER TABLE nfl.r ADD COLUMN extra text; ALTER TABLE nfl.s ADD COLUMN extra text")
            let added = try problems("nfl.r")
            #expect(added.contains("columns changed since install (added: extra)"), "\(added)")
            #expect(added.contains("capture_row_\(oidR)") && added.contains("nfldb audit install --table nfl.r"), "\(added)")
            #expect(try problems("nfl.s").contains("columns changed since install (added: extra)"))
            var cli = try status()
            #expect(cli.status == 1, "\(cli.standardOutput)")
            #expect(cli.standardOutput.contains("added: extra"), "\(cli.standardOutput)")
            try admin.runScript(unsafeSQL: "INSERT INTO nfl.r VALUES (1, 1, 'a', 'x'); UPDATE nfl.r SET extra = 'y'")
            #expect(try admin.query("SELECT count(*) FROM audit.log WHERE table_name = 'r' AND operation = 'UPDATE'").scalar(Int.self) == 0,
                    "the stale function does not see the new column")

            // The printed fix, run in that state: install again regenerates the functions; status is clean.
            let fixed = try CLIRunner.run(["audit", "install", "--table", "nfl.r", "--table", "nfl.s", "--owner-role", world.owner, "--dsn", world.db.dsn])
            #expect(fixed.status == 0, "\(fixed.standardError)")
            #expect(fixed.standardOutput.contains("updated"), "\(fixed.standardOutput)")
            cli = try status()
            #expect(cli.status == 0, "\(cli.standardOutput)")
            try admin.runScript(unsafeSQL: "UPDATE nfl.r SET extra = 'z'; INSERT INTO nfl.s VALUES (1, 1, 'a', 'x'); UPDATE nfl.s SET extra = 'z'")
            let changed = try admin.query("""
                SELECT string_agg(changed::text, ' ' ORDER BY table_name) FROM audit.log WHERE operation = 'UPDATE'
                """).scalar(String.self)
            #expect(changed == #"{"extra": "z"} {"extra": "z"}"#)

            // DROP COLUMN and RENAME COLUMN: the stale function fails every write (fail closed), status says so and why.
            try admin.runScript(unsafeSQL: "ALTER TABLE nfl.r DROP COLUMN w; ALTER TABLE nfl.s RENAME COLUMN w TO w2")
            let dropped = try problems("nfl.r")
            #expect(dropped.contains("dropped or renamed: w") && dropped.contains("every write to it fails"), "\(dropped)")
            let renamed = try problems("nfl.s")
            #expect(renamed.contains("added: w2; dropped or renamed: w"), "\(renamed)")
            #expect(throws: PostgresError.self) { try admin.execute("UPDATE nfl.r SET v = 2") }
            #expect(throws: PostgresError.self) { try admin.execute("UPDATE nfl.s SET v = 2") }
            _ = try world.withInstaller { installer, _ in try installer.install(tables: ["nfl.r", "nfl.s"]) }
            #expect(try world.withInstaller { installer, _ in try installer.status() }.healthy)
            try admin.runScript(unsafeSQL: "UPDATE nfl.r SET v = 2; UPDATE nfl.s SET w2 = 'b'")
            let after = try admin.query("""
                SELECT string_agg(changed::text, ' ' ORDER BY table_name) FROM audit.log WHERE operation = 'UPDATE' AND changed ?| ARRAY['v', 'w2']
                """).scalar(String.self)
            #expect(after == #"{"v": 2} {"w2": "b"}"#)

            // A hand edit of the generated body is reported too.
            try admin.runScript(unsafeSQL: "CREATE OR REPLACE FUNCTION audit.capture_row_\(oidR)() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$ BEGIN RETURN NULL; END $$")
            #expect(try problems("nfl.r").contains("differs from what install generates"))
            #expect(try world.withInstaller { installer, _ in try installer.install(tables: ["nfl.r"]) }.first?.action == "updated")
            #expect(try problems("nfl.r").isEmpty)
            // … and so are a weakened or re-owned function; install takes it back.
            try admin.runScript(unsafeSQL: "ALTER FUNCTION audit.capture_row_\(oidR)() SECURITY INVOKER; ALTER FUNCTION audit.capture_row_\(oidR)() OWNER TO CURRENT_USER")
            let weakened = try problems("nfl.r")
            #expect(weakened.contains("is not SECURITY DEFINER") && weakened.contains("is owned by"), "\(weakened)")
            let retaken = try world.withInstaller { installer, _ in try installer.install(tables: ["nfl.r"]) }
            #expect(retaken.first?.notes.contains { $0.contains("given back to \(world.owner)") } == true, "\(retaken.first?.notes ?? [])")
            #expect(try problems("nfl.r").isEmpty)

            // Switching modes replaces the function; remove drops it.
            _ = try world.withInstaller { installer, _ in try installer.install(tables: ["nfl.r"], mode: .statement) }
            #expect(try admin.query("SELECT count(*) FROM pg_proc WHERE proname = \("capture_row_\(oidR)")").scalar(Int.self) == 0)
            #expect(try admin.query("SELECT count(*) FROM pg_proc WHERE proname = \("capture_statement_\(oidR)")").scalar(Int.self) == 1)
            _ = try world.withInstaller { installer, _ in try installer.remove(tables: ["nfl.r"]) }
            #expect(try admin.query("SELECT count(*) FROM pg_proc WHERE proname ~ \("_\(oidR)$")").scalar(Int.self) == 0)
        }
    }

    @Test("hostile identifiers: schema, table and column names with quotes, spaces, uppercase, a dollar-quote tag and a backslash are captured in both modes")
    func hostileIdentifiers() throws {
        try AuditWorld.with(roles: false) { world in
            let admin = try world.admin()
            defer { admin.close() }
            try admin.runScript(unsafeSQL: #"""
                CREATE SCHEMA "Odd ""Schema""";
                CREATE TABLE "Odd ""Schema""".";DROP TABLE x;--" ("Key Col" int, "it's" text, "x$audit$y" int, "a\b" text, "UPPER" int,
                    PRIMARY KEY ("Key Col", "it's"));
                CREATE TABLE "Odd ""Schema"""."Stmt Table" ("Key Col" int PRIMARY KEY, "it's" text, "x$audit$y" int);
                """#)
            let results = try world.withInstaller { installer, _ in
                try installer.install(tables: [#"Odd "Schema".;DROP TABLE x;--"#], mode: .row, excludeColumns: ["UPPER"])
                    + installer.install(tables: [#"Odd "Schema".Stmt Table"#], mode: .statement)
            }
            #expect(results.map(\.key.columns) == [["Key Col", "it's"], ["Key Col"]])
            try admin.runScript(unsafeSQL: #"""
                INSERT INTO "Odd ""Schema""".";DROP TABLE x;--" VALUES (1, 'o''k', 3, 'b\s', 9);
                UPDATE "Odd ""Schema""".";DROP TABLE x;--" SET "x$audit$y" = 4, "UPPER" = 10;
                UPDATE "Odd ""Schema""".";DROP TABLE x;--" SET "UPPER" = 11;
                DELETE FROM "Odd ""Schema""".";DROP TABLE x;--";
                INSERT INTO "Odd ""Schema"""."Stmt Table" VALUES (1, 'a', 1), (2, 'b', 2);
                UPDATE "Odd ""Schema"""."Stmt Table" SET "x$audit$y" = "x$audit$y" + 1 WHERE "Key Col" = 1;
                UPDATE "Odd ""Schema"""."Stmt Table" SET "it's" = "it's";
                DELETE FROM "Odd ""Schema"""."Stmt Table" WHERE "Key Col" = 2;
                """#)
            let rows = try admin.query("""
                SELECT table_schema, table_name, operation, row_key::text AS k, coalesce(changed, new_row, old_row)::text AS data
                FROM audit.log ORDER BY id
                """).rows
            #expect(rows.map { $0["operation"] ?? "" } == ["INSERT", "UPDATE", "DELETE", "INSERT", "INSERT", "UPDATE", "DELETE"], "an UPDATE of the excluded column only is skipped")
            #expect(Set(rows.map { $0["table_schema"] ?? "" }) == [#"Odd "Schema""#])
            #expect(rows[0]["table_name"] == ";DROP TABLE x;--" && rows[3]["table_name"] == "Stmt Table")
            #expect(json(rows[0]["k"]) as NSDictionary == ["Key Col": 1, "it's": "o'k"] as NSDictionary)
            #expect(json(rows[0]["data"]) as NSDictionary == ["Key Col": 1, "it's": "o'k", "x$audit$y": 3, #"a\b"#: #"b\s"#] as NSDictionary)
            #expect(json(rows[1]["data"]) as NSDictionary == ["x$audit$y": 4] as NSDictionary)
            #expect(json(rows[5]["data"]) as NSDictionary == ["x$audit$y": 2] as NSDictionary)
            #expect(json(rows[6]["k"]) as NSDictionary == ["Key Col": 2] as NSDictionary)
            let status = try world.withInstaller { installer, _ in try installer.status() }
            #expect(status.healthy, "\(status.tables.flatMap(\.problems))")
            #expect(try admin.query("SELECT count(*) FROM pg_namespace WHERE nspname = 'x'").scalar(Int.self) == 0)
        }
    }

    @Test("UPDATE's changed columns (built from the changed columns only) equal the new row's jsonb minus the unchanged columns, for none to all of 17 columns of many types, NULLs and excluded columns, in both modes; columns named like the statement function's variables")
    func changedColumnsMatchRowDifference() throws {
        try AuditWorld.with(roles: false) { world in
            let admin = try world.admin()
            defer { admin.close() }
            // tx, login, runner, app, client, corr: the statement function's variables (#variable_conflict use_variable).
            let columns = """
                id int PRIMARY KEY, c_int int, c_big bigint, c_num numeric, c_text text, c_bool bool, c_ts timestamptz, c_date date,
                c_json json, c_jsonb jsonb, c_arr int[], c_point point, c_uuid uuid, c_float float8, c_ival interval,
                tx text, login text, runner int, app text, client inet, corr text, skip_me text
                """
            try admin.runScript(unsafeSQL: """
                CREATE TABLE nfl.wide_r (\(columns));
                CREATE TABLE nfl.wide_s (\(columns));
                """)
            _ = try world.withInstaller { installer, _ in try installer.install(tables: ["nfl.wide_r"], mode: .row, excludeColumns: ["skip_me"]) }
            _ = try world.withInstaller { installer, _ in try installer.install(tables: ["nfl.wide_s"], mode: .statement, excludeColumns: ["skip_me"]) }
            // Row i changes column k when bit k of i is set: 2^10 rows cover every subset of the first ten
            // columns; the last seven change together on every third row, to NULL on every fifth.
            let bits = ["c_int", "c_big", "c_num", "c_text", "c_bool", "c_ts", "c_date", "c_json", "c_jsonb", "c_arr"]
            let change: [String: String] = [
                "c_int": "c_int + 1", "c_big": "c_big * 2", "c_num": "c_num + 0.25", "c_text": "c_text || 'é'", "c_bool": "NOT c_bool",
                "c_ts": "c_ts + interval '1 hour'", "c_date": "c_date + 1", "c_json": "json_build_object('k', id + 1)",
                "c_jsonb": "jsonb_build_object('k', id, 'n', NULL)", "c_arr": "c_arr || 3",
            ]
            let rest = ["c_point": "point(id, 1)", "c_uuid": "gen_random_uuid()", "c_float": "c_float / 3", "c_ival": "c_ival * 2",
                        "tx": "tx || '!'", "login": "upper(login)", "runner": "runner + 1"]
            var set = bits.enumerated().map { k, c in "\(c) = CASE WHEN id & \(1 << k) <> 0 THEN \(change[c]!) ELSE \(c) END" }
            set += rest.sorted(by: { $0.key < $1.key }).map { c, e in "\(c) = CASE WHEN id = 0 THEN \(c) WHEN id % 15 = 0 THEN NULL WHEN id % 3 = 0 THEN \(e) ELSE \(c) END" }
            set.append("skip_me = skip_me || 'x'")
            for name in ["wide_r", "wide_s"] {
                let table = "nfl.\(name)"
                try admin.runScript(unsafeSQL: """
                    INSERT INTO \(table) SELECT i, i, i::bigint * 1000000000, i / 7.0, 't' || i, i % 2 = 0, timestamptz '2024-09-05 12:00+00' + i * interval '1 minute',
                        date '2024-09-05' + i, json_build_object('k', i), jsonb_build_object('k', i, 'a', ARRAY[i]), ARRAY[i, 2], point(i, 0),
                        md5(i::text)::uuid, i / 3.0, i * interval '1 second', 'tx' || i, 'login' || i, i, 'app', '127.0.0.1', 'corr', 's'
                    FROM generate_series(0, 1023) i;
                    CREATE TABLE \(table)_before AS SELECT * FROM \(table);
                    UPDATE \(table) SET \(set.joined(separator: ", "));
                    """)
                // The reference: every column (but the excluded one) whose jsonb differs, from the whole rows.
                let mismatches = try admin.query("""
                    WITH expected AS (
                        SELECT b.id, (SELECT jsonb_object_agg(n.key, n.value) FROM jsonb_each(to_jsonb(a) - 'skip_me') n
                                       JOIN jsonb_each(to_jsonb(b) - 'skip_me') o USING (key) WHERE n.value IS DISTINCT FROM o.value) AS changed
                        FROM \(qualified: "nfl", name) a JOIN \(qualified: "nfl", name + "_before") b USING (id)
                    ), logged AS (
                        SELECT (row_key->>'id')::int AS id, changed FROM audit.log
                        WHERE table_oid = \(table)::regclass::oid AND operation = 'UPDATE'
                    )
                    SELECT count(*) FROM expected e FULL JOIN logged l USING (id)
                    WHERE e.changed IS DISTINCT FROM l.changed
                    """).scalar(Int.self)
                #expect(mismatches == 0, "\(table): \(mismatches) rows whose logged changed columns differ from the row difference")
                // Row 0 changes nothing but the excluded column: not logged; the 1023 others are, once each.
                #expect(try admin.query("SELECT count(*) FROM audit.log WHERE table_oid = \(table)::regclass::oid AND operation = 'UPDATE'").scalar(Int.self) == 1023)
                let all = try admin.query("SELECT changed::text FROM audit.log WHERE table_oid = \(table)::regclass::oid AND operation = 'UPDATE' AND (row_key->>'id')::int = 1023").scalar(String.self)
                #expect(json(all).count == 10 + 7, "row 1023 changes every audited column but the key: \(all)")
                let nulls = try admin.query("SELECT changed::text FROM audit.log WHERE table_oid = \(table)::regclass::oid AND operation = 'UPDATE' AND (row_key->>'id')::int = 15").scalar(String.self)
                #expect(nulls.contains(#""tx": null"#) && nulls.contains(#""runner": null"#), "a column changed to NULL is logged as null: \(nulls)")
            }
            let status = try world.withInstaller { installer, _ in try installer.status() }
            #expect(status.healthy, "\(status.tables.flatMap(\.problems))")
        }
    }

    @Test("columns without a default equality (json, point, json[]) are compared as text; no-op updates of them are skipped")
    func typesWithoutEquality() throws {
        try AuditWorld.with(roles: false) { world in
            let admin = try world.admin()
            defer { admin.close() }
            try admin.runScript(unsafeSQL: """
                CREATE TABLE nfl.j (id int PRIMARY KEY, doc json, at point, docs json[], n numeric);
                CREATE TABLE nfl.js (id int PRIMARY KEY, doc json, at point, docs json[], n numeric);
                """)
            let results = try world.withInstaller { installer, _ in
                try installer.install(tables: ["nfl.j"], mode: .row) + installer.install(tables: ["nfl.js"], mode: .statement)
            }
            #expect(results[0].notes.contains { $0.contains("compared as text") && $0.contains("doc, at, docs") }, "\(results[0].notes)")
            for table in ["nfl.j", "nfl.js"] {
                try admin.runScript(unsafeSQL: """
                    INSERT INTO \(table) VALUES (1, '{"a": 1}', '(1,2)', ARRAY['{"b": 2}'::json], 1.0);
                    UPDATE \(table) SET doc = doc, at = at, docs = docs, n = 1.00;
                    UPDATE \(table) SET doc = '{"a": 2}', at = '(3,4)';
                    UPDATE \(table) SET docs = ARRAY['{"b": 3}'::json];
                    """)
            }
            for name in ["j", "js"] {
                let changes = try admin.query("SELECT changed::text AS c FROM audit.log WHERE table_name = \(name) AND operation = 'UPDATE' ORDER BY id").rows.map { json($0["c"]) as NSDictionary }
                #expect(changes == [["doc": ["a": 2], "at": "(3,4)"], ["docs": [["b": 3]]]].map { $0 as NSDictionary }, "\(name): numeric 1.0 → 1.00 is no change")
            }
        }
    }

    @Test("extension types (hstore, citext; a citext key): writes still work in both modes (hstore's `=` is not on the capture function's search_path: it is compared as text; citext as text through its cast), so a case-only citext change is logged")
    func extensionTypes() throws {
        try AuditWorld.with(roles: false) { world in
            let admin = try world.admin()
            defer { admin.close() }
            try admin.runScript(unsafeSQL: """
                CREATE EXTENSION IF NOT EXISTS hstore;
                CREATE EXTENSION IF NOT EXISTS citext;
                CREATE TABLE nfl.x (id citext PRIMARY KEY, h hstore, c citext, n int);
                CREATE TABLE nfl.xs (id citext PRIMARY KEY, h hstore, c citext, n int);
                """)
            let results = try world.withInstaller { installer, _ in
                try installer.install(tables: ["nfl.x"], mode: .row) + installer.install(tables: ["nfl.xs"], mode: .statement)
            }
            #expect(results.allSatisfy { $0.notes.contains { $0.hasSuffix("compared as text (their type has no default equality in pg_catalog): h") } }, "\(results.map(\.notes))")
            for table in ["nfl.x", "nfl.xs"] {
                // Before the fix each UPDATE here failed with "operator does not exist: public.hstore = public.hstore".
                try admin.runScript(unsafeSQL: """
                    INSERT INTO \(table) VALUES ('K1', 'a=>1', 'X', 1), ('K2', 'a=>1', 'Y', 1);
                    UPDATE \(table) SET h = 'a=>2', c = 'x' WHERE id = 'K1';
                    UPDATE \(table) SET c = 'x', h = 'a=>2' WHERE id = 'k1';
                    UPDATE \(table) SET n = 2 WHERE id = 'K2';
                    """)
            }
            for name in ["x", "xs"] {
                let changes = try admin.query("""
                    SELECT row_key::text AS k, changed::text AS c FROM audit.log WHERE table_name = \(name) AND operation = 'UPDATE' ORDER BY id
                    """).rows.map { [json($0["k"]) as NSDictionary, json($0["c"]) as NSDictionary] }
                let expected: [[NSDictionary]] = [[["id": "K1"], ["c": "x", "h": ["a": "2"]]], [["id": "K2"], ["n": 2]]]
                #expect(changes == expected, "\(name): 'X' → 'x' is a change; the same values again are none")
            }
            #expect(try world.withInstaller { installer, _ in try installer.status() }.healthy)
        }
    }

    @Test("the owner of a type in an audited table cannot run code as the audit owner through a cast: CREATE CAST is refused (42501, real login), an existing cast to json whose function a non-superuser owns is refused by install for the tables whose rows meet it and reported by status, the guard's absence too")
    func castsCannotRunAsTheAuditOwner() throws {
        try AuditWorld.with(roles: false) { world in
            let admin = try world.admin()
            defer { admin.close() }
            let (mig, login) = try world.creatingLogin("mig", admin: admin)
            defer { login.close() }
            try login.runScript(unsafeSQL: """
                CREATE TYPE nfl.status AS ENUM ('open', 'closed');
                CREATE TABLE nfl.tickets (id int PRIMARY KEY, st nfl.status, tags nfl.status[]);
                INSERT INTO nfl.tickets VALUES (1, 'open', '{open}');
                """)
            let results = try world.withInstaller { installer, _ in
                try installer.install(tables: ["nfl.tickets"], mode: .row) + installer.install(tables: ["nfl.tickets"], mode: .statement)
            }
            #expect(results.allSatisfy { !$0.notes.contains { $0.hasPrefix("cast ") } }, "no risky cast yet: \(results.map(\.notes))")
            // The attack found by probing: a cast whose function would run as the audit owner on the next write.
            let payload = """
                CREATE FUNCTION nfl.status_json(nfl.status) RETURNS json LANGUAGE plpgsql AS $f$
                BEGIN EXECUTE 'ALTER TABLE audit.log DISABLE TRIGGER audit_guard_row'; RETURN to_json($1::text); END $f$;
                """
            try login.runScript(unsafeSQL: payload)
            expectRefused(login, "CREATE CAST (nfl.status AS json) WITH FUNCTION nfl.status_json(nfl.status)")
            expectRefused(login, "CREATE CAST (nfl.status AS text) WITH INOUT")
            // Writes still work and are logged; the enum (no pg_catalog equality) is compared by its text form.
            try login.runScript(unsafeSQL: "UPDATE nfl.tickets SET st = 'closed'; UPDATE nfl.tickets SET st = 'closed'; UPDATE nfl.tickets SET tags = '{open,closed}'")
            let changes = try admin.query("""
                SELECT string_agg(changed::text, ' ' ORDER BY id) FROM audit.log WHERE table_name = 'tickets' AND operation = 'UPDATE'
                """).scalar(String.self)
            #expect(changes == #"{"st": "closed"} {"tags": ["open", "closed"]}"#)
            #expect(try world.withInstaller { installer, _ in try installer.status() }.healthy)

            // A superuser may create a cast; one whose function a non-superuser owns (made before install,
            // or handed over) is reported, naming the fix.
            try admin.runScript(unsafeSQL: """
                CREATE CAST (nfl.status AS json) WITH FUNCTION nfl.status_json(nfl.status);
                """)
            var status = try world.withInstaller { installer, _ in try installer.status() }
            #expect(!status.healthy)
            #expect(status.logProblems.contains { $0.contains("cast nfl.status → json via nfl.status_json(nfl.status) owned by \(mig)") && $0.contains("OWNER TO") },
                    "\(status.logProblems)")
            #expect(status.logProblems.contains { $0.contains("met by column nfl.tickets.st") }, "\(status.logProblems)")
            // Install refuses a table whose rows would run it (the array column meets it too), and changes nothing.
            try admin.runScript(unsafeSQL: "CREATE TABLE nfl.plain (id int PRIMARY KEY, note text); CREATE TABLE nfl.only_tags (id int PRIMARY KEY, tags nfl.status[])")
            let functionsBefore = try admin.query("SELECT count(*) FROM pg_proc WHERE pronamespace = 'audit'::regnamespace").scalar(Int.self)
            #expect {
                try world.withInstaller { installer, _ in try installer.install(tables: ["nfl.plain", "nfl.only_tags"], mode: .row) }
            } throws: { error in
                let text = String(describing: error)
                return text.contains("cannot audit: cast nfl.status → json via nfl.status_json(nfl.status) owned by \(mig)")
                    && text.contains("met by column nfl.only_tags.tags") && text.contains("nothing was changed") && text.contains("DROP CAST (nfl.status AS json)")
            }
            #expect(try admin.query("SELECT count(*) FROM pg_proc WHERE pronamespace = 'audit'::regnamespace").scalar(Int.self) == functionsBefore)
            #expect(try admin.query("SELECT count(*) FROM audit.audited_tables WHERE table_name IN ('plain', 'only_tags')").scalar(Int.self) == 0)
            // A table that never meets the type installs without a word about the cast.
            let plain = try world.withInstaller { installer, _ in try installer.install(tables: ["nfl.plain"], mode: .row) }
            #expect(!plain[0].notes.contains { $0.contains("cast") }, "\(plain[0].notes)")
            let cli = try CLIRunner.run(["audit", "status", "--owner-role", world.owner, "--dsn", world.db.dsn])
            #expect(cli.status == 1 && cli.standardOutput.contains("nfl.status_json"), "\(cli.standardOutput)")
            // The printed fix, in that state: a superuser owns the function; install and status are clean.
            try admin.runScript(unsafeSQL: "ALTER FUNCTION nfl.status_json(nfl.status) OWNER TO CURRENT_USER")
            _ = try world.withInstaller { installer, _ in try installer.install(tables: ["nfl.only_tags"], mode: .row) }
            #expect(try world.withInstaller { installer, _ in try installer.status() }.healthy)
            try admin.runScript(unsafeSQL: "DROP CAST (nfl.status AS json)")

            // to_jsonb never looks up a cast from a composite (field by field) or a domain (its base
            // type): such casts, even with a writer's function, do not block install.
            try login.runScript(unsafeSQL: """
                CREATE TYPE nfl.pair AS (x int, y text);
                CREATE DOMAIN nfl.dint AS int;
                CREATE FUNCTION nfl.pair_json(nfl.pair) RETURNS json LANGUAGE sql AS $f$ SELECT '1'::json $f$;
                CREATE FUNCTION nfl.dint_json(nfl.dint) RETURNS json LANGUAGE sql AS $f$ SELECT '1'::json $f$;
                CREATE TABLE nfl.shapes (id int PRIMARY KEY, p nfl.pair, d nfl.dint, ps nfl.pair[]);
                """)
            try admin.runScript(unsafeSQL: """
                SET client_min_messages = error;
                CREATE CAST (nfl.pair AS json) WITH FUNCTION nfl.pair_json(nfl.pair);
                CREATE CAST (nfl.dint AS json) WITH FUNCTION nfl.dint_json(nfl.dint);
                """)
            let shapes = try world.withInstaller { installer, _ in try installer.install(tables: ["nfl.shapes"], mode: .row) }
            #expect(shapes[0].action == "installed", "\(shapes)")
            try login.runScript(unsafeSQL: "INSERT INTO nfl.shapes VALUES (1, ROW(2, 'b'), 3, ARRAY[ROW(4, 'd')::nfl.pair])")
            #expect(try admin.query("SELECT new_row::text FROM audit.log WHERE table_name = 'shapes'").scalar(String.self)
                    == #"{"d": 3, "p": {"x": 2, "y": "b"}, "id": 1, "ps": [{"x": 4, "y": "d"}]}"#, "the casts' functions did not run")
            try admin.runScript(unsafeSQL: "DROP CAST (nfl.pair AS json); DROP CAST (nfl.dint AS json)")

            // The guard itself: disabled by a superuser, status says so; install turns it back on.
            try admin.execute("ALTER EVENT TRIGGER \(identifier: "nfldb_audit_cast_guard") DISABLE")
            status = try world.withInstaller { installer, _ in try installer.status() }
            #expect(status.logProblems.contains { $0.contains("nfldb_audit_cast_guard is disabled") && $0.contains("run `nfldb audit install --table nfl.") },
                    "a runnable hint names an audited table: \(status.logProblems)")
            _ = try world.withInstaller { installer, _ in try installer.install(tables: ["nfl.tickets"]) }
            #expect(try world.withInstaller { installer, _ in try installer.status() }.healthy)
            expectRefused(login, "CREATE CAST (nfl.status AS json) WITH FUNCTION nfl.status_json(nfl.status)")
            #expect(try admin.query("SELECT count(*) FROM pg_trigger WHERE tgname = 'audit_guard_row' AND tgenabled = 'O'").scalar(Int.self) >= 1)
        }
    }

    @Test("the table's owner (a real login) rewriting audited rows with ALTER COLUMN … TYPE … USING (no row trigger fires) leaves a REWRITE entry naming the command and the login, per partition under the audited parent; history by key lists it; the owner cannot disable the event trigger (42501); status reports it missing or disabled and install repairs it")
    func tableRewritesAreLogged() throws {
        try AuditWorld.with(roles: false) { world in
            let admin = try world.admin()
            defer { admin.close() }
            let (owner, login) = try world.creatingLogin("owner", admin: admin)
            defer { login.close() }
            try login.runScript(unsafeSQL: """
                CREATE TABLE nfl.coaches (game_id text PRIMARY KEY, away_coach text);
                INSERT INTO nfl.coaches VALUES ('2023_01_DET_KC', 'Dan Campbell'), ('2023_01_BUF_NYJ', 'Sean McDermott');
                CREATE TABLE nfl.drives (season int NOT NULL, id int NOT NULL, yards int, PRIMARY KEY (season, id)) PARTITION BY LIST (season);
                CREATE TABLE nfl.drives_2023 PARTITION OF nfl.drives FOR VALUES IN (2023);
                CREATE TABLE nfl.drives_2024 PARTITION OF nfl.drives FOR VALUES IN (2024);
                INSERT INTO nfl.drives VALUES (2023, 1, 10), (2024, 1, 20);
                CREATE TABLE nfl.scratch (id int PRIMARY KEY, v text);
                """)
            _ = try world.withInstaller { installer, _ in try installer.install(tables: ["nfl.coaches", "nfl.drives"], mode: .row) }
            let before = try admin.query("SELECT count(*) FROM audit.log").scalar(Int.self)

            // The probe's attack: same type, new values, no row trigger.
            try login.execute("ALTER TABLE nfl.coaches ALTER COLUMN away_coach TYPE text USING 'Tampered'")
            #expect(try admin.query("SELECT count(*) FROM nfl.coaches WHERE away_coach = 'Tampered'").scalar(Int.self) == 2)
            let entry = try admin.query("""
                SELECT table_schema || '.' || table_name || ' ' || session_user_name || ' ' || (changed ->> 'command') || ' | ' || (changed ->> 'relation')
                FROM audit.log WHERE operation = 'REWRITE' AND table_name = 'coaches'
                """).rows.compactMap { $0.values.first ?? nil }
            #expect(entry == ["nfl.coaches \(owner) ALTER TABLE nfl.coaches ALTER COLUMN away_coach TYPE text USING 'Tampered' | nfl.coaches"], "\(entry)")
            let history = try world.withInstaller { installer, _ in try installer.history(table: "nfl.coaches", key: #"{"game_id": "2023_01_DET_KC"}"#) }
            #expect(history.map(\.operation) == ["REWRITE"], "the key's history shows the rewrite: \(history.map(\.operation))")

            // A partitioned audited table: one entry per rewritten partition, under the parent's name.
            try login.execute("ALTER TABLE nfl.drives ALTER COLUMN yards TYPE bigint USING yards * 100")
            let partitions = try admin.query("""
                SELECT string_agg(table_name || ':' || (changed ->> 'relation'), ',' ORDER BY changed ->> 'relation')
                FROM audit.log WHERE operation = 'REWRITE' AND table_name = 'drives'
                """).scalar(String.self)
            #expect(partitions == "drives:nfl.drives_2023,drives:nfl.drives_2024", "\(partitions)")
            // A table that is not audited: nothing logged.
            try login.execute("ALTER TABLE nfl.scratch ALTER COLUMN v TYPE varchar(20) USING v || ''")
            #expect(try admin.query("SELECT count(*) FROM audit.log WHERE table_name = 'scratch'").scalar(Int.self) == 0)
            #expect(try admin.query("SELECT count(*) FROM audit.log").scalar(Int.self) == before + 3)

            // The owner cannot switch it off, nor log a forged entry through the function.
            expectRefused(login, "ALTER EVENT TRIGGER nfldb_audit_rewrite_log DISABLE")
            expectRefused(login, "DROP EVENT TRIGGER nfldb_audit_rewrite_log")
            expectRefused(login, "SELECT audit.log_rewrite()")
            // A superuser can: status says so, and the printed fix (install again) repairs it.
            try admin.execute("ALTER EVENT TRIGGER nfldb_audit_rewrite_log DISABLE")
            var status = try world.withInstaller { installer, _ in try installer.status() }
            #expect(status.logProblems.contains { $0.contains("event trigger nfldb_audit_rewrite_log is disabled") && $0.contains("run `nfldb audit install --table nfl.") },
                    "\(status.logProblems)")
            try admin.execute("DROP EVENT TRIGGER nfldb_audit_rewrite_log")
            status = try world.withInstaller { installer, _ in try installer.status() }
            #expect(status.logProblems.contains { $0.contains("event trigger nfldb_audit_rewrite_log is missing") }, "\(status.logProblems)")
            _ = try world.withInstaller { installer, _ in try installer.install(tables: ["nfl.coaches"]) }
            #expect(try world.withInstaller { installer, _ in try installer.status() }.healthy)
            try login.execute("ALTER TABLE nfl.coaches ALTER COLUMN away_coach TYPE text USING 'Again'")
            #expect(try admin.query("SELECT count(*) FROM audit.log WHERE operation = 'REWRITE' AND table_name = 'coaches'").scalar(Int.self) == 2)
        }
    }

    @Test("a partition detached from an audited table: status says it looks detached and its writes are not logged; the printed way out (a superuser re-attaches it) makes status healthy and its writes logged again")
    func detachedPartitionIsNamedAndReattachWorks() throws {
        try AuditWorld.with(roles: false) { world in
            let admin = try world.admin()
            defer { admin.close() }
            try admin.runScript(unsafeSQL: """
                CREATE TABLE nfl.drives (season int NOT NULL, id int NOT NULL, yards int, PRIMARY KEY (season, id)) PARTITION BY LIST (season);
                CREATE TABLE nfl.drives_2023 PARTITION OF nfl.drives FOR VALUES IN (2023);
                CREATE TABLE nfl.drives_2024 PARTITION OF nfl.drives FOR VALUES IN (2024);
                INSERT INTO nfl.drives VALUES (2023, 1, 10), (2024, 1, 20);
                """)
            _ = try world.withInstaller { installer, _ in try installer.install(tables: ["nfl.drives"], mode: .row) }
            #expect(try world.withInstaller { installer, _ in try installer.status() }.healthy)
            try admin.execute("ALTER TABLE nfl.drives DETACH PARTITION nfl.drives_2023")
            try admin.execute("UPDATE nfl.drives_2023 SET yards = 99")
            var status = try world.withInstaller { installer, _ in try installer.status() }
            let detached = status.tables.first { $0.table == "nfl.drives_2023" }
            #expect(detached?.problems.first?.contains("looks detached from an audited partitioned table: its writes since are not logged") == true, "\(status.tables.map(\.problems))")
            #expect(detached?.problems.first?.contains("Re-attach it as a superuser (ALTER TABLE <parent> ATTACH PARTITION nfl.drives_2023 FOR VALUES") == true)
            // The printed way out, as printed.
            try admin.execute("ALTER TABLE nfl.drives ATTACH PARTITION nfl.drives_2023 FOR VALUES IN (2023)")
            status = try world.withInstaller { installer, _ in try installer.status() }
            #expect(status.healthy, "\(status.tables.map(\.problems)) \(status.logProblems)")
            let before = try admin.query("SELECT count(*) FROM audit.log WHERE table_name = 'drives' AND operation = 'UPDATE'").scalar(Int.self)
            try admin.execute("UPDATE nfl.drives SET yards = 5 WHERE season = 2023")
            #expect(try admin.query("SELECT count(*) FROM audit.log WHERE table_name = 'drives' AND operation = 'UPDATE'").scalar(Int.self) == before + 1)
        }
    }

    @Test("xml and a nondeterministic collation are compared by their text forms in both modes: writes work, a case-only change is logged")
    func xmlAndNondeterministicCollation() throws {
        try AuditWorld.with(roles: false) { world in
            let admin = try world.admin()
            defer { admin.close() }
            try admin.runScript(unsafeSQL: """
                CREATE COLLATION nfl.ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
                CREATE TABLE nfl.xr (id int PRIMARY KEY, doc xml, email text COLLATE nfl.ci);
                CREATE TABLE nfl.xst (id text COLLATE nfl.ci PRIMARY KEY, doc xml, email text COLLATE nfl.ci);
                """)
            let results = try world.withInstaller { installer, _ in
                try installer.install(tables: ["nfl.xr"], mode: .row) + installer.install(tables: ["nfl.xst"], mode: .statement)
            }
            #expect(results[0].notes.contains { $0.hasSuffix(": doc, email") }, "\(results[0].notes)")
            #expect(results[1].notes.contains { $0.hasSuffix(": id, doc, email") }, "\(results[1].notes)")
            for (table, key) in [("nfl.xr", "1"), ("nfl.xst", "'k1'")] {
                // Before: "operator does not exist: xml = xml" on every UPDATE; the e-mail's case change was not logged.
                try admin.runScript(unsafeSQL: """
                    INSERT INTO \(table) VALUES (\(key), '<a/>', 'bob@x.com');
                    UPDATE \(table) SET doc = '<b/>';
                    UPDATE \(table) SET email = 'BOB@X.COM';
                    UPDATE \(table) SET email = 'BOB@X.COM', doc = '<b/>';
                    """)
            }
            for name in ["xr", "xst"] {
                let changes = try admin.query("""
                    SELECT string_agg(changed::text, ' ' ORDER BY id) FROM audit.log WHERE table_name = \(name) AND operation = 'UPDATE'
                    """).scalar(String.self)
                #expect(changes == #"{"doc": "<b/>"} {"email": "BOB@X.COM"}"#, "\(name)")
            }
        }
    }

    @Test("a column whose type changed after install (int → json): status names the column and both types, and the printed fix makes UPDATEs work again")
    func columnTypeChangedAfterInstall() throws {
        try AuditWorld.with(roles: false) { world in
            let admin = try world.admin()
            defer { admin.close() }
            try admin.runScript(unsafeSQL: "CREATE TABLE nfl.alt (id int PRIMARY KEY, amount int, note text); INSERT INTO nfl.alt VALUES (1, 5, 'a')")
            _ = try world.withInstaller { installer, _ in try installer.install(tables: ["nfl.alt"], mode: .row) }
            try admin.execute("ALTER TABLE nfl.alt ALTER COLUMN amount TYPE json USING to_json(amount)")
            #expect(throws: PostgresError.self) { try admin.execute("UPDATE nfl.alt SET note = 'b'") }
            let problems = try world.withInstaller { installer, _ in try installer.status() }.tables.first { $0.table == "nfl.alt" }?.problems ?? []
            #expect(problems.contains { $0.contains("column types changed since install: amount (integer → json)") && $0.contains("nfldb audit install --table nfl.alt") },
                    "\(problems)")
            _ = try world.withInstaller { installer, _ in try installer.install(tables: ["nfl.alt"]) }
            try admin.execute("UPDATE nfl.alt SET note = 'b', amount = '[1]'")
            #expect(try admin.query("SELECT changed::text FROM audit.log WHERE table_name = 'alt' AND operation = 'UPDATE'").scalar(String.self)
                    == #"{"note": "b", "amount": [1]}"#)
            #expect(try world.withInstaller { installer, _ in try installer.status() }.healthy)
        }
    }

    @Test("statement mode is refused on a partitioned table (its triggers would miss writes aimed at a partition); the recommendation picks row mode; inheritance children are named until audited")
    func partitionedAndInheritance() throws {
        try AuditWorld.with(roles: false) { world in
            let admin = try world.admin()
            defer { admin.close() }
            try admin.runScript(unsafeSQL: """
                CREATE TABLE nfl.ev (id int, region text, v text, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
                CREATE TABLE nfl.ev_e PARTITION OF nfl.ev FOR VALUES IN ('e');
                CREATE TABLE nfl.inh (id int PRIMARY KEY, v text);
                CREATE TABLE nfl.inh_child (extra int) INHERITS (nfl.inh);
                """)
            let cli = try CLIRunner.run(["audit", "install", "--table", "nfl.ev", "--mode", "statement", "--owner-role", world.owner, "--dsn", world.db.dsn])
            #expect(cli.status == 2, "\(cli.standardOutput) \(cli.standardError)")
            #expect(cli.standardError.contains("statement triggers are not cloned to its partitions") && cli.standardError.contains("--mode row"), "\(cli.standardError)")
            let chosen = try world.withInstaller { installer, _ in try installer.install(tables: ["nfl.ev"]) }
            #expect(chosen[0].mode == .row && chosen[0].notes.contains { $0.contains("partitioned table") }, "\(chosen[0].notes)")
            try admin.runScript(unsafeSQL: "INSERT INTO nfl.ev_e VALUES (1, 'e', 'a'); UPDATE nfl.ev_e SET v = 'b'")
            #expect(try admin.query("SELECT string_agg(operation || ':' || table_name, ',' ORDER BY id) FROM audit.log WHERE table_oid = 'nfl.ev'::regclass").scalar(String.self)
                    == "INSERT:ev,UPDATE:ev", "a write aimed at the partition is logged under the parent (and its oid)")
            // A registry from before the refusal is reported with the fix.
            try admin.execute("UPDATE audit.audited_tables SET mode = 'statement' WHERE table_name = 'ev'")
            var status = try world.withInstaller { installer, _ in try installer.status() }
            #expect(status.tables.first { $0.table == "nfl.ev" }?.problems.contains { $0.contains("--mode row") } == true)
            try admin.execute("UPDATE audit.audited_tables SET mode = 'row' WHERE table_name = 'ev'")

            let parent = try world.withInstaller { installer, _ in try installer.install(tables: ["nfl.inh"], mode: .row) }
            #expect(parent[0].notes.contains { $0.contains("inheritance child nfl.inh_child not audited") }, "\(parent[0].notes)")
            status = try world.withInstaller { installer, _ in try installer.status() }
            #expect(status.tables.first { $0.table == "nfl.inh" }?.problems.contains { $0.contains("nfl.inh_child") } == true)
            _ = try world.withInstaller { installer, _ in try installer.install(tables: ["nfl.inh_child"], mode: .row) }
            status = try world.withInstaller { installer, _ in try installer.status() }
            #expect(status.healthy, "\(status.tables.flatMap(\.problems)) \(status.logProblems)")
            try admin.runScript(unsafeSQL: "INSERT INTO nfl.inh_child VALUES (2, 'c', 7); UPDATE nfl.inh SET v = v || '!'")
            #expect(try admin.query("SELECT string_agg(operation || ':' || table_name, ',' ORDER BY id) FROM audit.log WHERE table_name LIKE 'inh%'").scalar(String.self)
                    == "INSERT:inh_child,UPDATE:inh_child")
        }
    }

    @Test("writers cannot call, replace, re-own or weaken a generated function (SQLSTATE 42501 via SET ROLE), nor make the trigger call their own")
    func writersCannotReplaceGeneratedFunction() throws {
        try AuditWorld.with(roles: false) { world in
            let admin = try world.admin()
            defer { admin.close() }
            let writer = world.name("writer")
            try admin.runScript(unsafeSQL: """
                CREATE TABLE nfl.w (id int PRIMARY KEY, v int);
                CREATE ROLE \(PostgresIdentifier.quote(writer)) NOLOGIN;
                GRANT USAGE ON SCHEMA nfl TO \(PostgresIdentifier.quote(writer));
                GRANT SELECT, INSERT, UPDATE, DELETE ON nfl.w TO \(PostgresIdentifier.quote(writer));
                GRANT USAGE, CREATE ON SCHEMA public TO \(PostgresIdentifier.quote(writer));
                """)
            _ = try world.withInstaller { installer, _ in try installer.install(tables: ["nfl.w"], mode: .row) }
            let oid = try admin.query("SELECT 'nfl.w'::regclass::oid::int8").scalar(Int64.self)
            let function = "audit.capture_row_\(oid)()"
            try admin.execute("SET ROLE \(identifier: writer)")
            try admin.execute("INSERT INTO nfl.w VALUES (1, 1)")  // the writer's own writes are captured
            expectRefused(admin, "CREATE OR REPLACE FUNCTION \(function) RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$")
            expectRefused(admin, "ALTER FUNCTION \(function) OWNER TO \(PostgresIdentifier.quote(writer))")
            expectRefused(admin, "ALTER FUNCTION \(function) SECURITY INVOKER")
            expectRefused(admin, "ALTER FUNCTION \(function) RESET search_path")
            expectRefused(admin, "DROP FUNCTION \(function)")
            expectRefused(admin, "SELECT \(function)")
            expectRefused(admin, "COMMENT ON FUNCTION \(function) IS 'x'")
            // A look-alike in a schema the writer controls is not what the trigger calls.
            try admin.runScript(unsafeSQL: "CREATE FUNCTION public.capture_row_\(oid)() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$")
            expectRefused(admin, "CREATE OR REPLACE TRIGGER zz_audit_row AFTER INSERT OR UPDATE OR DELETE ON nfl.w FOR EACH ROW EXECUTE FUNCTION public.capture_row_\(oid)()")
            try admin.execute("UPDATE nfl.w SET v = 2")
            try admin.execute("RESET ROLE")
            try admin.runScript(unsafeSQL: "DROP FUNCTION public.capture_row_\(oid)()")
            let ops = try admin.query("SELECT string_agg(operation || ':' || session_user_name, ',' ORDER BY id) FROM audit.log WHERE table_name = 'w'").scalar(String.self)
            let me = try admin.query("SELECT session_user::text").scalar(String.self)
            #expect(ops == "INSERT:\(me),UPDATE:\(me)", "the session user is recorded, whatever role was SET")
            let status = try world.withInstaller { installer, _ in try installer.status() }
            #expect(status.healthy, "\(status.tables.flatMap(\.problems)) \(status.logProblems)")
        }
    }

    @Test("a writer whose search_path puts its own =, <>, ||, -, to_jsonb, jsonb_build_object, current_setting and look-alike types first cannot make a capture function (row mode has no SET search_path) run its code as the audit owner; the log stays exact")
    func searchPathHijackRefused() throws {
        try AuditWorld.with(roles: false) { world in
            let admin = try world.admin()
            defer { admin.close() }
            let writerName = world.name("writer"), writer = PostgresIdentifier.quote(writerName)
            try admin.runScript(unsafeSQL: """
                CREATE TABLE nfl.hr (id int PRIMARY KEY, v int, t text, n numeric, p point, secret text);
                CREATE TABLE nfl.hs (id int PRIMARY KEY, v int, t text, n numeric, p point, secret text);
                CREATE ROLE \(writer) NOLOGIN;
                GRANT USAGE ON SCHEMA nfl TO \(writer);
                GRANT SELECT, INSERT, UPDATE, DELETE ON nfl.hr, nfl.hs TO \(writer);
                CREATE SCHEMA evil AUTHORIZATION \(writer);
                """)
            _ = try world.withInstaller { installer, _ in try installer.install(tables: ["nfl.hr"], mode: .row, excludeColumns: ["secret"]) }
            _ = try world.withInstaller { installer, _ in try installer.install(tables: ["nfl.hs"], mode: .statement, excludeColumns: ["secret"]) }
            try admin.execute("SET ROLE \(identifier: writerName)")
            // Everything the writer plants raises when called: if a capture function resolved any of it, the write fails.
            // (USAGE for everyone: a search_path entry the function's owner may not use is skipped, as `public` would not be.)
            try admin.runScript(unsafeSQL: """
                GRANT USAGE ON SCHEMA evil TO PUBLIC;
                CREATE FUNCTION evil.gotcha() RETURNS void LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'hijacked: running as %', current_user; END $$;
                CREATE FUNCTION evil.eq_int(int, int) RETURNS bool LANGUAGE plpgsql AS $$ BEGIN PERFORM evil.gotcha(); RETURN true; END $$;
                CREATE FUNCTION evil.eq_text(text, text) RETURNS bool LANGUAGE plpgsql AS $$ BEGIN PERFORM evil.gotcha(); RETURN true; END $$;
                CREATE FUNCTION evil.eq_numeric(numeric, numeric) RETURNS bool LANGUAGE plpgsql AS $$ BEGIN PERFORM evil.gotcha(); RETURN true; END $$;
                CREATE FUNCTION evil.cat(jsonb, jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$ BEGIN PERFORM evil.gotcha(); RETURN $1; END $$;
                CREATE FUNCTION evil.minus(jsonb, text[]) RETURNS jsonb LANGUAGE plpgsql AS $$ BEGIN PERFORM evil.gotcha(); RETURN $1; END $$;
                CREATE OPERATOR evil.= (LEFTARG = int, RIGHTARG = int, FUNCTION = evil.eq_int);
                CREATE OPERATOR evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.eq_text);
                CREATE OPERATOR evil.<> (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.eq_text);
                CREATE OPERATOR evil.= (LEFTARG = numeric, RIGHTARG = numeric, FUNCTION = evil.eq_numeric);
                CREATE OPERATOR evil.|| (LEFTARG = jsonb, RIGHTARG = jsonb, FUNCTION = evil.cat);
                CREATE OPERATOR evil.- (LEFTARG = jsonb, RIGHTARG = text[], FUNCTION = evil.minus);
                CREATE FUNCTION evil.to_jsonb(nfl.hr) RETURNS jsonb LANGUAGE plpgsql AS $$ BEGIN PERFORM evil.gotcha(); RETURN NULL; END $$;
                CREATE FUNCTION evil.jsonb_build_object(text, int) RETURNS jsonb LANGUAGE plpgsql AS $$ BEGIN PERFORM evil.gotcha(); RETURN NULL; END $$;
                CREATE FUNCTION evil.current_setting(text) RETURNS text LANGUAGE plpgsql AS $$ BEGIN PERFORM evil.gotcha(); RETURN NULL; END $$;
                CREATE FUNCTION evil.current_setting(text, boolean) RETURNS text LANGUAGE plpgsql AS $$ BEGIN PERFORM evil.gotcha(); RETURN NULL; END $$;
                CREATE FUNCTION evil.txid_current() RETURNS bigint LANGUAGE plpgsql AS $$ BEGIN PERFORM evil.gotcha(); RETURN 0; END $$;
                CREATE FUNCTION evil.inet_client_addr() RETURNS inet LANGUAGE plpgsql AS $$ BEGIN PERFORM evil.gotcha(); RETURN NULL; END $$;
                CREATE DOMAIN evil.jsonb AS int;
                CREATE DOMAIN evil.text AS int;
                CREATE DOMAIN evil.inet AS int;
                CREATE DOMAIN evil.oid AS int;
                """)
            // The planted operator really is what an unqualified `=` finds on this search_path.
            try admin.execute("SET search_path = evil, pg_catalog")
            expectRefused(admin, "SELECT 1 = 1", state: "P0001")
            try admin.execute("SET nfldb.correlation_id = 'hijack-test'")
            for table in ["hr", "hs"] {
                // (The writer's own WHERE names pg_catalog's `=`: its plain `=` is the planted one.)
                try admin.runScript(unsafeSQL: """
                    INSERT INTO nfl.\(table) VALUES (1, 1, 'a', 1.5, '(1,1)', 's1'), (2, NULL, NULL, NULL, NULL, NULL);
                    UPDATE nfl.\(table) SET v = 2, t = 'b', p = '(2,2)', secret = 's2' WHERE id OPERATOR(pg_catalog.=) 1;
                    UPDATE nfl.\(table) SET v = 3 WHERE id OPERATOR(pg_catalog.=) 2;
                    UPDATE nfl.\(table) SET secret = 'only excluded' WHERE id OPERATOR(pg_catalog.=) 1;
                    UPDATE nfl.\(table) SET n = n WHERE id OPERATOR(pg_catalog.=) 1;
                    DELETE FROM nfl.\(table) WHERE id OPERATOR(pg_catalog.=) 2;
                    """)
            }
            try admin.execute("RESET search_path")
            try admin.execute("RESET ROLE")
            for table in ["hr", "hs"] {
                let log = try admin.query("""
                    SELECT string_agg(operation || ' ' || row_key::text || ' ' || coalesce(changed::text, '-') || ' ' || coalesce(old_row ? 'secret', false)::text
                                      || ' ' || coalesce(new_row ? 'secret', false)::text || ' ' || correlation_id, ' | ' ORDER BY id)
                    FROM audit.log WHERE table_name = \(table)
                    """).scalar(String.self)
                #expect(log == """
                    INSERT {"id": 1} - false false hijack-test | INSERT {"id": 2} - false false hijack-test | \
                    UPDATE {"id": 1} {"p": "(2,2)", "t": "b", "v": 2} false false hijack-test | UPDATE {"id": 2} {"v": 3} false false hijack-test | \
                    DELETE {"id": 2} - false false hijack-test
                    """, "nfl.\(table)")
            }
            let status = try world.withInstaller { installer, _ in try installer.status() }
            #expect(status.healthy, "\(status.tables.flatMap(\.problems)) \(status.logProblems)")
            // A setting added to the function by hand (here: a search_path the writer controls) is reported.
            let oid = try admin.query("SELECT 'nfl.hr'::regclass::oid::int8").scalar(Int64.self)
            try admin.execute("ALTER FUNCTION audit.\(identifier: "capture_row_\(oid)")() SET search_path = evil, pg_catalog")
            let altered = try world.withInstaller { installer, _ in try installer.status() }
            #expect(altered.tables.first { $0.table == "nfl.hr" }?.problems.contains { $0.contains("has the settings [search_path=evil, pg_catalog], not []") } == true,
                    "\(altered.tables.flatMap(\.problems))")
            #expect(try world.withInstaller { installer, _ in try installer.install(tables: ["nfl.hr"]) }.first?.action == "updated")
            #expect(try admin.query("SELECT proconfig IS NULL FROM pg_proc WHERE proname = \("capture_row_\(oid)")").scalar(Bool.self) == true)
        }
    }

    @Test("an installation of the generic functions (earlier nfldb) is reported, and install moves it to the generated ones and drops the unused generic functions")
    func upgradeFromGenericFunctions() throws {
        try AuditWorld.with(roles: false) { world in
            let admin = try world.admin()
            defer { admin.close() }
            try admin.execute("CREATE TABLE nfl.u (id int PRIMARY KEY, v int)")
            _ = try world.withInstaller { installer, _ in try installer.install(tables: ["nfl.u"], mode: .row) }
            let oid = try admin.query("SELECT 'nfl.u'::regclass::oid::int8").scalar(Int64.self)
            // Simulate the earlier layout: a generic function with trigger arguments, no column list in the registry.
            try admin.runScript(unsafeSQL: """
                SET ROLE \(PostgresIdentifier.quote(world.owner));
                CREATE FUNCTION audit.capture_row() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
                    AS $$ BEGIN RETURN NULL; END $$;
                RESET ROLE;
                CREATE OR REPLACE TRIGGER zz_audit_row AFTER INSERT OR UPDATE OR DELETE ON nfl.u FOR EACH ROW EXECUTE FUNCTION audit.capture_row('1', '', '', 'id');
                DROP FUNCTION audit.capture_row_\(oid)();
                UPDATE audit.audited_tables SET audited_columns = NULL;
                """)
            let problems = try world.withInstaller { installer, _ in try installer.status() }.tables.flatMap(\.problems).joined(separator: " | ")
            #expect(problems.contains("trigger zz_audit_row differs") && problems.contains("capture_row_\(oid)() is missing"), "\(problems)")
            let again = try world.withInstaller { installer, _ in try installer.install(tables: ["nfl.u"]) }
            #expect(again.first?.action == "updated")
            #expect(try admin.query("SELECT count(*) FROM pg_proc WHERE proname = 'capture_row' AND pronamespace = 'audit'::regnamespace").scalar(Int.self) == 0)
            #expect(try world.withInstaller { installer, _ in try installer.status() }.healthy)
            try admin.execute("INSERT INTO nfl.u VALUES (1, 1)")
            #expect(try admin.query("SELECT count(*) FROM audit.log WHERE table_name = 'u'").scalar(Int.self) == 1)
        }
    }
}

@Suite("audit install, remove and prune run one at a time")
struct AuditConcurrencyTests {
    @Test("four concurrent installs (first install: the owner role and schema do not exist yet), then three prunes and two removes at once: all exit 0, one installed, the rest found it done; no 'duplicate key' or 'tuple concurrently updated'")
    func concurrentRuns() throws {
        try AuditWorld.with(roles: false) { world in
            let admin = try world.admin()
            defer { admin.close() }
            try admin.runScript(unsafeSQL: "CREATE TABLE nfl.cc (id int PRIMARY KEY, v text); CREATE TABLE nfl.cc2 (id int PRIMARY KEY, v text)")
            func together(_ count: Int, _ arguments: [String]) -> [ProcessResult] {
                let results = Mutex<[ProcessResult]>([])
                DispatchQueue.concurrentPerform(iterations: count) { _ in
                    if let result = try? CLIRunner.run(arguments + ["--owner-role", world.owner, "--dsn", world.db.dsn]) {
                        results.withLock { $0.append(result) }
                    }
                }
                return results.withLock { $0 }
            }
            let installs = together(4, ["audit", "install", "--table", "nfl.cc", "--table", "nfl.cc2", "--mode", "row"])
            #expect(installs.count == 4)
            for run in installs {
                #expect(run.status == 0, "\(run.standardOutput)\n\(run.standardError)")
                #expect(!run.standardError.contains("duplicate key") && !run.standardError.contains("concurrently"), "\(run.standardError)")
            }
            #expect(installs.filter { $0.standardOutput.contains("installed") }.count == 1, "\(installs.map(\.standardOutput))")
            #expect(try world.withInstaller { installer, _ in try installer.status() }.healthy)
            try admin.execute("INSERT INTO nfl.cc VALUES (1, 'x')")
            #expect(try admin.query("SELECT count(*) FROM audit.log WHERE table_name = 'cc'").scalar(Int.self) == 1)

            for run in together(3, ["audit", "prune", "--older-than", "400d"]) { #expect(run.status == 0, "\(run.standardError)") }
            let removes = together(2, ["audit", "remove", "--table", "nfl.cc"])
            #expect(removes.allSatisfy { $0.status == 0 }, "\(removes.map(\.standardError))")
            #expect(try admin.query("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'nfl.cc'::regclass AND tgname LIKE 'zz\\_audit\\_%'").scalar(Int.self) == 0)
        }
    }
}

@Suite("audit hints for table names that need quoting")
struct AuditQuotedNameTests {
    @Test("a table named with a space or a quote: --table takes the SQL-quoted name; status prints a hint that a shell runs as printed, and it repairs")
    func quotedNames() throws {
        try AuditWorld.with(roles: false) { world in
            let admin = try world.admin()
            defer { admin.close() }
            try admin.runScript(unsafeSQL: #"CREATE TABLE nfl."Odd Name" (id int PRIMARY KEY); CREATE TABLE nfl."it's" (id int PRIMARY KEY)"#)
            for argument in [#"nfl."Odd Name""#, "nfl.it's"] {
                let install = try CLIRunner.run(["audit", "install", "--table", argument, "--mode", "row", "--owner-role", world.owner, "--dsn", world.db.dsn])
                #expect(install.status == 0, "\(argument): \(install.standardError)")
            }
            for (sqlName, printed) in [(#"nfl."Odd Name""#, "'nfl.Odd Name'"), (#"nfl."it's""#, #"'nfl.it'\''s'"#)] {
                try admin.runScript(unsafeSQL: "ALTER TABLE \(sqlName) DISABLE TRIGGER zz_audit_row")
                let status = try CLIRunner.run(["audit", "status", "--owner-role", world.owner, "--dsn", world.db.dsn])
                #expect(status.status == 1, "\(status.standardOutput)")
                let hint = "nfldb audit install --table \(printed)"
                #expect(status.standardOutput.contains(hint), "\(status.standardOutput)")
                // The hint, through a shell, as printed.
                let shell = try ProcessRunner().run(
                    "/bin/sh", ["-c", hint.replacingOccurrences(of: "nfldb ", with: "'\(CLIRunner.binary)' ") + " --owner-role \(world.owner) --dsn '\(world.db.dsn)'"])
                #expect(shell.status == 0, "\(shell.standardError)")
            }
            #expect(try world.withInstaller { installer, _ in try installer.status() }.healthy)
        }
    }
}
