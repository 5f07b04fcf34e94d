import Foundation
import NFLDBCore
import NFLDBTestSupport
import Testing

@Suite("nfldb backup against the sandbox, with no extra configuration")
struct BackupCLITests {
    @Test("sandbox env → backup init, run full/diff, info, verify (exit 0); health backups OK; errors exit 1/2")
    func sandboxBackupFlow() throws {
        try withScratchDirectory("nfldb-backup-cli") { dir in
            let state = (dir as NSString).appendingPathComponent("state")
            defer { _ = try? nfldb("sandbox", "down", "--dir", state) }
            let up = try nfldb("sandbox", "up", "--dir", state)
            #expect(up.status == 0, "\(up.standardError)")
            let env = try SandboxCLITests.parseExports(try nfldb("sandbox", "env", "--dir", state).standardOutput)
            #expect(env["NFLDB_BACKUP_CONFIG"] != nil)
            #expect(env["NFLDB_BACKUP_STANZA"] == "nfldb")
            let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

            let migrate = try nfldb("migrate", "up", "-q", env: env, in: repoRoot)
            #expect(migrate.status == 0, "\(migrate.standardError)")
            let initResult = try nfldb("backup", "init", env: env)
            #expect(initResult.status == 0, "\(initResult.allOutput)")
            let check = try nfldb("backup", "config", "--check", env: env)
            #expect(check.status == 0, "\(check.allOutput)")
            #expect(check.standardOutput.contains("ok    archive_command = pgbackrest --config="))

            let full = try nfldb("backup", "run", "--type", "full", "--format", "json", env: env)
            #expect(full.status == 0, "\(full.allOutput)")
            let report = try jsonObject(full.standardOutput)
            #expect((report["label"] as? String)?.hasSuffix("F") == true)
            #expect(((report["counts"] as? [String: Any])?.count ?? 0) > 0)
            let diff = try nfldb("backup", "run", "--type", "diff", env: env)
            #expect(diff.status == 0, "\(diff.allOutput)")

            let info = try nfldb("backup", "info", env: env)
            #expect(info.status == 0, "\(info.allOutput)")
            #expect(info.standardOutput.contains("stanza nfldb: status 0 (ok)"))
            #expect(info.standardOutput.contains(" diff "))

            let verify = try nfldb("backup", "verify", "--receipt", "\(dir)/receipt.json", env: env)
            #expect(verify.status == 0, "\(verify.allOutput)")
            #expect(verify.standardOutput.contains("backup verify PASSED"))
            let receipt = try jsonObject(try String(contentsOfFile: "\(dir)/receipt.json", encoding: .utf8))
            #expect(receipt["status"] as? String == "ok")

            let health = try nfldb("health", "--check", "backups", env: env)
            #expect(health.status == 0, "\(health.allOutput)")

            var wrong = env
            wrong["NFLDB_BACKUP_STANZA"] = "nflbd"
            let wrongInfo = try nfldb("backup", "info", env: wrong)
            #expect(wrongInfo.status == 1)
            #expect(wrongInfo.standardError.contains("stanza nflbd is not usable: pgBackRest status 1 (missing stanza path)"))
            let wrongVerify = try nfldb("backup", "verify", env: wrong)
            #expect(wrongVerify.status == 1)
            #expect(wrongVerify.standardError.contains("repo-info"))

            var noConfig = env
            noConfig.removeValue(forKey: "NFLDB_BACKUP_CONFIG")
            let missing = try nfldb("backup", "run", env: noConfig)
            #expect(missing.status == 2)
            #expect(missing.standardError.contains("backup.config is not set"))
        }
    }
}
