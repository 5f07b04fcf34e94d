import Foundation
import NFLDBCore
import NFLDBPostgres
import NFLDBRoles
import NFLDBTestSupport
import Testing

@testable import NFLDBAudit

@Suite("audit triggers against a real server")
struct AuditIntegrationTests {
    @Test("deploy flow ends in sync; every operation is captured with key, old/new/changed rows and who did it (text key and composite key)")
    func capturesEveryOperation() throws {
        try AuditWorld.with { world in
            let results = try world.withInstaller { installer, _ in
                try installer.install(tables: ["games", "nfl.plays", "weather"], excludeColumns: ["loaded_at"])
            }
            #expect(results.map(\.action) == ["installed", "installed", "installed"])
            #expect(results[0].key.columns == ["game_id"])
            #expect(results[1].key.columns == ["game_id", "play_id", "season"])
            #expect(results[1].partitions == 4)
            #expect(results[2].excludedColumns == ["loaded_at"])
            // The roles spec grants audit reading to the admin; after audit install the whole spec is in sync.
            try world.applyRoles()
            let plan = try world.planRoles()
            #expect(plan.inSync, "\(plan.renderText())")

            let admin = try world.admin()
            defer { admin.close() }
            try world.seed(admin)
            let loader = try world.login("nfl_loader", application: "nfldb-etl")
            defer { loader.close() }
            try loader.withTransaction {
                try loader.execute("SET LOCAL nfldb.correlation_id = 'corr-42'")
                try loader.runScript(unsafeSQL: PlatformRows.gameInsert("2024_01_BAL_KC"))
                try loader.execute("INSERT INTO nfl.plays (game_id, play_id, season, play_type, yards_gained) VALUES ('2024_01_BAL_KC', 10, 2024, 'pass', 7)")
                try loader.execute("INSERT INTO nfl.weather (game_id, source, temp_f) VALUES ('2024_01_BAL_KC', 'api', 70.0)")
            }
            try loader.execute("UPDATE nfl.games SET away_score = 20, home_score = 27, result = 7, total = 47, overtime = false")
            try loader.execute("UPDATE nfl.games SET away_score = 20")  // no-op: nothing logged
            try loader.execute("UPDATE nfl.plays SET yards_gained = 12 WHERE play_id = 10")
            try loader.execute("UPDATE nfl.weather SET loaded_at = now() + interval '1 hour'")  // excluded column only
            let dba = try world.login("nfl_dba")
            defer { dba.close() }
            try dba.execute("DELETE FROM nfl.plays WHERE play_id = 10")
            try dba.execute("DELETE FROM nfl.weather")
            try dba.execute("TRUNCATE nfl.plays")

            let games = try world.entries(admin, table: "games")
            #expect(games.map { $0["operation"] } == ["INSERT", "UPDATE"])
            let insert = games[0]
            #expect(json(insert["row_key"]) as NSDictionary == ["game_id": "2024_01_BAL_KC"] as NSDictionary)
            #expect(json(insert["new_row"])["home_coach"] as? String == "Andy Reid")
            #expect(insert["old_row"] == nil && insert["changed"] == nil)
            #expect(insert["session_user_name"] == world.name("nfl_loader"))
            #expect(insert["current_user_name"] == world.owner, "inside the SECURITY DEFINER function")
            #expect(insert["application_name"] == "nfldb-etl")
            #expect(insert["client_addr"] == "127.0.0.1")
            #expect(insert["correlation_id"] == "corr-42")
            let update = games[1]
            #expect(json(update["changed"]) as NSDictionary == ["away_score": 20, "home_score": 27, "result": 7, "total": 47, "overtime": false] as NSDictionary)
            #expect(json(update["old_row"])["away_score"] is NSNull)
            #expect(json(update["old_row"])["game_id"] as? String == "2024_01_BAL_KC")
            #expect(update["new_row"] == nil)
            #expect(update["correlation_id"] == nil)

            let plays = try world.entries(admin, table: "plays")
            #expect(plays.map { $0["operation"] } == ["INSERT", "UPDATE", "DELETE", "TRUNCATE"])
            #expect(json(plays[0]["row_key"]) as NSDictionary == ["game_id": "2024_01_BAL_KC", "play_id": 10, "season": 2024] as NSDictionary)
            #expect(plays[0]["txid"] == insert["txid"], "same transaction")
            #expect(json(plays[1]["changed"]) as NSDictionary == ["yards_gained": 12] as NSDictionary)
            #expect(json(plays[1]["old_row"])["yards_gained"] as? Int == 7)
            #expect(json(plays[2]["old_row"])["yards_gained"] as? Int == 12)
            #expect(plays[2]["session_user_name"] == world.name("nfl_dba"))
            #expect(plays[3]["row_key"] == nil)
            // The TRUNCATE of the parent also truncates (and logs) each partition.
            #expect(try admin.query("SELECT count(*) FROM audit.log WHERE operation = 'TRUNCATE' AND table_name LIKE 'plays\\_%'").scalar(Int.self) == 4)

            let weather = try world.entries(admin, table: "weather")
            #expect(weather.map { $0["operation"] } == ["INSERT", "DELETE"], "an UPDATE of excluded columns only is not logged")
            #expect(json(weather[0]["new_row"])["loaded_at"] == nil)
            #expect(json(weather[0]["new_row"])["temp_f"] as? Double == 70.0)

            // The CLI prints the history of one row.
            let log = try CLIRunner.run(["audit", "log", "--table", "games", "--key", #"{"game_id":"2024_01_BAL_KC"}"#, "--dsn", world.db.dsn])
            #expect(log.status == 0, "\(log.standardError)")
            #expect(log.standardOutput.contains("INSERT   nfl.games"))
            #expect(log.standardOutput.contains("away_score: null → 20"))
            #expect(log.standardOutput.contains("by \(world.name("nfl_loader")) via nfldb-etl from 127.0.0.1"))
            #expect(log.standardOutput.contains("correlation corr-42"))

            // Ages past what the log can hold, and a key no entry can hold: answers or usage errors, not SQL errors.
            let all = try CLIRunner.run(["audit", "log", "--table", "games", "--since", "99999999999d", "--dsn", world.db.dsn])
            #expect(all.status == 0 && all.standardOutput.contains("INSERT   nfl.games"), "\(all.standardError)")
            let prune = try CLIRunner.run(["audit", "prune", "--older-than", "1000000000d", "--dry-run", "--owner-role", world.owner, "--dsn", world.db.dsn])
            #expect(prune.status == 2 && prune.standardError.contains("more than 1,000 years") && !prune.standardError.contains("out of range"),
                    "\(prune.standardError)")
            let nul = try CLIRunner.run(["audit", "log", "--table", "games", "--key", #"{"game_id":"\u0000"}"#, "--dsn", world.db.dsn])
            #expect(nul.status == 2 && nul.standardError.contains("\\u0000"), "\(nul.standardError)")
        }
    }

    @Test("the ETL role cannot read, forge, erase or switch off the audit trail; even a superuser cannot rewrite it")
    func logIsTamperResistant() throws {
        try AuditWorld.with { world in
            try world.withInstaller { installer, _ in _ = try installer.install(tables: ["nfl.games"]) }
            try world.applyRoles()
            let admin = try world.admin()
            defer { admin.close() }
            try world.seed(admin)
            try admin.runScript(unsafeSQL: PlatformRows.gameInsert("2024_01_BAL_KC"))
            let partition = try installerPartitions(admin).first { $0.hasPrefix("log_y") } ?? "log_default"

            let loader = try world.login("nfl_loader")
            defer { loader.close() }
            expectRefused(loader, "SELECT * FROM audit.log")
            expectRefused(loader, "INSERT INTO audit.log (table_oid, table_schema, table_name, operation, txid, session_user_name, current_user_name) VALUES (1, 'nfl', 'games', 'DELETE', 1, 'x', 'y')")
            expectRefused(loader, "UPDATE audit.log SET session_user_name = 'nobody'")
            expectRefused(loader, "DELETE FROM audit.log")
            expectRefused(loader, "TRUNCATE audit.log")
            expectRefused(loader, "TRUNCATE audit.\(partition)")
            expectRefused(loader, "DELETE FROM audit.log_default")
            expectRefused(loader, "ALTER TABLE nfl.games DISABLE TRIGGER zz_audit_row")
            expectRefused(loader, "DROP TRIGGER zz_audit_row ON nfl.games")
            expectRefused(loader, "SET session_replication_role = replica")
            expectRefused(loader, "SELECT audit.capture_truncate()")
            expectRefused(loader, "SET ROLE \(world.owner)")

            // The admin may read the trail (spec grant) but not change it.
            let dba = try world.login("nfl_dba")
            defer { dba.close() }
            #expect(try dba.query("SELECT count(*) FROM audit.log").scalar(Int.self) == 1)
            expectRefused(dba, "DELETE FROM audit.log")

            // Guards stop even a superuser, on the parent and on each partition.
            expectRefused(admin, "DELETE FROM audit.log")
            expectRefused(admin, "UPDATE audit.log SET session_user_name = 'x'")
            expectRefused(admin, "TRUNCATE audit.log")
            expectRefused(admin, "TRUNCATE audit.\(partition)")
            expectRefused(admin, "TRUNCATE audit.log_default")
            expectRefused(admin, "SET nfldb.audit_prune = 'on'; DELETE FROM audit.log")
            try admin.execute("RESET nfldb.audit_prune")
            #expect(try admin.query("SELECT count(*) FROM audit.log").scalar(Int.self) == 1)
            let status = try world.withInstaller { installer, _ in try installer.status() }
            #expect(status.healthy, "\(status.logProblems) \(status.tables.flatMap(\.problems))")
        }
    }

    @Test("statement mode: one entry per row for bulk statements, UPDATE paired on the key with =, no-op rows skipped")
    func statementMode() throws {
        try AuditWorld.with(roles: false) { world in
            let admin = try world.admin()
            defer { admin.close() }
            try admin.execute("CREATE TABLE nfl.bulk (id int PRIMARY KEY, v int NOT NULL, note text, noise timestamptz DEFAULT now())")
            let result = try world.withInstaller { installer, _ in
                try installer.install(tables: ["nfl.bulk"], mode: .statement, excludeColumns: ["noise"])
            }
            #expect(result.first?.mode == .statement)
            let triggers = try admin.query("SELECT tgname FROM pg_trigger WHERE tgrelid = 'nfl.bulk'::regclass ORDER BY 1").rows.compactMap { $0["tgname"] }
            #expect(triggers == ["zz_audit_delete", "zz_audit_insert", "zz_audit_truncate", "zz_audit_update"])
            try admin.execute("INSERT INTO nfl.bulk (id, v, note) SELECT i, i, 'n' || i FROM generate_series(1, 200) i")
            try admin.execute("UPDATE nfl.bulk SET v = v + 1 WHERE id <= 10")
            try admin.execute("UPDATE nfl.bulk SET note = note, noise = now() + interval '1 day'")  // no audited change
            try admin.execute("UPDATE nfl.bulk SET id = 1000 WHERE id = 200")  // key change: unpaired rows
            try admin.execute("DELETE FROM nfl.bulk WHERE id > 190")
            try admin.execute("TRUNCATE nfl.bulk")
            let counts = Dictionary(uniqueKeysWithValues: try admin.query(
                "SELECT operation, count(*)::int AS n FROM audit.log WHERE table_name = 'bulk' GROUP BY 1").rows.map { ($0["operation"] ?? "", try $0.decode("n", as: Int.self)) })
            #expect(counts["INSERT"] == 200)
            #expect(counts["UPDATE"] == 12, "10 paired updates + the key change as an old and a new half")
            #expect(counts["DELETE"] == 10)
            #expect(counts["TRUNCATE"] == 1)
            let paired = try admin.query("""
                SELECT row_key::text AS k, changed::text AS c, (old_row ->> 'v') AS old_v FROM audit.log
                WHERE table_name = 'bulk' AND operation = 'UPDATE' AND row_key = '{"id": 3}'
                """).singleRow()
            #expect(json(paired["c"]) as NSDictionary == ["v": 4] as NSDictionary)
            #expect(paired["old_v"] == "3")
            #expect(try admin.query("SELECT count(*) FROM audit.log WHERE table_name = 'bulk' AND (new_row ? 'noise' OR old_row ? 'noise')").scalar(Int.self) == 0)
            let unpaired = try admin.query("""
                SELECT row_key::text AS k, old_row IS NOT NULL AS has_old, new_row IS NOT NULL AS has_new FROM audit.log
                WHERE table_name = 'bulk' AND operation = 'UPDATE' AND changed IS NULL ORDER BY k
                """).rows
            #expect(unpaired.map { $0["k"] } == [#"{"id": 1000}"#, #"{"id": 200}"#])
            // Row mode on the same table, then back: mode switches replace the triggers.
            let back = try world.withInstaller { installer, _ in try installer.install(tables: ["nfl.bulk"], mode: .row) }
            #expect(back.first?.action == "updated")
            let rowTriggers = try admin.query("SELECT tgname FROM pg_trigger WHERE tgrelid = 'nfl.bulk'::regclass ORDER BY 1").rows.compactMap { $0["tgname"] }
            #expect(rowTriggers == ["zz_audit_row", "zz_audit_truncate"])
        }
    }

    @Test("tables without a primary key: a unique NOT NULL index is used, else the whole row (and statement mode is refused)")
    func keysWithoutPrimaryKey() throws {
        try AuditWorld.with(roles: false) { world in
            let admin = try world.admin()
            defer { admin.close() }
            try admin.runScript(unsafeSQL: """
                CREATE TABLE nfl.by_code (code text NOT NULL, label text, CONSTRAINT by_code_code_key UNIQUE (code));
                CREATE TABLE nfl.loose (a int, b text);
                """)
            let results = try world.withInstaller { installer, _ in try installer.install(tables: ["nfl.by_code", "nfl.loose"]) }
            #expect(results[0].key == AuditKey(columns: ["code"], source: "unique index by_code_code_key"))
            #expect(results[1].key.columns.isEmpty)
            #expect(results[1].notes.contains { $0.contains("whole row is the key") })
            try admin.runScript(unsafeSQL: "INSERT INTO nfl.loose VALUES (1, 'x'); UPDATE nfl.loose SET b = 'y'")
            let loose = try world.entries(admin, table: "loose")
            #expect(json(loose[0]["row_key"]) as NSDictionary == ["a": 1, "b": "x"] as NSDictionary)
            #expect(json(loose[1]["row_key"]) as NSDictionary == ["a": 1, "b": "x"] as NSDictionary, "the key of an UPDATE is the old row")
            #expect(throws: OperatorError.self) {
                try world.withInstaller { installer, _ in try installer.install(tables: ["nfl.loose"], mode: .statement) }
            }
            #expect(throws: OperatorError.self) {
                try world.withInstaller { installer, _ in try installer.install(tables: ["nfl.by_code"], excludeColumns: ["code"]) }
            }
            #expect(throws: OperatorError.self) {
                try world.withInstaller { installer, _ in try installer.install(tables: ["nfl.plays_2024"]) }
            }
        }
    }

