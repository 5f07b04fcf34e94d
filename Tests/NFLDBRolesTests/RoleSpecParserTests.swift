import Foundation
import NFLDBCore
import NFLDBTestSupport
import Testing

@testable import NFLDBRoles

@Suite("roles spec parsing")
struct RoleSpecParserTests {
    /// Parses one YAML text as `spec.yaml`; returns the spec or the error's issues.
    func parse(_ yaml: String) -> (spec: RoleSpec?, issues: [SpecIssue], warnings: [SpecIssue]) {
        var parser = RoleSpecParser()
        do {
            let spec = try parser.parse(files: [("spec.yaml", yaml)])
            return (spec, [], parser.warnings)
        } catch let error as RoleSpecError {
            return (nil, error.issues, parser.warnings)
        } catch {
            Issue.record("unexpected error \(error)")
            return (nil, [], [])
        }
    }

    @Test("the shipped roles/platform.yaml is valid and has the platform's roles")
    func shippedSpec() throws {
        let (spec, warnings) = try RoleSpecParser.load(path: TestPaths.repository + "/roles")
        let names = Set(spec.roles.map(\.name))
        #expect(names.isSuperset(of: ["nfl_owner", "nfl_readonly", "nfl_etl", "nfl_admin", "nfl_analyst", "nfl_loader", "nfl_dba"]))
        #expect(warnings.isEmpty, "\(warnings)")
        let etl = try #require(spec.role("nfl_etl"))
        let odds = etl.privileges.objects.filter { $0.pattern == "nfl.odds_history" }.flatMap(\.privileges)
        #expect(Set(odds) == ["SELECT", "INSERT"])
        #expect(!etl.privileges.objects.flatMap(\.privileges).contains("DELETE"))
        #expect(!etl.privileges.objects.flatMap(\.privileges).contains("TRUNCATE"))
        let admin = try #require(spec.role("nfl_admin"))
        #expect(!admin.createRole, "CREATEROLE before PostgreSQL 16 reaches pg_execute_server_program (issue 12)")
        // Login roles carry a password source, never a password.
        for role in spec.roles where role.login { #expect(role.password != nil, "\(role.name)") }
        // Default privileges are declared FOR the schema owner.
        #expect(spec.role("nfl_readonly")?.privileges.defaultPrivileges.allSatisfy { $0.owner == "nfl_owner" } == true)
    }

    @Test("createrole is accepted with a warning at its line (before PostgreSQL 16 it reaches pg_execute_server_program)")
    func createRoleWarns() throws {
        let (spec, issues, warnings) = parse("""
            roles:
              manager:
                createrole: true
            """)
        #expect(issues.isEmpty)
        #expect(spec?.role("manager")?.createRole == true)
        #expect(warnings.map { $0.location?.line } == [3])
        #expect(warnings.first?.message.contains("pg_execute_server_program") == true)
    }

    @Test("unknown keys are reported with file, line and a suggestion")
    func unknownKeys() {
        let (_, issues, _) = parse("""
            roles:
              reader:
                logn: true
                grants:
                  tabels:
                    nfl.games: [SELECT]
            """)
        #expect(issues.count == 2)
        #expect(issues[0].description == "spec.yaml:3:5: unknown key \"logn\" in role reader (did you mean login?)")
        #expect(issues[1].location?.line == 5)
        #expect(issues[1].message.contains("tabels"))
    }

    @Test("unknown privileges are reported per object kind with the allowed list")
    func unknownPrivileges() {
        let (_, issues, _) = parse("""
            roles:
              etl:
                grants:
                  database: [CONNECT, TEMP]
                  tables:
                    nfl.games: [SELECT, UPSERT]
                  schemas:
                    nfl: [SELECT]
            """)
        #expect(issues.map { $0.location?.line } == [6, 8])
        #expect(issues[0].message.contains("unknown privilege UPSERT for tables"))
        #expect(issues[1].message.contains("allowed: USAGE, CREATE"))
    }

    @Test("ALL expands to the concrete list, TEMP to TEMPORARY")
    func allExpands() throws {
        let (spec, issues, _) = parse("""
            roles:
              owner_like:
                grants:
                  database: [temp, connect]
                  tables:
                    nfl.*: [ALL]
            """)
        #expect(issues.isEmpty)
        let role = try #require(spec?.role("owner_like"))
        #expect(role.privileges.database == ["CONNECT", "TEMPORARY"])
        #expect(role.privileges.objects.first?.privileges == ["SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"])
    }

    @Test("a role referenced but not managed is an error unless listed in unmanaged_roles")
    func unmanagedReferences() {
        let (_, issues, _) = parse("""
            unmanaged_roles: [pg_monitor]
            roles:
              monitor:
                login: true
                member_of: [pg_monitor, ops_team]
              reader:
                grants:
                  default_privileges:
                    - for: migrator
                      schema: nfl
                      tables: [SELECT]
            """)
        #expect(issues.count == 2)
        #expect(issues[0].location?.line == 5)
        #expect(issues[0].message.contains("ops_team is not managed by this spec"))
        #expect(issues[1].message.contains("migrator"))
    }

    @Test("membership cycles are reported once, at the entry that closes them")
    func cycles() {
        let (_, issues, _) = parse("""
            roles:
              a:
                member_of: [b]
              b:
                member_of: [c]
              c:
                member_of: [a]
              d:
                member_of: [d]
            """)
        let cycle = issues.filter { $0.message.contains("membership cycle") }
        #expect(cycle.count == 1)
        #expect(cycle.first?.message.contains("a → member of → b → member of → c → member of → a") == true)
        #expect(cycle.first?.location?.line == 7)
        #expect(issues.contains { $0.message.contains("cannot be a member of itself") && $0.location?.line == 9 })
    }

    @Test("reserved and impossible role names are refused at their line: pg_ prefix, public, a NUL byte")
    func reservedNames() {
        let (_, issues, _) = parse("""
            roles:
              pg_mine: {}
              public: {}
              "nul\\0byte": {}
            """)
        #expect(issues.count == 3, "\(issues.map(\.message))")
        #expect(issues.contains { $0.message.contains("reserved by PostgreSQL") })
        #expect(issues.contains { $0.message.contains("is a reserved role name") })
        #expect(issues.contains { $0.message.contains("contains a NUL byte") && $0.location?.line == 4 }, "\(issues.map(\.description))")
    }

    @Test("--role-prefix starting with pg_ is refused before anything runs (exit 2), as the same names in the spec are")
    func reservedRolePrefix() throws {
        let result = try CLIRunner.run(["roles", "validate", "--spec", TestPaths.repository + "/roles", "--role-prefix", "PG_fx_"])
        #expect(result.status == 2, "\(result.standardError)")
        #expect(result.standardError.contains("would make reserved or impossible role names"), "\(result.standardError)")
    }

    @Test("passwords, superuser and a password on a NOLOGIN role are rejected")
    func forbidden() {
        let (_, issues, _) = parse("""
            roles:
              app:
                login: true
                password: hunter2
              boss:
                superuser: true
              group:
                password_env: GROUP_PASSWORD
            """)
        #expect(issues.count == 3)
        #expect(issues[0].message.contains("never goes in the spec"))
        #expect(issues[1].message.contains("NOSUPERUSER"))
        #expect(issues[2].message.contains("not login: true"))
    }

    @Test("settings on a NOLOGIN role warn that members do not inherit them")
    func groupSettingsWarn() throws {
        let (spec, issues, warnings) = parse("""
            roles:
              readers:
                settings:
                  statement_timeout: 1s
              alice:
                login: true
                member_of: [readers]
                settings:
                  search_path: [nfl, public]
            """)
        #expect(issues.isEmpty)
        #expect(warnings.count == 1)
        #expect(warnings[0].location?.line == 4)
        #expect(warnings[0].message.contains("not inherited"))
        #expect(spec?.role("alice")?.settings.first?.value == .list(["nfl", "public"]))
    }

    @Test("default privileges without for: take the schema's declared owner, or fail")
    func defaultPrivilegeOwner() throws {
        let (spec, issues, _) = parse("""
            schemas:
              nfl: { owner: migrator }
            roles:
              migrator: { login: true }
              reader:
                grants:
                  default_privileges:
                    - { schema: nfl, tables: [SELECT] }
                    - { schema: other, tables: [SELECT] }
            """)
        #expect(spec == nil)
        #expect(issues.count == 1)
        #expect(issues[0].location?.line == 9)
    }

    @Test("invalid YAML and duplicate keys are reported with their line")
    func yamlErrors() {
        let (_, issues, _) = parse("roles:\n  a:\n    login: true\n  a:\n    login: false\n")
        #expect(issues.count == 1)
        #expect(issues[0].message.contains("duplicate key"))
        let (_, broken, _) = parse("roles:\n  a: [unclosed\n")
        #expect(broken.first?.message.hasPrefix("invalid YAML") == true)
        #expect((broken.first?.location?.line ?? 0) >= 2)
    }

    @Test("a role prefix renames managed roles and every reference, not unmanaged ones")
    func prefix() throws {
        let (spec, issues, _) = parse("""
            schemas:
              nfl: { owner: owner }
            unmanaged_roles: [pg_monitor]
            roles:
              owner: { login: true }
              reader:
                grants:
                  default_privileges: [{ schema: nfl, tables: [SELECT] }]
              app:
                login: true
                member_of: [reader, pg_monitor]
                settings: { role: owner }
            """)
        #expect(issues.isEmpty)
        let prefixed = try #require(spec).withRolePrefix("t1_")
        #expect(prefixed.roles.map(\.name) == ["t1_owner", "t1_reader", "t1_app"])
        #expect(prefixed.role("t1_app")?.memberOf.map(\.name) == ["t1_reader", "pg_monitor"])
        #expect(prefixed.role("t1_app")?.settings.first?.value == .scalar("t1_owner"))
        #expect(prefixed.role("t1_reader")?.privileges.defaultPrivileges.first?.owner == "t1_owner")
        #expect(prefixed.owner(ofSchema: "nfl") == "t1_owner")
    }

    @Test("a missing spec path is a configuration error (exit status 2)")
    func missingPath() {
        #expect(throws: RoleSpecError.self) { try RoleSpecParser.load(path: "/nonexistent/roles") }
        let error = RoleSpecError([SpecIssue("x", at: nil)])
        #expect(error.exitStatus == .usage)
    }
}

