import Foundation
import NFLDBCore
import NFLDBHealth
import NFLDBPostgres
import NFLDBSecurity
import NFLDBTestSupport
import Testing

/// `nfldb security check` against a deliberately weak cluster (every finding asserted) and a
/// hardened one (clean), both real PostgreSQL 15 clusters of their own.
@Suite("Security posture check", .serialized)
struct PostureTests {
    static var repoRoot: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    }

    func run(_ server: TLSTestServer, secretFiles: [SecretFile], scan: [String], allowed: [String] = []) throws -> [String: CheckResult] {
        let generated = QualifiedDefiners(schema: "gen", namePattern: "^capture_row_[0-9]+$", checkedBy: "its generator")
        let probes = SecurityChecks.all(
            config: SecurityConfig(allowedSuperusers: allowed), secretFiles: secretFiles, scanPaths: scan, qualifiedDefiners: [generated])
        var values: [String: String] = [:]
        for probe in probes { values["\(probe.name).enabled"] = "true" }
        let report = HealthRunner(settings: HealthSettings(values: values), probes: probes, logger: TestCluster.logger)
            .run([HealthTarget(options: ConnectionOptions(dsn: server.socketDSN))])
        let checks = try #require(report.targets.first?.checks)
        #expect(checks.count == SecurityChecks.names.count)
        return Dictionary(uniqueKeysWithValues: checks.map { ($0.name, $0) })
    }

    static func firstStatement(_ text: String) -> String {
        var quote: Character?
        var result = ""
        for character in text {
            if let open = quote {
                if character == open { quote = nil }
            } else if character == "\"" || character == "'" {
                quote = character
            } else if character == ";" {
                break
            }
            result.append(character)
        }
        return result
    }

    func whats(_ check: CheckResult?) -> [String] {
        (check?.details ?? []).compactMap { $0["what"]?.description }
    }

    func fields(_ check: CheckResult?, _ key: String) -> [String] {
        (check?.details ?? []).compactMap { $0[key]?.description }
    }

    @Test("a weak cluster: every finding is reported with what, why and fix")
    func weakCluster() throws {
        let server = try TLSTestServer.start(
            hba: ["local all all trust", "host all weak_trusted 127.0.0.1/32 trust", "host all weak_pam 127.0.0.2/32 pam",
                  "host all weak_ident 127.0.0.3/32 ident", "host all all 127.0.0.1/32 md5"],
            settings: [("password_encryption", "md5")], ssl: false)
        defer { server.stop() }
        let admin = try PostgresConnection.connect(ConnectionOptions(dsn: server.socketDSN), logger: TestCluster.logger)
        defer { admin.close() }
        try admin.runScript(unsafeSQL: """
            CREATE ROLE weak_md5 LOGIN PASSWORD 'weak-md5-pass';
            CREATE ROLE weak_super LOGIN SUPERUSER;
            CREATE ROLE weak_sugroup NOLOGIN SUPERUSER;
            CREATE ROLE weak_member LOGIN;
            GRANT weak_sugroup TO weak_member;
            CREATE ROLE weak_bypass NOLOGIN BYPASSRLS;
            GRANT CREATE ON SCHEMA public TO PUBLIC;
            CREATE FUNCTION public.weak_definer() RETURNS int LANGUAGE sql SECURITY DEFINER AS 'SELECT 1';
            CREATE FUNCTION public.fixed_definer() RETURNS int LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS 'SELECT 1';
            -- Registered as generated with qualified names: only functions the schema's owner owns whose name matches are not counted.
            CREATE ROLE weak_genowner NOLOGIN;
            CREATE SCHEMA gen AUTHORIZATION weak_genowner;
            CREATE FUNCTION gen.capture_row_1() RETURNS int LANGUAGE sql SECURITY DEFINER AS 'SELECT 1';
            ALTER FUNCTION gen.capture_row_1() OWNER TO weak_genowner;
            CREATE FUNCTION gen.capture_row_2() RETURNS int LANGUAGE sql SECURITY DEFINER AS 'SELECT 1';
            CREATE FUNCTION gen.capture_row_3x() RETURNS int LANGUAGE sql SECURITY DEFINER AS 'SELECT 1';
            ALTER FUNCTION gen.capture_row_3x() OWNER TO weak_genowner;
            """)
        let dir = try CLIRunner.temporaryDirectory("nfldb-posture")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let passwordFile = dir + "/db-password"
        try "s3cret-file-pass\n".write(toFile: passwordFile, atomically: true, encoding: .utf8)
        chmod(passwordFile, 0o644)
        let groupFile = dir + "/pgbackrest.conf"
        try "[global]\nrepo1-cipher-pass=x\n".write(toFile: groupFile, atomically: true, encoding: .utf8)
        chmod(groupFile, 0o640)
        let noSecretFile = dir + "/pgbackrest-plain.conf"
        try "[global]\nrepo1-path=/var/lib/pgbackrest\n".write(toFile: noSecretFile, atomically: true, encoding: .utf8)
        chmod(noSecretFile, 0o644)
        try FileManager.default.createDirectory(atPath: dir + "/migrations", withIntermediateDirectories: true)
        try "CREATE ROLE app LOGIN PASSWORD 'x';\n".write(toFile: dir + "/migrations/0001_app.up.sql", atomically: true, encoding: .utf8)
        try "dsn: postgresql://app:hunter2@db.example.com/nfl\npassword_env: PGPASS_VAR\n".write(toFile: dir + "/nfldb.yaml", atomically: true, encoding: .utf8)

        let checks = try run(server, secretFiles: [
            SecretFile(setting: "password_file", path: passwordFile), SecretFile(setting: "backup.config", path: groupFile, secretMarkers: SecretFile.pgBackRestSecrets),
            SecretFile(setting: "backup.config", path: noSecretFile, secretMarkers: SecretFile.pgBackRestSecrets),
            SecretFile(setting: "~/.pgpass", path: dir + "/absent"),
        ], scan: [dir + "/nfldb.yaml", dir + "/migrations", dir + "/roles"])

        let superusers = checks["security_superusers"]
        #expect(superusers?.status == .warning)
        #expect(fields(superusers, "role") == ["weak_super", "weak_member"], "the bootstrap superuser postgres (OID 10) is accepted; a member of a superuser role is one")
        #expect(whats(superusers).contains("login role weak_member can SET ROLE to the superuser weak_sugroup"), "\(whats(superusers))")

        let hashes = checks["security_password_hashes"]
        #expect(hashes?.status == .warning)
        #expect(fields(hashes, "role") == ["weak_md5"])
        #expect(fields(hashes, "storage") == ["md5"])

        #expect(checks["security_password_encryption"]?.status == .warning)
        #expect(checks["security_password_encryption"]?.message.contains("md5") == true)

        let hba = checks["security_hba"]
        #expect(hba?.status == .critical)
        #expect(fields(hba, "method").sorted() == ["ident", "md5", "pam", "trust"], "\(whats(hba))")
        #expect(fields(hba, "line").allSatisfy { $0.contains("pg_hba.conf:") })
        #expect(!fields(hba, "method").contains("peer") && !whats(hba).contains { $0.contains("local") })

        #expect(checks["security_ssl"]?.status == .warning)
        #expect(checks["security_ssl"]?.hint?.contains("ssl = on") == true)

        let publicCreate = checks["security_public_create"]
        #expect(publicCreate?.status == .warning)
        #expect(fields(publicCreate, "schema") == ["public"])
        #expect(publicCreate?.hint?.contains("REVOKE CREATE ON SCHEMA \"public\" FROM PUBLIC") == true)

        let definer = checks["security_definer_search_path"]
        #expect(definer?.status == .warning)
        #expect(fields(definer, "function") == ["gen.capture_row_2()", "gen.capture_row_3x()", "public.weak_definer()"],
                "the function with SET search_path is not reported, nor the registered generated one its schema's owner owns")

        let bypass = checks["security_bypassrls"]
        #expect(bypass?.status == .warning)
        #expect(fields(bypass, "role") == ["weak_bypass"])

        let limits = checks["security_login_limits"]
        #expect(limits?.status == .ok, "informational only: the roles spec requires no limits")
        #expect(fields(limits, "role").contains("weak_md5"))

        let files = checks["security_secret_files"]
        #expect(files?.status == .critical)
        #expect(fields(files, "mode").sorted() == ["640", "644"])
        #expect(whats(files).contains { $0.contains("world-readable") && $0.contains(passwordFile) })
        #expect(whats(files).contains { $0.contains("group-readable") && $0.contains(groupFile) })

        let credentials = checks["security_hardcoded_credentials"]
        #expect(credentials?.status == .critical)
        #expect(fields(credentials, "kind").sorted() == ["sql_password", "url_password"])
        #expect(whats(credentials).contains { $0.hasSuffix("0001_app.up.sql:1: PASSWORD '…' (a literal password)") })
        #expect(whats(credentials).contains { $0.contains("nfldb.yaml:1") })
        // Never the secrets themselves.
        let everything = checks.values.map { "\($0.message) \($0.hint ?? "") \($0.details.map(\.description))" }.joined()
        for secret in ["hunter2", "weak-md5-pass", "s3cret-file-pass"] { #expect(!everything.contains(secret)) }
        // Every finding has what, why and fix.
        for check in checks.values {
            for detail in check.details where detail["severity"]?.description != "INFO" {
                #expect(detail["why"] != nil && detail["fix"] != nil, "\(check.name)")
            }
        }
        // An allowed superuser is no longer a finding.
        let allowed = try run(server, secretFiles: [], scan: [], allowed: ["weak_super", "weak_member"])
        #expect(allowed["security_superusers"]?.status == .ok)
        // The printed fix for the membership, run as printed, clears it.
        let fix = try #require(checks["security_superusers"]?.details.compactMap { $0["fix"]?.description }.first { $0.hasPrefix("REVOKE") })
        try admin.runScript(unsafeSQL: String(fix.prefix { $0 != ";" }))
        #expect(try run(server, secretFiles: [], scan: [], allowed: ["weak_super"])["security_superusers"]?.status == .ok)
    }

    @Test("the printed SQL fixes, run as printed, clear their findings (hostile role and function names included)")
    func fixesWork() throws {
        let server = try TLSTestServer.start(settings: [("password_encryption", "md5")])
        defer { server.stop() }
        let admin = try PostgresConnection.connect(ConnectionOptions(dsn: server.socketDSN), logger: TestCluster.logger)
        defer { admin.close() }
        try admin.runScript(unsafeSQL: """
            CREATE ROLE "we""ird super" LOGIN SUPERUSER;
            CREATE ROLE "by pass" NOLOGIN BYPASSRLS;
            CREATE SCHEMA "Odd ""schema";
            GRANT CREATE ON SCHEMA "Odd ""schema" TO PUBLIC;
            CREATE FUNCTION "Odd ""schema"."f; x"(int) RETURNS int LANGUAGE sql SECURITY DEFINER AS 'SELECT 1';
            """)
        let before = try run(server, secretFiles: [], scan: [])
        let names = ["security_superusers", "security_bypassrls", "security_public_create", "security_definer_search_path", "security_password_encryption"]
        for name in names {
            let check = try #require(before[name])
            #expect(check.status == .warning, "\(name): \(check.message)")
            for detail in check.details {
                // The SQL part of the fix: up to the first ";" outside quotes (what follows is advice in words).
                let statement = Self.firstStatement(try #require(detail["fix"]?.description))
                try admin.runScript(unsafeSQL: statement)
                if statement.hasPrefix("ALTER SYSTEM") { try admin.execute("SELECT pg_reload_conf()") }
            }
        }
        Thread.sleep(forTimeInterval: 0.3)  // pg_reload_conf is asynchronous
        let after = try run(server, secretFiles: [], scan: [])
        for name in names {
            #expect(after[name]?.status == .ok, "\(name) after its fix: \(after[name]?.message ?? "")")
        }
    }

    @Test("a hardened cluster (TLS, hostssl scram only, PG15 defaults) with this repository's migrations/ and roles/ passes clean")
    func hardenedCluster() throws {
        let server = try TLSTestServer.start()
        defer { server.stop() }
        let dir = try CLIRunner.temporaryDirectory("nfldb-posture-ok")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let passwordFile = dir + "/db-password"
        try "pw\n".write(toFile: passwordFile, atomically: true, encoding: .utf8)
        chmod(passwordFile, 0o600)
        let checks = try run(server, secretFiles: [SecretFile(setting: "password_file", path: passwordFile)], scan: [
            Self.repoRoot + "/migrations", Self.repoRoot + "/roles",
        ])
        for check in checks.values.sorted(by: { $0.name < $1.name }) {
            #expect(check.status == .ok, "\(check.name): \(check.message)")
        }
        #expect(checks["security_hardcoded_credentials"]?.message.contains("no hard-coded credential") == true)
    }

    @Test("nfldb security check: exit 2 and findings in text/json/nagios on the weak cluster, 0 when hardened; health runs security_* only when asked")
    func cli() throws {
        let weak = try TLSTestServer.start(hba: ["local all all trust", "host all all 127.0.0.1/32 trust"], ssl: false)
        defer { weak.stop() }
        let dir = try CLIRunner.temporaryDirectory("nfldb-posture-cli")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "dsn: \"\(weak.socketDSN)\"\n".write(toFile: dir + "/nfldb.yaml", atomically: true, encoding: .utf8)
        let text = try CLIRunner.run(["security", "check"], workingDirectory: dir)
        #expect(text.status == 2, "\(text.standardOutput)\(text.standardError)")
        #expect(text.standardOutput.contains("CRITICAL security_hba"))
        #expect(text.standardOutput.contains("why: anyone who can reach the port"))
        #expect(text.standardOutput.contains("fix: Change the method to scram-sha-256"))
        let json = try CLIRunner.run(["security", "check", "--format", "json"], workingDirectory: dir)
        #expect(json.status == 2)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.standardOutput.utf8)) as? [String: Any])
        #expect(object["status"] as? String == "CRITICAL" || object["exit_code"] as? Int == 2)
        let nagios = try CLIRunner.run(["security", "check", "--format", "nagios", "--check", "security_ssl"], workingDirectory: dir)
        #expect(nagios.status == 1)
        #expect(nagios.standardOutput.hasPrefix("WARNING") || nagios.standardOutput.contains("WARNING"))
        let prometheus = try CLIRunner.run(["security", "check", "--format", "prometheus", "--check", "security_hba"], workingDirectory: dir)
        #expect(prometheus.status == 2)
        #expect(prometheus.standardOutput.contains("security_hba"))
        // nfldb health: off by default, on with --check.
        let health = try CLIRunner.run(["health", "--format", "json"], workingDirectory: dir)
        #expect(!health.standardOutput.contains("security_hba"))
        let asked = try CLIRunner.run(["health", "--check", "security_hba"], workingDirectory: dir)
        #expect(asked.status == 2)
        #expect(asked.standardOutput.contains("security_hba"))
        let unknown = try CLIRunner.run(["security", "check", "--check", "nope"], workingDirectory: dir)
        #expect(unknown.status == 3)
        // A roles spec whose password_file is world-readable, and a hard-coded password in a migration.
        try FileManager.default.createDirectory(atPath: dir + "/roles", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: dir + "/migrations", withIntermediateDirectories: true)
        try "app-secret\n".write(toFile: dir + "/app.pw", atomically: true, encoding: .utf8)
        chmod(dir + "/app.pw", 0o604)
        try "version: 1\nroles:\n  app_login:\n    login: true\n    password_file: \(dir)/app.pw\n"
            .write(toFile: dir + "/roles/app.yaml", atomically: true, encoding: .utf8)
        try "ALTER ROLE app_login PASSWORD 'app-secret';\n".write(toFile: dir + "/migrations/0001_x.up.sql", atomically: true, encoding: .utf8)
        let files = try CLIRunner.run(
            ["security", "check", "--check", "security_secret_files", "--check", "security_hardcoded_credentials"], workingDirectory: dir)
        #expect(files.status == 2, "\(files.standardOutput)\(files.standardError)")
        #expect(files.standardOutput.contains("password_file of role app_login (roles.spec) \(dir)/app.pw is world-readable (mode 604)"))
        #expect(files.standardOutput.contains("migrations/0001_x.up.sql:1: PASSWORD '…' (a literal password)"))
        #expect(!files.standardOutput.contains("app-secret"))
        try FileManager.default.removeItem(atPath: dir + "/roles")
        try FileManager.default.removeItem(atPath: dir + "/migrations")

        let strong = try TLSTestServer.start()
        defer { strong.stop() }
        try "dsn: \"\(strong.socketDSN)\"\nmigrations:\n  dir: \(Self.repoRoot)/migrations\nroles:\n  spec: \(Self.repoRoot)/roles\n"
            .write(toFile: dir + "/nfldb.yaml", atomically: true, encoding: .utf8)
        let clean = try CLIRunner.run(["security", "check"], workingDirectory: dir)
        #expect(clean.status == 0, "\(clean.standardOutput)\(clean.standardError)")
    }
}