    @Test("a trigger narrowed by WHEN or UPDATE OF, a guard with a WHEN (false), an edited reject_change() and a capture_truncate() that logs nothing are reported by status and repaired by install")
    func narrowedTriggersAndTamperedGuards() throws {
        try AuditWorld.with(roles: false) { world in
            let admin = try world.admin()
            defer { admin.close() }
            try admin.runScript(unsafeSQL: "CREATE TABLE nfl.w (id int PRIMARY KEY, a int, b int); CREATE TABLE nfl.c (id int PRIMARY KEY, a int, b int)")
            _ = try world.withInstaller { installer, _ in try installer.install(tables: ["nfl.w", "nfl.c"], mode: .row) }
            #expect(try world.withInstaller { installer, _ in try installer.status() }.healthy)
            let w = try admin.query("SELECT 'nfl.w'::regclass::oid::int8").scalar(Int64.self)
            let c = try admin.query("SELECT 'nfl.c'::regclass::oid::int8").scalar(Int64.self)
            // A superuser narrows the triggers: one login's writes and updates of column a go unaudited.
            try admin.runScript(unsafeSQL: """
                CREATE OR REPLACE TRIGGER zz_audit_row AFTER INSERT OR UPDATE OR DELETE ON nfl.w FOR EACH ROW
                    WHEN (session_user <> 'postgres') EXECUTE FUNCTION audit.capture_row_\(w)();
                CREATE OR REPLACE TRIGGER zz_audit_row AFTER INSERT OR UPDATE OF b OR DELETE ON nfl.c FOR EACH ROW
                    EXECUTE FUNCTION audit.capture_row_\(c)();
                CREATE OR REPLACE TRIGGER audit_guard_row BEFORE UPDATE OR DELETE ON audit.log FOR EACH ROW WHEN (false)
                    EXECUTE FUNCTION audit.reject_change();
                CREATE OR REPLACE FUNCTION audit.reject_change() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN RETURN OLD; END $f$;
                CREATE OR REPLACE FUNCTION audit.capture_truncate() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
                    SET search_path = pg_catalog, pg_temp AS $f$ BEGIN RETURN NULL; END $f$;
                """)
            let status = try world.withInstaller { installer, _ in try installer.status() }
            #expect(!status.healthy)
            func problems(_ table: String) -> String { status.tables.first { $0.table == table }?.problems.joined(separator: " | ") ?? "" }
            #expect(problems("nfl.w").contains("zz_audit_row differs from the installed definition (it fires only WHEN"), "\(problems("nfl.w"))")
            #expect(problems("nfl.c").contains("it fires only for UPDATE OF some columns"), "\(problems("nfl.c"))")
            let log = status.logProblems.joined(separator: " | ")
            #expect(log.contains("guard trigger audit_guard_row on audit.log is missing, does not fire"), "\(log)")
            #expect(log.contains("guard function audit.reject_change() differs from the installed one"), "\(log)")
            #expect(log.contains("function audit.capture_truncate() differs from the installed one (edited: TRUNCATE of an audited table may go unlogged)"), "\(log)")
            let cli = try CLIRunner.run(["audit", "status", "--dsn", world.db.dsn])
            #expect(cli.status == 1, "\(cli.standardOutput)")

            // The printed fix: install replaces the narrowed triggers and restores the guards.
            let repaired = try CLIRunner.run(["audit", "install", "--table", "nfl.w", "--table", "nfl.c", "--dsn", world.db.dsn])
            #expect(repaired.status == 0, "\(repaired.standardError)")
            let healthy = try world.withInstaller { installer, _ in try installer.status() }
            #expect(healthy.healthy, "\(healthy.logProblems) \(healthy.tables.filter { !$0.ok })")
            let before = try admin.query("SELECT count(*) FROM audit.log").scalar(Int.self)
            try admin.runScript(unsafeSQL: "INSERT INTO nfl.w VALUES (1, 1, 1); INSERT INTO nfl.c VALUES (1, 1, 1); UPDATE nfl.c SET a = 2")
            #expect(try admin.query("SELECT count(*) FROM audit.log").scalar(Int.self) == before + 3, "the superuser's insert and the update of a are logged again")
            try admin.execute("TRUNCATE nfl.c")
            #expect(try admin.query("SELECT count(*) FROM audit.log WHERE operation = 'TRUNCATE' AND table_name = 'c'").scalar(Int.self) == 1, "TRUNCATE is logged again")
            #expect(throws: PostgresError.self) { try admin.execute("DELETE FROM audit.log") }
        }
    }

