import Foundation
import NFLDBCore
import NFLDBPostgres
import NFLDBTestSupport
import Testing

@testable import NFLDBRoles

/// Issue 12 items 1–3: the shipped roles cannot make themselves superusers in effect, and `check`
/// sees every membership that could. Each escalation is tried over a real SCRAM login.
@Suite("roles: escalation paths and undeclared memberships")
struct EscalationTests {
    /// Predefined roles whose membership the spec must state explicitly.
    static let privileged = ["pg_execute_server_program", "pg_read_server_files", "pg_write_server_files", "pg_read_all_data", "pg_write_all_data"]

    @Test("PG < 16: nfl_dba (login of nfl_admin) and nfl_owner cannot grant themselves, or SET ROLE to, a privileged role, the audit owner or a superuser")
    func shippedAdminCannotEscalate() throws {
        try RoleWorld.with { world in
            let first = try world.apply()
            #expect(!first.plan.warnings.contains { $0.contains("CREATEROLE") }, "\(first.plan.warnings)")
            let admin = try world.admin()
            defer { admin.close() }
            #expect(try admin.query("SELECT current_setting('server_version_num')::int < 160000").scalar(Bool.self), "the tests run PostgreSQL 15")
            #expect(try admin.query("SELECT count(*) FROM pg_roles WHERE starts_with(rolname, \(world.prefix)) AND rolcreaterole").scalar(Int.self) == 0)
            let auditOwner = world.name("nfl_audit_owner")
            let targets = Self.privileged + [auditOwner, world.db.cluster.superuser]

            let dba = try world.login("nfl_dba")
            defer { dba.close() }
            let owner = try world.login("nfl_owner")
            defer { owner.close() }
            for (session, login, setRole) in [(dba, "nfl_dba", nil), (dba, "nfl_dba", "nfl_admin"), (dba, "nfl_dba", "nfl_owner"), (owner, "nfl_owner", nil)] {
                if let setRole { try session.execute("SET ROLE \(identifier: world.name(setRole))") }
                let me = PostgresIdentifier.quote(world.name(login))
                for target in targets {
                    let quoted = PostgresIdentifier.quote(target)
                    expectRefused(session, "GRANT \(quoted) TO \(me)")
                    expectRefused(session, "GRANT \(quoted) TO CURRENT_USER")
                    expectRefused(session, "SET ROLE \(quoted)")
                }
                expectRefused(session, "COPY (SELECT 1) TO PROGRAM 'true'")
                expectRefused(session, "COPY (SELECT 1) TO '/tmp/nfldb-escalation-\(UUID().uuidString)'")
                expectRefused(session, "SELECT pg_read_file('PG_VERSION')")
                expectRefused(session, "SELECT count(*) FROM pg_authid")
                expectRefused(session, "CREATE ROLE \(PostgresIdentifier.quote(world.name("sneaky"))) LOGIN PASSWORD 'x'")
                expectRefused(session, "ALTER ROLE \(me) CREATEROLE")
                expectRefused(session, "ALTER ROLE \(PostgresIdentifier.quote(auditOwner)) LOGIN PASSWORD 'x'")
                // (A role may change its own password, after SET ROLE too: members of nfl_owner can; `plan` shows it.)
                expectRefused(session, "ALTER ROLE \(PostgresIdentifier.quote(world.name("nfl_loader"))) PASSWORD 'taken-over'")
                try session.execute("RESET ROLE")
            }
            #expect(try admin.query("""
                SELECT count(*) FROM pg_auth_members am JOIN pg_roles m ON m.oid = am.member
                WHERE starts_with(m.rolname, \(world.prefix)) AND am.roleid IN (SELECT oid FROM pg_roles WHERE rolname = ANY(\(targets)))
                """).scalar(Int.self) == 0, "nothing was granted")

            // A cluster from before this fix (nfl_admin had CREATEROLE) is converged.
            try admin.execute("ALTER ROLE \(identifier: world.name("nfl_admin")) CREATEROLE")
            let plan = try world.plan()
            #expect(plan.pending.map(\.sql) == ["ALTER ROLE \"\(world.name("nfl_admin"))\" WITH NOCREATEROLE;"])
        }
    }

    @Test("check reports undeclared memberships in pg_execute_server_program & co., the audit owner and a superuser as drift; --revoke-unmanaged removes them")
    func privilegedMembershipsAreDrift() throws {
        try RoleWorld.with { world in
            try world.apply()
            let admin = try world.admin()
            defer { admin.close() }
            let dba = world.name("nfl_dba"), outsider = world.name("outsider"), mid = world.name("mid"), hider = world.name("hider")
            let auditOwner = world.name("nfl_audit_owner"), superuser = world.db.cluster.superuser
            try admin.runScript(unsafeSQL: """
                GRANT pg_execute_server_program TO \(PostgresIdentifier.quote(dba));
                CREATE ROLE \(PostgresIdentifier.quote(outsider)) LOGIN PASSWORD 'outsider-pw';
                GRANT CONNECT ON DATABASE \(PostgresIdentifier.quote(world.db.name)) TO \(PostgresIdentifier.quote(outsider));
                GRANT pg_read_all_data, pg_write_all_data, pg_read_server_files, pg_write_server_files, pg_execute_server_program
                    TO \(PostgresIdentifier.quote(outsider));
                CREATE ROLE \(PostgresIdentifier.quote(mid)) NOLOGIN IN ROLE \(PostgresIdentifier.quote(auditOwner));
                CREATE ROLE \(PostgresIdentifier.quote(hider)) NOLOGIN IN ROLE \(PostgresIdentifier.quote(superuser));
                GRANT \(PostgresIdentifier.quote(world.name("nfl_admin"))) TO \(PostgresIdentifier.quote(dba)) WITH ADMIN OPTION;
                """)
            // The escalation is real before the fix: the outsider login runs a program on the server.
            let before = try TestRoles.login(world.db, user: outsider, password: "outsider-pw")
            try before.execute("COPY (SELECT 1) TO PROGRAM 'cat > /dev/null'")  // reads its input: no broken pipe
            before.close()

            let plan = try world.plan()
            #expect(!plan.inSync)
            #expect(plan.isEmpty, "drift runs nothing without --revoke-unmanaged")
            let drift = Dictionary(plan.drift.map { ($0.sql, $0) }, uniquingKeysWith: { a, _ in a })
            func revoke(_ group: String, _ member: String) -> String {
                "REVOKE \(PostgresIdentifier.quote(group)) FROM \(PostgresIdentifier.quote(member));"
            }
            #expect(drift[revoke("pg_execute_server_program", dba)]?.reason?.contains("COPY … TO PROGRAM") == true, "\(plan.renderText())")
            for group in Self.privileged { #expect(drift[revoke(group, outsider)] != nil, "\(group) of \(outsider): \(plan.renderText())") }
            #expect(drift[revoke(auditOwner, mid)] != nil, "\(plan.renderText())")
            #expect(drift[revoke(superuser, hider)]?.reason?.contains("superuser") == true, "\(plan.renderText())")
            #expect(drift["REVOKE ADMIN OPTION FOR \(PostgresIdentifier.quote(world.name("nfl_admin"))) FROM \(PostgresIdentifier.quote(dba));"] != nil,
                "a declared membership WITH ADMIN OPTION: \(plan.renderText())")

            // `roles check` exits 1 and names the membership.
            let base = ["--spec", TestPaths.repository + "/roles", "--role-prefix", world.prefix, "--dsn", world.db.dsn]
            let check = try CLIRunner.run(["roles", "check"] + base, environment: world.environment)
            #expect(check.status == 1, "\(check.standardError)")
            #expect(check.standardOutput.contains(revoke("pg_execute_server_program", outsider) + "  -- \(outsider) is not in the spec; pg_execute_server_program runs programs"),
                "\(check.standardOutput)")

            try world.apply(revokeUnmanaged: true)
            #expect(try admin.query("""
                SELECT count(*) FROM pg_auth_members am JOIN pg_roles m ON m.oid = am.member JOIN pg_roles g ON g.oid = am.roleid
                WHERE starts_with(m.rolname, \(world.prefix)) AND (g.rolname = ANY(\(Self.privileged + [auditOwner, superuser])))
                """).scalar(Int.self) == 0)
            let after = try TestRoles.login(world.db, user: outsider, password: "outsider-pw")
            defer { after.close() }
            expectRefused(after, "COPY (SELECT 1) TO PROGRAM 'true'")
            expectRefused(after, "SET ROLE pg_read_all_data")
            let dbaSession = try world.login("nfl_dba")
            defer { dbaSession.close() }
            expectRefused(dbaSession, "GRANT \(PostgresIdentifier.quote(world.name("nfl_admin"))) TO \(PostgresIdentifier.quote(outsider))")
            #expect(try world.plan().drift.isEmpty)
        }
    }

    @Test("with --role-prefix, a group outside the prefix that a managed role declares membership of is still judged")
    func declaredOutsideGroupIsJudged() throws {
        try RoleWorld.with { world in
            let outside = "zz" + world.prefix + "reporting"  // not named with the prefix
            let admin = try world.admin()
            defer {
                _ = try? admin.execute("DROP ROLE IF EXISTS \(identifier: outside)")
                admin.close()
            }
            try admin.execute("CREATE ROLE \(identifier: outside) NOLOGIN")
            try admin.execute("GRANT pg_read_all_data TO \(identifier: outside)")
            var parser = RoleSpecParser()
            let spec = try parser.parse(files: [("outside.yaml", """
                unmanaged_roles: [\(outside)]
                roles:
                  analyst:
                    member_of: [\(outside)]
                """)]).withRolePrefix(world.prefix)
            try RoleManager.apply(admin, spec: spec, options: world.options(), logger: world.logger)
            let plan = try RoleManager.plan(admin, spec: spec, options: world.options(), logger: world.logger)
            #expect(plan.drift.map(\.sql) == ["REVOKE \"pg_read_all_data\" FROM \"\(outside)\";"], "\(plan.renderText())")
        }
    }

    @Test("a spec entry for the bootstrap superuser or the connected role that changes SUPERUSER/LOGIN is refused with file:line (exit 2)")
    func refusesDemotingTheRunner() throws {
        try RoleWorld.with { world in
            let admin = try world.admin()
            defer { admin.close() }
            let bootstrap = try admin.query("SELECT rolname FROM pg_roles WHERE oid = 10").scalar(String.self)
            var parser = RoleSpecParser()
            let demote = try parser.parse(files: [("demote.yaml", "version: 1\nroles:\n  \(bootstrap):\n    login: true\n")])
            do {
                _ = try RoleManager.apply(admin, spec: demote, options: world.options(), logger: world.logger)
                Issue.record("a spec that demotes \(bootstrap) was applied")
            } catch let error as RoleSpecError {
                #expect(error.exitStatus == .usage)
                #expect(error.issues.first?.location?.description == "demote.yaml:3:3", "\(error.diagnostic)")
                #expect(error.diagnostic.description.contains("bootstrap superuser"))
            }
            #expect(try admin.query("SELECT rolsuper FROM pg_roles WHERE oid = 10").scalar(Bool.self), "still a superuser")

            // The CLI says where, and exits 2.
            let directory = try CLIRunner.temporaryDirectory()
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let file = directory + "/demote.yaml"
            try "version: 1\nroles:\n  \(bootstrap):\n    login: true\n".write(toFile: file, atomically: true, encoding: .utf8)
            for command in ["plan", "apply", "check"] {
                let result = try CLIRunner.run(["roles", command, "--spec", file, "--dsn", world.db.dsn])
                #expect(result.status == 2, "\(command): \(result.standardError)")
                #expect(result.standardError.contains("\(file):3:3"), "\(command): \(result.standardError)")
            }

            // The role nfldb is connected as: removing its LOGIN is refused; an entry that keeps it is fine.
            let runner = world.name("runner")
            try admin.execute("CREATE ROLE \(identifier: runner) LOGIN PASSWORD 'runner-pw'")
            try admin.execute("GRANT CONNECT ON DATABASE \(identifier: world.db.name) TO \(identifier: runner)")
            let connection = try TestRoles.login(world.db, user: runner, password: "runner-pw")
            defer { connection.close() }
            let lockout = try parser.parse(files: [("self.yaml", "roles:\n  runner:\n    login: false\n")]).withRolePrefix(world.prefix)
            #expect(throws: RoleSpecError.self) { try RoleManager.plan(connection, spec: lockout, options: world.options(), logger: world.logger) }
            let keep = try parser.parse(files: [("self.yaml", "roles:\n  runner:\n    login: true\n")]).withRolePrefix(world.prefix)
            _ = try RoleManager.plan(connection, spec: keep, options: world.options(), logger: world.logger)
            // A superuser runner named in the spec would be demoted: refused too.
            let superuserName = world.db.cluster.superuser
            let selfDemote = try parser.parse(files: [("su.yaml", "roles:\n  \(superuserName):\n    login: true\n")])
            #expect(throws: RoleSpecError.self) { try RoleManager.plan(admin, spec: selfDemote, options: world.options(), logger: world.logger) }
        }
    }

    @Test("backdoor logins: a role outside the spec in a managed role, directly or through another role, is drift; --revoke-unmanaged removes it")
    func backdoorLoginsAreDrift() throws {
        try RoleWorld.with { world in
            try world.apply()
            let admin = try world.admin()
            defer { admin.close() }
            let backdoor = world.name("backdoor"), mid = world.name("mid"), hidden = world.name("hidden")
            let nflAdmin = world.name("nfl_admin"), nflOwner = world.name("nfl_owner")
            try admin.runScript(unsafeSQL: """
                CREATE ROLE \(PostgresIdentifier.quote(backdoor)) LOGIN PASSWORD 'x' IN ROLE \(PostgresIdentifier.quote(nflAdmin));
                CREATE ROLE \(PostgresIdentifier.quote(mid)) NOLOGIN IN ROLE \(PostgresIdentifier.quote(nflOwner));
                CREATE ROLE \(PostgresIdentifier.quote(hidden)) LOGIN PASSWORD 'y' IN ROLE \(PostgresIdentifier.quote(mid));
                GRANT CONNECT ON DATABASE \(PostgresIdentifier.quote(world.db.name)) TO \(PostgresIdentifier.quote(backdoor)), \(PostgresIdentifier.quote(hidden));
                """)
            // Both logins reach the owner role before the fix.
            for (user, password) in [(backdoor, "x"), (hidden, "y")] {
                let session = try TestRoles.login(world.db, user: user, password: password)
                try session.execute("SET ROLE \(identifier: nflOwner)")
                session.close()
            }

            let plan = try world.plan()
            #expect(!plan.inSync)
            let drift = Dictionary(plan.drift.map { ($0.sql, $0) }, uniquingKeysWith: { a, _ in a })
            let direct = drift["REVOKE \(PostgresIdentifier.quote(nflAdmin)) FROM \(PostgresIdentifier.quote(backdoor));"]
            #expect(direct?.reason?.contains("can log in") == true, "\(plan.renderText())")
            let through = drift["REVOKE \(PostgresIdentifier.quote(nflOwner)) FROM \(PostgresIdentifier.quote(mid));"]
            #expect(through?.reason?.contains("logins through it: \(hidden)") == true, "\(plan.renderText())")
            #expect(!plan.unmanaged.contains { $0.contains(backdoor) && $0.contains("member") }, "not merely listed as unmanaged")

            let base = ["--spec", TestPaths.repository + "/roles", "--role-prefix", world.prefix, "--dsn", world.db.dsn]
            let check = try CLIRunner.run(["roles", "check"] + base, environment: world.environment)
            #expect(check.status == 1, "\(check.standardError)")
            #expect(check.standardOutput.contains("-- REVOKE \"\(nflAdmin)\" FROM \"\(backdoor)\";  -- \(backdoor) is not in the spec but is a member of managed role \(nflAdmin) and can log in"),
                "\(check.standardOutput)")

            let applied = try world.apply(revokeUnmanaged: true)
            #expect(applied.executed >= 2)
            for (user, password) in [(backdoor, "x"), (hidden, "y")] {
                let session = try TestRoles.login(world.db, user: user, password: password)
                defer { session.close() }
                expectRefused(session, "SET ROLE \(PostgresIdentifier.quote(nflOwner))")
                expectRefused(session, "SET ROLE \(PostgresIdentifier.quote(nflAdmin))")
            }
            #expect(try admin.query("SELECT pg_has_role(\(backdoor), \(nflAdmin), 'MEMBER') OR pg_has_role(\(hidden), \(nflOwner), 'MEMBER')").scalar(Bool.self) == false)
            let settled = try world.plan()
            #expect(settled.drift.isEmpty, "\(settled.renderText())")
        }
    }
}

@Suite("roles: --role-prefix length")
struct RolePrefixLengthTests {
    @Test("a prefix that makes a managed name longer than 63 bytes is refused before connecting (PostgreSQL would cut it, and apply could never converge)")
    func tooLong() throws {
        let prefix = String(repeating: "q", count: 50)
        for command in ["plan", "apply"] {
            let result = try CLIRunner.run(["roles", command, "--spec", TestPaths.repository + "/roles", "--role-prefix", prefix, "--dsn", "host=/nonexistent-nfldb"])
            #expect(result.status == 2, "\(result.standardError)")
            #expect(result.standardError.contains("nfl_audit_owner 65 bytes long") && result.standardError.contains("a prefix of at most 48 bytes"), "\(result.standardError)")
        }
    }
}

@Suite("roles: the runner cannot strip its own CREATEROLE")
struct RunnerCreateRoleTests {
    @Test("a spec entry for the connected role without create_role is refused (exit 2, file:line), and the role keeps CREATEROLE")
    func keepsCreateRole() throws {
        try TestCluster.withDatabase(prefix: "runner_cr") { db in
            let runner = "runner_\(UUID().uuidString.prefix(8).lowercased())", password = "pw-\(UUID().uuidString)"
            let admin = try db.connect()
            defer {
                _ = try? admin.execute("DROP ROLE IF EXISTS \(identifier: runner)")
                admin.close()
            }
            try admin.runScript(unsafeSQL: "CREATE ROLE \(PostgresIdentifier.quote(runner)) LOGIN CREATEROLE PASSWORD \(PostgresIdentifier.literal(password))")
            let dir = try CLIRunner.temporaryDirectory("nfldb-runner-spec")
            defer { try? FileManager.default.removeItem(atPath: dir) }
            try "version: 1\nroles:\n  \(runner):\n    login: true\n".write(toFile: dir + "/spec.yaml", atomically: true, encoding: .utf8)
            let apply = try CLIRunner.run(["roles", "apply", "--spec", dir + "/spec.yaml", "--dsn", db.cluster.dsn(database: db.name, user: runner, password: password)])
            #expect(apply.status == 2, "\(apply.standardOutput)\(apply.standardError)")
            #expect(apply.standardError.contains("spec.yaml:3") && apply.standardError.contains("remove CREATEROLE (which nfldb needs to manage roles)"), "\(apply.standardError)")
            #expect(try admin.query("SELECT rolcreaterole FROM pg_roles WHERE rolname = \(runner)").scalar(Bool.self))
        }
    }
}

@Suite("roles apply without the privilege it needs")
struct ApplyWithoutPrivilegeTests {
    @Test("a CREATEROLE runner granting on a table a superuser owns: exit 1, SQLSTATE 42501, the superuser hint, and nothing was changed")
    func permissionDeniedRollsBackWithHint() throws {
        try TestCluster.withDatabase(prefix: "apply_42501") { db in
            let tag = UUID().uuidString.prefix(8).lowercased()
            let runner = "runner_\(tag)", reader = "reader_\(tag)", password = "pw-\(UUID().uuidString)"
            let admin = try db.connect()
            defer {
                _ = try? admin.execute("DROP ROLE IF EXISTS \(identifier: reader)")
                _ = try? admin.execute("DROP ROLE IF EXISTS \(identifier: runner)")
                admin.close()
            }
            try admin.runScript(unsafeSQL: """
                CREATE ROLE \(PostgresIdentifier.quote(runner)) LOGIN CREATEROLE PASSWORD \(PostgresIdentifier.literal(password));
                CREATE TABLE public.secret_stats (id int);
                """)
            let dir = try CLIRunner.temporaryDirectory("nfldb-apply-42501")
            defer { try? FileManager.default.removeItem(atPath: dir) }
            // The new role comes first (CREATEROLE may create it), the grant second (only the table's owner may give it).
            try """
                version: 1
                roles:
                  \(reader):
                    grants:
                      tables:
                        public.secret_stats: [SELECT]

                """.write(toFile: dir + "/spec.yaml", atomically: true, encoding: .utf8)
            let dsn = db.cluster.dsn(database: db.name, user: runner, password: password)
            // plan says so beforehand.
            let plan = try CLIRunner.run(["roles", "plan", "--spec", dir + "/spec.yaml", "--dsn", dsn])
            #expect(plan.status == 0, "\(plan.standardOutput)\(plan.standardError)")
            #expect((plan.standardOutput + plan.standardError).contains("\(runner) is not a superuser: `roles apply` as this role fails with SQLSTATE 42501"),
                    "\(plan.standardOutput)\(plan.standardError)")
            let apply = try CLIRunner.run(["roles", "apply", "--spec", dir + "/spec.yaml", "--dsn", dsn])
            #expect(apply.status == 1, "\(apply.standardOutput)\(apply.standardError)")
            #expect(apply.standardError.contains("SQLSTATE 42501"), "\(apply.standardError)")
            #expect(apply.standardError.contains("Nothing was changed") && apply.standardError.contains("run it as a superuser"), "\(apply.standardError)")
            #expect(!apply.standardError.contains(password), "the password must never be printed")
            // The hint is true: the role that was created before the failing GRANT was rolled back.
            #expect(try admin.query("SELECT count(*) FROM pg_roles WHERE rolname = \(reader)").scalar(Int.self) == 0)
            // And the hint's way out works: the same spec applied as the superuser converges.
            let again = try CLIRunner.run(["roles", "apply", "--spec", dir + "/spec.yaml", "--dsn", db.cluster.dsn(database: db.name)])
            #expect(again.status == 0, "\(again.standardOutput)\(again.standardError)")
            // As the superuser the plan has no such warning.
            let superPlan = try CLIRunner.run(["roles", "plan", "--spec", dir + "/spec.yaml", "--dsn", db.cluster.dsn(database: db.name)])
            #expect(superPlan.status == 0 && !(superPlan.standardOutput + superPlan.standardError).contains("is not a superuser"), "\(superPlan.standardOutput)\(superPlan.standardError)")
            #expect(try admin.query("SELECT has_table_privilege(\(reader), 'public.secret_stats', 'SELECT')").scalar(Bool.self))
        }
    }
}
