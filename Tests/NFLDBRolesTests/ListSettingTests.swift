import Foundation
import NFLDBCore
import NFLDBPostgres
import NFLDBTestSupport
import Testing

@testable import NFLDBRoles

/// `search_path` and the other settings PostgreSQL stores as a quoted list (GUC_LIST_QUOTE).
@Suite("list settings (search_path) in a roles spec")
struct ListSettingTests {
    func issues(_ yaml: String) -> [SpecIssue] {
        var parser = RoleSpecParser()
        do {
            _ = try parser.parse(files: [("spec.yaml", yaml)])
            return []
        } catch let error as RoleSpecError {
            return error.issues
        } catch {
            Issue.record("unexpected error \(error)")
            return []
        }
    }

    @Test("a comma-separated scalar for a list setting is refused at its line with the YAML list to write; other settings keep scalars")
    func commaScalarRefused() throws {
        let found = issues("""
            roles:
              app:
                login: true
                settings:
                  statement_timeout: 60s
                  search_path: public, nfl
                  datestyle: ISO, MDY
                  temp_tablespaces: "fast,slow"
            """)
        let flow = issues("roles:\n  app:\n    login: true\n    settings: { search_path: public, nfl, statement_timeout: 1s }\n")
        #expect(flow.count == 1, "\(flow)")
        #expect(flow.first?.location?.line == 4)
        #expect(flow.first?.message.contains(#"setting "nfl" has no value"#) == true, "\(flow)")
        #expect(flow.first?.message.contains("use a YAML list: [public, nfl]") == true, "\(flow)")

        #expect(found.count == 2, "\(found)")
        #expect(found.first?.location?.line == 6)
        #expect(found.first?.message.contains("use a YAML list: [public, nfl]") == true, "\(found)")
        #expect(found.last?.location?.line == 8)
        #expect(found.last?.message.contains("use a YAML list: [fast, slow]") == true, "\(found)")

        var parser = RoleSpecParser()
        let spec = try parser.parse(files: [("spec.yaml", """
            roles:
              app:
                login: true
                settings: { search_path: nfl, datestyle: "ISO, MDY", temp_tablespaces: [] }
            """)])
        let settings = spec.role("app")?.settings ?? []
        #expect(settings.first { $0.name == "search_path" }?.value == .list(["nfl"]), "a one-element scalar is a one-element list")
        #expect(settings.first { $0.name == "datestyle" }?.value == .scalar("ISO, MDY"), "DateStyle is parsed by the server, not quoted")
    }

    @Test("CLI against a real server: validate/plan refuse `search_path: public, nfl` (exit 2, file:line); the list form and a \"$user\" scalar apply and settle")
    func commandLine() throws {
        try TestCluster.withDatabase(prefix: "roles_list") { db in
            let prefix = TestRoles.uniquePrefix("l")
            defer { TestRoles.drop(prefix: prefix) }
            let dir = try CLIRunner.temporaryDirectory("nfldb-roles-list")
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let file = dir + "/spec.yaml"
            func write(_ settings: String) throws {
                try "roles:\n  \(prefix)app:\n    login: true\n    settings: \(settings)\n".write(toFile: file, atomically: true, encoding: .utf8)
            }
            let base = ["--spec", dir, "--dsn", db.dsn]

            // Block style (one scalar "public, nfl") and flow style (where the comma starts a setting "nfl").
            for (settings, line) in [("\n      search_path: public, nfl", 5), ("{ search_path: public, nfl }", 4)] {
                try write(settings)
                for command in ["validate", "plan", "apply"] {
                    let result = try CLIRunner.run(["roles", command] + (command == "validate" ? ["--spec", dir] : base))
                    #expect(result.status == 2, "\(command): \(result.standardOutput) \(result.standardError)")
                    #expect(result.standardError.contains("spec.yaml:\(line)"), "\(command): \(result.standardError)")
                    #expect(result.standardError.contains("use a YAML list: [public, nfl]"), "\(command): \(result.standardError)")
                }
            }
            let admin = try db.connect()
            defer { admin.close() }
            #expect(try admin.query("SELECT count(*) FROM pg_roles WHERE rolname = \(prefix + "app")").scalar(Int.self) == 0, "apply changed nothing")

            for settings in ["{ search_path: [public, nfl] }", #"{ search_path: "$user" }"#] {
                try write(settings)
                let apply = try CLIRunner.run(["roles", "apply"] + base)
                #expect(apply.status == 0, "\(settings): \(apply.standardOutput) \(apply.standardError)")
                #expect(!apply.allText.contains("planning again still finds"), "\(settings): \(apply.allText)")
                // (roles check would also see other tests' roles, cluster-wide: look only at this role's statements.)
                let plan = try CLIRunner.run(["roles", "plan", "--format", "json"] + base)
                #expect(plan.status == 0, "\(settings): \(plan.allText)")
                let report = try #require(try JSONSerialization.jsonObject(with: Data(plan.standardOutput.utf8)) as? [String: Any])
                let statements = try #require(report["statements"] as? [[String: Any]], "\(report)")
                let mine = statements.filter { $0["role"] as? String == prefix + "app" }
                #expect(mine.isEmpty, "\(settings): the plan settles, but still has \(mine)")
            }
            let config = try admin.query("SELECT array_to_string(rolconfig, ';') FROM pg_roles WHERE rolname = \(prefix + "app")").scalar(String.self)
            #expect(config == #"search_path="$user""#)
        }
    }
}

extension ProcessResult {
    fileprivate var allText: String { standardOutput + standardError }
}