    @Test("install blocked by an open write transaction on the table: after the 5 s lock_timeout it names the blocking pid, changes nothing (exit 1), and works once that transaction ends")
    func lockTimeoutNamesTheHolder() throws {
        try AuditWorld.with(roles: false) { world in
            let admin = try world.admin()
            defer { admin.close() }
            try admin.execute("CREATE TABLE nfl.busy (id int PRIMARY KEY)")
            _ = try world.withInstaller { installer, _ in try installer.install(tables: ["nfl.teams"]) }
            let writer = try world.admin()
            defer { writer.close() }
            try writer.execute("BEGIN")
            try writer.execute("INSERT INTO nfl.busy VALUES (1)")
            let pid = try writer.query("SELECT pg_backend_pid()").scalar(Int.self)
            let blocked = try CLIRunner.run(["audit", "install", "--table", "nfl.busy", "--dsn", world.db.dsn])
            #expect(blocked.status == 1)
            #expect(blocked.standardError.contains("lock timeout"), "\(blocked.standardError)")
            #expect(blocked.standardError.contains("sessions holding locks: pid \(pid) "), "\(blocked.standardError)")
            #expect(blocked.standardError.contains("Nothing was changed"), "\(blocked.standardError)")
            #expect(try admin.query("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'nfl.busy'::regclass").scalar(Int.self) == 0)
            #expect(try admin.query("SELECT count(*) FROM audit.audited_tables WHERE table_name = 'busy'").scalar(Int.self) == 0)
            try writer.execute("COMMIT")
            let again = try CLIRunner.run(["audit", "install", "--table", "nfl.busy", "--dsn", world.db.dsn])
            #expect(again.status == 0, "\(again.standardError)")
            #expect(try admin.query("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'nfl.busy'::regclass AND tgname LIKE 'zz_audit_%'").scalar(Int.self) >= 1)
        }
    }

