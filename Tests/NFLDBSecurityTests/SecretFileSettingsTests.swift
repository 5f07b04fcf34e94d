import Foundation
import NFLDBCore
import NFLDBTestSupport
import Testing

/// `security_secret_files` reads the modes of every secret file the configuration points at: the
/// alerts' `*_file` secrets and the `file:` targets of `password_ref`, `redis.password`, alert
/// `*_ref` and the roles spec's `password_ref` (besides password_file, .pgpass, sslkey, backup.config).
@Suite("Posture check: secret files named by *_file and file: references", .serialized)
struct SecretFileSettingsTests {
    @Test("each group/world-readable secret file is a finding naming its setting; all 0600 is clean")
    func everySettingIsChecked() throws {
        let server = try TLSTestServer.start(hba: ["local all all trust", "host all all 127.0.0.1/32 trust"], ssl: false)
        defer { server.stop() }
        let dir = try CLIRunner.temporaryDirectory("nfldb-posture-refs")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // (file, mode, the setting the finding must name, world-readable?)
        let files: [(name: String, mode: mode_t, setting: String, world: Bool)] = [
            ("db.pw", 0o640, "password_ref", false),
            ("redis.pw", 0o644, "redis.password", true),
            ("sentinel.pw", 0o640, "redis.sentinel_password", false),
            ("pd.key", 0o604, "routing_key_file of alert oncall", true),
            ("slack.url", 0o640, "url_ref of alert chat", false),
            ("hook.url", 0o660, "url_file of alert hook", false),
            ("role.pw", 0o644, "password_ref of role app_login (roles.spec)", true),
        ]
        for file in files {
            let path = "\(dir)/\(file.name)"
            try "secret-in-\(file.name)-4417\n".write(toFile: path, atomically: true, encoding: .utf8)
            chmod(path, file.mode)
        }
        try FileManager.default.createDirectory(atPath: dir + "/roles", withIntermediateDirectories: true)
        try "version: 1\nroles:\n  app_login:\n    login: true\n    password_ref: file:\(dir)/role.pw\n"
            .write(toFile: dir + "/roles/app.yaml", atomically: true, encoding: .utf8)
        try """
            dsn: "\(server.socketDSN)"
            password_ref: file:\(dir)/db.pw
            redis:
              password: file:\(dir)/redis.pw
              sentinel_password: file:\(dir)/sentinel.pw
            roles:
              spec: \(dir)/roles
            alerts:
              - { name: oncall, type: pagerduty, routing_key_file: \(dir)/pd.key }
              - { name: chat, type: slack, url_ref: "file:\(dir)/slack.url" }
              - { name: hook, type: webhook, url_file: \(dir)/hook.url }
              - { name: env-only, type: slack, url_env: SOME_HOOK }
            """.write(toFile: dir + "/nfldb.yaml", atomically: true, encoding: .utf8)
        let environment = ["HOME": dir]  // no ~/.pgpass in play

        let weak = try CLIRunner.run(["security", "check", "--check", "security_secret_files"], environment: environment, workingDirectory: dir)
        #expect(weak.status == 2, "\(weak.standardOutput)\(weak.standardError)")
        for file in files {
            let line = "\(file.setting) \(dir)/\(file.name) is \(file.world ? "world" : "group")-readable (mode \(String(file.mode, radix: 8)))"
            #expect(weak.standardOutput.contains("[\(file.world ? "CRITICAL" : "WARNING")] \(line)"), "missing: \(line)\n\(weak.standardOutput)")
            #expect(weak.standardOutput.contains("fix: chmod 600 \(dir)/\(file.name)"))
            #expect(!weak.standardOutput.contains("secret-in-\(file.name)"))
        }
        // password_ref's file is refused for the connection too; the check still runs (trust auth here) and says so.
        #expect(weak.standardError.contains("password_ref") && weak.standardError.contains("group or world access"), "\(weak.standardError)")

        let json = try CLIRunner.run(["security", "check", "--check", "security_secret_files", "--format", "json"], environment: environment, workingDirectory: dir)
        #expect(json.status == 2)
        #expect(json.standardOutput.contains("\"setting\" : \"redis.password\"") || json.standardOutput.contains("\"setting\":\"redis.password\""), "\(json.standardOutput)")

        for file in files { chmod("\(dir)/\(file.name)", 0o600) }
        let clean = try CLIRunner.run(["security", "check", "--check", "security_secret_files"], environment: environment, workingDirectory: dir)
        #expect(clean.status == 0, "\(clean.standardOutput)\(clean.standardError)")
        #expect(clean.standardOutput.contains("secret files readable by the owner only"), "\(clean.standardOutput)")
    }
}
