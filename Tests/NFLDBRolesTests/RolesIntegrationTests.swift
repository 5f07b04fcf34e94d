import Foundation
import NFLDBCore
import NFLDBPostgres
import NFLDBTestSupport
import Testing

@testable import NFLDBRoles

@Suite("roles against a real server")
struct RolesIntegrationTests {
    @Test("deploy flow: apply, migrate as owner, apply; second apply is a no-op; each login can do exactly its job")
    func deployAndRoleMatrix() throws {
        try RoleWorld.with { world in
            // Fresh cluster: roles are created; the schema does not exist yet.
            let first = try world.apply()
            #expect(first.executed > 10)
            #expect(first.after.isEmpty)
            #expect(first.after.missingObjects.contains { $0.contains("schema nfl does not exist") })
            try world.migrateAsOwner()
            let second = try world.apply()
            #expect(second.executed > 0, "grants on the new tables")
            let third = try world.apply()
            #expect(third.executed == 0, "\(third.plan.renderText())")
            #expect(third.plan.statements.isEmpty)
            try world.seedReferenceData()

            // Readonly analyst: reads, cannot write or create, has its login settings.
            let analyst = try world.login("nfl_analyst")
            defer { analyst.close() }
            _ = try analyst.query("SELECT count(*) FROM nfl.games")
            _ = try analyst.query("SELECT count(*) FROM plays")  // search_path from the spec
            #expect(try analyst.query("SHOW statement_timeout").scalar(String.self) == "1min")
            expectRefused(analyst, PlatformRows.gameInsert())
            expectRefused(analyst, "UPDATE nfl.teams SET team_name = 'x'")
            expectRefused(analyst, "DELETE FROM nfl.teams")
            expectRefused(analyst, "CREATE TABLE nfl.analyst_scratch (id int)")

            // ETL loader: writes its tables; history is insert-only; no DELETE, TRUNCATE or DDL.
            let loader = try world.login("nfl_loader")
            defer { loader.close() }
            try loader.runScript(unsafeSQL: PlatformRows.gameInsert())
            try loader.execute("UPDATE nfl.games SET away_score = 20, home_score = 27, result = 7, total = 47, overtime = false")
            try loader.execute("INSERT INTO nfl.weather (game_id, source, temp_f) VALUES ('2024_01_BAL_KC', 'test', 71.0)")
            try loader.execute("INSERT INTO nfl.plays (game_id, play_id, season, play_type) VALUES ('2024_01_BAL_KC', 1, 2024, 'kickoff')")
            try loader.execute("INSERT INTO nfl.odds_history (game_id, source, observed_at, spread_line) VALUES ('2024_01_BAL_KC', 'book', now(), 3.0)")
            try loader.execute("INSERT INTO nfl.etl_runs (source) VALUES ('test')")
            try loader.execute("INSERT INTO nfl.task_results (task_id, queue, task_type, status) VALUES ('t1', 'q', 'load', 'queued')")
            expectRefused(loader, "UPDATE nfl.odds_history SET spread_line = 4.0")
            expectRefused(loader, "DELETE FROM nfl.odds_history")
            expectRefused(loader, "DELETE FROM nfl.games")
            expectRefused(loader, "TRUNCATE nfl.plays")
            expectRefused(loader, "TRUNCATE nfl.games")
            expectRefused(loader, "CREATE TABLE nfl.loader_scratch (id int)")
            expectRefused(loader, "ALTER TABLE nfl.games ADD COLUMN x int")
            expectRefused(loader, "DELETE FROM nfl.teams")  // the ETL upserts teams/stadiums (INSERT/UPDATE), never deletes
            #expect(try loader.query("SHOW statement_timeout").scalar(String.self) == "15min")

            // Admin (dba login): manages the schema through the owner role, but is no superuser.
            let dba = try world.login("nfl_dba")
            defer { dba.close() }
            #expect(try dba.query("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").scalar(Bool.self) == false)
            #expect(try dba.query("SELECT current_setting('is_superuser')").scalar(String.self) == "off")
            expectRefused(dba, "ALTER SYSTEM SET work_mem = '1GB'")
            expectRefused(dba, "COPY (SELECT 1) TO PROGRAM 'true'")
            expectRefused(dba, "CREATE ROLE \(world.name("sneaky")) SUPERUSER")
            try dba.runScript(unsafeSQL: "SET ROLE \(world.name("nfl_owner")); CREATE TABLE nfl.admin_made (id int); RESET ROLE")
            try dba.execute("DELETE FROM nfl.odds_history")

            // PUBLIC lost CONNECT: a role outside the spec cannot connect; the monitor login can.
            let monitor = try world.login("nfl_monitor")
            monitor.close()
            let admin = try world.admin()
            defer { admin.close() }
            try admin.execute("CREATE ROLE \(identifier: world.name("outsider")) LOGIN PASSWORD 'outsider-pw'")
            #expect(throws: PostgresError.self) {
                try PostgresConnection.connect(
                    ConnectionOptions(dsn: world.db.cluster.dsn(database: world.db.name, user: world.name("outsider"), password: "outsider-pw")),
                    logger: TestCluster.logger)
            }
        }
    }

    @Test("default privileges: a table the migration owner creates later is readable at once; one created by someone else is flagged")
    func defaultPrivilegesAndOwnershipTrap() throws {
        try RoleWorld.with { world in
            try world.apply()
            try world.migrateAsOwner()
            try world.apply()
            let owner = try world.login("nfl_owner")
            defer { owner.close() }
            try owner.runScript(unsafeSQL: "CREATE TABLE nfl.injuries (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, player text); INSERT INTO nfl.injuries (player) VALUES ('x')")
            let analyst = try world.login("nfl_analyst")
            defer { analyst.close() }
            #expect(try analyst.query("SELECT count(*) FROM nfl.injuries").scalar(Int.self) == 1)
            let after = try world.plan()
            #expect(after.statements.isEmpty && after.ownership.isEmpty, "default privileges already cover the new table: \(after.renderText())")
            #expect(after.missingObjects.allSatisfy { $0.contains("schema audit") }, "only the audit schema (installed by nfldb audit) is missing")

            // Functions: EXECUTE reaches readers through the schema default; PUBLIC's is removed by the global default.
            try owner.execute("CREATE FUNCTION nfl.points(a int, b int) RETURNS int LANGUAGE sql AS 'SELECT a + b'")
            #expect(try analyst.query("SELECT nfl.points(3, 4)").scalar(Int.self) == 7)
            let admin = try world.admin()
            defer { admin.close() }
            #expect(try !admin.query("SELECT has_function_privilege('public', 'nfl.points(int, int)', 'EXECUTE')").scalar(Bool.self))
            #expect(try world.plan().statements.isEmpty)
            // A function created by someone else keeps PUBLIC EXECUTE: the plan revokes it (the spec says so) and flags the owner.
            try admin.execute("CREATE FUNCTION nfl.stray() RETURNS int LANGUAGE sql AS 'SELECT 1'")
            let strayPlan = try world.plan()
            #expect(strayPlan.pending.contains { $0.sql == "REVOKE EXECUTE ON FUNCTION nfl.stray() FROM PUBLIC;" }, "\(strayPlan.renderText())")
            #expect(strayPlan.ownership.contains { $0.contains("nfl.stray() is owned by") })
            try admin.execute("DROP FUNCTION nfl.stray()")

            // The trap: the dba creates a table without SET ROLE, so it is owned by the dba login.
            let dba = try world.login("nfl_dba")
            defer { dba.close() }
            try dba.execute("CREATE TABLE nfl.dba_direct (id int)")
            expectRefused(analyst, "SELECT * FROM nfl.dba_direct")
            let plan = try world.plan()
            #expect(!plan.inSync)
            #expect(plan.ownership.count == 1)
            #expect(plan.ownership.first?.contains("nfl.dba_direct is owned by \(world.name("nfl_dba"))") == true)
            #expect(plan.ownership.first?.contains("ALTER TABLE \"nfl\".\"dba_direct\" OWNER TO \"\(world.name("nfl_owner"))\"") == true)
            #expect(plan.pending.contains { $0.sql.contains("\"nfl\".\"dba_direct\"") }, "wildcard grants reach it explicitly")
        }
    }

    @Test("drift is reported, counted by check, and revoked only with --revoke-unmanaged; unmanaged grantees are left alone")
    func drift() throws {
        try RoleWorld.with { world in
            try world.apply()
            try world.migrateAsOwner()
            try world.apply()
            let admin = try world.admin()
            defer { admin.close() }
            try admin.execute("CREATE ROLE \(identifier: world.name("stranger")) NOLOGIN")
            try admin.runScript(unsafeSQL: """
                GRANT DELETE ON nfl.odds_history TO \(world.name("nfl_etl"));
                GRANT SELECT ON nfl.games TO PUBLIC;
                GRANT SELECT ON nfl.games TO \(world.name("stranger"));
                GRANT \(world.name("nfl_etl")) TO \(world.name("nfl_analyst"));
                ALTER ROLE \(world.name("nfl_analyst")) SET work_mem = '64MB';
                ALTER DEFAULT PRIVILEGES FOR ROLE \(world.name("nfl_owner")) IN SCHEMA nfl GRANT INSERT ON TABLES TO \(world.name("nfl_etl"));
                """)
            let plan = try world.plan()
            #expect(plan.isEmpty, "drift alone runs nothing without the flag")
            #expect(!plan.inSync)
            let drift = plan.drift.map(\.sql)
            #expect(drift.contains("REVOKE DELETE ON TABLE \"nfl\".\"odds_history\" FROM \"\(world.name("nfl_etl"))\";"), "\(drift)")
            #expect(drift.contains("REVOKE SELECT ON TABLE \"nfl\".\"games\" FROM PUBLIC;"))
            #expect(drift.contains("REVOKE \"\(world.name("nfl_etl"))\" FROM \"\(world.name("nfl_analyst"))\";"))
            #expect(drift.contains("ALTER ROLE \"\(world.name("nfl_analyst"))\" RESET work_mem;"))
            #expect(drift.contains { $0.contains("IN SCHEMA \"nfl\" REVOKE INSERT ON TABLES FROM \"\(world.name("nfl_etl"))\"") })
            #expect(plan.unmanaged.contains { $0.contains(world.name("stranger")) && $0.contains("nfl.games") })
            #expect(plan.renderText().contains("-- REVOKE DELETE ON TABLE"), "shown commented out")

            let withoutFlag = try world.apply()
            #expect(withoutFlag.executed == 0)
            #expect(try admin.query("SELECT has_table_privilege(\(world.name("nfl_etl")), 'nfl.odds_history', 'DELETE')").scalar(Bool.self))

            let withFlag = try world.apply(revokeUnmanaged: true)
            #expect(withFlag.executed == drift.count)
            #expect(try !admin.query("SELECT has_table_privilege(\(world.name("nfl_etl")), 'nfl.odds_history', 'DELETE')").scalar(Bool.self))
            #expect(try !admin.query("SELECT has_table_privilege('public', 'nfl.games', 'SELECT')").scalar(Bool.self))
            #expect(try admin.query("SELECT has_table_privilege(\(world.name("stranger")), 'nfl.games', 'SELECT')").scalar(Bool.self), "unmanaged grantee untouched")
            let settled = try world.plan()
            #expect(settled.drift.isEmpty)
            #expect(settled.statements.isEmpty && settled.ownership.isEmpty, "\(settled.renderText())")
        }
    }

    @Test("plans settle: rolconfig order, ALL, unchanged SCRAM passwords; changed passwords are re-set and work")
    func plansSettle() throws {
        try RoleWorld.with { world in
            try world.apply()
            let admin = try world.admin()
            defer { admin.close() }
            let analyst = world.name("nfl_analyst")
            // Same settings, different order in rolconfig.
            try admin.runScript(unsafeSQL: """
                ALTER ROLE \(analyst) RESET ALL;
                ALTER ROLE \(analyst) SET search_path = 'nfl', 'public';
                ALTER ROLE \(analyst) SET idle_in_transaction_session_timeout = '5min';
                ALTER ROLE \(analyst) SET statement_timeout = '60s';
                """)
            let verifierBefore = try admin.query("SELECT rolpassword FROM pg_authid WHERE rolname = \(analyst)").scalar(String.self)
            #expect(verifierBefore.hasPrefix("SCRAM-SHA-256$4096:"))
            #expect(try world.plan().isEmpty)
            #expect(try world.apply().executed == 0)
            #expect(try admin.query("SELECT rolpassword FROM pg_authid WHERE rolname = \(analyst)").scalar(String.self) == verifierBefore,
                "an unchanged password is not re-set")

            // A rotated password is detected by comparing verifiers, and the new one logs in.
            let old = world.environment["NFLDB_ANALYST_PASSWORD"] ?? ""
            world.environment["NFLDB_ANALYST_PASSWORD"] = "rotated-\(UUID().uuidString.prefix(8))"
            let plan = try world.plan()
            #expect(plan.pending.count == 1)
            #expect(plan.pending.first?.kind == .password)
            #expect(plan.pending.first?.reason == "password changed")
            try world.apply()
            try world.login("nfl_analyst").close()
            #expect(throws: PostgresError.self) { try world.login("nfl_analyst", password: old) }

            // An unset source leaves the password alone and warns; --require-passwords makes it an error.
            var environment = world.environment
            environment.removeValue(forKey: "NFLDB_ANALYST_PASSWORD")
            var options = world.options(environment: environment)
            let unset = try RoleManager.plan(admin, spec: world.spec, options: options, logger: world.logger)
            #expect(unset.isEmpty)
            #expect(unset.warnings.contains { $0.contains("$NFLDB_ANALYST_PASSWORD") && $0.contains("left as it is") })
            options.requirePasswords = true
            #expect(throws: MissingPasswordError.self) { try RoleManager.plan(admin, spec: world.spec, options: options, logger: world.logger) }

            // An md5 password set out of band is upgraded to SCRAM.
            try admin.runScript(unsafeSQL: "SET password_encryption = 'md5'; ALTER ROLE \(analyst) PASSWORD 'md5-era'; RESET password_encryption")
            let upgrade = try world.plan()
            #expect(upgrade.pending.first?.reason?.contains("md5") == true)
        }
    }

    @Test("attributes (LOGIN, CREATEROLE, CREATEDB, INHERIT, CONNECTION LIMIT, VALID UNTIL) are created and converged; SUPERUSER is always removed")
    func attributesConverge() throws {
        try RoleWorld.with { world in
            var parser = RoleSpecParser()
            let spec = try parser.parse(files: [("attributes.yaml", """
                roles:
                  builder:
                    login: true
                    createdb: true
                    createrole: true
                    inherit: false
                    connection_limit: 4
                    valid_until: "2031-06-30 12:00:00+00"
                    comment: builds things
                    grants:
                      database: [ALL]
                """)]).withRolePrefix(world.prefix)
            let admin = try world.admin()
            defer { admin.close() }
            let options = world.options()
            let created = try RoleManager.apply(admin, spec: spec, options: options, logger: world.logger)
            #expect(created.plan.pending.first?.sql.contains("LOGIN NOSUPERUSER CREATEDB CREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS CONNECTION LIMIT 4 VALID UNTIL '2031-06-30 12:00:00+00'") == true)
            let builder = world.name("builder")
            let row = try admin.query("""
                SELECT rolcanlogin, rolcreatedb, rolcreaterole, rolinherit, rolconnlimit, rolvaliduntil = '2031-06-30 12:00:00+00' AS until,
                       shobj_description(oid, 'pg_authid') AS comment
                FROM pg_roles WHERE rolname = \(builder)
                """).singleRow()
            #expect(try row.decode("rolcanlogin", as: Bool.self) && row.decode("rolcreatedb", as: Bool.self) && row.decode("rolcreaterole", as: Bool.self))
            #expect(try !row.decode("rolinherit", as: Bool.self))
            #expect(try row.decode("rolconnlimit", as: Int.self) == 4)
            #expect(try row.decode("until", as: Bool.self))
            #expect(row["comment"] == "builds things")
            #expect(created.plan.pending.contains { $0.sql.hasPrefix("GRANT CREATE, CONNECT, TEMPORARY ON DATABASE") }, "ALL is expanded")
            #expect(try RoleManager.plan(admin, spec: spec, options: options, logger: world.logger).statements.isEmpty, "ALL settles")
            // Out-of-band changes are converged back, superuser included.
            try admin.execute("ALTER ROLE \(identifier: builder) SUPERUSER NOCREATEDB CONNECTION LIMIT 99 VALID UNTIL 'infinity'")
            let plan = try RoleManager.plan(admin, spec: spec, options: options, logger: world.logger)
            #expect(plan.pending.map(\.sql) == ["ALTER ROLE \"\(builder)\" WITH NOSUPERUSER CREATEDB CONNECTION LIMIT 4 VALID UNTIL '2031-06-30 12:00:00+00';"])
            try RoleManager.apply(admin, spec: spec, options: options, logger: world.logger)
            #expect(try RoleManager.plan(admin, spec: spec, options: options, logger: world.logger).statements.isEmpty)
        }
    }

    @Test("passwords never reach plans, nfldb logs, the server log or pg_stat_statements")
    func passwordsNeverLeak() throws {
        try RoleWorld.with { world in
            let admin = try world.admin()
            try admin.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            try admin.execute("ALTER DATABASE \(identifier: world.db.name) SET log_statement = 'all'")
            admin.close()
            let result = try world.apply()
            let rendered = result.plan.renderText()
            let json = String(decoding: try JSONEncoder().encode(result), as: UTF8.self)
            let check = try world.admin()
            defer { check.close() }
            let verifiers = try check.query("SELECT rolpassword FROM pg_authid WHERE starts_with(rolname, \(world.prefix)) AND rolpassword IS NOT NULL")
                .rows.compactMap { $0["rolpassword"] }
            #expect(verifiers.count == TestRoles.passwordVariables.count)
            let statements = try check.query("""
                SELECT string_agg(query, E'\\n') FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
                """).scalar(String?.self) ?? ""
            #expect(statements.contains("CREATE ROLE"), "pg_stat_statements saw the apply")
            var serverLog = ""
            // The throwaway cluster logs to <root>/server.log next to <root>/data (NFLDBSandbox.LocalCluster).
            let dataDirectory = try check.query("SHOW data_directory").scalar(String.self)
            let path = ((dataDirectory as NSString).deletingLastPathComponent as NSString).appendingPathComponent("server.log")
            if world.db.cluster.local != nil, FileManager.default.fileExists(atPath: path) {
                serverLog = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
                #expect(serverLog.contains("CREATE ROLE \"\(world.name("nfl_analyst"))\""), "log_statement = all was in effect")
            }
            for secret in Array(world.environment.values) + verifiers {
                #expect(!rendered.contains(secret))
                #expect(!json.contains(secret))
                #expect(!world.logs.text.contains(secret))
                #expect(!statements.contains(secret), "pg_stat_statements")
                #expect(!serverLog.contains(secret), "server log")
            }
            #expect(rendered.contains("PASSWORD '<SCRAM-SHA-256 verifier of $NFLDB_ANALYST_PASSWORD>'"))
        }
    }

    @Test("a GRANT the runner may not give only WARNs on the server: apply treats it as an error and rolls back")
    func serverWarningIsAnError() throws {
        try RoleWorld.with { world in
            try world.apply()
            try world.migrateAsOwner()
            let admin = try world.admin()
            defer { admin.close() }
            let runner = world.name("runner"), reader = world.name("reader")
            try admin.runScript(unsafeSQL: """
                CREATE ROLE \(runner) LOGIN CREATEROLE PASSWORD 'runner-pw';
                CREATE ROLE \(reader) NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE INHERIT NOREPLICATION NOBYPASSRLS;
                GRANT CONNECT ON DATABASE \(PostgresIdentifier.quote(world.db.name)) TO \(runner);
                GRANT USAGE ON SCHEMA nfl TO \(runner);
                GRANT SELECT ON nfl.games TO \(runner);
                """)
            var parser = RoleSpecParser()
            let spec = try parser.parse(files: [("warn.yaml", """
                roles:
                  reader:
                    grants:
                      tables:
                        nfl.games: [SELECT]
                """)]).withRolePrefix(world.prefix)
            let connection = try PostgresConnection.connect(
                ConnectionOptions(dsn: world.db.cluster.dsn(database: world.db.name, user: runner, password: "runner-pw")), logger: world.logger)
            defer { connection.close() }
            let plan = try RoleManager.plan(connection, spec: spec, options: world.options(), logger: world.logger)
            #expect(plan.pending.map(\.sql) == ["GRANT SELECT ON TABLE \"nfl\".\"games\" TO \"\(reader)\";"])
            do {
                _ = try RoleManager.apply(connection, spec: spec, options: world.options(), logger: world.logger)
                Issue.record("apply should have failed on the WARNING")
            } catch let error as RoleApplyError {
                guard case .serverWarning(let statement, let warning) = error.reason else {
                    Issue.record("unexpected reason \(error.reason)")
                    return
                }
                #expect(statement.contains("GRANT SELECT"))
                #expect(warning.contains("no privileges were granted"))
                #expect(error.diagnostic.description.contains("rolled back"))
            }
            #expect(try !admin.query("SELECT has_table_privilege(\(reader), 'nfl.games', 'SELECT')").scalar(Bool.self))
        }
    }

    @Test("CLI: check exits 1 on differences, apply converges, check exits 0; no password on stdout or stderr")
    func commandLine() throws {
        try RoleWorld.with { world in
            let base = ["--spec", TestPaths.repository + "/roles", "--role-prefix", world.prefix, "--dsn", world.db.dsn]
            let before = try CLIRunner.run(["roles", "check"] + base, environment: world.environment)
            #expect(before.status == 1, "\(before.standardError)")
            #expect(before.standardError.contains("differs from the spec"))
            let apply = try CLIRunner.run(["roles", "apply"] + base, environment: world.environment)
            #expect(apply.status == 0, "\(apply.standardError)")
            #expect(apply.standardOutput.contains("the new plan is empty"))
            let plan = try CLIRunner.run(["roles", "plan", "--format", "json"] + base, environment: world.environment)
            #expect(plan.status == 0)
            let decoder = JSONDecoder()
            decoder.keyDecodingStrategy = .convertFromSnakeCase
            let decoded = try decoder.decode(RolePlan.self, from: Data(plan.standardOutput.utf8))
            #expect(decoded.statements.isEmpty)
            // Schema nfl is still missing (no migrations here), so check still reports a difference.
            let after = try CLIRunner.run(["roles", "check"] + base, environment: world.environment)
            #expect(after.status == 1)
            #expect(after.standardOutput.contains("schema nfl does not exist"))
            for secret in world.environment.values {
                for output in [before, apply, plan, after] {
                    #expect(!output.standardOutput.contains(secret) && !output.standardError.contains(secret))
                }
            }
            let invalid = try CLIRunner.run(["roles", "validate", "--spec", "/nonexistent"])
            #expect(invalid.status == 2)
        }
    }
}