    @Test("a month's partition missing (its entries went to audit.log_default): status names the month and the fix; prune creates it and moves the entries, none lost; status is healthy again")
    func missingMonthIsAdoptedByPrune() throws {
        try AuditWorld.with(roles: false) { world in
            _ = try world.withInstaller { installer, _ in try installer.install(tables: ["nfl.teams"], mode: .row) }
            let admin = try world.admin()
            defer { admin.close() }
            let month = try admin.query("SELECT to_char(now() AT TIME ZONE 'UTC', '\"log_y\"YYYY\"m\"MM') AS p").scalar(String.self)
            try admin.execute("SET ROLE \(identifier: world.owner)")
            try admin.execute("DROP TABLE audit.\(identifier: month)")
            try admin.execute("RESET ROLE")
            try admin.runScript(unsafeSQL: "INSERT INTO nfl.teams VALUES ('KC', 'Chiefs'), ('BUF', 'Bills'); UPDATE nfl.teams SET team_name = 'Kansas City Chiefs' WHERE team_abbr = 'KC'")
            #expect(try admin.query("SELECT count(*) FROM audit.log_default").scalar(Int.self) == 3)
            let status = try world.withInstaller { installer, _ in try installer.status() }
            let problems = status.logProblems.joined(separator: " | ")
            #expect(problems.contains("no monthly partition for \(month.dropFirst(5).prefix(4))-\(month.suffix(2))"), "\(problems)")
            #expect(problems.contains("3 entries in audit.log_default") && problems.contains("moves them into monthly partitions"), "\(problems)")
            let before = try admin.query("SELECT string_agg(id::text || operation || coalesce(row_key::text, ''), ',' ORDER BY id) FROM audit.log").scalar(String.self)
            let prune = try CLIRunner.run(["audit", "prune", "--older-than", "400d", "--dsn", world.db.dsn])
            #expect(prune.status == 0, "\(prune.standardError)")
            #expect(prune.standardOutput.contains("created \(month)"), "\(prune.standardOutput)")
            #expect(try admin.query("SELECT count(*) FROM audit.log_default").scalar(Int.self) == 0)
            #expect(try admin.query("SELECT count(*) FROM audit.\(identifier: month)").scalar(Int.self) == 3)
            #expect(try admin.query("SELECT string_agg(id::text || operation || coalesce(row_key::text, ''), ',' ORDER BY id) FROM audit.log").scalar(String.self) == before)
            let healthy = try world.withInstaller { installer, _ in try installer.status() }
            #expect(healthy.healthy, "\(healthy.logProblems)")
            // The adopted partition is guarded like the others, and new writes land in it.
            #expect(throws: PostgresError.self) { try admin.execute("DELETE FROM audit.\(identifier: month)") }
            #expect(throws: PostgresError.self) { try admin.execute("TRUNCATE audit.\(identifier: month)") }
            try admin.execute("DELETE FROM nfl.teams WHERE team_abbr = 'BUF'")
            #expect(try admin.query("SELECT count(*) FROM audit.\(identifier: month)").scalar(Int.self) == 4)
        }
    }

    @Test("a custom owner given at the first install is found again: later install, prune and status need no --owner-role; a different one is refused (exit 2)")
    func customOwnerIsRemembered() throws {
        try AuditWorld.with(roles: false) { world in
            let first = try CLIRunner.run(["audit", "install", "--table", "nfl.teams", "--owner-role", world.owner, "--dsn", world.db.dsn])
            #expect(first.status == 0, "\(first.standardError)")
            let later = try CLIRunner.run(["audit", "install", "--table", "nfl.stadiums", "--dsn", world.db.dsn])
            #expect(later.status == 0, "\(later.standardError)")
            let prune = try CLIRunner.run(["audit", "prune", "--older-than", "400d", "--dsn", world.db.dsn])
            #expect(prune.status == 0, "\(prune.standardError)")
            let status = try CLIRunner.run(["audit", "status", "--dsn", world.db.dsn])
            #expect(status.status == 0, "\(status.standardOutput) \(status.standardError)")
            let other = try CLIRunner.run(["audit", "install", "--table", "nfl.games", "--owner-role", "nfl_audit_owner", "--dsn", world.db.dsn])
            #expect(other.status == 2)
            #expect(other.standardError.contains("--owner-role nfl_audit_owner is not the audit schema's owner: schema audit is owned by \(world.owner)"), "\(other.standardError)")
            #expect(other.standardError.contains("Leave --owner-role out"))
        }
    }

    @Test("status flags disabled triggers, re-created and renamed tables and new partitions; install is idempotent; remove keeps the log")
    func statusAndIdempotency() throws {
        try AuditWorld.with(roles: false) { world in
            let admin = try world.admin()
            defer { admin.close() }
            try admin.runScript(unsafeSQL: "CREATE TABLE nfl.scratch (id int PRIMARY KEY, v text); CREATE TABLE nfl.moving (id int PRIMARY KEY)")
            let tables = ["nfl.games", "nfl.weather", "nfl.plays", "nfl.scratch", "nfl.moving"]
            _ = try world.withInstaller { installer, _ in try installer.install(tables: tables) }
            let again = try world.withInstaller { installer, _ in try installer.install(tables: tables) }
            #expect(again.allSatisfy { $0.action == "unchanged" })
            #expect(try world.withInstaller { installer, _ in try installer.status() }.healthy)
            try admin.execute("INSERT INTO nfl.scratch VALUES (1, 'a')")

            try admin.runScript(unsafeSQL: """
                ALTER TABLE nfl.weather DISABLE TRIGGER zz_audit_row;
                DROP TABLE nfl.scratch; CREATE TABLE nfl.scratch (id int PRIMARY KEY, v text);
                ALTER TABLE nfl.moving RENAME TO moved;
                CREATE TABLE nfl.plays_2026 PARTITION OF nfl.plays FOR VALUES FROM (2026) TO (2027);
                """)
            let status = try world.withInstaller { installer, _ in try installer.status() }
            #expect(!status.healthy)
            func problems(_ table: String) -> String { status.tables.first { $0.table == table }?.problems.joined(separator: " | ") ?? "" }
            #expect(problems("nfl.weather").contains("DISABLED"))
            #expect(problems("nfl.scratch").contains("re-created since install"))
            #expect(problems("nfl.scratch").contains("zz_audit_row is missing"))
            #expect(problems("nfl.moving").contains("renamed to nfl.moved"))
            #expect(problems("nfl.plays").contains("plays_2026\" has no TRUNCATE audit trigger"))
            #expect(problems("nfl.games").isEmpty)
            let cli = try CLIRunner.run(["audit", "status", "--owner-role", world.owner, "--dsn", world.db.dsn])
            #expect(cli.status == 1)
            #expect(cli.standardOutput.contains("PROBLEM"))

            // Re-installing repairs every table; the renamed one is registered under its new name.
            let repaired = try world.withInstaller { installer, _ in
                try installer.install(tables: ["nfl.weather", "nfl.scratch", "nfl.plays", "nfl.moved"])
            }
            #expect(repaired.map(\.action) == ["updated", "updated", "updated", "updated"])
            let healthy = try world.withInstaller { installer, _ in try installer.status() }
            #expect(healthy.healthy, "\(healthy.tables.filter { !$0.ok })")
            #expect(healthy.tables.map(\.table).contains("nfl.moved") && !healthy.tables.map(\.table).contains("nfl.moving"))

            // remove drops triggers and forgets the table; the entries stay.
            let before = try admin.query("SELECT count(*) FROM audit.log").scalar(Int.self)
            let removed = try CLIRunner.run(["audit", "remove", "--table", "nfl.scratch", "--owner-role", world.owner, "--dsn", world.db.dsn])
            #expect(removed.status == 0, "\(removed.standardError)")
            #expect(try admin.query("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'nfl.scratch'::regclass").scalar(Int.self) == 0)
            #expect(try admin.query("SELECT count(*) FROM audit.log").scalar(Int.self) == before)
            #expect(before >= 1)
            let ok = try CLIRunner.run(["audit", "status", "--owner-role", world.owner, "--dsn", world.db.dsn])
            #expect(ok.status == 0, "\(ok.standardOutput)")
        }
    }

    @Test("status requires every audit trigger to fire in origin sessions: ENABLE REPLICA and DISABLE are problems (exit 1), ENABLE ALWAYS is fine; install repairs them")
    func replicaTriggersAreProblems() throws {
        try AuditWorld.with(roles: false) { world in
            let admin = try world.admin()
            defer { admin.close() }
            try world.seed(admin)
            try admin.execute("CREATE TABLE nfl.bulk (id int PRIMARY KEY, v int)")
            _ = try world.withInstaller { installer, _ in try installer.install(tables: ["nfl.games", "nfl.plays"]) }
            _ = try world.withInstaller { installer, _ in try installer.install(tables: ["nfl.bulk"], mode: .statement) }
            #expect(try world.withInstaller { installer, _ in try installer.status() }.healthy)
            func problems(_ table: String) throws -> String {
                try world.withInstaller { installer, _ in try installer.status() }.tables.first { $0.table == table }?.problems.joined(separator: " | ") ?? ""
            }
            func cliStatus() throws -> ProcessResult {
                try CLIRunner.run(["audit", "status", "--owner-role", world.owner, "--dsn", world.db.dsn])
            }
            func entries(_ table: String) throws -> Int {
                try admin.query("SELECT count(*) FROM audit.log WHERE table_name = \(table)").scalar(Int.self)
            }

            // ENABLE REPLICA: the trigger no longer fires in ordinary sessions — an INSERT goes unaudited.
            try admin.execute("ALTER TABLE nfl.games ENABLE REPLICA TRIGGER zz_audit_row")
            try admin.execute(PostgresQuery(unsafeSQL: PlatformRows.gameInsert("2024_01_BAL_KC")))
            #expect(try entries("games") == 0, "the replica-only trigger did not fire")
            let replica = try problems("nfl.games")
            #expect(replica.contains("trigger zz_audit_row on \"nfl\".\"games\" is ENABLE REPLICA"), "\(replica)")
            #expect(replica.contains("nfldb audit install --table nfl.games"), "names the fix: \(replica)")
            var cli = try cliStatus()
            #expect(cli.status == 1, "\(cli.standardOutput)")
            #expect(cli.standardOutput.contains("ENABLE REPLICA"))

            // install repairs it, and auditing resumes.
            let repaired = try world.withInstaller { installer, _ in try installer.install(tables: ["nfl.games"]) }
            #expect(repaired.first?.action == "updated")
            #expect(repaired.first?.notes.contains { $0.contains("re-enabled trigger zz_audit_row") } == true)
            #expect(try admin.query("SELECT tgenabled::text FROM pg_trigger WHERE tgrelid = 'nfl.games'::regclass AND tgname = 'zz_audit_row'").scalar(String.self) == "O")
            try admin.execute("UPDATE nfl.games SET away_rest = 8")
            #expect(try entries("games") == 1)
            #expect(try cliStatus().status == 0)

            // DISABLE on a statement-mode trigger, and ENABLE REPLICA on one partition's cloned row trigger.
            try admin.execute("ALTER TABLE nfl.bulk DISABLE TRIGGER zz_audit_update")
            try admin.execute("ALTER TABLE nfl.plays_2024 ENABLE REPLICA TRIGGER zz_audit_row")
            try admin.execute("ALTER TABLE nfl.plays_2023 ENABLE REPLICA TRIGGER zz_audit_truncate")
            #expect(try problems("nfl.bulk").contains("trigger zz_audit_update on \"nfl\".\"bulk\" is DISABLED"))
            let plays = try problems("nfl.plays")
            #expect(plays.contains("trigger zz_audit_row on \"nfl\".\"plays_2024\" is ENABLE REPLICA"), "\(plays)")
            #expect(plays.contains("trigger zz_audit_truncate on \"nfl\".\"plays_2023\" is ENABLE REPLICA"), "\(plays)")
            #expect(try cliStatus().status == 1)
            _ = try world.withInstaller { installer, _ in try installer.install(tables: ["nfl.plays"]) }
            _ = try world.withInstaller { installer, _ in try installer.install(tables: ["nfl.bulk"], mode: .statement) }
            #expect(try admin.query("""
                SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'zz\\_audit\\_%' AND tgenabled NOT IN ('O', 'A')
                """).scalar(Int.self) == 0)
            cli = try cliStatus()
            #expect(cli.status == 0, "\(cli.standardOutput)")

            // ENABLE ALWAYS fires in every session: healthy, and install leaves it alone.
            try admin.execute("ALTER TABLE nfl.games ENABLE ALWAYS TRIGGER zz_audit_row")
            #expect(try problems("nfl.games").isEmpty)
            #expect(try world.withInstaller { installer, _ in try installer.install(tables: ["nfl.games"]) }.first?.action == "unchanged")

            // The log's own guards: a replica-only guard is a problem too, and install repairs it.
            try admin.execute("ALTER TABLE audit.log ENABLE REPLICA TRIGGER audit_guard_truncate")
            let log = try world.withInstaller { installer, _ in try installer.status() }
            #expect(log.logProblems.contains { $0.contains("audit_guard_truncate on audit.log") }, "\(log.logProblems)")
            _ = try world.withInstaller { installer, _ in try installer.install(tables: ["nfl.games"]) }
            let fixed = try world.withInstaller { installer, _ in try installer.status() }
            #expect(fixed.healthy, "\(fixed.logProblems) \(fixed.tables.flatMap(\.problems))")
        }
    }

    @Test("capture paths in both modes: keys of 1, 2, 4 and 5 columns, a table without a key, COPY, DELETE and TRUNCATE")
    func capturePathsInBothModes() throws {
        try AuditWorld.with(roles: false) { world in
            let admin = try world.admin()
            defer { admin.close() }
            try admin.runScript(unsafeSQL: """
                CREATE TABLE nfl.k1r (a int PRIMARY KEY, v text);
                CREATE TABLE nfl.k2s (a int, b text, v text, PRIMARY KEY (a, b));
                CREATE TABLE nfl.k4s (a int, b int, c int, d int, v text, PRIMARY KEY (a, b, c, d));
                CREATE TABLE nfl.k5r (a int, b int, c int, d int, e int, v text, PRIMARY KEY (a, b, c, d, e));
                CREATE TABLE nfl.k5s (a int, b int, c int, d int, e int, v text, PRIMARY KEY (a, b, c, d, e));
                CREATE TABLE nfl.nokey (a int, v text);
                """)
            _ = try world.withInstaller { installer, _ in try installer.install(tables: ["nfl.k1r", "nfl.k5r", "nfl.nokey"], mode: .row) }
            _ = try world.withInstaller { installer, _ in try installer.install(tables: ["nfl.k2s", "nfl.k4s", "nfl.k5s"], mode: .statement) }
            try admin.runScript(unsafeSQL: """
                INSERT INTO nfl.k1r VALUES (1, 'x'), (2, 'y');
                INSERT INTO nfl.k2s VALUES (1, 'p', 'x'), (2, 'q', 'y');
                INSERT INTO nfl.k4s VALUES (1, 2, 3, 4, 'x');
                INSERT INTO nfl.k5r VALUES (1, 2, 3, 4, 5, 'x');
                INSERT INTO nfl.k5s VALUES (1, 2, 3, 4, 5, 'x');
                INSERT INTO nfl.nokey VALUES (1, 'x'), (1, 'x');
                UPDATE nfl.k1r SET v = 'z' WHERE a = 1;
                UPDATE nfl.k2s SET v = 'z';
                UPDATE nfl.k4s SET v = 'z';
                UPDATE nfl.k5r SET v = 'z';
                UPDATE nfl.k5s SET v = 'z';
                UPDATE nfl.nokey SET v = 'z';
                UPDATE nfl.k2s SET v = v;
                """)
            func keys(_ table: String, _ operation: String) throws -> [[String: Any]] {
                try admin.query("SELECT row_key::text AS k FROM audit.log WHERE table_name = \(table) AND operation = \(operation) ORDER BY id")
                    .rows.map { json($0["k"]) }
            }
            #expect(try keys("k1r", "UPDATE").map { $0 as NSDictionary } == [["a": 1] as NSDictionary])
            #expect(try keys("k2s", "UPDATE").map { $0 as NSDictionary } == [["a": 1, "b": "p"], ["a": 2, "b": "q"]].map { $0 as NSDictionary }, "no-op UPDATE skipped")
            #expect(try keys("k4s", "INSERT").map { $0 as NSDictionary } == [["a": 1, "b": 2, "c": 3, "d": 4] as NSDictionary])
            let five = ["a": 1, "b": 2, "c": 3, "d": 4, "e": 5] as NSDictionary
            #expect(try keys("k5r", "INSERT").map { $0 as NSDictionary } == [five], "row mode: keys of more than four columns")
            #expect(try keys("k5r", "UPDATE").map { $0 as NSDictionary } == [five])
            #expect(try keys("k5s", "INSERT").map { $0 as NSDictionary } == [five], "statement mode: keys of more than four columns")
            #expect(try keys("k5s", "UPDATE").map { $0 as NSDictionary } == [five])
            let changed = try admin.query("SELECT changed::text AS c FROM audit.log WHERE table_name = 'k5s' AND operation = 'UPDATE'").scalar(String.self)
            #expect(json(changed) as NSDictionary == ["v": "z"] as NSDictionary)
            // No key: the whole (old) row is the key; two identical rows give two entries.
            #expect(try keys("nokey", "UPDATE").map { $0 as NSDictionary } == [["a": 1, "v": "x"], ["a": 1, "v": "x"]].map { $0 as NSDictionary })
            // Row mode collects the changed columns inside its INSERT: a change to NULL is recorded as
            // null, new_row stays NULL (old_row || changed), an UPDATE of nothing audited is skipped.
            try admin.runScript(unsafeSQL: "UPDATE nfl.k1r SET v = NULL WHERE a = 2; UPDATE nfl.k1r SET v = v; UPDATE nfl.k5r SET e = 6, v = NULL")
            let rowUpdates = try admin.query("""
                SELECT row_key::text AS k, changed::text AS c, old_row ->> 'v' AS old_v, (new_row IS NULL)::text AS n
                  FROM audit.log WHERE table_name IN ('k1r', 'k5r') AND operation = 'UPDATE' ORDER BY id
                """).rows
            #expect(rowUpdates.map { json($0["c"]) as NSDictionary } == [["v": "z"], ["v": "z"], ["v": NSNull()], ["e": 6, "v": NSNull()]].map { $0 as NSDictionary })
            #expect(rowUpdates.map { $0["old_v"] ?? "NULL" } == ["x", "x", "y", "z"])
            #expect(rowUpdates.allSatisfy { $0["n"] == "true" })
            #expect(json(rowUpdates.last?["k"]) as NSDictionary == five, "the key of the old row when the key changes")

            // COPY fires the row trigger per row and the statement trigger once per COPY.
            let copied = try admin.copyIn("COPY nfl.k1r (a, v) FROM STDIN") { writer in
                for i in 10..<15 { try writer.writeTextRow([String(i), "c\(i)"]) }
            }
            #expect(copied == 5)
            _ = try admin.copyIn("COPY nfl.k2s (a, b, v) FROM STDIN") { writer in
                for i in 10..<15 { try writer.writeTextRow([String(i), "b", nil]) }
            }
            #expect(try keys("k1r", "INSERT").count == 7)
            #expect(try keys("k2s", "INSERT").count == 7)
            let copiedRow = try admin.query("SELECT new_row::text AS r FROM audit.log WHERE table_name = 'k2s' AND row_key = '{\"a\": 12, \"b\": \"b\"}'").scalar(String.self)
            #expect(json(copiedRow)["v"] is NSNull)

            // DELETE and TRUNCATE in both modes.
            try admin.runScript(unsafeSQL: "DELETE FROM nfl.k1r WHERE a >= 10; DELETE FROM nfl.k2s WHERE a >= 10; DELETE FROM nfl.nokey; TRUNCATE nfl.k1r, nfl.k2s")
            #expect(try keys("k1r", "DELETE").count == 5)
            #expect(try keys("k2s", "DELETE").count == 5)
            #expect(try keys("nokey", "DELETE").map { $0 as NSDictionary } == [["a": 1, "v": "z"], ["a": 1, "v": "z"]].map { $0 as NSDictionary })
            #expect(try admin.query("SELECT count(*) FROM audit.log WHERE operation = 'TRUNCATE' AND table_name IN ('k1r', 'k2s')").scalar(Int.self) == 2)
        }
    }

    @Test("install without --mode: statement mode for a table written mostly in bulk (pg_stat_user_tables), row mode otherwise, and says why; an audited table keeps its mode")
    func installRecommendsMode() throws {
        try AuditWorld.with(roles: false) { world in
            let admin = try world.admin()
            defer { admin.close() }
            try admin.runScript(unsafeSQL: """
                CREATE TABLE nfl.loaded (id int PRIMARY KEY, v int);
                CREATE TABLE nfl.typed (id int PRIMARY KEY, v int);
                CREATE TABLE nfl.keyless (v int);
                INSERT INTO nfl.loaded SELECT i, i FROM generate_series(1, 150000) i;
                UPDATE nfl.loaded SET v = v + 1;
                DO $$ BEGIN FOR i IN 1..200 LOOP INSERT INTO nfl.typed VALUES (i, i); UPDATE nfl.typed SET v = v + 1 WHERE id = i; END LOOP; END $$;
                INSERT INTO nfl.keyless SELECT i FROM generate_series(1, 150000) i;
                SELECT count(*) FROM nfl.keyless;
                """)
            _ = try admin.query("SELECT pg_stat_force_next_flush()")
            try admin.execute("SELECT 1")  // the flush happens when the backend goes idle after a transaction
            var written = 0
            for _ in 0..<50 {  // statistics reach the shared counters asynchronously
                written = try admin.query("SELECT (n_tup_ins + n_tup_upd)::int FROM pg_stat_user_tables WHERE relid = 'nfl.loaded'::regclass").scalar(Int.self)
                if written >= 300_000 { break }
                _ = try admin.query("SELECT pg_stat_clear_snapshot()")
                Thread.sleep(forTimeInterval: 0.2)
            }
            #expect(written == 300_000)
            let results = try world.withInstaller { installer, _ in try installer.install(tables: ["nfl.loaded", "nfl.typed", "nfl.keyless"]) }
            #expect(results.map(\.mode) == [.statement, .row, .row])
            #expect(results[0].notes.contains { $0.contains("mode statement chosen") && $0.contains("300000 rows written") && $0.contains("mostly in bulk") }, "\(results[0].notes)")
            #expect(results[1].notes.contains { $0.contains("mode row chosen") && $0.contains("too little history") }, "\(results[1].notes)")
            #expect(results[2].notes.contains { $0.contains("no key") }, "\(results[2].notes)")
            // Re-running without --mode keeps each table's mode; --mode changes it.
            let again = try CLIRunner.run(["audit", "install", "--table", "nfl.loaded", "--owner-role", world.owner, "--dsn", world.db.dsn])
            #expect(again.status == 0, "\(again.standardError)")
            #expect(again.standardOutput.contains("statement") && again.standardOutput.contains("unchanged"), "\(again.standardOutput)")
            #expect(again.standardOutput.contains("kept from the existing installation"))
            let switched = try world.withInstaller { installer, _ in try installer.install(tables: ["nfl.loaded"], mode: .row) }
            #expect(switched.first?.mode == .row && switched.first?.action == "updated")
        }
    }

    @Test("install drops the CHECK constraint and primary key older versions put on audit.log (they cost every insert)")
    func installDropsOldLogConstraints() throws {
        try AuditWorld.with(roles: false) { world in
            let admin = try world.admin()
            defer { admin.close() }
            _ = try world.withInstaller { installer, _ in try installer.install(tables: ["nfl.teams"], mode: .row) }
            try admin.runScript(unsafeSQL: """
                ALTER TABLE audit.log ADD CONSTRAINT log_pkey PRIMARY KEY (id, logged_at);
                ALTER TABLE audit.log ADD CONSTRAINT log_operation_values CHECK (operation IN ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE'));
                INSERT INTO nfl.teams VALUES ('KC', 'Chiefs');
                """)
            let again = try world.withInstaller { installer, _ in try installer.install(tables: ["nfl.teams"]) }
            #expect(again.first?.action == "unchanged")
            #expect(try admin.query("SELECT count(*) FROM pg_constraint WHERE conrelid = 'audit.log'::regclass").scalar(Int.self) == 0)
            try admin.execute("UPDATE nfl.teams SET team_name = 'Kansas City Chiefs'")
            #expect(try admin.query("SELECT count(*) FROM audit.log WHERE table_name = 'teams'").scalar(Int.self) == 2)
            let status = try world.withInstaller { installer, _ in try installer.status() }
            #expect(status.healthy, "\(status.logProblems)")
        }
    }

    @Test("prune drops whole monthly partitions past the cutoff and old rows of the default partition, and keeps months ahead")
    func prune() throws {
        try AuditWorld.with(roles: false) { world in
            let install = try CLIRunner.run(
                ["audit", "install", "--all", "--owner-role", world.owner, "--dsn", world.db.dsn], environment: ["NFLDB_AUDIT_TABLES": "nfl.teams"])
            #expect(install.status == 0, "\(install.standardError)")
            #expect(install.standardOutput.contains("nfl.teams") && install.standardOutput.contains("installed"))
            let admin = try world.admin()
            defer { admin.close() }
            try admin.runScript(unsafeSQL: """
                SET ROLE \(world.owner);
                CREATE TABLE audit.log_y2020m01 PARTITION OF audit.log FOR VALUES FROM ('2020-01-01 00:00:00+00') TO ('2020-02-01 00:00:00+00');
                RESET ROLE;
                INSERT INTO audit.log (logged_at, table_oid, table_schema, table_name, operation, txid, session_user_name, current_user_name)
                VALUES ('2020-01-15', 1, 'nfl', 'teams', 'INSERT', 1, 'old', 'old'), ('2019-06-01', 1, 'nfl', 'teams', 'INSERT', 1, 'older', 'older');
                INSERT INTO nfl.teams VALUES ('KC', 'Chiefs');
                """)
            let dry = try world.withInstaller { installer, _ in try installer.prune(olderThan: .seconds(400 * 86400), dryRun: true) }
            #expect(dry.droppedPartitions == ["log_y2020m01"])
            #expect(dry.deletedDefaultRows == 1)
            #expect(try admin.query("SELECT count(*) FROM audit.log").scalar(Int.self) == 3)
            // A retention without a unit (400 would be seconds) or shorter than a day is a typo that would
            // delete recent entries for good: refused with exit 2 before anything is touched.
            for (age, says) in [("400", "has no unit"), (" 30 ", "has no unit"), ("1s", "shorter than one day"), ("23h", "shorter than one day")] {
                let refused = try CLIRunner.run(["audit", "prune", "--older-than", age, "--owner-role", world.owner, "--dsn", world.db.dsn])
                #expect(refused.status == 2, "\(age): \(refused.standardError)")
                #expect(refused.standardError.contains(says), "\(age): \(refused.standardError)")
            }
            #expect(try admin.query("SELECT count(*) FROM audit.log").scalar(Int.self) == 3, "the refused prunes deleted nothing")
            let cli = try CLIRunner.run(["audit", "prune", "--older-than", "400d", "--owner-role", world.owner, "--dsn", world.db.dsn])
            #expect(cli.status == 0, "\(cli.standardError)")
            #expect(cli.standardOutput.contains("dropped 1 partition (log_y2020m01)"))
            #expect(try admin.query("SELECT count(*) FROM audit.log").scalar(Int.self) == 1, "only the recent entry is left")

            // The prune exception covers the DEFAULT partition only: acting as the audit owner with the
            // prune setting on, a DELETE on a monthly partition (named directly or through the parent) is refused.
            let month = try admin.query("SELECT tableoid::regclass::text FROM audit.log").scalar(String.self)
            #expect(month.hasPrefix("audit.log_y"), "the recent entry lives in a monthly partition: \(month)")
            try admin.execute("BEGIN")
            try admin.execute("SET LOCAL ROLE \(identifier: world.owner)")
            try admin.execute("SET LOCAL nfldb.audit_prune = 'on'")
            try admin.execute("SAVEPOINT s")
            expectRefused(admin, "DELETE FROM \(month)")
            try admin.execute("ROLLBACK TO SAVEPOINT s")
            expectRefused(admin, "DELETE FROM audit.log")
            try admin.execute("ROLLBACK TO SAVEPOINT s")
            try admin.execute("""
                INSERT INTO audit.log (logged_at, table_oid, table_schema, table_name, operation, txid, session_user_name, current_user_name)
                VALUES ('2019-01-01', 1, 'nfl', 'teams', 'INSERT', 1, 'old', 'old')
                """)
            try admin.execute("SAVEPOINT t")
            expectRefused(admin, "UPDATE audit.log_default SET table_name = 'x'")
            try admin.execute("ROLLBACK TO SAVEPOINT t")
            #expect(try admin.execute("DELETE FROM audit.log_default") == 1, "the one exception: prune's DELETE on the DEFAULT partition")
            try admin.execute("ROLLBACK")
            #expect(try admin.query("SELECT count(*) FROM audit.log").scalar(Int.self) == 1)
            #expect(try admin.query("SELECT to_regclass('audit.log_y2020m01') IS NULL").scalar(Bool.self))
            let status = try world.withInstaller { installer, _ in try installer.status() }
            #expect(status.healthy, "\(status.logProblems)")
            #expect(status.partitions.count == AuditSQL.monthsAhead + 2, "current month, months ahead, default")
        }
    }

    @Test("generated functions are static SQL specialised to the columns: no EXECUTE, no catalog lookups, no jsonb_each; identifiers quoted")
    func generatedFunctionsAreStatic() {
        let columns = [AuditColumn(name: "id", comparable: true), AuditColumn(name: "v", comparable: true), AuditColumn(name: "p", comparable: false),
                       AuditColumn(name: "x$audit$y", comparable: true), AuditColumn(name: "noise", comparable: true)]
        let row = GeneratedCapture(schema: "nfl", name: "t", oid: 42, isPartitioned: false, mode: .row, columns: columns, keys: ["id"], excluded: ["noise"])
        let statement = GeneratedCapture(schema: "nfl", name: "t", oid: 42, isPartitioned: false, mode: .statement, columns: columns, keys: ["id"], excluded: ["noise"])
        for capture in [row, statement] {
            let body = capture.body.lowercased()
            #expect(!body.contains("execute ") && !body.contains("pg_catalog.pg_") && !body.contains("pg_index") && !body.contains("pg_attribute"))
            #expect(!body.contains("jsonb_each") && !body.contains("tg_argv"))
            // Every name the body resolves is qualified: the caller's search_path cannot reach into it.
            #expect(Self.unqualifiedNames(in: capture.body).isEmpty, "\(Self.unqualifiedNames(in: capture.body))")
            // A column named x$audit$y cannot end the dollar quote.
            #expect(capture.createSQL.contains("AS $audit1$") && capture.createSQL.hasSuffix(";"))
        }
        #expect(row.functionName == "capture_row_42" && statement.functionName == "capture_statement_42")
        // The no-op check compares columns one by one (text form where the type has no equality), before any jsonb is built.
        #expect(row.body.contains("IF NOT (((NOT (NEW.\"id\" OPERATOR(pg_catalog.=) OLD.\"id\")) IS NOT FALSE AND (NEW.\"id\" IS NOT NULL OR OLD.\"id\" IS NOT NULL))"))
        #expect(row.body.contains("NOT (ROW(NEW.\"p\")::pg_catalog.text OPERATOR(pg_catalog.=) ROW(OLD.\"p\")::pg_catalog.text)"), "text forms without a cast (record_out)")
        #expect(!row.body.contains("\"p\"::"))
        #expect(!row.body.contains("NEW.\"noise\" OPERATOR"), "excluded columns are not compared")
        #expect(row.body.contains("pg_catalog.jsonb_build_object('id', OLD.\"id\")"))
        #expect(row.body.contains("(pg_catalog.to_jsonb(OLD) OPERATOR(pg_catalog.-) ARRAY['noise']::pg_catalog.text[])"))
        #expect(statement.body.contains("FROM audit_old_rows AS o FULL JOIN audit_new_rows AS n ON o.\"id\" OPERATOR(pg_catalog.=) n.\"id\""))
        // Row mode sets nothing per call (a GUC save and restore per row); statement mode keeps the fixed path as a second fence.
        #expect(row.createSQL.contains("SECURITY DEFINER AS $audit1$") && row.config.isEmpty)
        #expect(statement.createSQL.contains("SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET jit = off AS"))
        #expect(statement.config == "search_path=pg_catalog, pg_temp,jit=off")
        // The scanner itself finds what it must.
        for hostile in ["x = y", "a || b", "to_jsonb(NEW)", "'{}'::jsonb", "v jsonb;", "nullif(a, b)", "a IS DISTINCT FROM b", "a <> b", "j - ARRAY['x']"] {
            #expect(!Self.unqualifiedNames(in: "DECLARE\n" + hostile + "\nBEGIN END").isEmpty, "\(hostile)")
        }
        #expect(row.textComparedNote?.contains(": p") == true)
        #expect(!AuditSQL.tables.contains("CHECK (operation"))
        #expect(!AuditSQL.tables.contains("PRIMARY KEY (id"))
        #expect(AuditSQL.droppedLogConstraints == ["log_operation_values", "log_pkey"])
        #expect(AuditInstaller.decodeTriggerArgs("1\\000\\000x\\000a b\\000c\\\\d\\000") == ["1", "", "x", "a b", "c\\d"])
    }

    /// Names in a generated body that PostgreSQL would look up on the caller's search_path: function
    /// calls, operators, `::` casts and DECLAREd types not qualified with pg_catalog (or audit. for the
    /// log), and the constructs that look `=` up implicitly (IS DISTINCT FROM, NULLIF). Literals, quoted
    /// identifiers and comments are blanked first.
    static func unqualifiedNames(in body: String) -> [String] {
        var text = body.replacingOccurrences(of: #"'(?:[^']|'')*'"#, with: "''", options: .regularExpression)
        text = text.replacingOccurrences(of: #""(?:[^"]|"")*""#, with: "q", options: .regularExpression)
        text = text.replacingOccurrences(of: #"--[^\n]*"#, with: "", options: .regularExpression)
        text = text.replacingOccurrences(of: #"OPERATOR\(pg_catalog\.(=|<>|\|\||-)\)"#, with: " op ", options: .regularExpression)
        text = text.replacingOccurrences(of: ":=", with: " assign ").replacingOccurrences(of: ".*)", with: ".all)")
        var found: [String] = []
        func scan(_ pattern: String, _ keep: (String) -> Bool = { _ in true }) {
            let regex = try! NSRegularExpression(pattern: pattern)
            for match in regex.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
                let hit = String(text[Range(match.range, in: text)!])
                if keep(hit) { found.append(hit) }
            }
        }
        let keywords: Set<String> = ["not", "and", "or", "if", "values", "in", "row", "log", "elsif", "when", "then", "else", "case", "on", "where", "assign", "op"]
        // name( that is not schema-qualified and not a keyword
        scan(#"(?<![\w.])[A-Za-z_]\w*\s*\("#) { hit in
            !keywords.contains(hit.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "(").union(.whitespacesAndNewlines)))
        }
        scan(#"::\s*(?!pg_catalog\.)\w+"#)
        scan(#"[=<>|+\-*/!~]+"#)
        scan(#"(?i)\bis\s+(not\s+)?distinct\b|\bnullif\b"#)
        // DECLARE section: `name type` where the type is not pg_catalog.-qualified
        if let declare = text.range(of: "DECLARE"), let begin = text.range(of: "BEGIN", range: declare.upperBound..<text.endIndex) {
            for line in text[declare.upperBound..<begin.lowerBound].split(separator: "\n") {
                let words = line.split(whereSeparator: { $0 == " " || $0 == ";" })
                if words.count >= 2 && !words[1].hasPrefix("pg_catalog.") && !words[0].hasPrefix("#") { found.append(String(line)) }
            }
        }
        return found
    }

    private func installerPartitions(_ connection: PostgresConnection) throws -> [String] {
        try connection.query("""
            SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'audit.log'::regclass ORDER BY 1
            """).rows.compactMap { $0["relname"] }
    }
}
